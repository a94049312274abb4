// The ACME seam (RFC 8555). Everything else talks to the CA through
// `AcmeService`: one order start to finish, ARI and profiles.
//
// Our own protocol code over node:https and node:crypto (jws.ts,
// transport.ts) rather than acme-client: loading acme-client and its
// dependencies took longer than a whole issuance against a local CA (issue 6),
// its errors were bare strings (the problem type had to be fished out of its
// HTTP layer), and its polling and retry sleeps were seconds long.
import type { Logger } from '../log.js';
import { AcmeProblemError, ChallengeError, ConfigError, type AcmeProblem } from '../errors.js';
import type { ChallengeInput, ChallengeSolver } from '../obtain/solver.js';
import { parseRenewalInfo, type RenewalInfo } from './ari.js';
import { accountKeyFromPem, challengeResponse, externalAccountBinding, newAccountKeyPem, signJws, type AccountKey } from './jws.js';
import { AcmeTransport, InsecureUrlError, NetworkError, RETRYABLE_NETWORK, TransportError, parseRetryAfter, type AcmeResponse } from './transport.js';
import { announceWait } from '../util/announce-wait.js';

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
  /** How long to wait for a challenge, or an order being finalized, to settle (default 90 s). */
  pollTimeoutMs?: number;
  /** Total deadline of each HTTP request, body included (default 30 s; see transport.ts). */
  requestTimeoutMs?: number;
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

interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  renewalInfo?: string;
  meta?: { profiles?: Record<string, string>; termsOfService?: string; externalAccountRequired?: boolean };
}

interface Account {
  key: AccountKey;
  url: string;
}

interface AcmeObject {
  status?: string;
  error?: AcmeProblem;
}

interface Order extends AcmeObject {
  authorizations: string[];
  finalize: string;
  certificate?: string;
}

interface Challenge extends AcmeObject {
  type: string;
  url: string;
  token: string;
}

interface Authorization extends AcmeObject {
  identifier: { type: string; value: string };
  challenges: Challenge[];
  wildcard?: boolean;
}

const ERR = 'urn:ietf:params:acme:error:';
// RFC 8555 §6.5: a badNonce is answered by retrying with the nonce of that
// response. A CA that rejects many nonces (Pebble's PEBBLE_WFE_NONCEREJECT)
// can reject several in a row on one of the dozen requests of an issuance;
// each retry is cheap.
const MAX_BAD_NONCE_RETRIES = 20;
// Polling a challenge or an order being processed: Pebble and most CAs settle
// within milliseconds to a second and send no Retry-After while processing,
// so start short and back off to at most 2 s (a CA that takes a second gets
// about eight polls).
const POLL_FIRST_MS = 5;
// Where an order's own URL comes from (RFC 8555 §7.4), for the https-only refusal.
const ORDER_URL_FROM = "the newOrder answer's Location header";
const POLL_MAX_MS = 2000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function problemOf(resp: AcmeResponse): AcmeProblem | undefined {
  const j = resp.json as Partial<AcmeProblem> | undefined;
  return j && typeof j === 'object' && typeof j.type === 'string' ? (j as AcmeProblem) : undefined;
}

/** RFC 8555 §6.7.1: name the identifiers a compound problem is about. */
function describeProblem(p: AcmeProblem): string {
  const sub = (p.subproblems ?? [])
    .map((s) => `${s.identifier?.value ?? '?'}: ${s.detail ?? s.type.replace(ERR, '')}`)
    .join('; ');
  const detail = p.detail ?? p.type;
  return sub ? `${detail} (${sub})` : detail;
}

/** `what failed [type]: detail`, with the problem, status and Retry-After kept for the scheduler. */
function problemError(what: string, problem: AcmeProblem | undefined, status: number | undefined, retryAfter: number | undefined, fallback: string, cause?: unknown): AcmeProblemError {
  const type = problem?.type ? ` [${problem.type.replace(ERR, '')}]` : '';
  return new AcmeProblemError(`${what} failed${type}: ${problem ? describeProblem(problem) : fallback}`, { problem, status, retryAfter }, cause === undefined ? undefined : { cause });
}

function responseError(what: string, resp: AcmeResponse): AcmeProblemError {
  const problem = problemOf(resp);
  const snippet = resp.text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return problemError(what, problem, resp.status, parseRetryAfter(resp.headers['retry-after']), `HTTP ${resp.status} from ${resp.url}${snippet ? `: ${snippet}` : ''}`);
}

export class AcmeService {
  private readonly transport: AcmeTransport;
  private dir: Promise<Directory> | undefined;
  private acct: Promise<Account> | undefined;
  private readonly pollTimeoutMs: number;

  constructor(private readonly opts: AcmeServiceOptions) {
    this.transport = new AcmeTransport({ caBundlePem: opts.caBundlePem, logger: opts.logger, ...(opts.requestTimeoutMs ? { timeoutMs: opts.requestTimeoutMs } : {}) });
    this.pollTimeoutMs = opts.pollTimeoutMs ?? 90_000;
  }

  /** Let go of keep-alive connections (the process can exit at once). */
  close(): void {
    this.transport.close();
  }

  // ------------------------------------------------------------- requests

  /**
   * A request, retried once on a connection-level failure (a keep-alive
   * socket the CA closed while idle). A passed deadline, a 3xx, an oversized
   * body or a non-https URL is not retried. Transport errors become
   * AcmeProblemError naming `what`.
   */
  private async withNetworkRetry(what: string, fn: () => Promise<AcmeResponse>): Promise<AcmeResponse> {
    try {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof NetworkError) || !err.code || !RETRYABLE_NETWORK.has(err.code)) throw err;
        await sleep(200);
        return await fn();
      }
    } catch (err) {
      if (err instanceof TransportError) throw problemError(what, undefined, undefined, undefined, err.message, err);
      throw err;
    }
  }

  private directory(): Promise<Directory> {
    this.dir ??= this.settleDir(
      (async () => {
        const resp = await this.withNetworkRetry('directory', () => this.transport.get(this.opts.directoryUrl, { from: 'acme.directory' }));
        const d = resp.json as Partial<Directory> | undefined;
        if (resp.status !== 200 || !d || typeof d.newNonce !== 'string' || typeof d.newAccount !== 'string' || typeof d.newOrder !== 'string') {
          throw resp.status !== 200 ? responseError('directory', resp) : problemError('directory', undefined, resp.status, undefined, `${this.opts.directoryUrl} is not an ACME directory (no newNonce/newAccount/newOrder)`);
        }
        return d as Directory;
      })(),
    );
    return this.dir;
  }

  private settleDir(p: Promise<Directory>): Promise<Directory> {
    const held = p.catch((err: unknown) => {
      if (this.dir === held) this.dir = undefined;
      throw err;
    });
    return held;
  }

  private async nonce(what: string): Promise<string> {
    const pooled = this.transport.takeNonce();
    if (pooled) return pooled;
    const dir = await this.directory();
    const resp = await this.withNetworkRetry(what, () => this.transport.head(dir.newNonce, { from: 'the directory (newNonce)' }));
    // The transport pools the Replay-Nonce of every response, this one too.
    const n = this.transport.takeNonce();
    if (!n) throw responseError(`${what} (newNonce)`, resp);
    return n;
  }

  /**
   * A signed POST (RFC 8555 §6.2), retried on badNonce (§6.5) with a fresh
   * nonce. `payload` '' is POST-as-GET (§6.3). Any 4xx/5xx is an
   * AcmeProblemError naming `what` and the problem type.
   */
  private async signed(what: string, url: string, payload: unknown, o: { account?: Account; accept?: string; from: string }): Promise<AcmeResponse> {
    for (let attempt = 0; ; attempt++) {
      const resp = await this.withNetworkRetry(what, async () => {
        const nonce = await this.nonce(what);
        const key = o.account?.key ?? (await this.accountKey()).key;
        return this.transport.post(url, signJws(key, { url, nonce, kid: o.account?.url, payload }), { accept: o.accept, from: o.from });
      });
      if (resp.status < 400) return resp;
      if (problemOf(resp)?.type === `${ERR}badNonce` && attempt < MAX_BAD_NONCE_RETRIES) continue;
      throw responseError(what, resp);
    }
  }

  // -------------------------------------------------------------- account

  private keyPromise: Promise<{ key: AccountKey; keyPem: string }> | undefined;

  /** The stored account key, created (and persisted before use) when there is none. */
  private accountKey(): Promise<{ key: AccountKey; keyPem: string }> {
    this.keyPromise ??= (async () => {
      let stored = await this.opts.accounts.load();
      if (!stored) {
        stored = { keyPem: newAccountKeyPem() };
        // Persist the key before registering so a crash cannot orphan an account.
        await this.opts.accounts.save(stored);
      }
      return { key: accountKeyFromPem(stored.keyPem), keyPem: stored.keyPem };
    })();
    this.keyPromise.catch(() => {
      this.keyPromise = undefined;
    });
    return this.keyPromise;
  }

  /**
   * Load the stored account or register one (once). Single-flight: the orders
   * of a pass run concurrently, and each registering its own account would
   * leave orders owned by an account other than the one that later fetches
   * their authorizations.
   */
  account(): Promise<Account> {
    this.acct ??= this.settle(this.loadOrRegister());
    return this.acct;
  }

  /** A failed load/registration is not cached: the next call tries again. */
  private settle(p: Promise<Account>): Promise<Account> {
    const held: Promise<Account> = p.catch((err: unknown) => {
      if (this.acct === held) this.acct = undefined;
      throw err;
    });
    return held;
  }

  private async loadOrRegister(): Promise<Account> {
    const { key, keyPem } = await this.accountKey();
    // Read again: a re-registration (newOrder below) has just dropped the URL.
    const stored = await this.opts.accounts.load();
    if (stored?.url) return { key, url: stored.url };
    const dir = await this.directory();
    const payload: Record<string, unknown> = { termsOfServiceAgreed: this.opts.termsOfServiceAgreed };
    if (this.opts.email) payload.contact = [`mailto:${this.opts.email}`];
    if (this.opts.eab) payload.externalAccountBinding = externalAccountBinding(key, this.opts.eab, dir.newAccount);
    // 201 for a new account, 200 when this key already has one (§7.3.1); both carry its URL.
    const resp = await this.signed('account registration', dir.newAccount, payload, { from: 'the directory (newAccount)' });
    const url = resp.headers.location;
    if (typeof url !== 'string' || !url) throw problemError('account registration', undefined, resp.status, undefined, 'the CA answered without the account URL (Location)');
    // The account URL is the JWS `kid` of every later request and is
    // requested itself by account commands: https only, like every URL the
    // CA hands out (RFC 8555 §6.1). Refused before it is stored.
    if (!url.startsWith('https://')) {
      const err = new InsecureUrlError(url, "the newAccount answer's Location header");
      throw problemError('account registration', undefined, resp.status, undefined, err.message, err);
    }
    await this.opts.accounts.save({ keyPem, url });
    this.opts.logger.info({ accountUrl: url }, 'ACME account registered');
    return { key, url };
  }

  /**
   * newOrder; if the CA no longer knows our account (accountDoesNotExist:
   * a reset staging CA, a reinstalled private CA), register again with the
   * same key once and retry, instead of failing every renewal from now on.
   */
  private async newOrder(orderReq: Record<string, unknown>, log: Logger): Promise<{ order: Order; url: string; account: Account }> {
    const dir = await this.directory();
    const place = async (account: Account) => {
      const resp = await this.signed('newOrder', dir.newOrder, orderReq, { account, from: 'the directory (newOrder)' });
      const url = resp.headers.location;
      const order = resp.json as Order | undefined;
      if (typeof url !== 'string' || !order || !Array.isArray(order.authorizations) || typeof order.finalize !== 'string') {
        throw problemError('newOrder', undefined, resp.status, undefined, 'the CA answered without an order (Location, authorizations, finalize)');
      }
      return { order, url, account };
    };
    const account = await this.account();
    try {
      return await place(account);
    } catch (err) {
      if (!(err instanceof AcmeProblemError) || err.problemType !== 'accountDoesNotExist') throw err;
      const stored = await this.opts.accounts.load();
      if (!stored) throw err;
      // Concurrent orders all see this: the first one to notice registers
      // again (same key); the others wait for that registration.
      const current = this.acct;
      if (current && (await current.catch(() => undefined)) === account && this.acct === current) {
        log.warn({ accountUrl: stored.url }, 'the CA does not know our account any more; registering again');
        this.acct = this.settle(this.opts.accounts.save({ keyPem: stored.keyPem }).then(() => this.loadOrRegister()));
      }
      return place(await this.account());
    }
  }

  // ------------------------------------------------------------ ARI, meta

  /**
   * ARI (RFC 9773 §4): the CA's suggested renewal window for `certId`, or
   * undefined when the CA does not offer ARI. renewalInfo is a plain GET.
   */
  async renewalInfo(certId: string): Promise<RenewalInfo | undefined> {
    const base = (await this.directory()).renewalInfo;
    if (typeof base !== 'string') return undefined;
    const url = `${base.replace(/\/+$/, '')}/${certId}`;
    const resp = await this.withNetworkRetry('renewalInfo', () => this.transport.get(url, { from: 'the directory (renewalInfo)' }));
    if (resp.status !== 200) {
      throw problemOf(resp) ? responseError('renewalInfo', resp) : problemError('renewalInfo', undefined, resp.status, parseRetryAfter(resp.headers['retry-after']), `renewalInfo answered HTTP ${resp.status}`);
    }
    try {
      return parseRenewalInfo(resp.json, parseRetryAfter(resp.headers['retry-after']));
    } catch (err) {
      throw problemError('renewalInfo', undefined, resp.status, undefined, (err as Error).message, err);
    }
  }

  /** Profiles the CA advertises in its directory (draft-ietf-acme-profiles), or undefined. */
  async profiles(): Promise<Record<string, string> | undefined> {
    const p = (await this.directory()).meta?.profiles;
    return p && typeof p === 'object' ? p : undefined;
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

  // ---------------------------------------------------------------- order

  /**
   * POST-as-GET `url` until `settled` says so (RFC 8555 §7.5.1, §7.4),
   * backing off from 5 ms to 2 s and honouring Retry-After. An object that
   * went `invalid` is an error carrying its `error` problem.
   */
  private async poll<T extends AcmeObject>(what: string, url: string, from: string, account: Account, first: T, settled: (o: T) => boolean): Promise<T> {
    // A CA can take a while to validate or to issue: say so rather than go quiet.
    const stopAnnouncing = announceWait(this.opts.logger, `the CA to ${what === 'finalize' ? 'issue the certificate' : `validate the ${what}`} (${url})`, Date.now() + this.pollTimeoutMs);
    return this.pollSettled(what, url, from, account, first, settled).finally(stopAnnouncing);
  }

  private async pollSettled<T extends AcmeObject>(what: string, url: string, from: string, account: Account, first: T, settled: (o: T) => boolean): Promise<T> {
    const deadline = Date.now() + this.pollTimeoutMs;
    let obj = first;
    let delay = POLL_FIRST_MS;
    let retryAfter: number | undefined;
    for (;;) {
      if (obj.status === 'invalid') {
        throw problemError(what, obj.error, obj.error?.status, undefined, `${url} became invalid`);
      }
      if (settled(obj)) return obj;
      const wait = retryAfter !== undefined ? Math.max(retryAfter * 1000, delay) : delay;
      if (Date.now() + wait > deadline) {
        throw problemError(what, undefined, undefined, undefined, `still "${obj.status}" after ${Math.round(this.pollTimeoutMs / 1000)} s`);
      }
      await sleep(wait);
      delay = Math.min(delay * 2, POLL_MAX_MS);
      const resp = await this.signed(what, url, '', { account, from });
      retryAfter = parseRetryAfter(resp.headers['retry-after']);
      obj = resp.json as T;
      if (!obj || typeof obj !== 'object') throw problemError(what, undefined, resp.status, undefined, `${url} answered no JSON object`);
    }
  }

  private async authorize(authzUrl: string, account: Account, req: IssueRequest, log: Logger, presented: ChallengeInput[]): Promise<boolean> {
    const authz = (await this.signed('fetching authorizations', authzUrl, '', { account, from: "the order's authorizations" })).json as Authorization;
    if (authz.status === 'valid') {
      log.debug({ identifier: authz.identifier.value }, 'authorization already valid; no challenge needed');
      return true;
    }
    const challenge = authz.challenges?.find((c) => c.type === req.solver.type);
    if (!challenge) {
      throw new ChallengeError(
        `the CA offers no ${req.solver.type} challenge for ${authz.identifier.value} (offered: ${(authz.challenges ?? []).map((c) => c.type).join(', ')})`,
      );
    }
    const what = `${challenge.type} challenge for ${authz.identifier.value}`;
    const input: ChallengeInput = { identifier: authz.identifier.value, token: challenge.token, value: challengeResponse(account.key, challenge.type, challenge.token) };
    presented.push(input);
    await req.solver.present(input);
    log.debug({ identifier: input.identifier, type: challenge.type }, 'challenge response in place; telling the CA');
    // §7.5.1: an empty object says "the response is ready"; then poll the
    // challenge until it is valid (or invalid, with the CA's reason).
    const from = `the authorization's ${challenge.type} challenge (url)`;
    const answered = (await this.signed(what, challenge.url, {}, { account, from })).json as Challenge;
    await this.poll(what, challenge.url, from, account, answered ?? challenge, (c) => c.status === 'valid');
    return false;
  }

  /**
   * One order, start to finish: newOrder → challenges (skipping valid
   * authorizations) → finalize → download. Challenge responses are always
   * cleaned up, also on failure.
   */
  async issue(req: IssueRequest): Promise<IssueResult> {
    const log = req.logger ?? this.opts.logger;
    await this.checkProfile(req.profile);
    const orderReq: Record<string, unknown> = {
      identifiers: req.domains.map((d) => ({ type: 'dns', value: d })),
    };
    if (req.profile) orderReq.profile = req.profile;
    if (req.replaces && (await this.directory()).renewalInfo) orderReq.replaces = req.replaces;
    let placed;
    try {
      placed = await this.newOrder(orderReq, log);
    } catch (err) {
      // RFC 9773 §5: the old certificate was already replaced (or the CA
      // disagrees); the renewal itself must not fail for that. Retry once.
      if (!(err instanceof AcmeProblemError) || err.problemType !== 'alreadyReplaced' || !orderReq.replaces) throw err;
      log.warn({ replaces: orderReq.replaces }, 'CA says the certificate was already replaced; ordering without "replaces"');
      delete orderReq.replaces;
      placed = await this.newOrder(orderReq, log);
    }
    const { url: orderUrl, account } = placed;

    const presented: ChallengeInput[] = [];
    let reused = 0;
    // Cleanup of the challenge responses runs alongside finalize (the CA has
    // validated them; removing them does not affect the order) and is
    // awaited before issue() returns or throws, so nothing is left behind.
    let cleanup: Promise<unknown> | undefined;
    const cleanUp = () =>
      (cleanup ??= Promise.all(
        presented.map((ch) =>
          req.solver.cleanup(ch).catch((err: unknown) => log.warn({ err, identifier: ch.identifier }, 'challenge cleanup failed')),
        ),
      ));
    try {
      // allSettled, not all: every challenge must have finished (or failed)
      // before cleanup starts, or we could remove a record still being added.
      const results = await Promise.allSettled(placed.order.authorizations.map((u) => this.authorize(u, account, req, log, presented)));
      void cleanUp();
      reused = results.filter((r) => r.status === 'fulfilled' && r.value).length;
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      return { chainPem: await this.finalize(placed.order, orderUrl, account, req), orderUrl, reusedAuthorizations: reused };
    } finally {
      await cleanUp();
    }
  }

  /** Finalize a ready order and download its certificate chain (PEM). */
  private async finalize(placed: Order, orderUrl: string, account: Account, req: IssueRequest): Promise<string> {
    let order = placed;
    // §7.4: finalize. The order object is the one newOrder returned
    // ("pending"); rather than fetch it again, finalize at once, and only if
    // the CA says orderNotReady (it flips the order to ready a moment after
    // the last authorization) wait for "ready" and finalize again.
    if (order.status !== 'valid' && order.status !== 'processing') {
      const csrDer = Buffer.from(req.csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
      const finalize = async () => (await this.signed('finalize', order.finalize, { csr: csrDer.toString('base64url') }, { account, from: "the order's finalize" })).json as Order;
      try {
        order = await finalize();
      } catch (err) {
        if (!(err instanceof AcmeProblemError) || err.problemType !== 'orderNotReady') throw err;
        const current = (await this.signed('finalize', orderUrl, '', { account, from: ORDER_URL_FROM })).json as Order;
        order = await this.poll('finalize', orderUrl, ORDER_URL_FROM, account, current, (o) => o.status !== 'pending');
        if (order.status === 'ready') order = await finalize();
      }
    }
    order = await this.poll('finalize', orderUrl, ORDER_URL_FROM, account, order, (o) => o.status === 'valid' && typeof o.certificate === 'string');
    const cert = await this.signed('certificate download', order.certificate!, '', { account, accept: 'application/pem-certificate-chain', from: "the order's certificate" });
    // Whatever came back goes to the chain check (DESIGN §3), which refuses
    // and keeps anything that is not a good chain, with the check it failed.
    return cert.text;
  }
}

export { AcmeProblemError };
