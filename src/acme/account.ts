// The ACME account (RFC 8555 §7.3): the stored key, registration (once,
// single-flight), and registering again when the CA forgot us.
import type { Logger } from '../log.js';
import { accountKeyFromPem, externalAccountBinding, newAccountKeyPem, type AccountKey } from './jws.js';
import { PROBLEM, isProblem, problemError } from './problems.js';
import { InsecureUrlError, type AcmeSession, type Signer } from './session.js';

export interface StoredAccount {
  keyPem: string;
  url?: string;
}

/** Where the account key and URL live (stateDir/accounts/H). Implemented by src/store. */
export interface AccountStore {
  load(): Promise<StoredAccount | undefined>;
  save(account: StoredAccount): Promise<void>;
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
    // Read again: a re-registration (withAccount below) has just dropped the URL.
    const stored = await this.opts.accounts.load();
    if (stored?.url) return { key, url: stored.url };
    const dir = await this.session.directory();
    const payload: Record<string, unknown> = { termsOfServiceAgreed: this.opts.termsOfServiceAgreed };
    if (this.opts.email) payload.contact = [`mailto:${this.opts.email}`];
    if (this.opts.eab) payload.externalAccountBinding = externalAccountBinding(key, this.opts.eab, dir.newAccount);
    // 201 for a new account, 200 when this key already has one (§7.3.1); both carry its URL.
    const resp = await this.session.signed('account registration', dir.newAccount, payload, { signer: { key }, from: 'the directory (newAccount)' });
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
