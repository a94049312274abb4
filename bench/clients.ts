// The five ACME clients as the benchmark runs them against the sandbox:
// the same Pebble (its HTTPS CA trusted through each client's own knob), the
// same BIND (TSIG-signed RFC 2136 updates), the same http-01 port.
//
// Trust for Pebble's HTTPS certificate:
//   mxcert     acme.caBundle
//   certbot    REQUESTS_CA_BUNDLE
//   lego       LEGO_CA_CERTIFICATES
//   dehydrated CURL_OPTS="--cacert …" (it calls curl)
//   uacme      has no option (libcurl-gnutls with Debian's built-in bundle path):
//              it runs in a private mount namespace (unshare -m) where the
//              system bundle plus Pebble's CA is bind-mounted over
//              /etc/ssl/certs/ca-certificates.crt; nothing outside changes.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Sandbox } from '../test/support/sandbox.js';
import { CLI } from '../test/support/sandbox.js';
import type { Step } from './measure.js';

export type Challenge = 'dns-01' | 'http-01';
export const CLIENTS = ['mxcert', 'uacme', 'lego', 'certbot', 'dehydrated'] as const;
export type ClientName = (typeof CLIENTS)[number];

export const HOOK = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'hooks', 'acme-hook');
export const EMAIL = 'postmaster@example.test';

export interface Ctx {
  sb: Sandbox;
  /** System CA bundle + Pebble's HTTPS CA (for uacme's private mount namespace). */
  mergedBundle: string;
  /** Served on the http-01 port for uacme and dehydrated. */
  webroot: string;
}

export interface Client {
  name: ClientName;
  /** Fresh account + one ECDSA P-256 certificate for `domain`, in the empty directory `dir`. */
  issue(ctx: Ctx, dir: string, domain: string, challenge: Challenge): Promise<Step[]>;
  /** dns-01, one account: issue every name (one certificate each), as the client would do it one by one. */
  setupMany(ctx: Ctx, dir: string, domains: string[]): Promise<Step[]>;
  /** The renewal pass over what setupMany issued, forced. */
  renewMany(ctx: Ctx, dir: string, domains: string[]): Promise<Step[]>;
  /** Needs bench/run.ts to serve `ctx.webroot` on the http-01 port. */
  needsWebroot(challenge: Challenge): boolean;
}

const directory = (ctx: Ctx) => ctx.sb.pebble.directoryUrl;
const ns = (ctx: Ctx) => ctx.sb.bind.primary;

/** Environment without the caller's MXCERT_* / test knobs, so every client starts alike. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MXCERT_') && !k.startsWith('BENCH_')) env[k] = v;
  return { ...env, ...extra };
}

function hookEnv(ctx: Ctx, challenge: Challenge): NodeJS.ProcessEnv {
  return {
    BENCH_NS_HOST: ns(ctx).host,
    BENCH_NS_PORT: String(ns(ctx).port),
    BENCH_TSIG_KEYFILE: ctx.sb.bind.tsig.keyFile,
    BENCH_ZONE: ctx.sb.bind.zone,
    BENCH_TTL: '5',
    BENCH_WEBROOT: ctx.webroot,
    BENCH_CHALLENGE: challenge,
  };
}

// ---------------------------------------------------------------- mxcert

export interface MxcertConfigOptions {
  domains: string[];
  challenge: Challenge;
  dir: string;
  /** Add the sandbox's Postfix reload hook and STARTTLS verification (the full product path). */
  deployAndVerify?: boolean;
}

export function mxcertConfig(ctx: Ctx, o: MxcertConfigOptions): Record<string, unknown> {
  const base = ctx.sb.baseConfig({ challenge: o.challenge });
  const tmpl = base.certificates[0];
  const out = path.join(o.dir, 'out');
  const certificates = o.domains.map((d, i) => {
    const name = o.domains.length === 1 ? 'mx1' : `c${String(i + 1).padStart(3, '0')}`;
    const c = {
      ...tmpl,
      name,
      domains: [d],
      output: { combined: path.join(out, `${name}-{keytype}.pem`), fullchain: path.join(out, `${name}-{keytype}.fullchain.pem`) },
    };
    if (!o.deployAndVerify) {
      delete c.hooks;
      delete c.verify;
    }
    return c;
  });
  return { ...base, stateDir: path.join(o.dir, 'state'), certificates };
}

async function writeMxcertConfig(ctx: Ctx, o: MxcertConfigOptions): Promise<string> {
  await mkdir(path.join(o.dir, 'out'), { recursive: true, mode: 0o700 });
  const file = path.join(o.dir, 'config.yaml');
  await writeFile(file, stringify(mxcertConfig(ctx, o)), { mode: 0o600 });
  return file;
}

/** The mxcert launcher measured: this checkout's, or another build's (`--mxcert-cli`, for before/after runs). */
let mxcertCli = CLI;
export function useMxcertCli(file: string): void {
  mxcertCli = file;
}
export function mxcertCliPath(): string {
  return mxcertCli;
}

export function mxcertStep(args: string[], timeoutMs?: number): Step {
  return { cmd: process.execPath, args: [mxcertCli, ...args], env: cleanEnv(), ...(timeoutMs ? { timeoutMs } : {}) };
}

const mxcert: Client = {
  name: 'mxcert',
  async issue(ctx, dir, domain, challenge) {
    const cfg = await writeMxcertConfig(ctx, { domains: [domain], challenge, dir });
    return [mxcertStep(['renew', '--config', cfg])];
  },
  async setupMany(ctx, dir, domains) {
    const cfg = await writeMxcertConfig(ctx, { domains, challenge: 'dns-01', dir });
    return [mxcertStep(['renew', '--config', cfg])];
  },
  async renewMany(_ctx, dir) {
    return [mxcertStep(['renew', '--force', '--config', path.join(dir, 'config.yaml')])];
  },
  needsWebroot: () => false,
};

// ---------------------------------------------------------------- certbot

async function certbotBase(ctx: Ctx, dir: string): Promise<{ args: string[]; env: NodeJS.ProcessEnv }> {
  await mkdir(dir, { recursive: true });
  const creds = path.join(dir, 'rfc2136.ini');
  await writeFile(
    creds,
    [
      `dns_rfc2136_server = ${ns(ctx).host}`,
      `dns_rfc2136_port = ${ns(ctx).port}`,
      `dns_rfc2136_name = ${ctx.sb.bind.tsig.name}`,
      `dns_rfc2136_secret = ${ctx.sb.bind.tsig.secret}`,
      `dns_rfc2136_algorithm = HMAC-SHA256`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return {
    args: ['--config-dir', path.join(dir, 'config'), '--work-dir', path.join(dir, 'work'), '--logs-dir', path.join(dir, 'logs'), '-n'],
    env: cleanEnv({ REQUESTS_CA_BUNDLE: ctx.sb.pebble.caBundlePath }),
  };
}

function certbotChallengeArgs(ctx: Ctx, dir: string, challenge: Challenge): string[] {
  return challenge === 'dns-01'
    ? // certbot cannot poll for the record: it sleeps a whole number of seconds
      // (default 60). 0 loses the race with BIND's inline signing now and then
      // (NXDOMAIN at the CA), so 1, the smallest reliable setting.
      ['--authenticator', 'dns-rfc2136', '--dns-rfc2136-credentials', path.join(dir, 'rfc2136.ini'), '--dns-rfc2136-propagation-seconds', '1']
    : ['--standalone', '--http-01-port', String(ctx.sb.httpPort), '--http-01-address', '127.0.0.1'];
}

const certbot: Client = {
  name: 'certbot',
  async issue(ctx, dir, domain, challenge) {
    const { args, env } = await certbotBase(ctx, dir);
    return [
      {
        cmd: 'certbot',
        args: ['certonly', ...args, '--agree-tos', '-m', EMAIL, '--server', directory(ctx), '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1',
          ...certbotChallengeArgs(ctx, dir, challenge), '-d', domain],
        env,
      },
    ];
  },
  async setupMany(ctx, dir, domains) {
    const { args, env } = await certbotBase(ctx, dir);
    return domains.map((d) => ({
      cmd: 'certbot',
      args: ['certonly', ...args, '--agree-tos', '-m', EMAIL, '--server', directory(ctx), '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1',
        ...certbotChallengeArgs(ctx, dir, 'dns-01'), '-d', d],
      env,
    }));
  },
  async renewMany(ctx, dir) {
    const { args, env } = await certbotBase(ctx, dir);
    // One certbot process walks every lineage, one after another.
    return [{ cmd: 'certbot', args: ['renew', ...args, '--force-renewal', '--no-random-sleep-on-renew'], env, timeoutMs: 3_600_000 }];
  },
  needsWebroot: () => false,
};

// ---------------------------------------------------------------- lego

function legoEnv(ctx: Ctx): NodeJS.ProcessEnv {
  return cleanEnv({
    LEGO_CA_CERTIFICATES: ctx.sb.pebble.caBundlePath,
    RFC2136_NAMESERVER: `${ns(ctx).host}:${ns(ctx).port}`,
    RFC2136_TSIG_KEY: ctx.sb.bind.tsig.name,
    RFC2136_TSIG_SECRET: ctx.sb.bind.tsig.secret,
    RFC2136_TSIG_ALGORITHM: 'hmac-sha256.',
    RFC2136_TTL: '5',
  });
}

function legoArgs(ctx: Ctx, dir: string, domain: string, challenge: Challenge): string[] {
  return [
    '--accept-tos', '--email', EMAIL, '--server', directory(ctx), '--path', dir, '--key-type', 'ec256', '-d', domain,
    // lego's propagation check follows the zone's NS records to port 53, where
    // nothing of the sandbox listens; Pebble asks the sandbox BIND directly.
    ...(challenge === 'dns-01' ? ['--dns', 'rfc2136', '--dns.disable-cp'] : ['--http', '--http.port', `127.0.0.1:${ctx.sb.httpPort}`]),
  ];
}

const lego: Client = {
  name: 'lego',
  async issue(ctx, dir, domain, challenge) {
    await mkdir(dir, { recursive: true });
    return [{ cmd: 'lego', args: [...legoArgs(ctx, dir, domain, challenge), 'run'], env: legoEnv(ctx) }];
  },
  async setupMany(ctx, dir, domains) {
    await mkdir(dir, { recursive: true });
    return domains.map((d) => ({ cmd: 'lego', args: [...legoArgs(ctx, dir, d, 'dns-01'), 'run'], env: legoEnv(ctx) }));
  },
  async renewMany(ctx, dir, domains) {
    // Pebble's certificates live 5 years: --days beyond that forces the renewal.
    return domains.map((d) => ({ cmd: 'lego', args: [...legoArgs(ctx, dir, d, 'dns-01'), 'renew', '--days', '3650', '--no-random-sleep'], env: legoEnv(ctx) }));
  },
  needsWebroot: () => false,
};

// ---------------------------------------------------------------- uacme

function uacmeStep(ctx: Ctx, challenge: Challenge, args: string[]): Step {
  return {
    cmd: 'unshare',
    args: ['-m', 'sh', '-c', 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec uacme "$@"', ctx.mergedBundle, ...args],
    env: cleanEnv(hookEnv(ctx, challenge)),
  };
}

const uacmeCommon = (ctx: Ctx, dir: string) => ['-c', dir, '-a', directory(ctx), '-t', 'EC', '-b', '256'];

const uacme: Client = {
  name: 'uacme',
  async issue(ctx, dir, domain, challenge) {
    await mkdir(dir, { recursive: true });
    return [
      uacmeStep(ctx, challenge, [...uacmeCommon(ctx, dir), '-y', 'new', EMAIL]),
      uacmeStep(ctx, challenge, [...uacmeCommon(ctx, dir), '-h', HOOK, 'issue', domain]),
    ];
  },
  async setupMany(ctx, dir, domains) {
    await mkdir(dir, { recursive: true });
    return [
      uacmeStep(ctx, 'dns-01', [...uacmeCommon(ctx, dir), '-y', 'new', EMAIL]),
      ...domains.map((d) => uacmeStep(ctx, 'dns-01', [...uacmeCommon(ctx, dir), '-h', HOOK, 'issue', d])),
    ];
  },
  async renewMany(ctx, dir, domains) {
    return domains.map((d) => uacmeStep(ctx, 'dns-01', [...uacmeCommon(ctx, dir), '-f', '-h', HOOK, 'issue', d]));
  },
  needsWebroot: (c) => c === 'http-01',
};

// ---------------------------------------------------------------- dehydrated

async function dehydratedConfig(ctx: Ctx, dir: string, challenge: Challenge, domains: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'config');
  await writeFile(path.join(dir, 'domains.txt'), domains.join('\n') + '\n');
  await writeFile(
    file,
    [
      `CA="${directory(ctx)}"`,
      `BASEDIR="${dir}"`,
      `DOMAINS_TXT="${path.join(dir, 'domains.txt')}"`,
      `WELLKNOWN="${path.join(ctx.webroot, '.well-known', 'acme-challenge')}"`,
      `CHALLENGETYPE="${challenge}"`,
      `HOOK="${HOOK}"`,
      'HOOK_CHAIN="no"',
      'KEY_ALGO="prime256v1"',
      `CONTACT_EMAIL="${EMAIL}"`,
      `CURL_OPTS="--cacert ${ctx.sb.pebble.caBundlePath}"`,
      'OCSP_FETCH="no"',
      '',
    ].join('\n'),
  );
  return file;
}

const dehydrated: Client = {
  name: 'dehydrated',
  async issue(ctx, dir, domain, challenge) {
    const cfg = await dehydratedConfig(ctx, dir, challenge, [domain]);
    const env = cleanEnv(hookEnv(ctx, challenge));
    return [
      { cmd: 'dehydrated', args: ['-f', cfg, '--register', '--accept-terms'], env },
      { cmd: 'dehydrated', args: ['-f', cfg, '-c'], env },
    ];
  },
  async setupMany(ctx, dir, domains) {
    const cfg = await dehydratedConfig(ctx, dir, 'dns-01', domains);
    const env = cleanEnv(hookEnv(ctx, 'dns-01'));
    return [
      { cmd: 'dehydrated', args: ['-f', cfg, '--register', '--accept-terms'], env },
      { cmd: 'dehydrated', args: ['-f', cfg, '-c'], env, timeoutMs: 3_600_000 },
    ];
  },
  async renewMany(ctx, dir) {
    const env = cleanEnv(hookEnv(ctx, 'dns-01'));
    return [{ cmd: 'dehydrated', args: ['-f', path.join(dir, 'config'), '-c', '--force'], env, timeoutMs: 3_600_000 }];
  },
  needsWebroot: (c) => c === 'http-01',
};

export const CLIENT_DEFS: Record<ClientName, Client> = { mxcert, uacme, lego, certbot, dehydrated };

/** The system bundle plus Pebble's HTTPS CA, for uacme's private mount namespace. */
export async function writeMergedBundle(sb: Sandbox, file: string): Promise<void> {
  const system = await readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8').catch(() => '');
  await writeFile(file, system + '\n' + (await readFile(sb.pebble.caBundlePath, 'utf8')));
  await chmod(file, 0o644);
}
