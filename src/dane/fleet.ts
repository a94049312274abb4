// DANE across a fleet (docs/architecture.md, "DANE across a fleet"): the
// members' reports as the leader's `decide` sees them, and the pure views
// over them that the leader's rules and `status` use. Several MX hosts serve
// one certificate lineage; the invariant (the key each of them serves is in
// every TLSA RRset returned in the last 2 × TTL) must hold for every one.
// This module lives under src/dane because `decide` reads it; src/dane never
// imports src/fleet (the member side, src/fleet/member-decide.ts, imports
// from here).
import type { DaneJournal } from './journal.js';

/**
 * What one member last said about the key type in question. One entry per
 * EXPECTED member (the config's members minus those removed for good); a
 * member that never reported has only `member`.
 */
export interface MemberReport {
  member: string;
  /** 3 1 1 data of the key the member last VERIFIED serving live (STARTTLS to its own endpoints). */
  servedTlsa?: string;
  /** Serial of the certificate it serves. */
  serial?: string;
  /** When it verified that (ISO, the member's clock). */
  verifiedAt?: string;
  /** Its last deploy or check failed, and why. */
  error?: string;
  /** When it last wrote its report (ISO). */
  reportedAt?: string;
}

/** The fleet as the leader's `decide` sees it, for one key type. */
export interface FleetObservations {
  members: MemberReport[];
}

/**
 * Prefix of the `waiting` text of a machine that waits for members. Such a
 * wait has no deadline: it ends when a member reports, so the caller should
 * look again on a change of the reports rather than on a timer alone.
 */
export const FLEET_WAIT = 'fleet:';

export type KeyRole = 'current' | 'next' | 'old' | 'unknown';

/** Which of the journal's keys `tlsa` is. */
export function keyRole(j: Pick<DaneJournal, 'current' | 'next' | 'old'>, tlsa: string): KeyRole {
  if (tlsa === j.current.tlsa) return 'current';
  if (tlsa === j.next.tlsa) return 'next';
  if (j.old && tlsa === j.old.tlsa) return 'old';
  return 'unknown';
}

function ms(iso: string | undefined): number | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * The member verified serving `tlsa`, at or after `since` when given. A
 * report from before `since` may be stale: a member that crashed between a
 * deploy and its report still shows what it served before.
 */
export function servesSince(r: MemberReport, tlsa: string, since?: string): boolean {
  if (r.servedTlsa !== tlsa) return false;
  if (since === undefined) return true;
  const v = ms(r.verifiedAt);
  const s = ms(since);
  return v !== undefined && s !== undefined && v >= s;
}

/** Members whose report does not show `tlsa` served (verified at or after `since` when given). */
export function membersNotServing(members: readonly MemberReport[], tlsa: string, since?: string): MemberReport[] {
  return members.filter((r) => !servesSince(r, tlsa, since));
}

/** Members that report serving a key the journal does not name (not current, not next, not old). */
export function strayMembers(j: Pick<DaneJournal, 'current' | 'next' | 'old'>, members: readonly MemberReport[]): MemberReport[] {
  return members.filter((r) => r.servedTlsa !== undefined && keyRole(j, r.servedTlsa) === 'unknown');
}

const short = (tlsa: string) => `3 1 1 ${tlsa.slice(0, 12)}…`;

/**
 * One member in a few words, for `waiting` texts and `status`:
 * `mx-c (serves 3 1 1 ab12… (the old key), verified 2026-…)`,
 * `mx-c (no report)`, `mx-c (error: …, reported 2026-…)`.
 */
export function describeMember(r: MemberReport, j?: Pick<DaneJournal, 'current' | 'next' | 'old'>, since?: string): string {
  const parts: string[] = [];
  if (r.servedTlsa) {
    const role = j ? keyRole(j, r.servedTlsa) : undefined;
    const what = role === 'unknown' ? ' (neither the current, the next nor the old key)' : role ? ` (the ${role} key)` : '';
    const stale = since && role === 'current' && !servesSince(r, r.servedTlsa, since) ? `, before the swap at ${since}` : '';
    parts.push(`serves ${short(r.servedTlsa)}${what}${r.verifiedAt ? `, verified ${r.verifiedAt}` : ', never verified'}${stale}`);
  }
  if (r.error) parts.push(`error: ${r.error}`);
  if (!r.servedTlsa && !r.error) parts.push(r.reportedAt ? 'no served key reported' : 'no report');
  if (r.reportedAt && (r.error || !r.servedTlsa)) parts.push(`last report ${r.reportedAt}`);
  return `${r.member} (${parts.join('; ')})`;
}

/**
 * `status` text for a fleet certificate's DANE state: who holds what back.
 * Empty members list: nothing to say about them.
 */
export function fleetWhy(j: DaneJournal | undefined, members: readonly MemberReport[]): string {
  if (!members.length) return 'no members expected';
  if (!j) return `members: ${members.map((r) => describeMember(r)).join('; ')}`;
  const since = j.phase === 'RETIRE_OLD' ? j.swappedAt : undefined;
  // A member serving a key the journal does not name is behind too, and says so.
  const lines = membersNotServing(members, j.current.tlsa, since).map((r) => describeMember(r, j, since));
  if (!lines.length) return `every member (${members.map((r) => r.member).join(', ')}) serves the current key ${short(j.current.tlsa)}`;
  const head = j.phase === 'RETIRE_OLD' ? 'retire of the old key waits for' : 'not serving the current key';
  return `${head}: ${lines.join('; ')}`;
}
