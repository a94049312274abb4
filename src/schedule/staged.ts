// Whether a staged certificate (issued and validated, but its deploy failed)
// may be deployed instead of ordering a new one (docs/architecture.md, "When
// to renew"). Ordering again burns the CA's duplicate-certificate limit
// (Let's Encrypt: 5 a week for the same names), so a failing hook fixed
// within the week must not lead to an outage. But a staged certificate is
// only as good as a fresh order while it is not due for renewal itself and
// still fits the config.
import { namesDiffer, renewalTime, type Validity } from './renewal-time.js';

export interface StagedInput {
  staged: Validity & { names: string[] };
  /** The deployed certificate, if any. */
  current?: Validity;
  wantedNames: string[];
  /** Whether the staged key is the key this attempt must use (always, unless DANE asks for a given key). */
  keyMatches: boolean;
  /** The unit's jitter (jitterFor), so "due" means what it means for the deployed certificate. */
  jitter: number;
  now: Date;
}

export type StagedVerdict = { use: true } | { use: false; why: string };

export function stagedVerdict(i: StagedInput): StagedVerdict {
  const now = i.now.getTime();
  if (!i.keyMatches) return { use: false, why: 'its key is not the key this renewal must use' };
  if (namesDiffer(i.staged.names, i.wantedNames)) return { use: false, why: 'its names differ from the config' };
  if (now < i.staged.notBefore.getTime() || now >= i.staged.notAfter.getTime()) return { use: false, why: 'it is not valid now' };
  if (i.current && i.staged.notAfter.getTime() <= i.current.notAfter.getTime()) {
    return { use: false, why: 'it is no newer than the deployed certificate' };
  }
  const due = renewalTime({ current: i.staged, wantedNames: i.wantedNames, jitter: i.jitter, now: i.now });
  if (due.at.getTime() <= now) return { use: false, why: `it is due for renewal itself (${due.reason})` };
  return { use: true };
}
