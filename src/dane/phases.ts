// The DANE machine's phase names (docs/architecture.md, "DANE rollover"),
// with no imports: status, metrics and the daemon's wake-up planner read a
// journal's phase without loading the rollover machinery.

/** Each name says what the machine does next in that phase. */
export const PHASES = [
  /** The current key is served; {current, next} are published everywhere; waiting for the rotation. */
  'STEADY',
  /** Send the update that publishes {current, next} (adoption, or records found missing). */
  'PUBLISH',
  /** Wait until every authoritative server serves the last update. */
  'AWAIT_VISIBLE',
  /** Adoption over a non-empty RRset: hold, then serve the current key. */
  'DEPLOY_CURRENT',
  /** Order a certificate for the next key, deploy it, reload, check it live. */
  'SWAP',
  /** At least one TTL after the swap: remove the old key's record, publish the new next key. */
  'RETIRE_OLD',
  /** `mxcert dane retire`: remove every record of mxcert's for the certificate. */
  'WITHDRAW',
  /** Wait until no authoritative server serves them any more. */
  'AWAIT_GONE',
  /** Wait out the caches (the hold), then delete the keys and the journal. */
  'RELEASE',
] as const;
export type Phase = (typeof PHASES)[number];

/** Phases of a retirement (`mxcert dane retire`, `mxcert delete`). */
export const RETIRE_PHASES: readonly Phase[] = ['WITHDRAW', 'AWAIT_GONE', 'RELEASE'];

/**
 * Names written by earlier versions. ISSUE and VERIFY_LIVE were never
 * phases of their own (the issue, deploy, reload and live check are one
 * idempotent step, resumed by re-checking visibility and the hold), so they
 * read as SWAP.
 */
const LEGACY: Record<string, Phase> = {
  PUBLISH_NEXT: 'PUBLISH',
  ISSUE: 'SWAP',
  VERIFY_LIVE: 'SWAP',
  RETIRE: 'RETIRE_OLD',
};

/** A phase as read from a journal, in today's names; undefined if unknown. */
export function phaseName(raw: unknown): Phase | undefined {
  if (typeof raw !== 'string') return undefined;
  if ((PHASES as readonly string[]).includes(raw)) return raw as Phase;
  // Own keys only: `constructor` or `__proto__` in a journal is no phase.
  return Object.hasOwn(LEGACY, raw) ? LEGACY[raw] : undefined;
}

export function isRetirePhase(p: Phase): boolean {
  return RETIRE_PHASES.includes(p);
}
