// The DANE machine's hands (docs/architecture.md, "DANE rollover"): gather
// the observations, ask `decide` (src/dane/decide.ts) for one action, carry
// it out, persist the journal, and ask again, until the answer is to wait.
// Every action is idempotent and the journal is saved after each, so a
// crash at any point is followed by a pass that re-observes and carries on.
import type { Clock } from '../clock.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { afterPublish, afterSwap, afterSwapFailed, decide, needsResolver, type DaneAction, type DaneObservations, type DecidePolicy } from './decide.js';
import type { DaneJournal, DaneStorage } from './journal.js';
import type { Phase } from './phases.js';
import type { TlsaChange } from './publish-common.js';

/** Everything the executor does to the world, behind one small seam. */
export interface DaneWorld {
  storage: DaneStorage;
  clock: Clock;
  logger: Logger;
  /** Owner names the records are published at. */
  owners: string[];
  /** One round of observations (see DaneObservations). */
  observe(j: DaneJournal, withResolver: boolean): Promise<DaneObservations>;
  /** The key the MTA is given now, if mxcert deployed one (adoption makes it current). */
  deployedKeyPem(): Promise<string | undefined>;
  /** publisher.change: one owner, atomically. */
  publish(owner: string, change: TlsaChange, ttl: number): Promise<{ serial?: number }>;
  /**
   * Issue for `keyPem`, deploy, reload, verify; with `liveTlsa`, also check
   * every endpoint serves that key and every server publishes it. Throws on
   * failure, with the previous files back in place.
   */
  deploy(keyPem: string, liveTlsa: string | undefined): Promise<{ serial: string }>;
}

export interface DaneOutcome {
  phase: Phase;
  acted: string[];
  waiting?: string;
  /** A certificate was deployed in this pass. */
  renewed?: { serial: string };
  /** Anything changed (journal, keys, DNS, files): a pass that did this is not "nothing due". */
  changed: boolean;
}

/** How long one pass keeps looking for a change to reach every authoritative server. */
export const VISIBILITY_POLL_MS = 15_000;
/** Actions per pass other than looking again: a loop guard, far above what one pass needs. */
const MAX_STEPS = 24;

/** One pass of the machine for one key type. */
export async function runDane(world: DaneWorld, policy: DecidePolicy): Promise<DaneOutcome> {
  const { storage, clock } = world;
  const out: DaneOutcome = { phase: 'PUBLISH', acted: [], changed: false };
  let j = await storage.readJournal();
  let polled = 0;
  let delay = 50;
  for (let steps = 0; steps < MAX_STEPS; ) {
    const obs: DaneObservations = j ? await world.observe(j, needsResolver(j, policy, clock.now())) : { dns: [], renewalDue: false };
    const action = decide(j, obs, policy, clock.now());
    if (action.kind === 'wait' && action.poll && polled < VISIBILITY_POLL_MS) {
      // Secondaries usually catch up within a second of the NOTIFY: look
      // again a little (with a deadline) before leaving it to the next pass.
      await clock.sleep(delay);
      polled += delay;
      delay = Math.min(delay * 2, 1000);
      continue;
    }
    if (action.kind === 'wait' || action.kind === 'idle') {
      out.phase = j!.phase;
      if (action.kind === 'wait') out.waiting = action.why;
      return out;
    }
    steps++;
    j = await carryOut(world, policy, j, action, out);
    out.phase = j.phase;
    out.changed = true;
  }
  return out;
}

async function carryOut(world: DaneWorld, policy: DecidePolicy, j: DaneJournal | undefined, a: Exclude<DaneAction, { kind: 'wait' | 'idle' }>, out: DaneOutcome): Promise<DaneJournal> {
  const { storage, clock, logger: log } = world;
  const save = async (next: DaneJournal) => {
    await storage.writeJournal(next, clock.now());
    return next;
  };
  switch (a.kind) {
    case 'adopt':
      return adopt(world, out);
    case 'save':
      if (a.warn) log.warn({ phase: a.journal.phase }, `DANE: ${a.warn}`);
      if (a.say) out.acted.push(a.say);
      return save(a.journal);
    case 'publish': {
      let serial: number | undefined;
      for (const owner of world.owners) {
        const r = await world.publish(owner, { add: a.add, remove: a.remove }, policy.ttl);
        if (r.serial !== undefined) serial = r.serial;
      }
      out.acted.push(`${a.say} at ${world.owners.join(', ')}`);
      log.info({ owners: world.owners, serial }, `DANE: ${a.say}`);
      return save(afterPublish(a.then, serial));
    }
    case 'delete-key':
      await storage.deleteKey(a.key.id);
      out.acted.push(...a.say);
      log.info({ holdUntil: a.then.holdUntil }, 'DANE: records visible on every authoritative server');
      return save(a.then);
    case 'deploy':
      return a.key === 'next' ? swap(world, policy, j!, a, out) : deployCurrent(world, j!, a, out);
  }
}

async function adopt(world: DaneWorld, out: DaneOutcome): Promise<DaneJournal> {
  // The key about to be served becomes "current" (the deployed one if there
  // is one), and a next key is made right away, stored before it is published.
  const now = world.clock.now();
  const current = await world.storage.createKey(now, await world.deployedKeyPem());
  const next = await world.storage.createKey(now);
  const j: DaneJournal = { version: 2, phase: 'PUBLISH', current, next, updatedAt: now.toISOString() };
  await world.storage.writeJournal(j, now);
  out.acted.push('adopted: generated the next key');
  world.logger.info({ current: current.tlsa, next: next.tlsa }, 'DANE: adopting; keys ready');
  return j;
}

async function deployCurrent(world: DaneWorld, j: DaneJournal, a: Extract<DaneAction, { kind: 'deploy' }>, out: DaneOutcome): Promise<DaneJournal> {
  const r = await world.deploy(await world.storage.readKey(j.current.id), a.liveCheck ? j.current.tlsa : undefined);
  out.renewed = r;
  out.acted.push(a.say.replace('%s', r.serial));
  if (!a.then) return j;
  await world.storage.writeJournal(a.then, world.clock.now());
  return a.then;
}

/**
 * Issue → validate → deploy → reload → verify in one go; the orchestrator
 * rolls the files back on failure. Re-running it after a crash is safe once
 * decide's checks passed again: the old record is still published, and the
 * next one is visible and has been for the whole hold.
 */
async function swap(world: DaneWorld, policy: DecidePolicy, j: DaneJournal, a: Extract<DaneAction, { kind: 'deploy' }>, out: DaneOutcome): Promise<DaneJournal> {
  const { storage, clock, logger: log } = world;
  if (a.emergency) log.warn({ next: j.next.tlsa }, 'DANE: EMERGENCY rollover: swapping without waiting for the hold');
  let r: { serial: string };
  try {
    r = await world.deploy(await storage.readKey(j.next.id), j.next.tlsa);
  } catch (err) {
    await storage.writeJournal(afterSwapFailed(j, describeError(err)), clock.now());
    throw err;
  }
  const fresh = await storage.createKey(clock.now());
  const next = afterSwap(j, fresh, clock.now(), policy);
  await storage.writeJournal(next, clock.now());
  out.renewed = r;
  out.acted.push(a.say.replace('%s', r.serial));
  log.info({ current: next.current.tlsa, next: next.next.tlsa }, 'DANE: swapped and verified');
  return next;
}
