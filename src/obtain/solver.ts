// The seam between the ACME order flow (src/acme) and the ways of answering
// a challenge (dns-01 via RFC 2136, http-01 via listener or webroot).

export interface ChallengeInput {
  /** The identifier being validated, e.g. `mx1.example.test` (no wildcard prefix). */
  identifier: string;
  /** The challenge token (http-01 file name). */
  token: string;
  /**
   * What must be served: for http-01 the key authorization (RFC 8555 §8.3),
   * for dns-01 the TXT value base64url(SHA-256(keyAuthorization)) (§8.4).
   */
  value: string;
}

export interface ChallengeSolver {
  readonly type: 'dns-01' | 'http-01';
  /**
   * Make the response available. Resolves only once the CA can see it
   * (dns-01: every authoritative server serves the TXT record), never after
   * a blind sleep.
   */
  present(ch: ChallengeInput): Promise<void>;
  /** Remove what `present` added. Must be safe to call after a failed or partial `present`. */
  cleanup(ch: ChallengeInput): Promise<void>;
  /** Release listeners etc. Called once per run. */
  close(): Promise<void>;
}

/**
 * Where a solver reports a response it really put out (the server accepted
 * it) and one it really removed, so one left behind by a failed or killed
 * run is removed on a later pass (src/store/cleanup-ledger.ts).
 */
export interface CleanupJournal {
  added(ch: ChallengeInput, owner: string): Promise<void>;
  removed(ch: ChallengeInput): Promise<void>;
}
