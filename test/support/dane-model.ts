// A small model of the world the DANE machine lives in (docs/architecture.md,
// "DANE rollover"): a primary and secondaries that follow it with a lag,
// fall back to old zone versions, lose records to an operator's hand, gain
// foreign records with other TTLs; an MTA that serves what was last
// reloaded; a process that is killed between any two effects and restarts
// from the journal it persisted. `decide` and the executor are the real
// ones; only the world is modelled. At every change of the served key the
// world checks:
//   - the invariant: the key served is in every non-empty RRset any
//     authoritative server returned in the preceding 2 × TTL (that RRset's TTL);
//   - the key is published on every server (or DANE is not in force at all).
import { runDane, type DaneWorld } from '../../src/dane/execute.js';
import type { DecidePolicy } from '../../src/dane/decide.js';
import type { DaneJournal, DaneStorage } from '../../src/dane/journal.js';
import type { Observation } from '../../src/dane/visibility.js';
import type { TlsaChange } from '../../src/dane/publish-common.js';
import { silentLogger } from '../../src/log.js';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const OWNER = '_25._tcp.mx1.example.test.';
const PLACEHOLDER = 'placeholder';

class Crash extends Error {}

interface Version {
  serial: number;
  records: string[];
  ttl: number;
}
interface Server {
  name: string;
  version: number;
  /**
   * Fallen back: stays on its old version until a pass that saw it has
   * completed without being killed, then catches up after `lag`. (A state
   * only ever seen by a pass that was killed before it wrote anything is
   * one no design could remember.)
   */
  stuck: boolean;
  seen?: boolean;
  lag: number;
  syncAt?: number;
}
interface Interval {
  server: string;
  from: number;
  to: number;
  records: string[];
  ttl: number;
}

export type WorldEvent =
  | { kind: 'wait'; ms: number }
  | { kind: 'pass'; renewalDue: boolean; crashAt?: number; crashAfter: boolean; failDeploy: boolean }
  | { kind: 'rollover' }
  | { kind: 'foreign-add'; ttlUp: number }
  | { kind: 'hand-remove'; what: 'current' | 'next' | 'foreign' | 'all' }
  | { kind: 'fallback'; server: number; back: number };

export interface ModelParams {
  ttl: number;
  minHoldMs: number;
  keyLifetimeMs: number;
  lags: number[];
  /** The foreign record present before adoption, with its TTL (none: an empty RRset). */
  foreignTtl?: number;
}

/** The world: DNS servers, the MTA, the disk. Time only moves through `advance`. */
class World {
  now = T0;
  versions: Version[];
  servers: Server[];
  closed: Interval[] = [];
  open = new Map<string, Omit<Interval, 'to'>>();
  served = PLACEHOLDER;
  files = PLACEHOLDER;
  recorded = false;
  journal?: string;
  keys = new Map<string, string>();
  minted = new Set<string>();
  violations: string[] = [];
  effects = 0;
  crashAt?: number;
  crashAfter = false;
  foreignCount = 0;
  /**
   * An edit by hand (or a fallback) that no completed pass has looked at
   * yet: further edits wait for one. A state an operator creates and undoes
   * before mxcert looks is beyond what any agent that samples can see.
   */
  unseenEdit = false;
  stats = { swaps: 0, passes: 0, crashes: 0, deploys: 0 };

  constructor(readonly p: ModelParams) {
    const records = p.foreignTtl !== undefined ? [this.foreign()] : [];
    this.versions = [{ serial: 1, records, ttl: p.foreignTtl ?? p.ttl }];
    this.servers = [{ name: 'primary', version: 0, stuck: false, lag: 0 }, ...p.lags.map((lag, i) => ({ name: `secondary${i + 1}`, version: 0, stuck: false, lag }))];
    for (const s of this.servers) this.openInterval(s);
  }

  foreign(): string {
    return `f${++this.foreignCount}`.padEnd(64, 'f');
  }
  latest(): number {
    return this.versions.length - 1;
  }

  private openInterval(s: Server): void {
    const v = this.versions[s.version]!;
    this.open.set(s.name, { server: s.name, from: this.now, records: [...v.records], ttl: v.ttl });
  }
  private moveServer(s: Server, version: number): void {
    if (s.version === version) return;
    const cur = this.open.get(s.name)!;
    this.closed.push({ ...cur, to: this.now });
    s.version = version;
    this.openInterval(s);
  }

  /** Time passes; secondaries catch up when their transfer is due. */
  advance(to: number): void {
    for (;;) {
      const due = this.servers.filter((s) => s.syncAt !== undefined && s.syncAt <= to).sort((a, b) => a.syncAt! - b.syncAt!)[0];
      if (!due) break;
      this.now = Math.max(this.now, due.syncAt!);
      due.syncAt = undefined;
      // A transfer brings the secondary to the primary's version at that moment (IXFR applies every diff at once).
      this.moveServer(due, this.latest());
    }
    this.now = Math.max(this.now, to);
  }

  /** A new zone version on the primary; secondaries that follow it schedule their transfer. */
  commit(records: string[], ttl: number): number {
    const v = { serial: this.versions.at(-1)!.serial + 1, records, ttl };
    this.versions.push(v);
    this.moveServer(this.servers[0]!, this.latest());
    for (const s of this.servers.slice(1)) if (!s.stuck && s.syncAt === undefined) s.syncAt = this.now + s.lag;
    return v.serial;
  }

  effect<T>(fn: () => T): T {
    const i = this.effects++;
    if (i === this.crashAt && !this.crashAfter) throw new Crash(`killed before effect ${i}`);
    const r = fn();
    if (i === this.crashAt) throw new Crash(`killed after effect ${i}`);
    return r;
  }

  observation(s: Server): Observation {
    const v = this.versions[s.version]!;
    if (s.stuck) s.seen = true;
    return {
      server: { host: s.name, port: 53 },
      ok: true,
      authoritative: true,
      serial: v.serial,
      records: v.records.map((data) => ({ usage: 3, selector: 1, matchingType: 1, data })),
      ...(v.records.length ? { ttl: v.ttl } : {}),
      at: new Date(this.now),
      rcode: 'NOERROR',
    };
  }

  /** The MTA reloads: check the served key against everything the servers returned. */
  serve(key: string, why: string): void {
    if (key === this.served) return;
    this.served = key;
    if (!this.minted.has(key)) return;
    const current = [...this.open.values()];
    const allEmpty = current.every((i) => i.records.length === 0);
    if (!allEmpty) {
      for (const i of current) if (!i.records.includes(key)) this.violations.push(`${why}: at ${this.now - T0} ms served ${key.slice(0, 6)} which ${i.server} does not publish`);
    }
    for (const i of [...this.closed, ...current.map((c) => ({ ...c, to: Infinity }))]) {
      if (i.records.length === 0 || i.records.includes(key) || i.from > this.now) continue;
      if (this.now < i.to + 2 * i.ttl * 1000) {
        this.violations.push(
          `${why}: at ${this.now - T0} ms served ${key.slice(0, 6)}, but ${i.server} returned [${i.records.map((r) => r.slice(0, 6)).join(' ')}] (TTL ${i.ttl}) until ${i.to - T0} ms`,
        );
      }
    }
  }

  handEvent(e: Extract<WorldEvent, { kind: 'foreign-add' | 'hand-remove' }>): void {
    if (this.unseenEdit) return;
    this.unseenEdit = true;
    const v = this.versions.at(-1)!;
    const j = this.journal ? (JSON.parse(this.journal) as DaneJournal) : undefined;
    if (e.kind === 'foreign-add') {
      // BIND and Knot give the whole RRset the TTL of the record just added.
      this.commit([...v.records, this.foreign()], v.records.length ? v.ttl + e.ttlUp : this.p.ttl + e.ttlUp);
      return;
    }
    const drop =
      e.what === 'all' ? v.records : e.what === 'foreign' ? v.records.filter((r) => r.startsWith('f')) : j ? [e.what === 'current' ? j.current.tlsa : j.next.tlsa] : [];
    const rest = v.records.filter((r) => !drop.includes(r));
    if (rest.length !== v.records.length) this.commit(rest, v.ttl);
  }

  fallback(e: Extract<WorldEvent, { kind: 'fallback' }>): void {
    const s = this.servers[1 + (e.server % (this.servers.length - 1))];
    if (!s || this.unseenEdit) return;
    this.unseenEdit = true;
    const to = Math.max(0, s.version - e.back);
    if (to === s.version) return;
    s.syncAt = undefined;
    s.stuck = true;
    this.moveServer(s, to);
  }
}

function dworld(w: World, policy: DecidePolicy, pass: Extract<WorldEvent, { kind: 'pass' }>): DaneWorld {
  let deployedThisPass = false;
  let n = 0;
  const storage: DaneStorage = {
    readJournal: async () => (w.journal ? (JSON.parse(w.journal) as DaneJournal) : undefined),
    writeJournal: async (j, now) =>
      w.effect(() => {
        w.journal = JSON.stringify({ ...j, updatedAt: now.toISOString() });
      }),
    createKey: async (now, pem) =>
      w.effect(() => {
        const tlsa = pem ? pem.slice(4) : `k${w.minted.size + 1}-${w.now}`.padEnd(64, '0');
        w.minted.add(tlsa);
        const id = `${tlsa.slice(0, 12)}-${++n}`;
        w.keys.set(id, tlsa);
        return { id, tlsa, createdAt: now.toISOString() };
      }),
    readKey: async (id) => {
      const k = w.keys.get(id);
      if (!k) throw new Error(`key ${id} is gone`);
      return `PEM:${k}`;
    },
    deleteKey: async (id) => w.effect(() => void w.keys.delete(id)),
    removeAll: async () => w.effect(() => void (w.journal = undefined)),
  };
  return {
    storage,
    clock: { now: () => new Date(w.now), sleep: async (ms) => w.advance(w.now + ms) },
    logger: silentLogger,
    owners: [OWNER],
    observe: async () => ({
      dns: [{ owner: OWNER, servers: w.servers.map((s) => w.observation(s)) }],
      renewalDue: pass.renewalDue && !deployedThisPass,
      ...(w.recorded ? { deployedTlsa: w.files } : {}),
    }),
    deployedKeyPem: async () => (w.recorded ? `PEM:${w.files}` : undefined),
    publish: async (_owner: string, c: TlsaChange, ttl: number) =>
      w.effect(() => {
        const v = w.versions.at(-1)!;
        const add = c.add.map((r) => r.data).filter((h) => !v.records.includes(h));
        const rest = v.records.filter((h) => !c.remove.some((r) => r.data === h));
        if (!add.length && rest.length === v.records.length) return { serial: v.serial };
        return { serial: w.commit([...rest, ...add], add.length ? ttl : v.ttl) };
      }),
    deploy: async (pem, live) => {
      const key = pem.slice(4);
      const prev = w.files;
      w.effect(() => void (w.files = key));
      w.effect(() => w.serve(key, live ? 'deploy with live check' : 'deploy'));
      w.stats.deploys++;
      const published = w.servers.every((s) => w.versions[s.version]!.records.includes(key));
      if (pass.failDeploy || (live && !published)) {
        w.files = prev;
        w.serve(prev, 'rollback');
        throw new Error(pass.failDeploy ? 'the reload hook failed' : 'live check: not published everywhere');
      }
      w.effect(() => void (w.recorded = true));
      deployedThisPass = true;
      if (live === (JSON.parse(w.journal!) as DaneJournal).next.tlsa) w.stats.swaps++;
      return { serial: `${w.stats.deploys}` };
    },
  };
}

async function runPass(w: World, policy: DecidePolicy, e: Extract<WorldEvent, { kind: 'pass' }>): Promise<void> {
  w.stats.passes++;
  w.effects = 0;
  w.crashAt = e.crashAt;
  w.crashAfter = e.crashAfter;
  let crashed = false;
  try {
    await runDane(dworld(w, policy, e), policy);
  } catch (err) {
    crashed = err instanceof Crash;
    if (crashed) w.stats.crashes++;
    else if (!/reload hook failed|live check/.test((err as Error).message)) throw err;
  } finally {
    w.crashAt = undefined;
  }
  if (!crashed) w.unseenEdit = false;
  for (const s of w.servers) {
    if (s.stuck && s.seen && !crashed) {
      s.stuck = false;
      s.syncAt = w.now + s.lag;
    }
    s.seen = false;
  }
}

export async function simulate(p: ModelParams, events: WorldEvent[], after?: (w: World, e: WorldEvent) => void): Promise<World> {
  const w = new World(p);
  const policy: DecidePolicy = { keyLifetimeMs: p.keyLifetimeMs, minHoldMs: p.minHoldMs, strictSignatures: false, ttl: p.ttl, resolver: false, extras: [] };
  // Passes a timer would run after the story: enough to finish what was started.
  const tail: WorldEvent[] = Array.from({ length: 6 }, () => [{ kind: 'wait' as const, ms: 4 * p.ttl * 1000 }, { kind: 'pass' as const, renewalDue: false, crashAfter: false, failDeploy: false }]).flat();
  for (const e of [...events, ...tail]) {
    switch (e.kind) {
      case 'wait':
        w.advance(w.now + e.ms);
        break;
      case 'pass':
        await runPass(w, policy, e);
        break;
      case 'rollover':
        if (w.journal) w.journal = JSON.stringify({ ...JSON.parse(w.journal), rollover: { requestedAt: new Date(w.now).toISOString(), emergency: false } });
        break;
      case 'foreign-add':
      case 'hand-remove':
        w.handEvent(e);
        break;
      case 'fallback':
        w.fallback(e);
        break;
    }
    after?.(w, e);
  }
  return w;
}
