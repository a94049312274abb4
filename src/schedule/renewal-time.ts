// When to renew: a pure function of the certificate's validity and the
// policy — no clock inside (like cert-manager's RenewalTime); callers compare
// the answer with their injected clock. DESIGN §5. ARI windows and failure
// backoff are layered on top of this in a later step (issue 3).

export type RenewalReason = 'lifetime-fraction' | 'emergency' | 'forced' | 'missing' | 'names-changed';

export interface RenewalDecision {
  at: Date;
  reason: RenewalReason;
}

/**
 * Renew when a third of the lifetime remains — half for certificates of ten
 * days or less, so a 6-day certificate still has room for several retries
 * (Let's Encrypt's guidance for short-lived certificates).
 */
export function fallbackRenewalTime(validity: { notBefore: Date; notAfter: Date }): RenewalDecision {
  const nb = validity.notBefore.getTime();
  const na = validity.notAfter.getTime();
  const lifetime = Math.max(0, na - nb);
  const fraction = lifetime <= 10 * 86_400_000 ? 1 / 2 : 1 / 3;
  return { at: new Date(na - lifetime * fraction), reason: 'lifetime-fraction' };
}

export interface PlanInput {
  current?: { notBefore: Date; notAfter: Date; names: string[] };
  wantedNames: string[];
  force: boolean;
  now: Date;
}

export interface Plan {
  due: boolean;
  reason: RenewalReason;
  at: Date;
}

/** Decide whether one (certificate, key type) is due now. */
export function planRenewal(input: PlanInput): Plan {
  const { current, now } = input;
  if (input.force) return { due: true, reason: 'forced', at: now };
  if (!current) return { due: true, reason: 'missing', at: now };
  const have = new Set(current.names.map((n) => n.toLowerCase()));
  if (input.wantedNames.some((n) => !have.has(n.toLowerCase()))) return { due: true, reason: 'names-changed', at: now };
  const nb = current.notBefore.getTime();
  const na = current.notAfter.getTime();
  // In the last 1/20 of the lifetime (or past expiry) renew now, whatever else says.
  if (now.getTime() >= na - (na - nb) / 20) return { due: true, reason: 'emergency', at: now };
  const d = fallbackRenewalTime(current);
  return { due: now.getTime() >= d.at.getTime(), reason: d.reason, at: d.at };
}
