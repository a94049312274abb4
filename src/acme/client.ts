// The only module that imports acme-client. Everything else talks to the CA
// through `AcmeService`, so acme-client's quirks (string errors, second-scale
// polling, multi-second retry sleeps) stay contained here.
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';
import type { Logger } from '../log.js';
import { AcmeProblemError, ChallengeError, ConfigError } from '../errors.js';
import type { ChallengeInput, ChallengeSolver } from '../obtain/solver.js';
import { parseRetryAfter, recordResponse, withProblemCapture } from './problem-capture.js';
import { parseRenewalInfo, type RenewalInfo } from './ari.js';

export interface StoredAccount {
  keyPem: string;
  url?: string;
}

/** Where the account key and URL live (stateDir/account). Implemented by src/store. */
export interface AccountStore {
  load(): Promise<StoredAccount | undefined>;
  save(account: StoredAccount): Promise<void>;
}

export interface AcmeServiceOptions {
  directoryUrl: string;
  email?: string;
  eab?: { kid: string; hmacKey: string };
  /** Extra trust for the CA's HTTPS endpoint (private or test CA), added to the system roots. */
  caBundlePem?: string;
  termsOfServiceAgreed: boolean;
  accounts: AccountStore;
  logger: Logger;
}

export interface IssueRequest {
  domains: string[];
  csrPem: string;
  solver: ChallengeSolver;
  profile?: string;
  /** ARI CertID of the certificate this one replaces (RFC 9773 §5). */
  replaces?: string;
  logger?: Logger;
}

export interface IssueResult {
  /** PEM chain as the CA returned it: leaf first, then issuers. */
  chainPem: string;
  orderUrl: string;
  /** Authorizations that were already valid and needed no challenge. */
  reusedAuthorizations: number;
}

let interceptorInstalled = false;

// Connection-level failures worth one quick retry: typically a keep-alive
// socket the CA closed while idle. Nothing was answered, so a retry is safe
// (a reused nonce just earns a badNonce, which acme-client retries).
const RETRYABLE_NETWORK = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN']);

// Replay-Nonce values from the CA's responses, per CA origin, newest last.
// acme-client asks newNonce (a HEAD) before every signed request; RFC 8555
// §7.2 lets a client use the nonce of the previous response instead, which
// halves the requests of an order (and a HEAD response ends Node's keep-alive
// socket, so each of them also cost a fresh TLS handshake). Each nonce is
// used once; a stale one earns a badNonce, which acme-client retries.
const NONCE_POOL_MAX = 32;
const noncePools = new Map<string, string[]>();

function originOf(url: unknown): string | undefined {
  try {
    return typeof url === 'string' ? new URL(url).origin : undefined;
  } catch {
    return undefined;
  }
}

function keepNonce(resp: { headers?: Record<string, unknown>; config?: { url?: unknown }; data?: unknown }): void {
  const nonce = resp.headers?.['replay-nonce'];
  const origin = originOf(resp.config?.url);
  if (typeof nonce !== 'string' || !nonce || !origin) return;
  // acme-client retries a badNonce with that response's own nonce: not ours to hand out too.
  const type = (resp.data as { type?: unknown } | undefined)?.type;
  if (type === 'urn:ietf:params:acme:error:badNonce') return;
  const pool = noncePools.get(origin) ?? [];
  pool.push(nonce);
  if (pool.length > NONCE_POOL_MAX) pool.shift();
  noncePools.set(origin, pool);
}

function takeNonce(url: string): string | undefined {
  const origin = originOf(url);
  return origin ? noncePools.get(origin)?.pop() : undefined;
}

function installAxiosHooks(caBundlePem: string | undefined): void {
  const ax = acme.axios;
  ax.defaults.timeout = 30_000;
  // One secure context for every connection: with a `ca` list, each new TLS
  // connection would otherwise parse the ~140 system roots again (tens of ms
  // of CPU per connection, several connections per order).
  const secureContext = caBundlePem ? tls.createSecureContext({ ca: [...tls.rootCertificates, caBundlePem] }) : undefined;
  ax.defaults.httpsAgent = new https.Agent({ keepAlive: true, ...(secureContext ? { secureContext } : {}) });
  if (interceptorInstalled) return;
  interceptorInstalled = true;
  // acme-client's own interceptors retry 429/5xx by sleeping 5 s × attempt (or
  // any Retry-After, up to an hour) inside a request, and turn network errors
  // into "Cannot read properties of undefined (reading 'config')" when retries
  // are off. Retrying is the scheduler's job, with persisted backoff; so we
  // replace them: every HTTP response passes through unchanged (acme-client's
  // http layer asks for validateStatus: null and judges status codes itself).
  ax.interceptors.request.clear();
  ax.interceptors.response.clear();
  ax.interceptors.response.use(
    (resp) => {
      keepNonce(resp as { headers?: Record<string, unknown>; config?: { url?: unknown }; data?: unknown });
      // A challenge/authorization/order that went `invalid` comes back as 200
      // with an `error` field (RFC 8555 §7.1.3, §7.1.4); treat it like a problem.
      const data = resp.data as { status?: string; error?: { type?: string } } | undefined;
      if (data && typeof data === 'object' && data.status === 'invalid' && data.error?.type) {
        recordResponse({ ...resp, status: 400, data: data.error, headers: resp.headers as Record<string, unknown> });
      } else {
        recordResponse({ status: resp.status, headers: resp.headers as Record<string, unknown>, data: resp.data, config: resp.config });
      }
      return resp;
    },
    async (error: { code?: string; config?: Record<string, unknown>; response?: unknown; message?: string }) => {
      const cfg = error?.config;
      if (cfg && !error.response && error.code && RETRYABLE_NETWORK.has(error.code) && !cfg.__mxcertRetried) {
        cfg.__mxcertRetried = true;
        await new Promise((r) => setTimeout(r, 200));
        return ax.request(cfg);
      }
      const url = typeof cfg?.url === 'string' ? cfg.url : 'the CA';
      throw new Error(`cannot reach ${url}: ${error?.code ?? ''} ${error?.message ?? String(error)}`.replace(/\s+/g, ' ').trim(), { cause: error });
    },
  );
}

export class AcmeService {
  private client: Promise<acme.Client> | undefined;
  constructor(private readonly opts: AcmeServiceOptions) {
    installAxiosHooks(opts.caBundlePem);
  }

  /**
   * Load the stored account or create one (once); the key is kept 0600 by the
   * store. Single-flight: the orders of a pass run concurrently, and each
   * registering its own account would leave orders owned by an account
   * other than the one that later fetches their authorizations.
   */
  account(): Promise<acme.Client> {
    this.client ??= this.settle(this.loadOrRegister());
    return this.client;
  }

  /** A failed load/registration is not cached: the next call tries again. */
  private settle(p: Promise<acme.Client>): Promise<acme.Client> {
    const held: Promise<acme.Client> = p.catch((err: unknown) => {
      if (this.client === held) this.client = undefined;
      throw err;
    });
    return held;
  }

  private async loadOrRegister(): Promise<acme.Client> {
    const log = this.opts.logger;
    let stored = await this.opts.accounts.load();
    if (!stored) {
      const keyPem = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      stored = { keyPem };
      // Persist the key before registering so a crash cannot orphan an account.
      await this.opts.accounts.save(stored);
    }
    const client = new acme.Client({
      directoryUrl: this.opts.directoryUrl,
      accountKey: stored.keyPem,
      accountUrl: stored.url,
      externalAccountBinding: this.opts.eab,
      // Pebble and most CAs finish in well under a second and send no
      // Retry-After while processing; acme-client's 5 s first backoff would add
      // seconds to every issuance. Start at 50 ms, cap at 2 s, ~70 s total.
      backoffAttempts: 40,
      backoffMin: 50,
      backoffMax: 2000,
    });
    // acme-client retries a badNonce (RFC 8555 §6.5) only 5 times; a CA that
    // rejects many nonces (Pebble's PEBBLE_WFE_NONCEREJECT) can exhaust that
    // on one of the dozen requests of an issuance. Each retry is cheap.
    const http = (client as unknown as { http: { maxBadNonceRetries: number; getNonce(): Promise<string> } }).http;
    http.maxBadNonceRetries = 20;
    const fetchNonce = http.getNonce.bind(http);
    http.getNonce = async () => takeNonce(this.opts.directoryUrl) ?? fetchNonce();
    if (!stored.url) {
      await withProblemCapture('account registration', () =>
        client.createAccount({
          termsOfServiceAgreed: this.opts.termsOfServiceAgreed,
          contact: this.opts.email ? [`mailto:${this.opts.email}`] : undefined,
        }),
      );
      stored = { keyPem: stored.keyPem, url: client.getAccountUrl() };
      await this.opts.accounts.save(stored);
      log.info({ accountUrl: stored.url }, 'ACME account registered');
    }
    return client;
  }

  /**
   * newOrder; if the CA no longer knows our account (accountDoesNotExist:
   * a reset staging CA, a reinstalled private CA), register again with the
   * same key once and retry, instead of failing every renewal from now on.
   */
  private async createOrderReRegistering(client: acme.Client, orderReq: Record<string, unknown>, log: Logger) {
    try {
      return await withProblemCapture('newOrder', () => client.createOrder(orderReq as never));
    } catch (err) {
      if (!(err instanceof AcmeProblemError) || err.problemType !== 'accountDoesNotExist') throw err;
      const stored = await this.opts.accounts.load();
      if (!stored) throw err;
      // Concurrent orders all see this: the first one to notice registers
      // again (same key); the others wait for that registration.
      const current = this.client;
      if (current && (await current.catch(() => undefined)) === client && this.client === current) {
        log.warn({ accountUrl: stored.url }, 'the CA does not know our account any more; registering again');
        this.client = this.settle(this.opts.accounts.save({ keyPem: stored.keyPem }).then(() => this.loadOrRegister()));
      }
      const fresh = await this.account();
      return withProblemCapture('newOrder', () => fresh.createOrder(orderReq as never));
    }
  }

  private async directoryField(name: string): Promise<unknown> {
    const client = await this.account();
    const http = (client as unknown as { http: { getDirectory(): Promise<void>; directoryCache: Record<string, unknown> | null } }).http;
    await withProblemCapture('directory', () => http.getDirectory());
    return http.directoryCache?.[name];
  }

  /**
   * ARI (RFC 9773 §4): the CA's suggested renewal window for `certId`, or
   * undefined when the CA does not offer ARI. renewalInfo is a plain GET.
   */
  async renewalInfo(certId: string): Promise<RenewalInfo | undefined> {
    const base = await this.directoryField('renewalInfo');
    if (typeof base !== 'string') return undefined;
    const url = `${base.replace(/\/+$/, '')}/${certId}`;
    return withProblemCapture('renewalInfo', async () => {
      const resp = await acme.axios.get(url, { validateStatus: null as never, responseType: 'json' });
      if (resp.status !== 200) throw new Error(`renewalInfo answered HTTP ${resp.status}`);
      return parseRenewalInfo(resp.data, parseRetryAfter(resp.headers['retry-after']));
    });
  }

  /** Profiles the CA advertises in its directory (draft-ietf-acme-profiles), or undefined. */
  async profiles(): Promise<Record<string, string> | undefined> {
    const client = await this.account();
    const http = (client as unknown as { http: { getMetaField(f: string): Promise<unknown> } }).http;
    const p = await withProblemCapture('directory', () => http.getMetaField('profiles'));
    return p && typeof p === 'object' ? (p as Record<string, string>) : undefined;
  }

  /**
   * `acme.profile` must be one the CA advertises (draft-ietf-acme-profiles);
   * otherwise this is a config error naming the ones that exist.
   */
  async checkProfile(profile: string | undefined): Promise<void> {
    if (!profile) return;
    const offered = await this.profiles();
    if (offered && profile in offered) return;
    throw new ConfigError([
      {
        path: 'acme.profile',
        message: offered
          ? `the CA does not offer profile "${profile}"; it offers: ${Object.keys(offered).join(', ')}`
          : `the CA advertises no profiles, so "${profile}" cannot be requested`,
      },
    ]);
  }

  /**
   * One order, start to finish: newOrder → challenges (skipping valid
   * authorizations) → finalize → download. Challenge responses are always
   * cleaned up, also on failure.
   */
  async issue(req: IssueRequest): Promise<IssueResult> {
    let client = await this.account();
    const log = req.logger ?? this.opts.logger;
    await this.checkProfile(req.profile);
    const orderReq: Record<string, unknown> = {
      identifiers: req.domains.map((d) => ({ type: 'dns', value: d })),
    };
    if (req.profile) orderReq.profile = req.profile;
    if (req.replaces && (await this.directoryField('renewalInfo'))) orderReq.replaces = req.replaces;
    let order;
    try {
      order = await this.createOrderReRegistering(client, orderReq, log);
    } catch (err) {
      // RFC 9773 §5: the old certificate was already replaced (or the CA
      // disagrees); the renewal itself must not fail for that. Retry once.
      if (!(err instanceof AcmeProblemError) || err.problemType !== 'alreadyReplaced' || !orderReq.replaces) throw err;
      log.warn({ replaces: orderReq.replaces }, 'CA says the certificate was already replaced; ordering without "replaces"');
      delete orderReq.replaces;
      order = await this.createOrderReRegistering(await this.account(), orderReq, log);
    }
    // The account may have been registered again while ordering.
    client = await this.account();
    const authzs = await withProblemCapture('fetching authorizations', () => client.getAuthorizations(order));

    const presented: ChallengeInput[] = [];
    let reused = 0;
    try {
      // allSettled, not all: every challenge must have finished (or failed)
      // before cleanup starts, or we could remove a record still being added.
      const results = await Promise.allSettled(
        authzs.map(async (authz) => {
          if (authz.status === 'valid') {
            reused++;
            log.debug({ identifier: authz.identifier.value }, 'authorization already valid; no challenge needed');
            return;
          }
          const challenge = authz.challenges.find((c) => c.type === req.solver.type);
          if (!challenge) {
            throw new ChallengeError(
              `the CA offers no ${req.solver.type} challenge for ${authz.identifier.value} (offered: ${authz.challenges.map((c) => c.type).join(', ')})`,
            );
          }
          const value = await client.getChallengeKeyAuthorization(challenge);
          const input: ChallengeInput = { identifier: authz.identifier.value, token: (challenge as { token: string }).token, value };
          presented.push(input);
          await req.solver.present(input);
          log.debug({ identifier: input.identifier, type: challenge.type }, 'challenge response in place; telling the CA');
          await withProblemCapture(`${challenge.type} challenge for ${input.identifier}`, async () => {
            await client.completeChallenge(challenge);
            await client.waitForValidStatus(challenge);
          });
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } finally {
      await Promise.all(
        presented.map((ch) =>
          req.solver.cleanup(ch).catch((err: unknown) => log.warn({ err, identifier: ch.identifier }, 'challenge cleanup failed')),
        ),
      );
    }

    const finalized = await withProblemCapture('finalize', async () => {
      const o = await client.finalizeOrder(order, req.csrPem);
      return client.waitForValidStatus(o);
    });
    const chainPem = await withProblemCapture('certificate download', () => client.getCertificate(finalized));
    return { chainPem, orderUrl: (order as { url: string }).url, reusedAuthorizations: reused };
  }
}

/** Build a CSR for `domains` signed by `keyPem` (first name as CN, all as SANs). */
export async function createCsr(domains: string[], keyPem: string): Promise<string> {
  const [, csr] = await acme.crypto.createCsr({ commonName: domains[0], altNames: domains }, keyPem);
  return csr.toString();
}

export { AcmeProblemError };
