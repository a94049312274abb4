// The config file's shape (docs/architecture.md). Key names and shapes are the public
// contract: extend them, never rename them. Every object is strict, so a typo
// in a key is an error that names its YAML path instead of a silent default.
import { isIP } from 'node:net';
import { z } from 'zod';
import { validate as validCron } from 'node-cron';
import { parseTlsa } from '../dane/tlsa.js';
import { isLoopbackHost } from '../metrics/loopback.js';
import { isLoopbackUrlHost, NOT_A_URL, urlProblem } from '../util/url-policy.js';
import { reservedHookVariable } from '../hooks/environment.js';

export const KEY_TYPES = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

const durationRe = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse `90d`, `48h`, `30s`, `500ms` (or a bare number of seconds) to milliseconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v * 1000 : undefined;
  const m = durationRe.exec(v.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

const duration = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not a duration: ${JSON.stringify(v)} (use e.g. 90d, 48h, 30s)` });
      return z.NEVER;
    }
    return ms;
  });

const absPath = z.string().min(1).refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port (IPv6 in brackets: "[::1]:25")');

const mode = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'must be an octal mode like "0600"');

/** An environment variable's name (never its value: a pasted secret must not be echoed back). */
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'not an environment variable name');

export const tsigSchema = z
  .object({
    name: z.string().min(1),
    algorithm: z
      .enum(['hmac-sha256', 'hmac-sha384', 'hmac-sha512', 'hmac-sha224', 'hmac-sha1', 'hmac-md5'])
      .default('hmac-sha256'),
    secretFile: absPath.optional(),
    secretEnv: envName.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (!t.secretFile && !t.secretEnv) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['secretFile'], message: 'required (or secretEnv)' });
    }
  });

export const rfc2136Schema = z
  .object({
    provider: z.literal('rfc2136'),
    server: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(53),
    zone: z.string().min(1),
    tsig: tsigSchema,
    /** TTL of the records mxcert adds. */
    ttl: z.number().int().min(0).max(86400).default(60),
    /** How long to wait for every authoritative server to serve the record. */
    propagationTimeout: duration.default('120s'),
    /** Explicit authoritative servers (host:port) instead of the zone's NS set; for split-horizon and tests. */
    nameservers: z.array(hostPort).optional(),
  })
  .strict();

const dnsChallenge = z
  .object({
    type: z.literal('dns-01'),
    dns: rfc2136Schema,
  })
  .strict();

const httpChallenge = z
  .object({
    type: z.literal('http-01'),
    http: z
      .object({
        listen: hostPort.optional(),
        webroot: absPath.optional(),
      })
      .strict()
      .superRefine((h, ctx) => {
        if (!h.listen === !h.webroot) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give exactly one of listen or webroot' });
        }
      }),
  })
  .strict();

const outputSchema = z
  .object({
    combined: absPath.optional(),
    key: absPath.optional(),
    cert: absPath.optional(),
    chain: absPath.optional(),
    fullchain: absPath.optional(),
    mode: mode.default('0600'),
    /** Mode of files that hold no key (cert, chain, fullchain). Defaults to `mode`. */
    publicMode: mode.optional(),
    owner: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
    group: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
  })
  .strict();

const hookCommand = z.union([absPath, z.array(z.string()).min(1)]);

/**
 * Variables a config passes to its hooks, on top of the clean environment
 * they get (src/hooks/environment.ts); not mxcert's own or certbot's names.
 * A name that a `*Env` setting names is never passed (a secret).
 */
const hookEnv = z
  .record(
    envName.refine((n) => !reservedHookVariable(n), { message: 'MXCERT_* and RENEWED_* variables are set by mxcert' }),
    z.string(),
  )
  .default({});

const hooksSchema = z
  .object({
    deploy: z.array(hookCommand).default([]),
    failure: z.array(hookCommand).default([]),
    timeout: duration.default('60s'),
    /** Extra environment for these hooks, e.g. POSTFIX_CONFIG_DIR; no secrets here. */
    env: hookEnv,
  })
  .strict();

const verifySchema = z
  .object({
    smtp: z.array(hostPort).default([]),
    /** SNI / name to present when probing; defaults to the first domain. */
    serverName: z.string().optional(),
    /** How long to keep retrying while the MTA reloads. */
    timeout: duration.default('15s'),
  })
  .strict();

// --- DANE (docs/architecture.md, "DANE rollover") -------------------------------------------------------

/** TTL of the TLSA records mxcert publishes. One hour is the common choice for
 * TLSA; holds are computed from the TTL actually served, so a shorter one
 * only makes rollovers quicker, never unsafe. */
const tlsaTtl = z.number().int().min(0).max(604800).default(3600);

/** Authoritative servers to check instead of the zone's NS set (host:port). */
const daneNameservers = z.array(hostPort).min(1).optional();

const danePublisherRfc2136 = z
  .object({
    provider: z.literal('rfc2136'),
    /** The primary: receives the UPDATE and is read for the current RRset. */
    server: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(53),
    zone: z.string().min(1),
    tsig: tsigSchema,
    ttl: tlsaTtl,
    nameservers: daneNameservers,
  })
  .strict();

const danePublisherPdns = z
  .object({
    provider: z.literal('pdns'),
    /**
     * Base URL of the PowerDNS webserver, e.g. http://127.0.0.1:8081 (the
     * /api/v1 part is added). https, or plain http to loopback only: every
     * request carries the API key.
     */
    url: z
      .string()
      .url()
      .superRefine((u, ctx) => {
        const bad = urlProblem(u, { loopbackHttp: true });
        if (bad && bad !== NOT_A_URL) ctx.addIssue({ code: z.ZodIssueCode.custom, message: bad });
      }),
    serverId: z.string().min(1).default('localhost'),
    zone: z.string().min(1),
    apiKeyFile: absPath.optional(),
    apiKeyEnv: envName.optional(),
    ttl: tlsaTtl,
    nameservers: daneNameservers,
    /** Where PowerDNS answers DNS (for NS discovery when `nameservers` is not given). Default: the URL's host. */
    server: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).default(53),
    /** Per HTTP request. */
    timeout: duration.default('30s'),
  })
  .strict();

const danePublisherHook = z
  .object({
    provider: z.literal('hook'),
    /** Gets MXCERT_EVENT=tlsa-publish/tlsa-retire, MXCERT_TLSA, MXCERT_TLSA_OWNER/_ADD/_REMOVE/_TTL. */
    command: hookCommand,
    /** Every authoritative server; the first is read for the current RRset. */
    nameservers: z.array(hostPort).min(1),
    ttl: tlsaTtl,
    timeout: duration.default('60s'),
    /** Extra environment for the hook (e.g. NSUPDATE_SERVER for hooks/nsupdate-tlsa); no secrets here. */
    env: hookEnv,
  })
  .strict();

export const danePublisherSchema = z.discriminatedUnion('provider', [danePublisherRfc2136, danePublisherPdns, danePublisherHook]);

/** `3 1 1 <hex>` and friends, checked exactly as the publisher will parse them. */
const tlsaText = z.string().superRefine((v, ctx) => {
  try {
    parseTlsa(v);
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
  }
});

const daneSchema = z
  .object({
    enabled: z.boolean().default(false),
    endpoints: z.array(z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }).strict()).default([]),
    publisher: danePublisherSchema.optional(),
    keyLifetime: duration.default('90d'),
    minHold: duration.default('48h'),
    strictSignatures: z.boolean().default(false),
    /**
     * A validating resolver (host:port, e.g. a local unbound). When set, a
     * swap also waits until it returns the RRset with the next key's record
     * and the AD bit set, as a DNSSEC-validating sender would see it.
     */
    validatingResolver: hostPort
      .refine((v) => isIP(v.replace(/^\[|\]?:\d+$/g, '')) !== 0, { message: 'must be an IP address and port (e.g. "127.0.0.1:53"); mxcert does not resolve the resolver' })
      .optional(),
    /** Records to publish alongside mxcert's own 3 1 1 (e.g. "2 1 1 <issuer SPKI hash>"); never removed by mxcert. */
    extraRecords: z.array(tlsaText).default([]),
  })
  .strict()
  .superRefine((d, ctx) => {
    const p = d.publisher;
    if (p?.provider === 'pdns') {
      if (!p.apiKeyFile && !p.apiKeyEnv) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['publisher', 'apiKeyFile'], message: 'required (or apiKeyEnv)' });
      if (p.apiKeyFile && p.apiKeyEnv) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['publisher', 'apiKeyEnv'], message: 'give only one of apiKeyFile or apiKeyEnv' });
    }
    if (p?.provider === 'rfc2136' && p.tsig.secretFile && p.tsig.secretEnv) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['publisher', 'tsig', 'secretEnv'], message: 'give only one of secretFile or secretEnv' });
    }
  });

export type DaneConfig = z.output<typeof daneSchema>;
export type DanePublisherConfig = z.output<typeof danePublisherSchema>;
export type DaneRfc2136PublisherConfig = z.output<typeof danePublisherRfc2136>;
export type DanePdnsPublisherConfig = z.output<typeof danePublisherPdns>;
export type DaneHookPublisherConfig = z.output<typeof danePublisherHook>;

const domainName = z
  .string()
  .regex(/^(\*\.)?([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}\.?$/, 'not a valid DNS name');

/** MTA-STS (RFC 8461): after each renewal, check the domain's policy against
 * the certificate and the MX set; problems are logged as warnings only. */
const mtaStsSchema = z
  .object({
    /** The policy domain (the part after the @ in mail addresses), e.g. example.com. */
    domain: domainName.refine((d) => !d.startsWith('*.'), { message: 'a policy domain, not a wildcard' }),
    /** Where to fetch the policy instead of https://mta-sts.DOMAIN/.well-known/mta-sts.txt (tests, split horizon). */
    policyUrl: z
      .string()
      .url()
      .refine((u) => u.startsWith('https://'), { message: 'must be an https:// URL (RFC 8461 §3.3)' })
      .optional(),
    /** Extra trust (PEM bundle) for the policy host's certificate, e.g. a private CA. */
    caBundle: absPath.optional(),
    /** DNS server (host:port) to ask for the _mta-sts TXT and MX records; default: the system resolver. */
    dnsServer: hostPort.optional(),
  })
  .strict();

export type MtaStsConfig = z.output<typeof mtaStsSchema>;

/**
 * SNI tables for the MTAs (docs/architecture.md, "SNI tables"): every name
 * of every server certificate, mapped to its files, rewritten after each
 * deploy. No placeholders: one table serves all certificates.
 */
const sniPath = absPath.refine((p) => !/[{}]/.test(p), { message: 'no placeholders here: one table serves every certificate' });
const sniSchema = z
  .object({
    postfix: z
      .object({
        /** The table's source file; postmap writes the database next to it (MAP.db, MAP.lmdb or MAP.cdb). */
        map: sniPath.refine((p) => !/\.(db|lmdb|cdb)$/.test(p), { message: 'name the source file without .db/.lmdb/.cdb: postmap adds the suffix' }),
        /** Debian's Postfix uses hash (default_database_type); lmdb and cdb need postfix-lmdb / postfix-cdb. */
        type: z.enum(['hash', 'lmdb', 'cdb']).default('hash'),
        /** A non-default Postfix instance's config directory, for `postmap -c`. */
        configDir: absPath.optional(),
        postmap: absPath.default('/usr/sbin/postmap'),
      })
      .strict()
      .optional(),
    dovecot: z
      .object({
        /** A file dovecot.conf includes (Debian's includes conf.d/*.conf). */
        include: sniPath,
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((s) => s.postfix || s.dovecot, { message: 'give postfix, dovecot or both' });

export type SniConfig = z.output<typeof sniSchema>;

// --- Fleet (docs/architecture.md, "Fleet") ---------------------------------------------------------------

/**
 * A fleet member's name: a lower-case DNS label (RFC 1035 §2.3.1). It is
 * part of etcd keys (`members/NAME/…`) and of log lines, so it has no
 * slashes, no case variants of itself and nothing that needs quoting.
 */
export const FLEET_MEMBER_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const fleetMember = z.string().regex(FLEET_MEMBER_RE, 'must be a DNS label: lower-case letters, digits and inner dashes, at most 63 characters (e.g. "mx-a")');

/**
 * Why an etcd endpoint URL is unusable, or undefined. The client dials
 * `host:port` (no path, no credentials); https, or plain http only to a
 * loopback address (the URL policy of docs/architecture.md, "Network").
 */
export function etcdEndpointProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL; give scheme://host:port, e.g. https://10.0.0.1:2379';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return `must be an https:// URL, not ${u.protocol}`;
  if (u.username || u.password) return 'must not hold credentials; use fleet.etcd.auth';
  if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) return 'must be scheme://host:port with no path, query or fragment';
  if (!u.port) return 'must name the port (etcd clients use 2379)';
  if (u.protocol === 'http:' && !isLoopbackUrlHost(u.hostname)) {
    return `plain http:// is allowed only to loopback (127.0.0.0/8, ::1, localhost), not to ${u.hostname}: sealed keys, reports and the leader lease would cross the network unauthenticated; use https://`;
  }
  return undefined;
}

/** Key prefix of one fleet in etcd: `/`-separated segments, starting and ending with `/`. */
const etcdPrefix = z
  .string()
  .regex(/^\/(?:[A-Za-z0-9._-]+\/)+$/, 'must start and end with "/" and hold segments of letters, digits, dot, dash, underscore (e.g. "/mxcert/example.com/")');

/** Seconds as etcd counts lease TTLs (whole seconds), from a duration. */
const leaseTtl = duration
  .refine((ms) => ms % 1000 === 0, { message: 'must be whole seconds (etcd lease TTLs are in seconds)' })
  .refine((ms) => ms >= 2000 && ms <= 300_000, { message: 'must be between 2s and 300s' });

const fleetEtcdSchema = z
  .object({
    endpoints: z.array(z.string().superRefine((u, ctx) => {
      const bad = etcdEndpointProblem(u);
      if (bad) ctx.addIssue({ code: z.ZodIssueCode.custom, message: bad });
    })).min(1),
    prefix: etcdPrefix,
    /** Client TLS: the CA that signed etcd's server certificates (default: the system's roots) and a client certificate. */
    tls: z
      .object({
        caFile: absPath.optional(),
        certFile: absPath.optional(),
        keyFile: absPath.optional(),
      })
      .strict()
      .superRefine((t, ctx) => {
        if (Boolean(t.certFile) !== Boolean(t.keyFile)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [t.certFile ? 'keyFile' : 'certFile'], message: 'certFile and keyFile go together' });
        }
      })
      .optional(),
    /** etcd user authentication; the password is read from a file (0600, root's). */
    auth: z.object({ username: z.string().min(1), passwordFile: absPath }).strict().optional(),
    /** How long connecting may take before etcd counts as unavailable. */
    dialTimeout: duration.default('5s').refine((ms) => ms >= 100, { message: 'must be at least 100ms' }),
    /** Deadline of every etcd call, retries included: a cut-off member fails within it, never hangs. */
    requestTimeout: duration.default('5s').refine((ms) => ms >= 100, { message: 'must be at least 100ms' }),
  })
  .strict()
  .superRefine((e, ctx) => {
    const schemes = new Set(e.endpoints.map((u) => u.split(':')[0]));
    if (schemes.size > 1) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['endpoints'], message: 'use https:// for every endpoint or for none' });
    if (e.tls && schemes.has('http')) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tls'], message: 'tls needs https:// endpoints' });
  });

export const fleetSchema = z
  .object({
    /** This host's name in the fleet. */
    member: fleetMember,
    /** Every host expected to serve the fleet's certificates; DANE retire waits for all of them. */
    members: z.array(fleetMember).min(1),
    etcd: fleetEtcdSchema,
    /** The AES-256-GCM key that seals private keys stored in etcd: 32 random bytes as 64 hex digits or base64. */
    keyEncryption: z.object({ keyFile: absPath }).strict(),
    /** TTL of the leader's lease: how long a dead leader holds on (a new one is elected within about this). */
    leaseTtl: leaseTtl.default('10s'),
  })
  .strict()
  .superRefine((f, ctx) => {
    f.members.forEach((m, i) => {
      if (f.members.indexOf(m) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['members', i], message: `duplicate member "${m}"` });
    });
    if (!f.members.includes(f.member)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['member'], message: `"${f.member}" is not in fleet.members (${f.members.join(', ')})` });
    }
  });

export type FleetConfig = z.output<typeof fleetSchema>;

export const CERT_USAGES = ['server', 'client'] as const;

export const certificateSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash, underscore'),
    domains: z.array(domainName).min(1),
    keys: z
      .array(z.enum(KEY_TYPES))
      .min(1)
      .superRefine((keys, ctx) => {
        // Two units for the same key type would race on the same files and state.
        keys.forEach((k, i) => {
          if (keys.indexOf(k) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i], message: `duplicate key type "${k}"` });
        });
      })
      .default(['ecdsa-p256']),
    /** Without DANE a fresh key is made per renewal; set true to keep it. */
    reuseKey: z.boolean().default(false),
    challenge: z.discriminatedUnion('type', [dnsChallenge, httpChallenge]),
    output: outputSchema.default({}),
    hooks: hooksSchema.default({}),
    verify: verifySchema.default({}),
    dane: daneSchema.optional(),
    /** How the MTA presents this certificate: as a server (STARTTLS) and/or as a client (when relaying). */
    usage: z.array(z.enum(CERT_USAGES)).min(1).default(['server']),
    mtaSts: mtaStsSchema.optional(),
    /** Shared by the fleet (top-level `fleet`): one lineage in etcd, ordered by the leader, deployed by every member. */
    fleet: z.boolean().default(false),
  })
  .strict();

export const configSchema = z
  .object({
    stateDir: absPath.default('/var/lib/mxcert'),
    /** Daemon check cadence (cron syntax); default hourly at a minute derived from the host name. */
    schedule: z
      .string()
      .refine((v) => validCron(v), { message: 'not a valid cron expression (e.g. "17 * * * *")' })
      .optional(),
    /**
     * The longest one daemon pass may take (`mxcert run`): past it the pass
     * is stopped, its hooks killed, and the failure hooks run, so a hang
     * never holds the agent lock for ever. Generous: well above a pass that
     * waits out propagationTimeout for many certificates.
     */
    passTimeout: duration.default('1h').refine((ms) => ms >= 1000, { message: 'must be at least 1s' }),
    acme: z
      .object({
        /** https only, like every URL the CA hands out (RFC 8555 §6.1); the transport refuses others too. */
        directory: z
          .string()
          .url()
          .refine((u) => [undefined, NOT_A_URL].includes(urlProblem(u, { loopbackHttp: false })), {
            message: 'must be an https:// URL: ACME runs over HTTPS only (RFC 8555 §6.1)',
          }),
        email: z.string().email().optional(),
        /**
         * A staging CA's directory (https). `renew --dry-run` places a full
         * order there, with its own account, and deploys nothing.
         */
        staging: z
          .string()
          .url()
          .refine((u) => [undefined, NOT_A_URL].includes(urlProblem(u, { loopbackHttp: false })), {
            message: 'must be an https:// URL: ACME runs over HTTPS only (RFC 8555 §6.1)',
          })
          .optional(),
        /**
         * Issuer CN to prefer among the chains the CA offers (RFC 8555
         * §7.4.2 Link rel="alternate"): matched against the issuer of the
         * topmost certificate of each chain; the default chain when none matches.
         */
        preferredChain: z.string().min(1).optional(),
        profile: z.string().optional(),
        caBundle: absPath.optional(),
        /**
         * Roots an issued chain must lead to (PEM bundle), checked before
         * anything is deployed. Default: the system trust store (Node's
         * Mozilla roots). Set it for a private or test CA.
         */
        trustAnchors: absPath.optional(),
        eab: z
          .object({
            kid: z.string().min(1),
            hmacKey: z.string().min(1).optional(),
            hmacKeyFile: absPath.optional(),
            hmacKeyEnv: envName.optional(),
          })
          .strict()
          .optional(),
        ari: z.boolean().default(true),
        /** Accept the CA's terms of service (RFC 8555 §7.3 termsOfServiceAgreed). */
        termsOfServiceAgreed: z.boolean().default(true),
      })
      .strict(),
    metrics: z
      .object({
        listen: hostPort,
        /** The metrics reveal names and timings: serve them beyond loopback only on purpose. */
        allowNonLoopback: z.boolean().default(false),
      })
      .strict()
      .superRefine((m, ctx) => {
        const host = /^\[?(.*?)\]?:\d+$/.exec(m.listen)?.[1] ?? m.listen;
        if (!m.allowNonLoopback && !isLoopbackHost(host)) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['listen'],
            message: `${host} is not a loopback address; the metrics endpoint listens on loopback only unless metrics.allowNonLoopback is true`,
          });
        }
      })
      .optional(),
    /** Several MX hosts sharing certificates through etcd (docs/architecture.md, "Fleet"). */
    fleet: fleetSchema.optional(),
    certificates: z.array(certificateSchema).min(1),
    sni: sniSchema.optional(),
  })
  .strict();

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
export type CertificateConfig = z.output<typeof certificateSchema>;
export type Rfc2136Config = z.output<typeof rfc2136Schema>;
export type OutputConfig = CertificateConfig['output'];
export type HookCommand = z.output<typeof hookCommand>;

/** A loaded config: parsed, with secrets read and problems checked. */
export interface Config extends ParsedConfig {
  /** Absolute path of the file it was loaded from. */
  source: string;
}
