// One order, start to finish (RFC 8555 §7.4, §7.5): newOrder, the
// challenges of authorizations that are not valid yet, finalize, download.
import type { Logger } from '../log.js';
import { announceWait } from '../util/announce-wait.js';
import { ChallengeError, describeError, type AcmeProblem } from '../errors.js';
import type { ChallengeInput, ChallengeSolver } from '../obtain/solver.js';
import { challengeResponse } from './jws.js';
import { PROBLEM, isProblem, problemError } from './problems.js';
import { sleep, type AcmeSession } from './session.js';
import { signerOf, type Account, type AccountManager } from './account.js';
import { checkProfile } from './renewal-info.js';
import { parseRetryAfter, type AcmeResponse } from './transport.js';
import { alternateLinks, pickChain, topIssuerCn } from './chains.js';

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
  /** The identifiers of those authorizations. */
  reusedIdentifiers: string[];
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

// Polling a challenge or an order being processed: Pebble and most CAs settle
// within milliseconds to a second and send no Retry-After while processing,
// so start short and back off to at most 2 s (a CA that takes a second gets
// about eight polls).
const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 2000;
// Where an order's own URL comes from (RFC 8555 §7.4), for the https-only refusal.
const ORDER_URL_FROM = "the newOrder answer's Location header";

export interface OrderOptions {
  logger: Logger;
  /** How long to wait for a challenge, or an order being finalized, to settle. */
  pollTimeoutMs: number;
  /** Issuer CN of the preferred chain (acme.preferredChain). */
  preferredChain?: string;
}

export class OrderFlow {
  constructor(
    private readonly session: AcmeSession,
    private readonly accounts: AccountManager,
    private readonly opts: OrderOptions,
  ) {}

  /**
   * POST-as-GET `url` until `settled` says so (RFC 8555 §7.5.1, §7.4),
   * backing off from 5 ms to 2 s and honouring Retry-After. An object that
   * went `invalid` is an error carrying its `error` problem.
   */
  private async poll<T extends AcmeObject>(what: string, url: string, from: string, account: Account, first: T, settled: (o: T) => boolean): Promise<T> {
    // A CA can take a while to validate or to issue: say so rather than go quiet.
    const stopAnnouncing = announceWait(this.opts.logger, `the CA to ${what === 'finalize' ? 'issue the certificate' : `validate the ${what}`} (${url})`, Date.now() + this.opts.pollTimeoutMs);
    return this.pollSettled(what, url, from, account, first, settled).finally(stopAnnouncing);
  }

  private async pollSettled<T extends AcmeObject>(what: string, url: string, from: string, account: Account, first: T, settled: (o: T) => boolean): Promise<T> {
    const deadline = Date.now() + this.opts.pollTimeoutMs;
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
        throw problemError(what, undefined, undefined, undefined, `still "${obj.status}" after ${Math.round(this.opts.pollTimeoutMs / 1000)} s`);
      }
      await sleep(wait);
      delay = Math.min(delay * 2, POLL_MAX_MS);
      const resp = await this.session.signed(what, url, '', { signer: signerOf(account), from });
      retryAfter = parseRetryAfter(resp.headers['retry-after']);
      obj = resp.json as T;
      if (!obj || typeof obj !== 'object') throw problemError(what, undefined, resp.status, undefined, `${url} answered no JSON object`);
    }
  }

  /** newOrder, registering again once if the CA forgot the account. */
  private async newOrder(orderReq: Record<string, unknown>, log: Logger): Promise<{ order: Order; url: string; account: Account }> {
    const dir = await this.session.directory();
    return this.accounts.withAccount(async (account) => {
      const resp = await this.session.signed('newOrder', dir.newOrder, orderReq, { signer: signerOf(account), from: 'the directory (newOrder)' });
      const url = resp.headers.location;
      const order = resp.json as Order | undefined;
      if (typeof url !== 'string' || !order || !Array.isArray(order.authorizations) || typeof order.finalize !== 'string') {
        throw problemError('newOrder', undefined, resp.status, undefined, 'the CA answered without an order (Location, authorizations, finalize)');
      }
      return { order, url, account };
    }, log);
  }

  /** Answers one authorization's challenge; returns the identifier when the CA reused a valid authorization instead. */
  private async authorize(authzUrl: string, account: Account, req: IssueRequest, log: Logger, presented: ChallengeInput[]): Promise<string | undefined> {
    const authz = (await this.session.signed('fetching authorizations', authzUrl, '', { signer: signerOf(account), from: "the order's authorizations" })).json as Authorization;
    if (authz.status === 'valid') {
      // A reused authorization (RFC 8555 §7.1.4) means this renewal proved
      // nothing about the challenge set-up (a broken TSIG key goes unnoticed
      // until the authorization expires); say so where it can be seen.
      log.info(
        { identifier: authz.identifier.value, authorization: authzUrl },
        `the CA reused a valid authorization for ${authz.identifier.value}; the challenge path was not exercised (use --dry-run to test it)`,
      );
      return authz.identifier.value;
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
    const answered = (await this.session.signed(what, challenge.url, {}, { signer: signerOf(account), from })).json as Challenge;
    await this.poll(what, challenge.url, from, account, answered ?? challenge, (c) => c.status === 'valid');
    return undefined;
  }

  /**
   * RFC 8555 §7.5.2: after a failed order, deactivate its authorizations
   * that are still pending, so the CA neither keeps them open (Boulder
   * reuses pending authorizations and counts them against a rate limit) nor
   * hands a half-done one to the next order. Best effort: the order's own
   * error is what gets reported.
   */
  private async deactivatePending(authzUrls: string[], account: Account, log: Logger): Promise<void> {
    const signer = signerOf(account);
    const from = "the order's authorizations";
    await Promise.all(
      authzUrls.map(async (url) => {
        try {
          const authz = (await this.session.signed('fetching authorizations', url, '', { signer, from })).json as Authorization | undefined;
          if (authz?.status !== 'pending') return;
          const after = (await this.session.signed('deactivating an authorization', url, { status: 'deactivated' }, { signer, from })).json as Authorization | undefined;
          log.info({ identifier: authz.identifier?.value, authorization: url, status: after?.status }, 'deactivated a pending authorization of the failed order');
        } catch (err) {
          log.warn({ authorization: url, err: describeError(err) }, 'could not deactivate a pending authorization of the failed order');
        }
      }),
    );
  }

  /**
   * One order, start to finish: newOrder → challenges (skipping valid
   * authorizations) → finalize → download. Challenge responses are always
   * cleaned up, also on failure.
   */
  async issue(req: IssueRequest): Promise<IssueResult> {
    const log = req.logger ?? this.opts.logger;
    await checkProfile(this.session, req.profile);
    const orderReq: Record<string, unknown> = {
      identifiers: req.domains.map((d) => ({ type: 'dns', value: d })),
    };
    if (req.profile) orderReq.profile = req.profile;
    if (req.replaces && (await this.session.directory()).renewalInfo) orderReq.replaces = req.replaces;
    let placed;
    try {
      placed = await this.newOrder(orderReq, log);
    } catch (err) {
      // RFC 9773 §5: the old certificate was already replaced (or the CA
      // disagrees); the renewal itself must not fail for that. Retry once.
      if (!isProblem(err, PROBLEM.alreadyReplaced) || !orderReq.replaces) throw err;
      log.warn({ replaces: orderReq.replaces }, 'CA says the certificate was already replaced; ordering without "replaces"');
      delete orderReq.replaces;
      placed = await this.newOrder(orderReq, log);
    }
    const { url: orderUrl, account } = placed;

    const presented: ChallengeInput[] = [];
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
      const authzUrls = placed.order.authorizations;
      const results = await Promise.allSettled(authzUrls.map((u) => this.authorize(u, account, req, log, presented)));
      void cleanUp();
      const reused = results.flatMap((r) => (r.status === 'fulfilled' && r.value !== undefined ? [r.value] : []));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        await this.deactivatePending(authzUrls.filter((_, i) => results[i]!.status === 'rejected'), account, log);
        throw failed.reason;
      }
      return { chainPem: await this.finalize(placed.order, orderUrl, account, req, log), orderUrl, reusedAuthorizations: reused.length, reusedIdentifiers: reused };
    } finally {
      await cleanUp();
    }
  }

  /** Finalize a ready order and download its certificate chain (PEM). */
  private async finalize(placed: Order, orderUrl: string, account: Account, req: IssueRequest, log: Logger): Promise<string> {
    let order = placed;
    const signer = signerOf(account);
    // §7.4: finalize. The order object is the one newOrder returned
    // ("pending"); rather than fetch it again, finalize at once, and only if
    // the CA says orderNotReady (it flips the order to ready a moment after
    // the last authorization) wait for "ready" and finalize again.
    if (order.status !== 'valid' && order.status !== 'processing') {
      const csrDer = Buffer.from(req.csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
      const finalize = async () => (await this.session.signed('finalize', order.finalize, { csr: csrDer.toString('base64url') }, { signer, from: "the order's finalize" })).json as Order;
      try {
        order = await finalize();
      } catch (err) {
        if (!isProblem(err, PROBLEM.orderNotReady)) throw err;
        const current = (await this.session.signed('finalize', orderUrl, '', { signer, from: ORDER_URL_FROM })).json as Order;
        order = await this.poll('finalize', orderUrl, ORDER_URL_FROM, account, current, (o) => o.status !== 'pending');
        if (order.status === 'ready') order = await finalize();
      }
    }
    order = await this.poll('finalize', orderUrl, ORDER_URL_FROM, account, order, (o) => o.status === 'valid' && typeof o.certificate === 'string');
    const download = (url: string, from: string) => this.session.signed('certificate download', url, '', { signer, accept: 'application/pem-certificate-chain', from });
    const cert = await download(order.certificate!, "the order's certificate");
    // Whatever came back goes to the chain check (src/validate), which refuses
    // and keeps anything that is not a good chain, with the check it failed.
    return this.opts.preferredChain ? this.preferredChain(cert, this.opts.preferredChain, download, log) : cert.text;
  }

  /**
   * RFC 8555 §7.4.2: the default chain, unless one of the alternates the CA
   * links to ends below the preferred issuer (certbot's --preferred-chain:
   * the issuer CN of each chain's topmost certificate). No match: the default.
   */
  private async preferredChain(first: AcmeResponse, preferred: string, download: (url: string, from: string) => Promise<AcmeResponse>, log: Logger): Promise<string> {
    if ((await pickChain([first.text], preferred)) === 0) return first.text;
    const seen: string[] = [(await topIssuerCn(first.text)) ?? '?'];
    for (const link of alternateLinks(first.headers.link)) {
      const alt = await download(new URL(link, first.url).toString(), "the certificate's alternate link");
      if ((await pickChain([alt.text], preferred)) === 0) {
        log.info({ preferredChain: preferred, url: alt.url }, 'using the alternate chain of the preferred issuer');
        return alt.text;
      }
      seen.push((await topIssuerCn(alt.text)) ?? '?');
    }
    log.info({ preferredChain: preferred, offered: seen }, 'no chain of the preferred issuer is offered; using the default chain');
    return first.text;
  }
}
