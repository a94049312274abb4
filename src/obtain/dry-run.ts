// `renew --dry-run`: prove the challenge path works without the CA's help
// and without deploying anything. A forced renewal can succeed on an
// authorization the CA reused (RFC 8555 §7.1.4) while the DNS credentials
// or the web server are broken; this exercises them for real:
//   dns-01   add a random TXT at _acme-challenge.NAME with the configured
//            RFC 2136 credentials, wait until every authoritative server
//            serves it (the same check a renewal waits for), remove it;
//   http-01  serve a random token (listener or webroot) and fetch
//            http://NAME/.well-known/acme-challenge/TOKEN on port 80, NAME
//            resolved by this host's resolver;
//   staging  with acme.staging, a full order there with a fresh key, under
//            the staging CA's own account; the chain is checked and dropped.
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { CertificateConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IssueRequest, IssueResult } from '../acme/order.js';
import { createCsr } from '../keys/csr.js';
import { generateKeyPem } from '../keys/keygen.js';
import { checkChain } from '../validate/chain-check.js';
import { systemResolve } from '../dns/authoritative.js';
import type { ChallengeInput, ChallengeSolver } from './solver.js';

export interface DryRunStep {
  cert: string;
  /** e.g. `dns-01 for mx1.example.com`, `staging order for mx1.example.com`. */
  step: string;
  ok: boolean;
  detail: string;
}

export interface DryRunDeps {
  solverFor(cert: CertificateConfig): ChallengeSolver;
  logger: Logger;
  now(): Date;
  /** http-01: host name → addresses (default: the system resolver, as a web client here would). */
  resolve?: (name: string) => Promise<string[]>;
  /** http-01: the port to fetch from (default 80, where a CA connects, RFC 8555 §8.3). */
  httpPort?: number;
  /** A staging CA for a full order (acme.staging); none: challenge self-tests only. */
  staging?: { directory: string; issue(req: IssueRequest): Promise<IssueResult> };
  profile?: string;
}

const HTTP_DEADLINE_MS = 10_000;
const HTTP_BODY_CAP = 64 * 1024;
const MAX_REDIRECTS = 10;

/** A random token, base64url like a real one (RFC 8555 §8.1: ≥ 128 bits). */
function token(): string {
  return randomBytes(32).toString('base64url');
}

/** Every step for one certificate: the challenge of each name, then the staging order if all passed. */
export async function dryRunCertificate(cert: CertificateConfig, deps: DryRunDeps): Promise<DryRunStep[]> {
  const solver = deps.solverFor(cert);
  const log = deps.logger.child({ cert: cert.name, dryRun: true });
  const steps: DryRunStep[] = [];
  for (const name of cert.domains) {
    const r = await (solver.type === 'dns-01' ? dns01Step(solver, name, log) : http01Step(solver, name, deps, log));
    steps.push(...r.map((s) => ({ cert: cert.name, ...s })));
  }
  if (deps.staging && steps.every((s) => s.ok)) steps.push({ cert: cert.name, ...(await stagingStep(cert, solver, deps, log)) });
  return steps;
}

type Step = Omit<DryRunStep, 'cert'>;

/** present (publish + wait until every authoritative server serves it), then remove. */
async function dns01Step(solver: ChallengeSolver, name: string, log: Logger): Promise<Step[]> {
  const id = name.replace(/^\*\./, '');
  const ch: ChallengeInput = { identifier: id, token: token(), value: token() };
  const step = `dns-01 for ${name}`;
  log.info({ identifier: id }, 'dry run: publishing a test TXT record');
  try {
    await solver.present(ch);
  } catch (err) {
    await solver.cleanup(ch).catch(() => undefined);
    return [{ step, ok: false, detail: describeError(err) }];
  }
  try {
    await solver.cleanup(ch);
  } catch (err) {
    return [
      { step, ok: true, detail: 'the test TXT record was served by every authoritative server' },
      { step: `dns-01 cleanup for ${name}`, ok: false, detail: `${describeError(err)}; remove _acme-challenge.${id} TXT "${ch.value}" by hand` },
    ];
  }
  return [{ step, ok: true, detail: 'a test TXT record was served by every authoritative server, then removed' }];
}

async function http01Step(solver: ChallengeSolver, name: string, deps: DryRunDeps, log: Logger): Promise<Step[]> {
  const step = `http-01 for ${name}`;
  if (name.startsWith('*.')) return [{ step, ok: false, detail: 'a wildcard name cannot be validated with http-01 (RFC 8555 §7.1.3); use dns-01' }];
  const t = token();
  const ch: ChallengeInput = { identifier: name, token: t, value: `${t}.${token()}` };
  try {
    await solver.present(ch);
    const port = deps.httpPort ?? 80;
    log.info({ identifier: name, port }, 'dry run: fetching a test token over http');
    const got = await fetchToken(name, port, `/.well-known/acme-challenge/${t}`, deps.resolve ?? systemResolve);
    if (got.body.trim() !== ch.value) {
      return [{ step, ok: false, detail: `${got.url} answered HTTP ${got.status} with ${got.body.length} bytes that are not the test token` }];
    }
    return [{ step, ok: true, detail: `${got.url} served the test token` }];
  } catch (err) {
    return [{ step, ok: false, detail: describeError(err) }];
  } finally {
    await solver.cleanup(ch).catch((err: unknown) => log.warn({ err: describeError(err) }, 'dry run: removing the test token failed'));
  }
}

/**
 * GET over plain http, redirects followed like a CA does (Let's Encrypt:
 * up to 10, to http or https, certificates not checked); one deadline and a
 * body cap per request.
 */
async function fetchToken(host: string, port: number, path: string, resolve: (name: string) => Promise<string[]>): Promise<{ url: string; status: number; body: string }> {
  let url = new URL(`http://${host}${port === 80 ? '' : `:${port}`}${path}`);
  for (let hop = 0; ; hop++) {
    const bare = url.hostname.replace(/^\[|\]$/g, '');
    const addresses = isIP(bare)
      ? [bare]
      : await resolve(bare).catch((err: unknown) => {
          throw new Error(`${bare} does not resolve: ${describeError(err)}`);
        });
    if (addresses.length === 0) throw new Error(`${url.hostname} has no address`);
    let last: unknown;
    let res: { status: number; location?: string; body: string } | undefined;
    // Like a CA, try the next address when one does not answer at all.
    for (const address of addresses) {
      try {
        res = await getOnce(url, address);
        break;
      } catch (err) {
        last = err;
      }
    }
    if (!res) throw new Error(`GET ${url.href}: ${describeError(last)}`);
    if (res.status >= 300 && res.status < 400 && res.location && hop < MAX_REDIRECTS) {
      url = new URL(res.location, url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`redirected to ${url.href}, which a CA does not follow`);
      continue;
    }
    return { url: url.href, status: res.status, body: res.body };
  }
}

function getOnce(url: URL, address: string): Promise<{ status: number; location?: string; body: string }> {
  const mod = url.protocol === 'https:' ? https : http;
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      { host: address, port, path: `${url.pathname}${url.search}`, method: 'GET', headers: { host: url.host, 'user-agent': 'mxcert dry run' }, servername: url.hostname, rejectUnauthorized: false, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > HTTP_BODY_CAP) req.destroy(new Error(`body larger than ${HTTP_BODY_CAP} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(HTTP_DEADLINE_MS, () => req.destroy(new Error(`no answer within ${HTTP_DEADLINE_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

/** A whole order at the staging CA: fresh key, real challenges, chain checked (no trust anchor: staging roots are untrusted by design), nothing kept. */
async function stagingStep(cert: CertificateConfig, solver: ChallengeSolver, deps: DryRunDeps, log: Logger): Promise<Step> {
  const staging = deps.staging!;
  const step = `staging order for ${cert.domains.join(', ')}`;
  try {
    const keyType = cert.keys[0]!;
    const keyPem = await generateKeyPem(keyType);
    const res = await staging.issue({ domains: cert.domains, csrPem: await createCsr(cert.domains, keyPem), solver, profile: deps.profile, logger: log });
    const chain = await checkChain({ keyPem, chainPem: res.chainPem, domains: cert.domains, now: deps.now() });
    const reused = res.reusedIdentifiers.length ? `; the staging CA reused authorizations for ${res.reusedIdentifiers.join(', ')}` : '';
    return { step, ok: true, detail: `${staging.directory} issued serial ${chain.serial} (${keyType}, issuer "${chain.issuer}"); not deployed${reused}` };
  } catch (err) {
    return { step, ok: false, detail: describeError(err) };
  }
}
