// The ACME account (RFC 8555 §7.3): the stored key, registration (once,
// single-flight), registering again when the CA forgot us, and the account
// commands: fetch (§7.3.3 POST-as-GET), contact update (§7.3.2) and key
// rollover (§7.3.5).
import type { Logger } from '../log.js';
import { AcmeProblemError, type AcmeProblem } from '../errors.js';
import { accountKeyFromPem, externalAccountBinding, keyChangeInnerJws, newAccountKeyPem, type AccountKey } from './jws.js';
import { PROBLEM, isProblem, problemError, shortProblemType } from './problems.js';
import { InsecureUrlError, type AcmeSession, type Signer } from './session.js';

export interface StoredAccount {
  keyPem: string;
  url?: string;
}

/** Where the account key and URL live (stateDir/accounts/H). Implemented by src/store. */
export interface AccountStore {
  load(): Promise<StoredAccount | undefined>;
  save(account: StoredAccount): Promise<void>;
  /**
   * A key rollover's new key, kept (0600) from before the keyChange request
   * until the stored key is replaced, so a crash in between is recoverable.
   */
  loadPendingKey?(): Promise<string | undefined>;
  savePendingKey?(keyPem: string): Promise<void>;
  clearPendingKey?(): Promise<void>;
}

/** The account object as the CA describes it (RFC 8555 §7.1.2). */
export interface AccountInfo {
  url: string;
  status: string;
  contact: string[];
  orders?: string;
  /** RFC 7638 thumbprint of the account key (public; what key authorizations end in). */
  thumbprint: string;
  keyAlgorithm: string;
}

export interface AccountOptions {
  email?: string;
  eab?: { kid: string; hmacKey: string };
  termsOfServiceAgreed: boolean;
  accounts: AccountStore;
  logger: Logger;
}

export interface Account {
  key: AccountKey;
  url: string;
}

/** The signer of every request after registration: the account key, `kid` = account URL (§6.2). */
export function signerOf(account: Account): Signer {
  return { key: account.key, kid: account.url };
}

/**
 * Whether a refused registration means "this CA wants a contact address":
 * RFC 8555 §7.3 invalidContact/unsupportedContact, or a malformed whose
 * detail is about the contact, when we sent none.
 */
export function contactRequired(problem: AcmeProblem | undefined, sentContact: boolean): boolean {
  if (sentContact || !problem) return false;
  if (problem.type === PROBLEM.invalidContact || problem.type === PROBLEM.unsupportedContact) return true;
  return problem.type === PROBLEM.malformed && /contact|e-?mail/i.test(problem.detail ?? '');
}

function describeAccountError(err: unknown, sentContact: boolean): unknown {
  if (!(err instanceof AcmeProblemError) || !contactRequired(err.problem, sentContact)) return err;
  return new AcmeProblemError(
    `account registration failed [${shortProblemType(err.problem!.type)}]: the CA requires a contact address: set acme.email (the CA said: ${err.problem?.detail ?? err.problem?.type})`,
    { problem: err.problem, status: err.status, retryAfter: err.retryAfter },
    { cause: err },
  );
}

export class AccountManager {
  private acct: Promise<Account> | undefined;
  private keyPromise: Promise<{ key: AccountKey; keyPem: string }> | undefined;

  constructor(
    private readonly session: AcmeSession,
    private readonly opts: AccountOptions,
  ) {}

  /** The stored account key, created (and persisted before use) when there is none. */
  accountKey(): Promise<{ key: AccountKey; keyPem: string }> {
    this.keyPromise ??= (async () => {
      let stored = await this.opts.accounts.load();
      if (stored) stored = await this.finishPendingRollover(stored);
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

  /** Drop what is cached (after the stored key changed under us). */
  forget(): void {
    this.keyPromise = undefined;
    this.acct = undefined;
  }

  /**
   * A key rollover interrupted between the CA's answer and the store's
   * rename leaves a pending key. Ask the CA which key the account has now
   * (newAccount with onlyReturnExisting, RFC 8555 §7.3.1, signed by the
   * pending key): if it knows that key as our account, the rollover
   * happened and the pending key is stored; if not, it never happened and
   * the pending key is dropped. Anything else (the CA unreachable) throws
   * and leaves both keys for the next attempt.
   */
  private async finishPendingRollover(stored: StoredAccount): Promise<StoredAccount> {
    const accounts = this.opts.accounts;
    const pending = await accounts.loadPendingKey?.();
    if (!pending) return stored;
    const log = this.opts.logger;
    if (!stored.url || pending === stored.keyPem) {
      await accounts.clearPendingKey?.();
      return stored;
    }
    const dir = await this.session.directory();
    let url: unknown;
    try {
      const resp = await this.session.signed('settling an interrupted account key rollover', dir.newAccount, { onlyReturnExisting: true }, {
        signer: { key: accountKeyFromPem(pending) },
        from: 'the directory (newAccount)',
      });
      url = resp.headers.location;
    } catch (err) {
      if (!isProblem(err, PROBLEM.accountDoesNotExist)) throw err;
    }
    if (url === stored.url) {
      await accounts.save({ keyPem: pending, url: stored.url });
      await accounts.clearPendingKey?.();
      log.warn({ accountUrl: stored.url }, 'finished an interrupted account key rollover: the CA had accepted the new key');
      return { keyPem: pending, url: stored.url };
    }
    await accounts.clearPendingKey?.();
    log.warn({ accountUrl: stored.url, ...(typeof url === 'string' ? { pendingKeyAccount: url } : {}) }, 'dropped the key of an interrupted account key rollover: the CA never accepted it for this account');
    return stored;
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
    // Read again: a re-registration (withAccount below) has just dropped the URL.
    const stored = await this.opts.accounts.load();
    if (stored?.url) return { key, url: stored.url };
    const dir = await this.session.directory();
    const payload: Record<string, unknown> = { termsOfServiceAgreed: this.opts.termsOfServiceAgreed };
    if (this.opts.email) payload.contact = [`mailto:${this.opts.email}`];
    if (this.opts.eab) payload.externalAccountBinding = externalAccountBinding(key, this.opts.eab, dir.newAccount);
    // 201 for a new account, 200 when this key already has one (§7.3.1); both carry its URL.
    const resp = await this.session
      .signed('account registration', dir.newAccount, payload, { signer: { key }, from: 'the directory (newAccount)' })
      .catch((err: unknown) => {
        throw describeAccountError(err, payload.contact !== undefined);
      });
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
   * Run `fn` with the account; if the CA no longer knows it
   * (accountDoesNotExist: a reset staging CA, a reinstalled private CA),
   * register again with the same key once and retry, instead of failing
   * every renewal from now on.
   */
  async withAccount<T>(fn: (account: Account) => Promise<T>, log: Logger): Promise<T> {
    const account = await this.account();
    try {
      return await fn(account);
    } catch (err) {
      if (!isProblem(err, PROBLEM.accountDoesNotExist)) throw err;
      const stored = await this.opts.accounts.load();
      if (!stored) throw err;
      // Concurrent orders all see this: the first one to notice registers
      // again (same key); the others wait for that registration.
      const current = this.acct;
      if (current && (await current.catch(() => undefined)) === account && this.acct === current) {
        log.warn({ accountUrl: stored.url }, 'the CA does not know our account any more; registering again');
        this.acct = this.settle(this.opts.accounts.save({ keyPem: stored.keyPem }).then(() => this.loadOrRegister()));
      }
      return fn(await this.account());
    }
  }
}

// ------------------------------------------------------------------------
// Account commands. Each acts on the stored account; none registers one.

export class AccountCommands {
  constructor(
    private readonly session: AcmeSession,
    private readonly manager: AccountManager,
    private readonly store: AccountStore,
    private readonly logger: Logger,
  ) {}

  /** The stored account, or undefined when none was registered with this CA yet (nothing is created). */
  private async stored(): Promise<Account | undefined> {
    const s = await this.store.load();
    if (!s?.url) return undefined;
    // accountKey() settles an interrupted key rollover first.
    const { key } = await this.manager.accountKey();
    return { key, url: s.url };
  }

  private async required(): Promise<Account> {
    const a = await this.stored();
    if (!a) throw new AcmeProblemError(`no ACME account is registered with ${this.session.directoryUrl} yet (mxcert renew registers one)`, {});
    return a;
  }

  /** §7.3.3: POST-as-GET to the account URL. */
  async show(): Promise<AccountInfo | undefined> {
    const account = await this.stored();
    if (!account) return undefined;
    const resp = await this.session.signed('account lookup', account.url, '', { signer: signerOf(account), from: 'the stored account URL' });
    return accountInfo(account, resp.json);
  }

  /** §7.3.2: replace the contact list. */
  async updateEmail(email: string): Promise<AccountInfo> {
    const account = await this.required();
    const resp = await this.session.signed('account update', account.url, { contact: [`mailto:${email}`] }, { signer: signerOf(account), from: 'the stored account URL' });
    this.logger.info({ accountUrl: account.url }, 'ACME account contact updated');
    return accountInfo(account, resp.json);
  }

  /**
   * §7.3.5 key rollover. The new key is written 0600 to the pending file
   * first; the stored key is replaced only after the CA accepted the change,
   * and the pending file removed last. A crash in between leaves both, and
   * AccountManager.accountKey() asks the CA which one is current.
   */
  async rolloverKey(): Promise<{ url: string; oldThumbprint: string; newThumbprint: string }> {
    const account = await this.required();
    const store = this.store;
    if (!store.savePendingKey || !store.clearPendingKey) throw new AcmeProblemError('this account store cannot keep a pending key; refusing a key rollover that a crash could lose', {});
    const dir = await this.session.directory();
    if (typeof dir.keyChange !== 'string') throw problemError('key rollover', undefined, undefined, undefined, 'the CA offers no keyChange endpoint');
    const newPem = newAccountKeyPem();
    const newKey = accountKeyFromPem(newPem);
    await store.savePendingKey(newPem);
    try {
      const url = dir.keyChange;
      await this.session.signed('key rollover', url, keyChangeInnerJws(newKey, { url, accountUrl: account.url, oldKey: account.key }), {
        signer: signerOf(account),
        from: 'the directory (keyChange)',
      });
    } catch (err) {
      // A problem document is the CA's definite "no": the old key stays.
      // Anything else (a lost connection) leaves the outcome unknown: keep
      // the pending key for the next start to settle with the CA.
      if (err instanceof AcmeProblemError && err.problem) await store.clearPendingKey();
      throw err;
    }
    await store.save({ keyPem: newPem, url: account.url });
    await store.clearPendingKey();
    this.manager.forget();
    this.logger.info({ accountUrl: account.url, thumbprint: newKey.thumbprint }, 'ACME account key rolled over');
    return { url: account.url, oldThumbprint: account.key.thumbprint, newThumbprint: newKey.thumbprint };
  }
}

function accountInfo(account: Account, body: unknown): AccountInfo {
  const b = (body && typeof body === 'object' ? body : {}) as { status?: unknown; contact?: unknown; orders?: unknown };
  return {
    url: account.url,
    status: typeof b.status === 'string' ? b.status : 'unknown',
    contact: Array.isArray(b.contact) ? b.contact.filter((c): c is string => typeof c === 'string') : [],
    ...(typeof b.orders === 'string' ? { orders: b.orders } : {}),
    thumbprint: account.key.thumbprint,
    keyAlgorithm: account.key.alg,
  };
}
