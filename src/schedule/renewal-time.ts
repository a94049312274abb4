// When to renew (docs/architecture.md): a pure function of the certificate's
// validity, an optional ARI window, the failure history and an injected
// random source. No clock inside, like cert-manager's RenewalTime: callers
// compare the answer with their injected clock.
//
// Precedence, and why:
//   forced    `renew --force` skips timing (never validation).
//   backoff   after a failure, wait (1 min, 10 min, 100 min, then daily),
//             capped so several attempts still fit before expiry, and never
//             sooner than the CA's Retry-After — which is itself capped (a
//             day at most, less for short-lived certificates), bounded by
//             the emergency rule below, and never pushes the next attempt
//             past notAfter minus a margin. It comes before `missing`
//             so a broken config does not hammer the CA, but a config
//             that changed since the failure lifts it (only a CA's
//             Retry-After still holds): the operator fixed something.
//   missing   nothing issued yet.
//   revoked   the current certificate was revoked (mxcert revoke).
//   names-changed  the certificate's names differ from the config, either
//             way: a name added, or a name removed (a certificate must
//             not keep vouching for a name taken out of service).
//   emergency in the last 1/20 of the lifetime renew now, whatever ARI says;
//             after a failure in that window, retry within a short interval
//             scaled to the lifetime, whatever the CA's Retry-After says.
//   ari-window a uniformly random instant in the CA's suggested window
//             (RFC 9773 §4.2), kept until the window changes.
//   lifetime-fraction  no ARI: renew with 1/3 of the lifetime left (1/2 for
//             certificates of 10 days or less), plus a small jitter.

export const RENEWAL_REASONS = ['forced', 'missing', 'revoked', 'names-changed', 'backoff', 'emergency', 'ari-window', 'lifetime-fraction'] as const;
export type RenewalReason = (typeof RENEWAL_REASONS)[number];

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

export interface AriWindow {
  start: Date;
  end: Date;
}

/** The instant picked inside an ARI window, persisted so it is not redrawn on every run. */
export interface AriChoice {
  window: AriWindow;
  at: Date;
}

export interface FailureHistory {
  /** Consecutive failed attempts (0 = last attempt succeeded). */
  count: number;
  lastAt: Date;
  /** The CA's Retry-After (or rate-limit reset), if it sent one. */
  retryAfterUntil?: Date;
  /** Fingerprint of the effective config the last attempt failed with (src/schedule/config-fingerprint.ts). */
  configFingerprint?: string;
}

export interface RenewalDecision {
  at: Date;
  reason: RenewalReason;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
/** Let's Encrypt's suggested client backoff after failures. */
export const BACKOFF_STEPS_MS = [1 * MINUTE, 10 * MINUTE, 100 * MINUTE, DAY] as const;
/**
 * The longest Retry-After (RFC 9110 §10.2.3) honoured after a failure. A CA
 * may ask for more (a rate-limit window of a week, or a bogus year); one
 * retry a day costs it one rejected order, while honouring a long wait can
 * let the certificate expire. It equals the backoff's own daily ceiling.
 */
export const RETRY_AFTER_MAX_MS = DAY;

export function lifetimeMs(v: Validity): number {
  return Math.max(0, v.notAfter.getTime() - v.notBefore.getTime());
}

/** Start of the last 1/20 of the lifetime: from here on, renew now. */
export function emergencyPoint(v: Validity): Date {
  return new Date(v.notAfter.getTime() - lifetimeMs(v) / 20);
}

/**
 * In the emergency window (and as the margin kept before notAfter), the
 * longest wait between attempts: 1/100 of the lifetime, so at least five
 * attempts fit in the last 1/20, between 1 minute and 1 hour (hourly
 * retries for a 90-day certificate, ~14 minutes for a 1-day one).
 */
export function emergencyRetryMs(v: Validity): number {
  return Math.min(Math.max(lifetimeMs(v) / 100, MINUTE), HOUR);
}

/** Persisted Retry-After deadline: seconds from the header, capped at RETRY_AFTER_MAX_MS (no overflow into an invalid date). */
export function retryAfterInstant(failedAt: Date, retryAfterSeconds: number): Date {
  const ms = Number.isFinite(retryAfterSeconds) ? Math.max(0, retryAfterSeconds) * 1000 : RETRY_AFTER_MAX_MS;
  return new Date(failedAt.getTime() + Math.min(ms, RETRY_AFTER_MAX_MS));
}

/**
 * The no-ARI renewal point. `jitter` in [0, 1) delays it by up to 2% of the
 * lifetime so a fleet issued at the same moment does not renew in lockstep;
 * it stays well before the emergency point.
 */
export function fallbackRenewalTime(v: Validity, jitter = 0): Date {
  const life = lifetimeMs(v);
  const remainingFraction = life <= 10 * DAY ? 1 / 2 : 1 / 3;
  const j = Math.min(Math.max(jitter, 0), 0.999999);
  return new Date(v.notAfter.getTime() - life * remainingFraction + life * 0.02 * j);
}

/**
 * Keep the previous choice while the CA's window is unchanged; otherwise pick
 * a uniformly random instant in it (RFC 9773 §4.2). certbot redraws on every
 * run, which defeats the point of spreading load.
 */
export function chooseAriInstant(window: AriWindow, previous: AriChoice | undefined, random: () => number): AriChoice {
  if (
    previous &&
    previous.window.start.getTime() === window.start.getTime() &&
    previous.window.end.getTime() === window.end.getTime()
  ) {
    return previous;
  }
  const s = window.start.getTime();
  const e = Math.max(s, window.end.getTime());
  return { window, at: new Date(s + Math.floor(random() * (e - s))) };
}

/**
 * The wait after the n-th consecutive failure: 1 min, 10 min, 100 min, then
 * daily — capped at a quarter of the time left at the failure, so at least
 * three more attempts fit before expiry (a 6-day certificate retries within
 * hours, not days) — and not before the CA's Retry-After, honoured up to
 * that same cap and RETRY_AFTER_MAX_MS. Then two bounds no Retry-After
 * moves: the next attempt is no later than the emergency point (or, after a
 * failure inside the emergency window, than one emergencyRetryMs later), and
 * no later than notAfter minus emergencyRetryMs while that is still ahead.
 * Attempts are never closer than a minute.
 */
export function backoffUntil(failures: FailureHistory, validity?: Validity): Date {
  const n = Math.max(1, failures.count);
  return waitAfterFailure(failures, validity, BACKOFF_STEPS_MS[Math.min(n, BACKOFF_STEPS_MS.length) - 1]!);
}

/** backoffUntil with our own step given (0: only the CA's Retry-After and the bounds apply). */
function waitAfterFailure(failures: FailureHistory, validity: Validity | undefined, step: number): Date {
  const last = failures.lastAt.getTime();
  let delay = step;
  let retryAfterCap = RETRY_AFTER_MAX_MS;
  if (validity) {
    const cap = Math.max(MINUTE, (validity.notAfter.getTime() - last) / 4);
    delay = Math.min(delay, cap);
    retryAfterCap = Math.min(retryAfterCap, cap);
  }
  const retryAfter = failures.retryAfterUntil?.getTime();
  const wait = Number.isFinite(retryAfter) ? Math.min(retryAfter! - last, retryAfterCap) : 0;
  let until = last + Math.max(delay, wait);
  if (validity) {
    const short = emergencyRetryMs(validity);
    until = Math.min(until, Math.max(emergencyPoint(validity).getTime(), last + short));
    const latest = validity.notAfter.getTime() - short;
    if (last < latest) until = Math.min(until, Math.max(latest, last + MINUTE));
  }
  return new Date(until);
}

export interface RenewalInput {
  /** The current certificate, if any. */
  current?: Validity & { names: string[] };
  wantedNames: string[];
  force?: boolean;
  /** The current certificate was revoked: replace it now (after any failure backoff). */
  revoked?: boolean;
  ari?: AriChoice;
  failures?: FailureHistory;
  /** Per-certificate jitter in [0, 1) for the fallback point (stable per certificate). */
  jitter?: number;
  /** Fingerprint of the effective config now; a failure recorded under another one is no reason to wait. */
  configFingerprint?: string;
  now: Date;
}

/** Compare DNS names as the CA does: case-insensitively (RFC 4343), ignoring a final dot. */
function nameKey(n: string): string {
  return n.toLowerCase().replace(/\.$/, '');
}

/** True when the two name sets differ in either direction. */
export function namesDiffer(have: readonly string[], wanted: readonly string[]): boolean {
  const a = new Set(have.map(nameKey));
  const b = new Set(wanted.map(nameKey));
  return a.size !== b.size || [...a].some((n) => !b.has(n));
}

/**
 * Whether the config changed since the failures: only when both
 * fingerprints are known, so a history from before fingerprints were
 * recorded keeps its backoff (the safe side).
 */
export function configChangedSince(failures: FailureHistory, fingerprint: string | undefined): boolean {
  return failures.configFingerprint !== undefined && fingerprint !== undefined && failures.configFingerprint !== fingerprint;
}

/**
 * The wait after failures under a config that has changed since: none of
 * our own, but a CA's Retry-After still holds (capped as in backoffUntil),
 * since it is about the account or the client, not this config.
 */
function retryAfterOnly(failures: FailureHistory, validity?: Validity): Date | undefined {
  if (!Number.isFinite(failures.retryAfterUntil?.getTime())) return undefined;
  return waitAfterFailure(failures, validity, 0);
}

/** The instant to renew at and why. Due when `at <= now`. */
export function renewalTime(input: RenewalInput): RenewalDecision {
  const { current, now } = input;
  if (input.force) return { at: now, reason: 'forced' };
  const failed = input.failures && input.failures.count > 0 ? input.failures : undefined;
  if (failed) {
    const until = configChangedSince(failed, input.configFingerprint) ? retryAfterOnly(failed, current) : backoffUntil(failed, current);
    if (until && until.getTime() > now.getTime()) return { at: until, reason: 'backoff' };
  }
  if (!current) return { at: now, reason: 'missing' };
  if (input.revoked) return { at: now, reason: 'revoked' };
  if (namesDiffer(current.names, input.wantedNames)) return { at: now, reason: 'names-changed' };

  const emergency = emergencyPoint(current);
  if (now.getTime() >= emergency.getTime()) return { at: now, reason: 'emergency' };
  if (input.ari) {
    // Clamp into the validity period: a window reaching past expiry (or
    // before issuance) must not move renewal outside the certificate's life.
    const t = Math.min(Math.max(input.ari.at.getTime(), current.notBefore.getTime()), emergency.getTime());
    return { at: new Date(t), reason: 'ari-window' };
  }
  return { at: fallbackRenewalTime(current, input.jitter ?? 0), reason: 'lifetime-fraction' };
}

/** Stable jitter in [0, 1) from a string (certificate name + key type). */
export function jitterFor(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) / 2 ** 32;
}
