// Turning DANE off (docs/architecture.md, "Turning DANE off"): remove every
// record of mxcert's for a certificate, wait until no authoritative server
// serves them and caches have had time to forget them, then free the keys.
// Until then the keys stay: a renewal keeps serving the current one, because
// mxcert never serves a key that a published RRset of its own lacks.
//
// Certificate-level (all key types at once, like adoption): withdrawing one
// key type's records while another's stay would leave an RRset that lacks
// the first key. The state lives in every key type's journal (phases
// WITHDRAW, AWAIT_GONE, RELEASE); after a crash between two journal writes
// the least advanced one wins, and every step is idempotent.
import type { Clock } from '../clock.js';
import { DaneRetireRefusedError } from '../errors.js';
import type { Logger } from '../log.js';
import { holdUntil, latestAnswer, rememberTtl, verdictAt, type OwnerObservation } from './decide.js';
import type { DaneJournal, DaneStorage, RetireState, TtlSeen } from './journal.js';
import { RETIRE_PHASES, type Phase } from './phases.js';
import type { TlsaChange } from './publish-common.js';
import { formatTlsa, shortTlsa, tlsaMatchesChain, uniqueTlsa, usableForSmtp, type TlsaRecord } from './tlsa.js';

type RetirePhase = 'WITHDRAW' | 'AWAIT_GONE' | 'RELEASE';

/** The certificate's retirement, as the key types' journals tell it. */
export interface RetireView {
  phase: RetirePhase;
  retire: RetireState;
  ttlSeen?: TtlSeen;
}

export interface RetireObservations {
  dns: OwnerObservation[];
  /** The chain each key type serves (leaf first), to judge what would be left at the owners. */
  chains: Array<{ keyType: string; chainDer: Buffer[] }>;
}

export interface RetirePolicy {
  ttl: number;
  minHoldMs: number;
}

export type RetireAction =
  | { kind: 'publish'; remove: TlsaRecord[]; then: RetireView; say: string }
  | { kind: 'save'; view: RetireView; say?: string; warn?: string }
  /** Removing the records would break delivery: nothing is done. */
  | { kind: 'refuse'; why: string }
  | { kind: 'wait'; why: string; until?: Date; poll?: boolean }
  | { kind: 'free'; say: string };

const rec = (hex: string): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: hex });

/** Pure: the records and owners a retirement starting now covers: every key of every key type. */
export function retireStart(journals: DaneJournal[], owners: string[], now: Date): RetireState {
  const records = [...new Set(journals.flatMap((j) => [j.current.tlsa, j.next.tlsa, ...(j.old ? [j.old.tlsa] : [])]))];
  const known = journals.flatMap((j) => [...(j.publishedWith?.owners ?? []), ...(j.retire?.owners ?? [])]);
  return { startedAt: now.toISOString(), owners: [...new Set([...known, ...owners])], records };
}

/** Pure: the least advanced phase wins (a crash between two journal writes), with every key's records. */
export function retireView(journals: DaneJournal[]): RetireView | undefined {
  const retiring = journals.filter((j) => j.retire && RETIRE_PHASES.includes(j.phase));
  if (!retiring.length) return undefined;
  const order = (p: Phase) => RETIRE_PHASES.indexOf(p);
  const lead = [...retiring].sort((a, b) => order(a.phase) - order(b.phase))[0]!;
  const retire: RetireState = {
    ...lead.retire!,
    records: [...new Set(retiring.flatMap((j) => j.retire!.records))],
    owners: [...new Set(retiring.flatMap((j) => j.retire!.owners))],
  };
  const ttlSeen = lead.ttlSeen;
  return { phase: lead.phase as RetirePhase, retire, ...(ttlSeen ? { ttlSeen } : {}) };
}

/**
 * What would be left at each owner once mxcert's records go, when it would
 * break delivery: usable records (DANE-TA or DANE-EE) none of which matches
 * a chain mxcert serves. An RRset left empty, or with only unusable records,
 * puts DANE out of force, which never breaks delivery.
 */
export function leftUncovered(dns: OwnerObservation[], ours: string[], chains: RetireObservations['chains']): string[] {
  const problems: string[] = [];
  for (const o of dns) {
    const left = uniqueTlsa(o.servers.filter((s) => s.ok).flatMap((s) => s.records)).filter((r) => !(r.usage === 3 && r.selector === 1 && r.matchingType === 1 && ours.includes(r.data)));
    const usable = left.filter(usableForSmtp);
    if (!usable.length) continue;
    const bad = chains.length ? chains.filter((c) => !usable.some((r) => tlsaMatchesChain(r, c.chainDer))).map((c) => c.keyType) : ['(no certificate of mxcert’s deployed)'];
    if (bad.length) {
      problems.push(`${o.owner}: ${usable.map(shortTlsa).join(', ')} would remain, and none matches the certificate served for ${bad.join(', ')}`);
    }
  }
  return problems;
}

/** The one next step of a retirement. */
export function decideRetire(view: RetireView, obs: RetireObservations, policy: RetirePolicy, now: Date): RetireAction {
  const ours = view.retire.records;
  const seen = rememberTtl(view.ttlSeen, obs.dns, now);
  if (JSON.stringify(seen ?? null) !== JSON.stringify(view.ttlSeen ?? null)) return { kind: 'save', view: { ...view, ...(seen ? { ttlSeen: seen } : { ttlSeen: undefined }) } };
  switch (view.phase) {
    case 'WITHDRAW': {
      const problems = leftUncovered(obs.dns, ours, obs.chains);
      if (problems.length) {
        return { kind: 'refuse', why: `removing mxcert's TLSA records would break delivery: ${problems.join('; ')}. DANE senders would refuse mail. Remove those records too, or publish one that matches the served certificate, then run this again` };
      }
      const before = verdictAt(obs.dns, { present: [], absent: [] });
      const ttlBefore = Math.max(before.maxTtl ?? 0, view.retire.ttlBefore ?? 0) || undefined;
      const then: RetireView = { ...view, phase: 'AWAIT_GONE', retire: { ...view.retire, ...(ttlBefore ? { ttlBefore } : {}) } };
      return { kind: 'publish', remove: ours.map(rec), then, say: `withdrew mxcert's TLSA records (${ours.length}) from ${view.retire.owners.join(', ')}` };
    }
    case 'AWAIT_GONE':
      return decideAwaitGone(view, obs, policy, now);
    case 'RELEASE':
      return decideRelease(view, obs, now);
  }
}

function decideAwaitGone(view: RetireView, obs: RetireObservations, policy: RetirePolicy, now: Date): RetireAction {
  const v = verdictAt(obs.dns, { present: [], absent: view.retire.records, ...(view.retire.minSerial !== undefined ? { minSerial: view.retire.minSerial } : {}) });
  if (!v.allAgree) return { kind: 'wait', why: `waiting for every authoritative server to drop mxcert's records: ${v.lagging.join('; ')}`, poll: true };
  // Caches may hold the RRset with our records for its TTL from the last
  // moment a server served it: the same rule as the hold.
  const goneAt = latestAnswer(obs.dns) ?? now;
  const ttl = Math.max(view.retire.ttlBefore ?? 0, policy.ttl, view.ttlSeen?.live ?? 0);
  let releaseAt = holdUntil(goneAt, ttl, policy.minHoldMs).getTime();
  if (view.ttlSeen?.gone) releaseAt = Math.max(releaseAt, new Date(view.ttlSeen.gone.until).getTime() + 2 * view.ttlSeen.gone.ttl * 1000);
  const retire = { ...view.retire, goneAt: goneAt.toISOString(), releaseAt: new Date(releaseAt).toISOString() };
  return { kind: 'save', view: { ...view, phase: 'RELEASE', retire }, say: `no authoritative server serves them any more; the keys are kept until ${retire.releaseAt} (2 × TTL, for resolvers' caches)` };
}

function decideRelease(view: RetireView, obs: RetireObservations, now: Date): RetireAction {
  const back = obs.dns.flatMap((o) => o.servers.filter((s) => s.ok && s.records.some((r) => r.usage === 3 && r.selector === 1 && r.matchingType === 1 && view.retire.records.includes(r.data))).map((s) => `${o.owner} at ${s.server.host}:${s.server.port}`));
  if (back.length) {
    const { goneAt: _g, releaseAt: _r, ...rest } = view.retire;
    return { kind: 'save', view: { ...view, phase: 'WITHDRAW', retire: rest }, warn: `mxcert's records are served again (${back.join(', ')}); removing them again` };
  }
  const at = new Date(view.retire.releaseAt ?? now);
  if (now.getTime() < at.getTime()) return { kind: 'wait', why: `keeping the key until ${at.toISOString()}: resolvers may still hold mxcert's records until then`, until: at };
  return { kind: 'free', say: 'retired: mxcert’s records are gone everywhere and caches have expired; keys freed' };
}

// --------------------------------------------------------------------------
// The executor

export interface RetireWorld {
  /** Every key type with DANE state. */
  storages: DaneStorage[];
  clock: Clock;
  logger: Logger;
  observe(owners: string[]): Promise<RetireObservations>;
  publish(owner: string, change: TlsaChange, ttl: number): Promise<{ serial?: number }>;
}

export interface RetireOutcome {
  /** DONE: the journals and keys are gone. */
  phase: RetirePhase | 'DONE';
  acted: string[];
  waiting?: string;
  releaseAt?: string;
  changed: boolean;
}

/**
 * Moves a retirement on until it has to wait longer than `budgetMs` (a
 * pass: 15 s of polling; `mxcert dane retire`: longer, so a short TTL
 * finishes in one command). Throws MxcertError('dane-retire') when
 * removing the records would break delivery.
 */
export async function runRetire(world: RetireWorld, policy: RetirePolicy, budgetMs: number): Promise<RetireOutcome> {
  const { clock } = world;
  const out: RetireOutcome = { phase: 'WITHDRAW', acted: [], changed: false };
  const deadline = clock.now().getTime() + budgetMs;
  let delay = 50;
  for (let steps = 0; steps < 200; steps++) {
    const held = await Promise.all(world.storages.map(async (storage) => ({ storage, journal: await storage.readJournal() })));
    const journals = held.filter((h) => h.journal).map((h) => h.journal!);
    const view = retireView(journals);
    if (!view) return { ...out, phase: 'DONE' };
    out.phase = view.phase;
    if (view.retire.releaseAt) out.releaseAt = view.retire.releaseAt;
    const a = decideRetire(view, await world.observe(view.retire.owners), policy, clock.now());
    if (a.kind === 'refuse') throw new DaneRetireRefusedError(a.why);
    if (a.kind === 'wait') {
      const left = deadline - clock.now().getTime();
      const until = a.until ? a.until.getTime() - clock.now().getTime() + 20 : delay;
      if ((a.poll || a.until) && left > 0 && until <= left) {
        await clock.sleep(Math.max(0, a.poll ? delay : until));
        delay = Math.min(delay * 2, 1000);
        continue;
      }
      return { ...out, waiting: a.why };
    }
    out.changed = true;
    if (a.kind === 'free') {
      for (const s of world.storages) await s.removeAll();
      out.acted.push(a.say);
      world.logger.info('DANE: retired; keys and journal removed');
      return { ...out, phase: 'DONE' };
    }
    await carryOutRetire(world, policy, held, a, out);
  }
  return out;
}

async function carryOutRetire(world: RetireWorld, policy: RetirePolicy, held: Held[], a: Extract<RetireAction, { kind: 'publish' | 'save' }>, out: RetireOutcome): Promise<void> {
  let view: RetireView;
  if (a.kind === 'publish') {
    let serial: number | undefined;
    for (const owner of a.then.retire.owners) {
      const r = await world.publish(owner, { add: [], remove: a.remove }, policy.ttl);
      if (r.serial !== undefined) serial = r.serial;
    }
    view = serial === undefined ? a.then : { ...a.then, retire: { ...a.then.retire, minSerial: serial } };
    world.logger.info({ owners: a.then.retire.owners, records: a.remove.map(formatTlsa), serial }, `DANE: ${a.say}`);
    out.acted.push(a.say);
  } else {
    view = a.view;
    if (a.warn) world.logger.warn(`DANE: ${a.warn}`);
    if (a.say) out.acted.push(a.say);
  }
  await writeRetire(world, held, view);
}

type Held = { storage: DaneStorage; journal: DaneJournal | undefined };

/** The same phase, retirement and TTL memory in every key type's journal. */
async function writeRetire(world: RetireWorld, held: Held[], view: RetireView): Promise<void> {
  const now = world.clock.now();
  for (const { storage, journal } of held) {
    if (!journal) continue;
    await storage.writeJournal({ ...journal, phase: view.phase, retire: view.retire, ...(view.ttlSeen ? { ttlSeen: view.ttlSeen } : { ttlSeen: undefined }) }, now);
  }
}

// --------------------------------------------------------------------------
// While the records may still be published

/**
 * Pure: the key a renewal must keep while mxcert's records may still be
 * published (DANE off in the config, or a retirement under way): the one
 * served if it is one of the journal's published keys (a swap that was
 * interrupted after the reload serves the next key, whose record is
 * published and held), else the current key.
 */
export function keptKey(j: DaneJournal, deployedTlsa: string | undefined): DaneJournal['current'] {
  return deployedTlsa === j.next.tlsa ? j.next : j.current;
}

/** What a renewal says when it keeps the key because records may still be published. */
export function keptKeyNotice(name: string, j: DaneJournal, daneEnabled: boolean): string {
  const owners = j.retire?.owners ?? j.publishedWith?.owners ?? [];
  const at = owners.length ? owners.join(', ') : 'its TLSA owner names';
  if (!RETIRE_PHASES.includes(j.phase)) {
    return `DANE is off in the config but mxcert's TLSA records for ${name} are still published at ${at}; keeping the current key until you run \`mxcert dane retire --cert ${name}\``;
  }
  const until = j.retire?.releaseAt ? ` (${j.retire.releaseAt})` : '';
  const then = daneEnabled ? '; DANE starts again after that' : '';
  return `mxcert dane retire is removing mxcert's TLSA records for ${name} at ${at} (${j.phase}); keeping the current key until they are gone everywhere and caches have expired${until}${then}`;
}
