// Fleet metrics (docs/architecture.md, "Fleet"): which member holds back the
// retire of the old key, and since when, as gauge samples. A pure function
// of the fleet's DANE journal and the members' reports, read from etcd by
// src/metrics/fleet-read.ts. The rule is the leader's (src/dane/fleet.ts):
// in RETIRE_OLD, a member blocks until it reports serving the current key,
// verified since the swap.
import { membersNotServing, type MemberReport } from '../dane/fleet.js';
import type { DaneJournal } from '../dane/journal.js';

export interface FleetUnitView {
  cert: string;
  keyType: string;
  journal?: Pick<DaneJournal, 'phase' | 'swappedAt' | 'current'>;
  /** One per expected member (fleet.members minus those removed). */
  members: MemberReport[];
}

export interface FleetSample {
  cert: string;
  keyType: string;
  member: string;
  /** Unix seconds. */
  value: number;
}

const seconds = (iso: string): number | undefined => {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t / 1000;
};

export function fleetSamples(units: readonly FleetUnitView[]): { retireWaiting: FleetSample[]; lastVerified: FleetSample[] } {
  const retireWaiting: FleetSample[] = [];
  const lastVerified: FleetSample[] = [];
  for (const u of units) {
    const j = u.journal;
    const since = j?.phase === 'RETIRE_OLD' && j.swappedAt ? seconds(j.swappedAt) : undefined;
    if (j && since !== undefined) {
      for (const r of membersNotServing(u.members, j.current.tlsa, j.swappedAt)) retireWaiting.push({ cert: u.cert, keyType: u.keyType, member: r.member, value: since });
    }
    for (const r of u.members) {
      const v = r.verifiedAt ? seconds(r.verifiedAt) : undefined;
      if (v !== undefined) lastVerified.push({ cert: u.cert, keyType: u.keyType, member: r.member, value: v });
    }
  }
  return { retireWaiting, lastVerified };
}
