// MTA-STS (RFC 8461), the part with effects: fetch the policy over HTTPS,
// read the `_mta-sts` TXT record and the domain's MX set, and, after a
// renewal, compare them with the new certificate. Everything here ends in
// log warnings: a policy problem must never fail a renewal (the certificate
// is fine; the policy or DNS needs a human).
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { isIP } from 'node:net';
import { lookup, Resolver } from 'node:dns/promises';
import { withExtraTrust } from '../util/tls-trust.js';
import type { CertificateConfig, MtaStsConfig } from '../config/schema.js';
import { describeError, MxcertError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseHostPort } from '../dns/authoritative.js';
import { queryDns, stripDot, type DnsResponse } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import {
  checkCoverage,
  compareMxSet,
  normaliseName,
  parsePolicy,
  parseStsTxt,
  unusedPatterns,
  type MtaStsPolicy,
  type StsTxtRecord,
} from './policy.js';

export class MtaStsError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('mta-sts', message, options);
  }
}

/** RFC 8461 §3.3 suggests a timeout for the policy fetch; a renewal should not wait long on it. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** RFC 8461 §3.3: senders may limit policy bodies to 64 KiB. */
export const MAX_POLICY_BYTES = 64 * 1024;

export function policyUrlFor(cfg: Pick<MtaStsConfig, 'domain' | 'policyUrl'>): string {
  return cfg.policyUrl ?? `https://mta-sts.${stripDot(cfg.domain)}/.well-known/mta-sts.txt`;
}

export interface FetchPolicyOptions {
  url: string;
  /** Extra trusted roots (PEM), in addition to the system's. */
  caPem?: string;
  timeoutMs?: number;
}

/**
 * GET the policy file: HTTPS only, certificate checked against the system
 * roots plus `caPem`, no redirects (RFC 8461 §3.3), status 200, media type
 * text/plain, at most 64 KiB, all within `timeoutMs`. Resolves with the body.
 */
export function fetchPolicyText(opts: FetchPolicyOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const url = new URL(opts.url);
  if (url.protocol !== 'https:') return Promise.reject(new MtaStsError(`policy URL must use https: ${opts.url}`));
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, body?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolve(body!);
    };
    const req = https.get(
      url,
      {
        ...(opts.caPem ? { secureContext: withExtraTrust(opts.caPem) } : {}),
        headers: { accept: 'text/plain', 'user-agent': 'mxcert (MTA-STS check)' },
        // No connection reuse: one request, then the socket goes.
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          const where = res.headers.location ? ` (redirect to ${res.headers.location}; RFC 8461 §3.3 forbids following it)` : '';
          finish(new MtaStsError(`GET ${opts.url}: HTTP ${status}${where}`));
          return;
        }
        const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (type !== 'text/plain') {
          res.resume();
          finish(new MtaStsError(`GET ${opts.url}: content type ${JSON.stringify(res.headers['content-type'] ?? '')}, want text/plain`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_POLICY_BYTES) finish(new MtaStsError(`GET ${opts.url}: policy larger than ${MAX_POLICY_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
        res.on('error', (err) => finish(new MtaStsError(`GET ${opts.url}: ${err.message}`, { cause: err })));
      },
    );
    req.on('error', (err) => finish(new MtaStsError(`GET ${opts.url}: ${err.message}`, { cause: err })));
    const timer = setTimeout(() => finish(new MtaStsError(`GET ${opts.url}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
  });
}

// ---------------------------------------------------------------------------
// DNS: a configured server (queried directly), or the system resolver.

export interface DnsSource {
  txt(name: string): Promise<string[]>;
  /** MX exchanges, lower-case, without the trailing dot. A null MX (RFC 7505) gives ["."]. */
  mx(name: string): Promise<string[]>;
}

/** Ask `server` (host:port) directly, with recursion desired so that a resolver works as well as an authoritative server. */
export async function dnsServerSource(server: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<DnsSource> {
  const parsed = parseHostPort(server);
  const target: DnsServer = isIP(parsed.host) ? parsed : { host: (await lookup(parsed.host)).address, port: parsed.port };
  const ask = async (name: string, type: 'TXT' | 'MX'): Promise<DnsResponse['answers']> => {
    const resp = await queryDns(target, name, type, { recursion: true, timeoutMs });
    if (resp.rcode === 'NXDOMAIN') return [];
    if (resp.rcode !== 'NOERROR') throw new MtaStsError(`${type} ${name} at ${server}: ${resp.rcode}`);
    // Records of the type asked for, also at the end of a CNAME chain.
    return resp.answers.filter((r) => r.type === type);
  };
  return {
    async txt(name) {
      return (await ask(name, 'TXT')).map((r) => joinTxt(r.data));
    },
    async mx(name) {
      return (await ask(name, 'MX')).map((r) => normaliseMx((r.data as { exchange?: string }).exchange ?? ''));
    },
  };
}

export function systemDnsSource(timeoutMs = DEFAULT_TIMEOUT_MS): DnsSource {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  const none = (err: unknown): [] => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENODATA' || code === 'ENOTFOUND') return [];
    throw err;
  };
  return {
    async txt(name) {
      return (await resolver.resolveTxt(name).catch(none)).map((chunks) => chunks.join(''));
    },
    async mx(name) {
      return (await resolver.resolveMx(name).catch(none)).map((r) => normaliseMx(r.exchange));
    },
  };
}

function normaliseMx(exchange: string): string {
  return exchange === '' || exchange === '.' ? '.' : normaliseName(exchange);
}

function joinTxt(data: unknown): string {
  const chunks = Array.isArray(data) ? data : [data];
  return chunks.map((c) => (Buffer.isBuffer(c) ? c.toString('utf8') : String(c))).join('');
}

// ---------------------------------------------------------------------------
// The check

export type MtaStsProblemKind =
  | 'txt-missing'
  | 'txt-invalid'
  | 'txt-lookup-failed'
  | 'policy-fetch-failed'
  | 'policy-invalid'
  | 'mx-not-covered'
  | 'mx-not-in-policy'
  | 'mx-lookup-failed'
  | 'no-mx';

export interface MtaStsProblem {
  kind: MtaStsProblemKind;
  message: string;
  /** Names involved (uncovered patterns, unmatched hosts), when there are any. */
  names?: string[];
}

export interface MtaStsReport {
  domain: string;
  policyUrl: string;
  txt?: StsTxtRecord;
  policy?: MtaStsPolicy;
  mxHosts?: string[];
  /** Policy `mx` patterns that match no MX host: informational. */
  unusedPatterns?: string[];
  problems: MtaStsProblem[];
}

export interface CheckMtaStsDeps {
  dns?: DnsSource;
  fetchPolicy?: (opts: FetchPolicyOptions) => Promise<string>;
  timeoutMs?: number;
}

/**
 * Fetch the TXT record, the policy and the MX set (in parallel) and compare
 * them with `certNames`. Never throws for what it finds; every finding is a
 * problem in the report.
 */
export async function checkMtaSts(cfg: MtaStsConfig, certNames: readonly string[], deps: CheckMtaStsDeps = {}): Promise<MtaStsReport> {
  const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const domain = normaliseName(cfg.domain);
  const policyUrl = policyUrlFor(cfg);
  const report: MtaStsReport = { domain, policyUrl, problems: [] };
  const problem = (kind: MtaStsProblemKind, message: string, names?: string[]) => report.problems.push({ kind, message, ...(names ? { names } : {}) });

  let dns: DnsSource;
  try {
    dns = deps.dns ?? (cfg.dnsServer ? await dnsServerSource(cfg.dnsServer, timeoutMs) : systemDnsSource(timeoutMs));
  } catch (err) {
    problem('txt-lookup-failed', `DNS server ${cfg.dnsServer}: ${describeError(err)}`);
    return report;
  }
  let caPem: string | undefined;
  const fetchPolicy = deps.fetchPolicy ?? fetchPolicyText;
  const txtName = `_mta-sts.${domain}`;

  const [txt, policyText, mx] = await Promise.allSettled([
    dns.txt(txtName),
    (async () => {
      if (cfg.caBundle) caPem = await readFile(cfg.caBundle, 'utf8').catch((err: unknown) => {
        throw new MtaStsError(`caBundle ${cfg.caBundle}: ${describeError(err)}`, { cause: err });
      });
      return fetchPolicy({ url: policyUrl, caPem, timeoutMs });
    })(),
    dns.mx(domain),
  ]);

  if (txt.status === 'rejected') problem('txt-lookup-failed', `TXT ${txtName}: ${describeError(txt.reason)}`);
  else {
    const parsed = parseStsTxt(txt.value);
    if (parsed.ok) report.txt = parsed.value;
    else if (txt.value.length === 0) problem('txt-missing', `no TXT record at ${txtName}: senders will not look for the policy`);
    else problem('txt-invalid', `TXT ${txtName}: ${parsed.problems.join('; ')}`);
  }

  if (policyText.status === 'rejected') problem('policy-fetch-failed', describeError(policyText.reason));
  else {
    const parsed = parsePolicy(policyText.value);
    if (parsed.ok) report.policy = parsed.value;
    else problem('policy-invalid', `${policyUrl}: ${parsed.problems.join('; ')}`);
  }

  if (mx.status === 'rejected') problem('mx-lookup-failed', `MX ${domain}: ${describeError(mx.reason)}`);
  else report.mxHosts = mx.value;

  const policy = report.policy;
  // mode none withdraws the policy (RFC 8461 §5): nothing left to enforce.
  if (policy && policy.mode !== 'none') {
    const uncovered = checkCoverage(certNames, policy);
    if (uncovered.length > 0) {
      problem(
        'mx-not-covered',
        `the certificate (${certNames.join(', ')}) does not cover the policy's mx pattern${uncovered.length > 1 ? 's' : ''} ${uncovered.join(', ')}`,
        uncovered,
      );
    }
    const hosts = report.mxHosts;
    if (hosts) {
      const real = hosts.filter((h) => h !== '.');
      if (real.length === 0) problem('no-mx', hosts.length ? `${domain} has a null MX (RFC 7505): it accepts no mail` : `${domain} has no MX records`);
      const unmatched = compareMxSet(real, policy);
      if (unmatched.length > 0) {
        problem(
          'mx-not-in-policy',
          `MX host${unmatched.length > 1 ? 's' : ''} ${unmatched.join(', ')} of ${domain} match${unmatched.length > 1 ? '' : 'es'} no mx pattern of the policy${policy.mode === 'enforce' ? ': senders will not deliver there' : ''}`,
          unmatched,
        );
      }
      const unused = unusedPatterns(real, policy);
      if (unused.length > 0) report.unusedPatterns = unused;
    }
  }
  return report;
}

/**
 * After a renewal: run the check for a certificate with `mtaSts` and log
 * what it finds (warnings; never throws for findings). `certNames` are the
 * issued leaf's names.
 */
export async function checkMtaStsAfterRenewal(cert: CertificateConfig, certNames: readonly string[], log: Logger, deps: CheckMtaStsDeps = {}): Promise<MtaStsReport | undefined> {
  if (!cert.mtaSts) return undefined;
  const report = await checkMtaSts(cert.mtaSts, certNames, deps);
  logMtaStsReport(report, log);
  return report;
}

export function logMtaStsReport(report: MtaStsReport, log: Logger): void {
  const base = { mtaSts: { domain: report.domain, policyUrl: report.policyUrl } };
  for (const p of report.problems) {
    log.warn({ ...base, problem: p.kind, ...(p.names ? { names: p.names } : {}) }, `MTA-STS: ${p.message}`);
  }
  if (report.unusedPatterns?.length) {
    log.info({ ...base, patterns: report.unusedPatterns }, `MTA-STS: mx pattern(s) ${report.unusedPatterns.join(', ')} match no MX host of ${report.domain}`);
  }
  if (report.problems.length === 0 && report.policy?.mode === 'none') {
    log.info({ ...base, id: report.txt?.id }, 'MTA-STS: policy mode is none (withdrawn); certificate and MX set not compared');
  } else if (report.problems.length === 0) {
    log.info({ ...base, mode: report.policy?.mode, id: report.txt?.id, mx: report.policy?.mx }, 'MTA-STS: policy, MX set and certificate agree');
  }
}
