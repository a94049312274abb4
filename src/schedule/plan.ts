// The timing decision for one (certificate, key type) from persisted state
// only. Kept free of heavy imports (no ACME client, no X.509 parser) because
// `mxcert status` calls it and must start fast.
import type { CertificateConfig } from '../config/schema.js';
import type { CertState, StoredVersion } from '../store/state-store.js';
import { jitterFor, renewalTime, type RenewalReason } from './renewal-time.js';

export interface Plan {
  due: boolean;
  reason: RenewalReason;
  at: Date;
}

export function planFromState(
  cert: CertificateConfig,
  keyType: string,
  state: CertState,
  /** Only its metadata is read (status loads no keys or certificates). */
  current: Pick<StoredVersion, 'meta'> | undefined,
  force: boolean,
  now: Date,
): Plan {
  const d = renewalTime({
    current: current && { notBefore: new Date(current.meta.notBefore), notAfter: new Date(current.meta.notAfter), names: current.meta.names },
    wantedNames: cert.domains,
    force,
    // ARI state applies only to the certificate it was fetched for.
    ari:
      state.ari && current && state.ari.certId === current.meta.certId
        ? { window: { start: new Date(state.ari.windowStart), end: new Date(state.ari.windowEnd) }, at: new Date(state.ari.chosen) }
        : undefined,
    // A count of 0 (the last attempt succeeded) is no failure history to renewalTime.
    failures:
      state.last
        ? {
            count: state.consecutiveFailures,
            lastAt: new Date(state.last.at),
            retryAfterUntil: state.retryAfterUntil ? new Date(state.retryAfterUntil) : undefined,
          }
        : undefined,
    jitter: jitterFor(`${cert.name}/${keyType}`),
    now,
  });
  return { due: d.at.getTime() <= now.getTime(), reason: d.reason, at: d.at };
}
