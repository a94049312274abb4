// The DANE rollover machine's brain (docs/architecture.md, "DANE rollover";
// RFC 7671 §8.1): a pure function of the journal, what was just observed,
// the policy and the clock, answering "what is the one thing to do next".
// The executor (src/dane/execute.ts) gathers the observations, carries out
// the action, persists the journal and asks again, until the answer is to
// wait. Nothing here does I/O, so every rule is unit-tested on plain data.
//
// The rule every answer serves: the key the MTA serves is always in every
// TLSA RRset that any authoritative server has returned in the last 2 × TTL.
import type { DaneJournal, KeyRef, PublishedWith, TtlSeen } from './journal.js';
import { isRetirePhase } from './phases.js';
import type { TlsaRecord } from './tlsa.js';
import { assessVisibility, type Observation, type VisibilityVerdict } from './visibility.js';

/** What every authoritative server returned at one owner name. */
export interface OwnerObservation {
  owner: string;
  servers: Observation[];
}

/** Another key type of the same certificate (adoption publishes all of them at once). */
export interface SiblingState {
  keyType: string;
  journal?: DaneJournal;
  deployedTlsa?: string;
}

/** Plain data, gathered just before `decide` is asked. */
export interface DaneObservations {
  dns: OwnerObservation[];
  /** 3 1 1 data of the key the output files hold (what the MTA is given), if mxcert deployed one. */
  deployedTlsa?: string;
  /** The other key types; absent when the certificate has one. */
  siblings?: SiblingState[];
  /** dane.validatingResolver's verdict on {current, next}, when one is configured and it was asked (see needsResolver). */
  resolver?: { ok: boolean; why: string };
  /** Set while a failure backoff holds the next attempt back (docs/architecture.md, "When to renew"). */
  backoffUntil?: Date;
  /** A same-key renewal is due by the normal timing rules. */
  renewalDue: boolean;
}

export interface DecidePolicy {
  keyLifetimeMs: number;
  minHoldMs: number;
  strictSignatures: boolean;
  /** TTL mxcert publishes its records with. */
  ttl: number;
  /** A validating resolver must return the records with AD before a key is served. */
  resolver: boolean;
  /** dane.extraRecords: published alongside mxcert's own, never removed by it. */
  extras: TlsaRecord[];
  /** Where and how the records are published now: kept in the journal for `mxcert dane retire` (see PublishedWith). */
  publishedWith?: PublishedWith;
}

/** Prefix of the `waiting` text of a key type that waits for its siblings during adoption. */
export const ADOPTION_WAIT = 'adoption:';

export type DaneAction =
  /** No journal: make the keys (the deployed key becomes current, a fresh one next). */
  | { kind: 'adopt' }
  /** One update per owner; then save `then` (the executor adds the serial). */
  | { kind: 'publish'; add: TlsaRecord[]; remove: TlsaRecord[]; then: DaneJournal; say: string }
  /**
   * Issue for the key, deploy, reload, verify; with `liveCheck`, also check
   * every endpoint serves it and every server publishes it. For `next`, the
   * journal after success comes from `afterSwap` (a new next key is made).
   */
  | { kind: 'deploy'; key: 'current' | 'next'; liveCheck: boolean; then?: DaneJournal; say: string; emergency?: boolean }
  /** Delete a key file, then save `then`. */
  | { kind: 'delete-key'; key: KeyRef; then: DaneJournal; say: string[] }
  | { kind: 'save'; journal: DaneJournal; say?: string; warn?: string }
  /** Nothing more this pass. `poll`: the wait is for DNS to propagate; look again shortly. */
  | { kind: 'wait'; why: string; until?: Date; poll?: boolean }
  /** Steady and nothing due; `until`: when something next will be. */
  | { kind: 'idle'; until?: Date };

const rec = (hex: string): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: hex });

/** Pure: when the hold for the next key ends. */
export function holdUntil(visibleAt: Date, ttlSeconds: number, minHoldMs: number, unsignedUntil?: Date): Date {
  const t = visibleAt.getTime() + Math.max(2 * ttlSeconds * 1000, minHoldMs);
  return new Date(Math.max(t, unsignedUntil?.getTime() ?? 0));
}

/** Pure: is a rotation of the current key due? */
export function rotationDue(j: DaneJournal, now: Date, keyLifetimeMs: number): boolean {
  return Boolean(j.rollover) || now.getTime() >= rotationAt(j, keyLifetimeMs);
}

function rotationAt(j: DaneJournal, keyLifetimeMs: number): number {
  return new Date(j.current.createdAt).getTime() + keyLifetimeMs;
}

/** Pure: may we swap to the next key now? (visible everywhere, and held long enough unless an emergency). */
export function maySwap(j: DaneJournal, now: Date, freshlyVisible: boolean): { ok: boolean; why: string } {
  // An emergency skips the hold, never visibility: serving a key whose
  // record some authoritative server lacks would fail DANE senders at once.
  if (!freshlyVisible) return { ok: false, why: 'the next key is not visible on every authoritative server' };
  if (j.rollover?.emergency) return { ok: true, why: 'emergency rollover requested' };
  if (!j.holdUntil) return { ok: false, why: 'hold not started' };
  if (now.getTime() < new Date(j.holdUntil).getTime()) return { ok: false, why: `holding until ${j.holdUntil}` };
  return { ok: true, why: 'hold passed' };
}

/** Whether `decide` will want the validating resolver's verdict for this journal now. */
export function needsResolver(j: DaneJournal | undefined, policy: DecidePolicy, now: Date): boolean {
  if (!policy.resolver || !j) return false;
  return j.phase === 'SWAP' || (j.phase === 'STEADY' && rotationDue(j, now, policy.keyLifetimeMs));
}

// --------------------------------------------------------------------------
// Views over one round of observations

/** The verdict over every owner (prefixing each shortcoming with its owner). */
export function verdictAt(dns: OwnerObservation[], want: { present: string[]; absent: string[]; minSerial?: number }): VisibilityVerdict {
  const vs = dns.map((o) => assessVisibility(o.servers, { present: want.present.map(rec), absent: want.absent.map(rec), minSerial: want.minSerial }));
  const ttls = vs.map((v) => v.maxTtl).filter((t): t is number => t !== undefined);
  const sigs = vs.map((v) => v.maxRrsigExpiration?.getTime()).filter((t): t is number => t !== undefined);
  const out: VisibilityVerdict = {
    allAgree: vs.every((v) => v.allAgree),
    lagging: vs.flatMap((v, i) => v.lagging.map((l) => `${dns[i]!.owner} ${l}`)),
  };
  if (ttls.length) out.maxTtl = Math.max(...ttls);
  if (sigs.length) out.maxRrsigExpiration = new Date(Math.max(...sigs));
  return out;
}

/** Every server, at every owner, answers authoritatively and serves each of `hexes`. */
export function servedEverywhere(dns: OwnerObservation[], hexes: string[]): boolean {
  return verdictAt(dns, { present: hexes, absent: [] }).allAgree;
}

/**
 * No TLSA at all: every server answered, authoritatively, with nothing.
 * A server that did not answer is no evidence of an empty RRset: it may
 * hold records that would reject whatever is served now.
 */
export function noRecordsAnywhere(dns: OwnerObservation[]): boolean {
  return dns.every((o) => o.servers.length > 0 && o.servers.every((s) => s.ok && s.authoritative && s.records.length === 0));
}

/** When the last answer of this round came: the moment the last server to agree was seen agreeing. */
export function latestAnswer(dns: OwnerObservation[]): Date | undefined {
  const t = dns.flatMap((o) => o.servers.map((s) => s.at?.getTime())).filter((x): x is number => x !== undefined);
  return t.length ? new Date(Math.max(...t)) : undefined;
}

/**
 * Pure: the TTL memory after one round. `live` is the largest TTL served
 * now; when it drops (or the RRsets vanish), the old one is kept as `gone`,
 * dated now (it may have been served until this look), for as long as
 * caches may hold it under the 2 × TTL rule; of two such, the one that
 * lasts longer is kept.
 */
export function rememberTtl(prev: TtlSeen | undefined, dns: OwnerObservation[], now: Date): TtlSeen | undefined {
  const ttls = dns.flatMap((o) => o.servers.map((s) => s.ttl)).filter((t): t is number => t !== undefined);
  const live = ttls.length ? Math.max(...ttls) : undefined;
  const expiry = (g: { ttl: number; until: string }) => new Date(g.until).getTime() + 2 * g.ttl * 1000;
  let gone = prev?.gone && now.getTime() < expiry(prev.gone) ? prev.gone : undefined;
  if (prev?.live !== undefined && (live === undefined || live < prev.live)) {
    const dropped = { ttl: prev.live, until: now.toISOString() };
    if (!gone || expiry(dropped) > expiry(gone)) gone = dropped;
  }
  if (live === undefined && !gone) return undefined;
  return { ...(live !== undefined ? { live } : {}), ...(gone ? { gone } : {}) };
}

/** The latest instant a remembered, no longer served TTL keeps caches busy (2 × TTL after it was last served). */
function goneUntil(seen: TtlSeen | undefined): number {
  return seen?.gone ? new Date(seen.gone.until).getTime() + 2 * seen.gone.ttl * 1000 : 0;
}

/** The config's publisher settings, with every owner ever published at (so a retirement finds them all). */
function publishedWith(prev: PublishedWith | undefined, now: PublishedWith | undefined): PublishedWith | undefined {
  if (!now) return prev;
  const owners = [...new Set([...(prev?.owners ?? []), ...now.owners])];
  return { ...now, owners };
}

function sameTtlSeen(a: TtlSeen | undefined, b: TtlSeen | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

// --------------------------------------------------------------------------
// The decision

/** The one next step for this key type. */
export function decide(j: DaneJournal | undefined, obs: DaneObservations, policy: DecidePolicy, now: Date): DaneAction {
  if (!j) return { kind: 'adopt' };
  if (isRetirePhase(j.phase)) return { kind: 'wait', why: 'mxcert dane retire is removing the records (src/dane/retire.ts moves it)' };
  // Remember the largest TTL served before anything else: the next action
  // may be an update that lowers it (the TTL rewrite), and a crash after it
  // must not forget what caches may still hold.
  const seen = rememberTtl(j.ttlSeen, obs.dns, now);
  if (!sameTtlSeen(seen, j.ttlSeen)) return { kind: 'save', journal: { ...j, ttlSeen: seen } };
  const pw = publishedWith(j.publishedWith, policy.publishedWith);
  if (pw && JSON.stringify(pw) !== JSON.stringify(j.publishedWith)) return { kind: 'save', journal: { ...j, publishedWith: pw } };
  switch (j.phase) {
    case 'PUBLISH':
      return decidePublish(j, obs, policy, now);
    case 'AWAIT_VISIBLE':
      return decideAwaitVisible(j, obs, policy, now);
    case 'DEPLOY_CURRENT':
      return decideDeployCurrent(j, obs, now);
    case 'STEADY':
      return decideSteady(j, obs, policy, now);
    case 'SWAP':
      return decideSwap(j, obs, policy, now);
    case 'RETIRE_OLD':
      return decideRetireOld(j, obs, policy, now);
  }
  return { kind: 'wait', why: `unknown phase ${String(j.phase)}` };
}

/** Publish {current, next} (and, on adoption, the siblings' records), or deploy first if DANE is not in force yet. */
function decidePublish(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date): DaneAction {
  const empty = noRecordsAnywhere(obs.dns);
  const deployedIsCurrent = obs.deployedTlsa === j.current.tlsa;
  if (!deployedIsCurrent && empty && !j.publishedAt) {
    // No TLSA anywhere, and never any since adoption: DANE is not in force
    // yet, so serve the current key first and publish after (publishing
    // first would make senders reject whatever is served now). Once records
    // have been published, an empty RRset means someone removed them: caches
    // may still hold them, so the key is published first and held.
    return { kind: 'deploy', key: 'current', liveCheck: false, say: 'deployed a certificate for the current key (serial %s) before publishing' };
  }
  // Adoption of a certificate with several key types: the first record
  // published puts DANE in force for every key served at these endpoints,
  // so all key types must serve their current key by then, and all their
  // records go out in the same update.
  const siblingRecords: TlsaRecord[] = [];
  if (empty && obs.siblings) {
    const notReady = obs.siblings.filter((s) => !s.journal || s.deployedTlsa !== s.journal.current.tlsa).map((s) => s.keyType);
    if (notReady.length) return { kind: 'wait', why: `${ADOPTION_WAIT} publishing once ${notReady.join(', ')} also serves its current key` };
    for (const s of obs.siblings) siblingRecords.push(rec(s.journal!.current.tlsa), rec(s.journal!.next.tlsa));
  }
  const before = verdictAt(obs.dns, { present: [], absent: [] });
  const then: DaneJournal = {
    ...j,
    phase: 'AWAIT_VISIBLE',
    publishedAt: j.publishedAt ?? now.toISOString(),
    awaiting: { present: [j.current.tlsa, j.next.tlsa], absent: [], then: deployedIsCurrent ? 'STEADY' : 'DEPLOY_CURRENT', ...ttlField(before.maxTtl) },
    ...unsignedField(j, before, policy),
  };
  return { kind: 'publish', add: [rec(j.current.tlsa), rec(j.next.tlsa), ...siblingRecords, ...policy.extras], remove: [], then, say: 'published 3 1 1 current + next' };
}

function ttlField(ttl: number | undefined): { ttlBefore?: number } {
  return ttl === undefined ? {} : { ttlBefore: ttl };
}

/** strictSignatures: the hold also covers RRSIGs over an RRset without the new record. */
function unsignedField(j: DaneJournal, before: VisibilityVerdict, policy: DecidePolicy): { unsignedNextUntil?: string } {
  if (policy.strictSignatures && before.maxRrsigExpiration) return { unsignedNextUntil: before.maxRrsigExpiration.toISOString() };
  return j.unsignedNextUntil ? { unsignedNextUntil: j.unsignedNextUntil } : {};
}

/** The hold forgets t_visible when a record of ours is missing somewhere: it starts over once it is back. */
function withoutHold(j: DaneJournal): DaneJournal {
  return { ...j, nextVisibleAt: undefined, holdUntil: undefined, holdTtl: undefined };
}

/**
 * The journal once {current, next} are seen everywhere. t_visible is when
 * the last server to agree was seen agreeing (kept if already known). The
 * hold covers 2 × the largest TTL a cache may hold an RRset without them
 * for: the TTL before the update, after it, and any remembered one.
 */
function withHold(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date, ttlAfter: number | undefined): DaneJournal {
  const visibleAt = j.nextVisibleAt ?? (latestAnswer(obs.dns) ?? now).toISOString();
  const ttl = Math.max(j.awaiting?.ttlBefore ?? 0, ttlAfter ?? 0, policy.ttl, j.ttlSeen?.live ?? 0, j.holdTtl ?? 0);
  const held = holdUntil(new Date(visibleAt), ttl, policy.minHoldMs, j.unsignedNextUntil ? new Date(j.unsignedNextUntil) : undefined).getTime();
  // A larger TTL served until a moment ago: caches may hold that RRset for 2 × it from then.
  const until = Math.max(held, goneUntil(j.ttlSeen));
  return { ...j, nextVisibleAt: visibleAt, holdUntil: new Date(until).toISOString(), holdTtl: Math.max(ttl, j.ttlSeen?.gone?.ttl ?? 0) };
}

function decideAwaitVisible(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date): DaneAction {
  const want = j.awaiting ?? { present: [j.current.tlsa, j.next.tlsa], absent: [], then: 'STEADY' as const };
  const v = verdictAt(obs.dns, want);
  if (!v.allAgree) {
    // One server fell back: t_visible starts over.
    if (j.nextVisibleAt && !servedEverywhere(obs.dns, [j.current.tlsa, j.next.tlsa])) return { kind: 'save', journal: withoutHold(j) };
    return { kind: 'wait', why: `not yet visible everywhere: ${v.lagging.join('; ')}`, poll: true };
  }
  const held = withHold(j, obs, policy, now, v.maxTtl);
  const then: DaneJournal = { ...held, phase: want.then === 'DEPLOY_CURRENT' ? 'DEPLOY_CURRENT' : 'STEADY', awaiting: undefined };
  if (j.old) {
    // RETIRE_OLD's update is visible everywhere: the old key is gone from DNS.
    return { kind: 'delete-key', key: j.old, then: { ...then, old: undefined }, say: [`old key ${j.old.tlsa.slice(0, 16)}… retired and deleted`, 'visible on every authoritative server'] };
  }
  return { kind: 'save', journal: then, say: 'visible on every authoritative server' };
}

/** Adoption over a non-empty RRset: the current key was published first; serve it once the hold has passed. */
function decideDeployCurrent(j: DaneJournal, obs: DaneObservations, now: Date): DaneAction {
  if (!servedEverywhere(obs.dns, [j.current.tlsa, j.next.tlsa])) {
    return { kind: 'save', journal: { ...withoutHold(j), phase: 'PUBLISH' }, warn: 'our records are not served everywhere; publishing again' };
  }
  if (!j.holdUntil || now.getTime() < new Date(j.holdUntil).getTime()) {
    return { kind: 'wait', why: `holding until ${j.holdUntil ?? '(hold not started)'} before serving the current key`, ...(j.holdUntil ? { until: new Date(j.holdUntil) } : {}) };
  }
  return { kind: 'deploy', key: 'current', liveCheck: true, then: { ...j, phase: 'STEADY' }, say: 'deployed the current key after the hold (serial %s)' };
}

function decideSteady(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date): DaneAction {
  if (!servedEverywhere(obs.dns, [j.current.tlsa, j.next.tlsa])) {
    // A record of ours is missing somewhere (removed by hand, a zone
    // reload, a lagging server): publish again and wait; the hold starts
    // over once it is back.
    return { kind: 'save', journal: { ...withoutHold(j), phase: 'PUBLISH' }, warn: 'our records are not served everywhere; publishing again' };
  }
  // Served everywhere but no t_visible (a hold reset that never went through
  // AWAIT_VISIBLE, say the records came back by themselves): start it now.
  if (!j.nextVisibleAt) return { kind: 'save', journal: withHold(j, obs, policy, now, verdictAt(obs.dns, { present: [], absent: [] }).maxTtl) };
  if (rotationDue(j, now, policy.keyLifetimeMs)) {
    // A swap that just failed (say the reload hook is broken) must not
    // order a certificate on every pass: it honours the failure backoff.
    const backoff = obs.backoffUntil;
    if (backoff && backoff.getTime() > now.getTime() && !j.rollover?.emergency) {
      return { kind: 'wait', why: `rotation due, backing off after a failure until ${backoff.toISOString()}`, until: backoff };
    }
    const ok = swapAllowed(j, obs, policy, now);
    if (!ok.ok) return { kind: 'wait', why: `rotation due, ${ok.why}`, ...(ok.until ? { until: ok.until } : {}) };
    return { kind: 'save', journal: { ...j, phase: 'SWAP' } };
  }
  if (obs.deployedTlsa !== j.current.tlsa || obs.renewalDue) {
    // Same-key renewal (or the files were replaced): the RRset does not change.
    return { kind: 'deploy', key: 'current', liveCheck: true, say: 'renewed with the current key (serial %s)' };
  }
  return { kind: 'idle', until: new Date(Math.max(rotationAt(j, policy.keyLifetimeMs), j.holdUntil ? new Date(j.holdUntil).getTime() : 0)) };
}

/** Visibility, the hold (unless an emergency) and the validating resolver. */
function swapAllowed(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date): { ok: boolean; why: string; until?: Date } {
  const ok = maySwap(j, now, servedEverywhere(obs.dns, [j.current.tlsa, j.next.tlsa]));
  if (!ok.ok) return { ...ok, ...(j.holdUntil && /^holding/.test(ok.why) ? { until: new Date(j.holdUntil) } : {}) };
  if (policy.resolver) return obs.resolver ?? { ok: false, why: 'the validating resolver was not asked' };
  return ok;
}

/**
 * Deploy the next key. Entered from STEADY after the checks, or resumed from
 * the journal after a crash: DNS may have changed in between (a record
 * removed, a server fallen back), so every check is made again first.
 */
function decideSwap(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date): DaneAction {
  const ok = swapAllowed(j, obs, policy, now);
  if (!ok.ok) return { kind: 'save', journal: { ...j, phase: 'STEADY' }, warn: `not swapping now (${ok.why}); back to STEADY` };
  return { kind: 'deploy', key: 'next', liveCheck: true, say: 'swapped to the next key (serial %s); new next key generated', ...(j.rollover?.emergency ? { emergency: true } : {}) };
}

/** The journal after a verified swap: the next key is current, `fresh` is the new next. */
export function afterSwap(j: DaneJournal, fresh: KeyRef, now: Date, policy: DecidePolicy): DaneJournal {
  return {
    ...j,
    phase: 'RETIRE_OLD',
    old: j.current,
    current: j.next,
    next: fresh,
    nextVisibleAt: undefined,
    holdUntil: undefined,
    holdTtl: undefined,
    unsignedNextUntil: undefined,
    rollover: undefined,
    lastError: undefined,
    swappedAt: now.toISOString(),
    // At least the larger TTL the hold was computed from (RFC 7671 §8.1: the old record goes once the new key works everywhere).
    retireAfter: new Date(now.getTime() + Math.max(j.holdTtl ?? 0, policy.ttl) * 1000).toISOString(),
  };
}

/** The journal after a failed swap: the old files are back (the orchestrator rolled them back). */
export function afterSwapFailed(j: DaneJournal, error: string): DaneJournal {
  return { ...j, phase: 'STEADY', lastError: error };
}

/** The journal after a publish: the serial at which the primary serves it. */
export function afterPublish(then: DaneJournal, serial: number | undefined): DaneJournal {
  if (serial === undefined || !then.awaiting) return then;
  return { ...then, awaiting: { ...then.awaiting, minSerial: serial } };
}

/** At least one TTL after the swap (RFC 7671 §8.1: remove the old record once the new chain works), in one update: −H(old) +H(new next). */
function decideRetireOld(j: DaneJournal, obs: DaneObservations, policy: DecidePolicy, now: Date): DaneAction {
  const after = new Date(j.retireAfter ?? new Date(new Date(j.swappedAt ?? now).getTime() + policy.ttl * 1000).toISOString());
  if (now.getTime() < after.getTime()) return { kind: 'wait', why: `retiring the old record after ${after.toISOString()}`, until: after };
  const before = verdictAt(obs.dns, { present: [], absent: [] });
  const then: DaneJournal = {
    ...j,
    phase: 'AWAIT_VISIBLE',
    awaiting: { present: [j.current.tlsa, j.next.tlsa], absent: j.old ? [j.old.tlsa] : [], then: 'STEADY', ...ttlField(before.maxTtl) },
    ...unsignedField(j, before, policy),
  };
  return {
    kind: 'publish',
    add: [rec(j.current.tlsa), rec(j.next.tlsa), ...policy.extras],
    remove: j.old ? [rec(j.old.tlsa)] : [],
    then,
    say: 'retired the old record and published the new next key',
  };
}
