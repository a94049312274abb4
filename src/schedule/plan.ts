// The timing decision for one (certificate, key type) from persisted state
// only. Kept free of heavy imports (no ACME client, no X.509 parser) because
// `mxcert status` calls it and must start fast.
import type { CertificateConfig } from '../config/schema.js';
import type { CertState, StoredVersion } from '../store/state-store.js';
import { configChangedSince, jitterFor, renewalTime, type RenewalReason } from './renewal-time.js';

export interface Plan {
  due: boolean;
  reason: RenewalReason;
  at: Date;
  /** With reason `backoff`: the consecutive failures it backs off after. */
  failures?: number;
}

export function planFromState(
  cert: CertificateConfig,
  keyType: string,
  state: CertState,
  /** Only its metadata is read (status loads no keys or certificates). */
  current: Pick<StoredVersion, 'meta'> | undefined,
  force: boolean,
  now: Date,
  /** configFingerprint() of the config now; without it a failure backoff always applies. */
  fingerprint?: string,
): Plan {
  const d = renewalTime({
    current: current && { notBefore: new Date(current.meta.notBefore), notAfter: new Date(current.meta.notAfter), names: current.meta.names },
    wantedNames: cert.domains,
    force,
    // A revocation applies to the version it was recorded for, not to its replacement.
    revoked: Boolean(state.revoked && state.revoked.version === state.current),
    // ARI state applies only to the certificate it was fetched for.
    ari:
      state.ari && current && state.ari.certId === current.meta.certId
        ? { window: { start: new Date(state.ari.windowStart), end: new Date(state.ari.windowEnd) }, at: new Date(state.ari.chosen) }
        : undefined,
    failures: failureHistory(state),
    jitter: jitterFor(`${cert.name}/${keyType}`),
    configFingerprint: fingerprint,
    now,
  });
  return {
    due: d.at.getTime() <= now.getTime(),
    reason: d.reason,
    at: d.at,
    ...(d.reason === 'backoff' ? { failures: state.consecutiveFailures } : {}),
  };
}

// Whenever there is a last attempt: a count of 0 (it succeeded) is no failure
// history to renewalTime, and nextFailureCount then counts on from 0 to 1.
function failureHistory(state: CertState) {
  if (!state.last) return undefined;
  return {
    count: state.consecutiveFailures,
    lastAt: new Date(state.last.at),
    retryAfterUntil: state.retryAfterUntil ? new Date(state.retryAfterUntil) : undefined,
    configFingerprint: state.last.configFingerprint,
  };
}

/**
 * The failure count to record for a new failure: counting on from the last
 * one, or starting at 1 when the config changed since (the backoff restarts
 * at its first step for the new config; docs/architecture.md, "When to renew").
 */
export function nextFailureCount(state: CertState, fingerprint: string | undefined): number {
  const prev = failureHistory(state);
  if (!prev) return 1;
  return configChangedSince(prev, fingerprint) ? 1 : prev.count + 1;
}

/** `2026-12-07 14:00:30Z` */
function shortTime(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** What `renew` says for a unit that is not due: when, why, and for a backoff how to skip it. */
export function notDueText(plan: Plan): string {
  if (plan.reason === 'backoff') {
    const n = plan.failures ?? 0;
    const after = n > 0 ? ` after ${n} failure${n === 1 ? '' : 's'}` : '';
    return `not due: backing off${after} until ${shortTime(plan.at)} (renew --force retries now)`;
  }
  return `not due; renews at ${shortTime(plan.at)} (${plan.reason})`;
}
