// A fleet in the modelled DANE world (test/support/dane-model.ts;
// docs/architecture.md, "DANE across a fleet"): 2 to 4 members share one
// lineage and one journal. The leader runs the real executor and `decide`
// with the members' reports; its "deploy" publishes the lineage and has its
// own member apply it. Every member applies the lineage after random delays
// through the real memberDeployVerdict, and reports what it verified. A
// member may be down for a while (its MTA keeps serving what it had); the
// leader may be killed between any two effects and another member take
// over, resuming from the shared journal.
//
// Checked on EVERY member:
//   - at every change of its served key: the key is in every non-empty
//     RRset any authoritative server returned in the preceding 2 × TTL, and
//     published on every server (World.checkServed);
//   - at every change mxcert makes to the zone: no key a member serves, and
//     that was valid until then, is left out (a retire must not pull the
//     record of a key still served; the first publish must not leave out a
//     key a member serves while DANE was not in force);
//   - liveness: a rollover requested at the end, with a member possibly
//     still down, waits for it; once every member is up and passes run, the
//     machine reaches STEADY with every member serving the current key and
//     no old key or requested rollover left.
import { runDane, type DaneWorld } from '../../src/dane/execute.js';
import type { DecidePolicy } from '../../src/dane/decide.js';
import { FLEET_WAIT, type MemberReport } from '../../src/dane/fleet.js';
import type { DaneJournal } from '../../src/dane/journal.js';
import type { TlsaChange } from '../../src/dane/publish-common.js';
import { memberDeployVerdict } from '../../src/fleet/member-decide.js';
import { silentLogger } from '../../src/log.js';
import { modelPublish, modelStorage, OWNER, PLACEHOLDER, runModelPass, T0, World, type ModelParams, type WorldEvent } from './dane-model.js';

export type FleetEvent =
  | WorldEvent
  /** Member `index` looks at the lineage (if its mxcert is up); `crash`: killed after its MTA reload, before it reports. */
  | { kind: 'member'; index: number; crash: boolean }
  /** Member `index`'s mxcert stops (its MTA keeps serving); at most one is down at a time. The leader's going down is a failover. */
  | { kind: 'down'; index: number }
  | { kind: 'up' }
  /** The leader's lease passes to another member, which resumes from the journal. */
  | { kind: 'failover' };

export interface FleetParams extends ModelParams {
  members: number;
}

interface Member {
  name: string;
  up: boolean;
  /** What its MTA serves. */
  served: string;
  /** What mxcert deployed into its files. */
  files?: { tlsa: string; serial: string };
  report?: MemberReport;
}

export class Fleet {
  w: World;
  members: Member[];
  leader = 0;
  lineage?: { tlsa: string; serial: string };
  serials = 0;
  liveness?: string;
  /** What the history exercised: retires held back by members, member deploys and refusals, members down, failovers. */
  fleetStats = { retireWaits: 0, publishWaits: 0, memberDeploys: 0, refusals: 0, downs: 0, failovers: 0 };

  constructor(readonly p: FleetParams) {
    this.w = new World(p);
    this.members = Array.from({ length: p.members }, (_, i) => ({ name: `mx-${String.fromCharCode(97 + i)}`, up: true, served: PLACEHOLDER }));
  }

  journal(): DaneJournal | undefined {
    return this.w.journal ? (JSON.parse(this.w.journal) as DaneJournal) : undefined;
  }

  private serve(m: Member, key: string, why: string): void {
    if (m.served === key) return;
    m.served = key;
    this.w.checkServed(key, `${m.name} ${why}`);
  }

  /**
   * The member's side: the real verdict on the lineage, then deploy (the
   * report withdrawn, the files and the reload, the live check, the report)
   * or re-verify and report. Steps are effects, so a leader killed inside
   * its own deploy stops between them. `fail`: the reload hook fails, the
   * files go back and the member reports what it serves again, with the
   * error. Returns whether the member serves the lineage's key.
   */
  apply(m: Member, crash: boolean, fail = false): boolean {
    const w = this.w;
    if (!m.up || !this.lineage) return false;
    const lineage = this.lineage;
    const v = memberDeployVerdict(
      {
        dane: true,
        ...(this.journal() ? { journal: this.journal()! } : {}),
        lineage,
        ...(m.files ? { deployed: m.files } : {}),
        ...(m.report ? { report: m.report } : {}),
        dns: [{ owner: OWNER, servers: w.servers.map((s) => w.observation(s, false)) }],
      },
      new Date(w.now),
    );
    if (v.kind === 'refuse') {
      this.fleetStats.refusals++;
      return false;
    }
    if (v.kind === 'skip') return true;
    const at = () => new Date(w.now).toISOString();
    if (v.kind === 'deploy') {
      this.fleetStats.memberDeploys++;
      const prev = m.files;
      // The report is withdrawn before the files change, so a kill in between leaves no stale claim.
      w.effect(() => void (m.report = { member: m.name, reportedAt: at() }));
      // The key is checked when the files change, not when the MTA reloads:
      // once in its files, the MTA may pick it up at any moment (a restart,
      // a reload by someone else), so that is when it counts as served.
      w.effect(() => {
        m.files = { ...lineage };
        this.serve(m, lineage.tlsa, 'deploy');
      });
      if (fail) {
        if (prev) m.files = prev;
        else delete m.files;
        this.serve(m, prev?.tlsa ?? PLACEHOLDER, 'rollback');
        const served = prev ? { servedTlsa: prev.tlsa, serial: prev.serial, verifiedAt: at() } : {};
        w.effect(() => void (m.report = { member: m.name, ...served, error: 'the reload hook failed; rolled back', reportedAt: at() }));
        return false;
      }
    }
    if (crash) return true;
    w.effect(() => void (m.report = { member: m.name, servedTlsa: m.served, serial: m.files!.serial, verifiedAt: at(), reportedAt: at() }));
    return true;
  }

  reports(): MemberReport[] {
    return this.members.map((m) => m.report ?? { member: m.name });
  }

  /** mxcert changed the zone: no member's key that was valid until now may be left out. */
  private checkCommit(before: { valid: Map<string, boolean>; publishedAt?: string }): void {
    const records = this.w.versions.at(-1)!.records;
    for (const m of this.members) {
      if (!before.valid.get(m.served) || records.includes(m.served) || records.length === 0) continue;
      // A pre-fleet key on a member after the first publish was outside the published RRset already (the member never deployed).
      if (!this.w.minted.has(m.served) && before.publishedAt) continue;
      this.w.violations.push(`mxcert's update at ${this.w.now - T0} ms left out ${m.served.slice(0, 6)}, which ${m.name} serves`);
    }
  }

  leaderWorld(pass: Extract<WorldEvent, { kind: 'pass' }>): DaneWorld {
    const w = this.w;
    let deployedThisPass = false;
    return {
      storage: modelStorage(w),
      clock: { now: () => new Date(w.now), sleep: async (ms) => w.advance(w.now + ms) },
      logger: silentLogger,
      owners: [OWNER],
      observe: async () => ({
        dns: [{ owner: OWNER, servers: w.servers.map((s) => w.observation(s)) }],
        renewalDue: pass.renewalDue && !deployedThisPass,
        ...(this.lineage ? { deployedTlsa: this.lineage.tlsa } : {}),
        fleet: { members: this.reports() },
      }),
      deployedKeyPem: async () => (this.lineage ? `PEM:${this.lineage.tlsa}` : undefined),
      publish: async (_owner: string, c: TlsaChange, ttl: number) => {
        const before = { valid: new Map(this.members.map((m) => [m.served, w.keyValid(m.served)])), publishedAt: this.journal()?.publishedAt };
        const r = modelPublish(w, c, ttl);
        this.checkCommit(before);
        return r;
      },
      deploy: async (pem, live) => {
        const r = this.leaderDeploy(pem.slice(4), live, pass.failDeploy);
        deployedThisPass = true;
        return r;
      },
    };
  }

  /** The leader's deploy: publish the lineage and have its own member apply it; on failure the lineage goes back. */
  private leaderDeploy(key: string, live: string | undefined, fail: boolean): { serial: string } {
    const w = this.w;
    const prev = this.lineage;
    const me = this.members[this.leader]!;
    w.effect(() => void (this.lineage = { tlsa: key, serial: `${++this.serials}` }));
    if (!this.apply(me, false, fail) || me.served !== key) {
      w.effect(() => void (this.lineage = prev));
      throw new Error(fail ? 'the reload hook failed' : `live check: ${me.name} does not serve the new key`);
    }
    w.stats.deploys++;
    if (live && live === this.journal()!.next.tlsa) w.stats.swaps++;
    return { serial: this.lineage!.serial };
  }

  down(index: number): void {
    if (this.members.some((m) => !m.up)) return;
    const i = index % this.members.length;
    if (i === this.leader) this.failover();
    this.members[i]!.up = false;
    this.fleetStats.downs++;
  }

  failover(): void {
    const n = this.members.length;
    for (let k = 1; k <= n; k++) {
      const i = (this.leader + k) % n;
      if (this.members[i]!.up) {
        this.leader = i;
        this.fleetStats.failovers++;
        return;
      }
    }
  }

  /** Every member serves the current key, nothing is left to retire, no rollover is pending. */
  settled(): boolean {
    const j = this.journal();
    return Boolean(j && j.phase === 'STEADY' && !j.old && !j.rollover && this.members.every((m) => m.served === j.current.tlsa));
  }
}

const quietPass = { kind: 'pass' as const, renewalDue: false, crashAfter: false, failDeploy: false };

export async function simulateFleet(p: FleetParams, events: FleetEvent[]): Promise<Fleet> {
  const f = new Fleet(p);
  const w = f.w;
  const policy: DecidePolicy = { keyLifetimeMs: p.keyLifetimeMs, minHoldMs: p.minHoldMs, strictSignatures: false, ttl: p.ttl, resolver: false, extras: [] };
  const pass = (e: Extract<WorldEvent, { kind: 'pass' }>) =>
    runModelPass(w, e, async () => {
      const o = await runDane(f.leaderWorld(e), policy);
      if (o.waiting?.startsWith(`${FLEET_WAIT} retire waits`)) f.fleetStats.retireWaits++;
      if (o.waiting?.startsWith(`${FLEET_WAIT} publishing once`)) f.fleetStats.publishWaits++;
      if (process.env.MODEL_DEBUG) console.log(w.now - T0, o, w.servers.map((s) => w.versions[s.version]!.records.map((r) => r.slice(0, 4)).join(',')), f.members.map((m) => m.served.slice(0, 6)));
    });
  for (const e of events) {
    switch (e.kind) {
      case 'wait':
        w.advance(w.now + e.ms);
        break;
      case 'pass':
        await pass(e);
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
      case 'member':
        f.apply(f.members[e.index % f.members.length]!, e.crash);
        break;
      case 'down':
        f.down(e.index);
        break;
      case 'up':
        for (const m of f.members) m.up = true;
        break;
      case 'failover':
        f.failover();
        break;
    }
  }
  // A rollover while the member that is down (if any) stays down: the retire must wait for it...
  const step = Math.max(2 * p.ttl * 1000, p.minHoldMs) + 1000;
  const round = async () => {
    w.advance(w.now + step);
    await pass(quietPass);
    for (const m of f.members) f.apply(m, false);
    await pass(quietPass);
  };
  if (w.journal) w.journal = JSON.stringify({ ...JSON.parse(w.journal), rollover: { requestedAt: new Date(w.now).toISOString(), emergency: false } });
  for (let i = 0; i < 6; i++) await round();
  // ...and once everyone is back, with passes and members running as the daemon and the watches would, it must finish.
  for (const m of f.members) m.up = true;
  for (let i = 0; i < 40 && !f.settled(); i++) await round();
  if (!f.settled()) {
    const j = f.journal();
    f.liveness = `not settled: phase ${j?.phase}, old ${Boolean(j?.old)}, rollover ${Boolean(j?.rollover)}, members ${f.members.map((m) => `${m.name}=${m.served.slice(0, 6)}`).join(' ')}, current ${j?.current.tlsa.slice(0, 6)}`;
  }
  return f;
}
