// What a fleet member does with the lineage the leader published
// (docs/architecture.md, "DANE across a fleet"): deploy it, leave it (it is
// served already), or refuse it and keep serving what it has. A pure
// function of the fleet's DANE journal, the lineage's key, what this member
// deploys now, its own last report and its own fresh look at every
// authoritative server.
//
// The leader only publishes a key once it is safe; a member checks again,
// as defence in depth against a deposed or buggy leader: it deploys a key
// only if the journal names it (current, or next during a swap after the
// hold) and every authoritative server publishes it. The one exception is
// adoption over an empty RRset (RFC 7672 §2.2: no TLSA, no DANE), where the
// leader publishes only once every member serves the key.
//
// It lives under src/fleet because it is the member's side of the fleet
// (it also decides for certificates without DANE); it reads DANE data only
// through src/dane's pure exports, and src/dane never imports src/fleet.
import { noRecordsAnywhere, servedEverywhere, verdictAt, type OwnerObservation } from '../dane/decide.js';
import { keyRole, servesSince, type MemberReport } from '../dane/fleet.js';
import type { DaneJournal } from '../dane/journal.js';
import { isRetirePhase } from '../dane/phases.js';

export interface MemberDeployInput {
  /** DANE is on for this certificate in the config. */
  dane: boolean;
  /** The fleet's DANE journal for this key type, as the leader last wrote it (absent before adoption, or without DANE). */
  journal?: DaneJournal;
  /** The lineage the leader published: its key's 3 1 1 data and its certificate's serial. */
  lineage: { tlsa: string; serial: string };
  /** What this member's output files hold now, if mxcert deployed anything. */
  deployed?: { tlsa?: string; serial?: string };
  /** This member's own last report, if any. */
  report?: MemberReport;
  /** This member's own fresh look at every authoritative server, at every owner (needed when DANE is in force). */
  dns: OwnerObservation[];
}

export type MemberVerdict =
  /**
   * Deploy the lineage (files, hooks, live check), then report. The report
   * is withdrawn first (written without `servedTlsa`), so a member killed
   * mid-deploy leaves no claim the leader's retire could count; after a
   * failed deploy (files rolled back) it reports what it serves again, with
   * the error.
   */
  | { kind: 'deploy'; why: string }
  /** Serving it already, and the report says so. */
  | { kind: 'skip'; why: string }
  /**
   * Serving it already, but the report does not say so (a crash between
   * deploy and report, or a report from before the swap, which the leader's
   * retire does not count): check it live again and report.
   */
  | { kind: 'verify'; why: string }
  /** Keep serving what it has; look again at `until` if the refusal is a matter of time. */
  | { kind: 'refuse'; why: string; until?: Date };

const short = (tlsa: string) => `3 1 1 ${tlsa.slice(0, 12)}…`;

/** The member's verdict on the lineage for one key type. */
export function memberDeployVerdict(input: MemberDeployInput, now: Date): MemberVerdict {
  const { lineage, deployed, journal: j } = input;
  // One serial, one certificate, one key: a deployed key left unknown is the lineage's.
  if (deployed?.serial === lineage.serial && (deployed.tlsa === undefined || deployed.tlsa === lineage.tlsa)) return alreadyServed(input);
  const daneInForce = input.dane || j !== undefined;
  if (!daneInForce) return { kind: 'deploy', why: `the lineage has serial ${lineage.serial}; this member deploys ${deployed?.serial ?? 'nothing from mxcert'}` };
  // A renewal that keeps the key keeps the TLSA records: the served key does
  // not change, so DNS need not be asked (RFC 7671 §8.1, "3 1 1").
  if (deployed?.tlsa === lineage.tlsa) return { kind: 'deploy', why: `a renewed certificate (serial ${lineage.serial}) for the key served now` };
  const gate = daneGate(input, now);
  if (gate) return gate;
  return { kind: 'deploy', why: `the lineage's key ${short(lineage.tlsa)} is the journal's ${keyRole(j!, lineage.tlsa)} key and every authoritative server publishes it` };
}

/** The lineage is deployed here: skip, unless the report lags behind what is served. */
function alreadyServed(input: MemberDeployInput): MemberVerdict {
  const { lineage, report, journal: j } = input;
  if (!report || report.servedTlsa !== lineage.tlsa || report.serial !== lineage.serial || !report.verifiedAt) {
    return { kind: 'verify', why: `serial ${lineage.serial} is deployed but this member's report does not say so` };
  }
  // The leader's retire counts only reports verified since the swap.
  if (j?.swappedAt && j.current.tlsa === lineage.tlsa && !servesSince(report, lineage.tlsa, j.swappedAt)) {
    return { kind: 'verify', why: `the report (verified ${report.verifiedAt}) predates the swap at ${j.swappedAt}` };
  }
  return { kind: 'skip', why: `serial ${lineage.serial} is deployed and reported` };
}

/** The DANE checks for a lineage with another key than the one served now; undefined when they pass. */
function daneGate(input: MemberDeployInput, now: Date): MemberVerdict | undefined {
  const { lineage, journal: j, dns } = input;
  const key = short(lineage.tlsa);
  if (!j) return { kind: 'refuse', why: `DANE is on but the fleet has no DANE journal yet: waiting for the leader to adopt before serving ${key}` };
  if (isRetirePhase(j.phase)) return { kind: 'refuse', why: `the TLSA records are being withdrawn (${j.phase}): keeping the key served now` };
  const role = keyRole(j, lineage.tlsa);
  if (role !== 'current' && role !== 'next') return { kind: 'refuse', why: `the lineage's key ${key} is ${role === 'old' ? "the journal's old key" : 'not named by the journal'}; only the current or the next key is served` };
  if (!dns.length) return { kind: 'refuse', why: 'no DNS observations to check the TLSA records against' };
  // Adoption over an empty RRset: no TLSA anywhere and none ever published,
  // so DANE is not in force and any key may be served; the leader publishes
  // only once every member serves the current key.
  if (role === 'current' && j.phase === 'PUBLISH' && !j.publishedAt && noRecordsAnywhere(dns)) return undefined;
  const held = holdGate(j, role, now);
  if (held) return held;
  if (!servedEverywhere(dns, [lineage.tlsa])) {
    return { kind: 'refuse', why: `the lineage's key ${key} is not published everywhere: ${verdictAt(dns, { present: [lineage.tlsa], absent: [] }).lagging.join('; ')}` };
  }
  return undefined;
}

/**
 * A key this member starts to serve must have been on every authoritative
 * server for the hold, whichever key it is: caches may hold an RRset
 * without it until then. The journal says until when, per phase.
 */
function holdGate(j: DaneJournal, role: 'current' | 'next', now: Date): MemberVerdict | undefined {
  const until = heldUntil(j, role);
  if (typeof until === 'string') return { kind: 'refuse', why: until };
  if (!until || now.getTime() >= until.getTime()) return undefined;
  return { kind: 'refuse', why: `the ${role} key is held until ${until.toISOString()}`, until };
}

/** When the key may first be served (undefined: now), or why not at all in this phase. */
function heldUntil(j: DaneJournal, role: 'current' | 'next'): Date | string | undefined {
  const hold = j.holdUntil ? new Date(j.holdUntil) : `the journal (${j.phase}) records no hold for the ${role} key`;
  if (role === 'next') {
    if (j.phase !== 'SWAP') return `the lineage's key is the next key, but the journal is in ${j.phase}, not SWAP`;
    return j.rollover?.emergency ? undefined : hold;
  }
  switch (j.phase) {
    case 'STEADY':
    case 'DEPLOY_CURRENT':
    case 'SWAP':
      // The hold over {current, next}, restarted whenever a record went missing.
      return hold;
    case 'RETIRE_OLD':
      // Held before the swap; restarted if the retire had to put records back.
      if (j.currentHoldReset) return 'a record of the current key went missing and is being published again; its hold starts over';
      return j.currentHoldUntil ? new Date(j.currentHoldUntil) : undefined;
    default:
      return `the journal is in ${j.phase}: the records are being published and no hold covers the current key yet`;
  }
}
