// Which changes in etcd make the daemon run a pass now (docs/architecture.md,
// "Fleet"), as pure functions of the change and what the fleet watcher
// (fleet-child.ts) has seen: the watcher applies them, the unit tests check
// them on plain data.
//
// A pass that changes nothing writes nothing to etcd (a member that serves
// the lineage and whose report says so skips; a DANE machine that waits
// writes no journal), and this member's own writes never nudge it: so a
// nudge cannot feed itself. What nudges:
// - another member's lineage write: deploy it (members follow the leader);
// - another member's DANE record write: a member follows SWAP, and whoever
//   leads the next pass continues the rollover;
// - another member's report, while a DANE journal of that certificate is
//   not STEADY (the leader's first publish and its retire of the old record
//   wait for every member), and only when what the report claims changed
//   (served keys, serial, generation, verification time), not a new error
//   stamp: two members failing in turn must not nudge each other forever;
//   and not a withdrawal (a report serving nothing holds the leader back);
// - a member taken out of the fleet: a retire may have waited for it.
// The leader key changes with every pass (per-pass leadership) and never nudges.
import type { CertificateConfig } from '../config/schema.js';
import type { DaneJournal } from '../dane/journal.js';
import { daneDeadline } from './wake.js';

export interface NudgeContext {
  /** This host's fleet member name. */
  member: string;
  /** The config's fleet certificates. */
  certs: readonly string[];
  /** Each certificate's DANE record (parsed JSON) as last seen. */
  dane: ReadonlyMap<string, unknown>;
}

export interface Nudge {
  certs: string[];
  why: string;
}

const field = (v: unknown, k: string): unknown => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined);

/** The nudge a change of `key` (relative to the fleet prefix) calls for, if any. `before`/`after` are parsed values, undefined when absent. */
export function nudgeFor(key: string, before: unknown, after: unknown, ctx: NudgeContext): Nudge | undefined {
  const certKey = /^certs\/([^/]+)\/(lineage|dane)$/.exec(key);
  if (certKey) {
    const [, cert, what] = certKey as unknown as [string, string, 'lineage' | 'dane'];
    if (!ctx.certs.includes(cert)) return undefined;
    const by = field(after, 'updatedBy');
    // This member's own pass wrote it, and acted on it in the same pass.
    if (by === ctx.member) return undefined;
    if (what === 'lineage') {
      const gen = field(after, 'generation');
      return { certs: [cert], why: after === undefined ? `the lineage of ${cert} was deleted` : `a new lineage of ${cert} (generation ${String(gen)}, by ${String(by)})` };
    }
    return { certs: [cert], why: `the DANE journal of ${cert} changed (by ${String(by ?? 'someone')})` };
  }
  const report = /^members\/([^/]+)\/([^/]+)$/.exec(key);
  if (report) {
    const [, member, cert] = report as unknown as [string, string, string];
    if (member === ctx.member || !ctx.certs.includes(cert)) return undefined;
    if (!membersMatter(ctx.dane.get(cert)) || !claimChanged(before, after) || !claimsAUnit(after)) return undefined;
    return { certs: [cert], why: `${member} reported on ${cert}` };
  }
  const removed = /^removed\/([^/]+)$/.exec(key);
  if (removed && removed[1] !== ctx.member && after !== undefined) return { certs: [...ctx.certs], why: `${removed[1]} was removed from the fleet` };
  return undefined;
}

/** The DANE record has a journal the leader may be waiting on members in (anything but STEADY). */
export function membersMatter(record: unknown): boolean {
  const journals = field(record, 'journal');
  if (!journals || typeof journals !== 'object') return false;
  return Object.values(journals as Record<string, unknown>).some((j) => field(j, 'phase') !== 'STEADY');
}

/**
 * A report that claims no key served (withdrawn before a deploy, or gone)
 * can only hold the leader back, never let it go on: no pass for it.
 */
export function claimsAUnit(report: unknown): boolean {
  const units = field(report, 'units');
  return Boolean(units && typeof units === 'object' && Object.keys(units).length > 0);
}

/** What a report claims changed (not only its error stamp). */
export function claimChanged(before: unknown, after: unknown): boolean {
  if (before === undefined || after === undefined) return before !== after;
  const claim = (r: unknown) => JSON.stringify([field(r, 'units'), field(r, 'generation'), field(r, 'verifiedAt')]);
  return claim(before) !== claim(after);
}

/**
 * When the fleet's DANE record of `cert` can next move by time alone (the
 * end of a hold, RETIRE_OLD's wait after the swap, a release): the earliest
 * over its key types, as daneDeadline says. `due` is true when that instant
 * is not after `now` (a wait without a deadline).
 */
export function fleetDaneDue(record: unknown, cert: CertificateConfig, now: Date): { at: number; due: boolean } | undefined {
  const journals = field(record, 'journal');
  if (!journals || typeof journals !== 'object') return undefined;
  let at: number | undefined;
  for (const keyType of cert.keys) {
    const j = (journals as Record<string, unknown>)[keyType] as DaneJournal | undefined;
    if (!j || typeof j !== 'object' || !field(j, 'current')) continue;
    const d = daneDeadline(j, cert, now);
    if (d !== undefined && (at === undefined || d < at)) at = d;
  }
  return at === undefined ? undefined : { at, due: at <= now.getTime() };
}

/**
 * How long after a DANE deadline this member's watcher nudges its daemon.
 * At a deadline only the pass that leads has work (RETIRE_OLD's retire, the
 * end of a hold); members have deployed already. The member that wrote the
 * record last, the leader of the step before most likely, goes first;
 * the others wait FOLLOWER_GRACE_MS more, so they do not compete with it for
 * the CPU and the election at that moment, and still take over if it is
 * down (their passes then find no leader and campaign).
 */
export function dueMargin(record: unknown, member: string): number {
  return field(record, 'updatedBy') === member ? DUE_MARGIN_MS : DUE_MARGIN_MS + FOLLOWER_GRACE_MS;
}
/** Wake a little after a journal's deadline, so the pass does not find it a hair early. */
export const DUE_MARGIN_MS = 50;
export const FOLLOWER_GRACE_MS = 2000;

/** A wait without a deadline is looked at again after 10 s, 20 s, 40 s … at most 10 min, counted from the record's last change. */
export function dueRetryMs(attempt: number): number {
  return Math.min(10_000 * 2 ** attempt, 600_000);
}
