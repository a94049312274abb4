// The ACME seam (RFC 8555). Everything else talks to the CA through
// `AcmeService`: one order start to finish, ARI and profiles.
//
// Our own protocol code over node:https and node:crypto (jws.ts,
// transport.ts) rather than acme-client: loading acme-client and its
// dependencies took longer than a whole issuance against a local CA, its
// errors were bare strings (the problem type had to be fished out of its
// HTTP layer), and its polling and retry sleeps were seconds long.
//
// Layout: session.ts (directory, signed requests, nonce.ts), account.ts
// (§7.3), order.ts (§7.4, §7.5), renewal-info.ts (RFC 9773, profiles),
// problems.ts (§6.7 error types).
import type { Logger } from '../log.js';
import { AcmeProblemError } from '../errors.js';
import type { RenewalInfo } from './ari.js';
import { AccountCommands, AccountManager, signerOf, type Account, type AccountStore, type StoredAccount } from './account.js';
import { OrderFlow, type IssueRequest, type IssueResult } from './order.js';
import { checkProfile, fetchRenewalInfo, offeredProfiles } from './renewal-info.js';
import { AcmeSession } from './session.js';
import { revokeCertificate, type RevocationReason } from './revoke.js';

export type { AccountStore, StoredAccount, IssueRequest, IssueResult };

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
  /** Issuer CN of the chain to prefer among the CA's alternates (acme.preferredChain). */
  preferredChain?: string;
}

export class AcmeService {
  protected readonly session: AcmeSession;
  protected readonly accounts: AccountManager;
  private readonly orders: OrderFlow;

  constructor(protected readonly opts: AcmeServiceOptions) {
    this.session = new AcmeSession({ directoryUrl: opts.directoryUrl, caBundlePem: opts.caBundlePem, requestTimeoutMs: opts.requestTimeoutMs, logger: opts.logger });
    this.accounts = new AccountManager(this.session, opts);
    this.orders = new OrderFlow(this.session, this.accounts, {
      logger: opts.logger,
      pollTimeoutMs: opts.pollTimeoutMs ?? 90_000,
      ...(opts.preferredChain ? { preferredChain: opts.preferredChain } : {}),
    });
  }

  /** Let go of keep-alive connections (the process can exit at once). */
  close(): void {
    this.session.close();
  }

  /** Load the stored account or register one (once per service). */
  account(): Promise<Account> {
    return this.accounts.account();
  }

  /** ARI (RFC 9773 §4): the CA's suggested window for `certId`; undefined when the CA offers no ARI. */
  renewalInfo(certId: string): Promise<RenewalInfo | undefined> {
    return fetchRenewalInfo(this.session, certId);
  }

  /** Profiles the CA advertises in its directory (draft-ietf-acme-profiles), or undefined. */
  profiles(): Promise<Record<string, string> | undefined> {
    return offeredProfiles(this.session);
  }

  /** Throws ConfigError (acme.profile) when the CA does not offer `profile`. */
  checkProfile(profile: string | undefined): Promise<void> {
    return checkProfile(this.session, profile);
  }

  /** One order, start to finish (order.ts). */
  issue(req: IssueRequest): Promise<IssueResult> {
    return this.orders.issue(req);
  }

  /** show / update / rollover-key on the stored account (account.ts); none registers one. */
  accountCommands(): AccountCommands {
    return new AccountCommands(this.session, this.accounts, this.opts.accounts, this.opts.logger);
  }

  /**
   * Revoke a certificate (RFC 8555 §7.6), signed by the stored account, or by
   * the certificate's own key when no account is stored for this CA.
   */
  async revoke(req: { certPem: string; certKeyPem: string; reason: RevocationReason }): Promise<{ alreadyRevoked: boolean }> {
    const stored = await this.opts.accounts.load();
    const account = stored?.url ? await this.accounts.account() : undefined;
    return revokeCertificate(this.session, { ...req, ...(account ? { account: signerOf(account) } : {}) });
  }
}

export { AcmeProblemError };
