// A fleet of daemons (test/support/fleet-rig.ts: 3-node etcd, Pebble, BIND
// primary + secondary, one Postfix and one `mxcert run` per member, schedule
// once a year so only the fleet watcher and the due timers start passes):
//   - DANE rollover with TLSA TTL T across 3 members, for each T in
//     --fleet-ttls: from `mxcert rollover` on one member until the old
//     record is retired (journal STEADY again, no old key) and every member
//     serves the new key; against the target 2T + 5 s, with the time spent
//     in each phase (from the journal in etcd, polled every 100 ms);
//   - ACME orders per renewal for each fleet size in --fleet-sizes: first
//     issuance by the daemons, then --fleet-renewals forced renewals
//     (`mxcert renew --force` on one member), orders counted from every
//     member's log ("certificate issued");
//   - resident memory of each daemon and of its fleet watcher once quiet,
//     and of a daemon with the same certificate but no fleet.
// A benchmark measures and reports; it never fails on a number.
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { servedLeafPem } from '../test/support/sandbox.js';
import { servedHash } from '../test/support/dane-watcher.js';
import { FLEET_DOMAIN, startFleetRig, type FleetRig, type RigMember } from '../test/support/fleet-rig.js';
import { pollUntil, startDaemon, stopPid } from '../test/env/proc.js';
import { procSample } from './measure.js';

const say = (s: string) => process.stdout.write(s + '\n');

export interface FleetOptions {
  ttls: number[];
  sizes: number[];
  renewals: number;
  cli?: string;
  /** The daemons' log lines during each rollover go here (bench.log). */
  logFile?: string;
}

export interface FleetRollover {
  ttl: number;
  members: number;
  /** `mxcert rollover` started → old record retired and every member serving the new key. */
  totalMs: number | null;
  targetMs: number;
  /** Time from the request in each phase the journal went through, in order. */
  phases: Array<{ phase: string; ms: number }>;
  orders: number;
  rss: MemberRss[];
  error?: string;
}

export interface MemberRss {
  member: string;
  daemonKiB: number;
  watcherKiB: number;
}

export interface FleetOrders {
  members: number;
  firstIssuanceOrders: number;
  renewals: number;
  renewalOrders: number;
  /** Forced renewal on one member → every member serves the new serial (median over the renewals). */
  convergeMs: number | null;
  rss: MemberRss[];
  error?: string;
}

export interface FleetResults {
  rollovers: FleetRollover[];
  orders: FleetOrders[];
  /** A daemon with the same certificate and no fleet, once quiet. */
  noFleetDaemonKiB?: number;
}

export async function fleetScenario(o: FleetOptions): Promise<FleetResults> {
  const out: FleetResults = { rollovers: [], orders: [] };
  for (const ttl of o.ttls) out.rollovers.push(await rolloverRow(ttl, o));
  for (const n of o.sizes) out.orders.push(await ordersRow(n, o, out));
  return out;
}

/** RSS of each member's daemon and its fleet watcher (the pid its "watching etcd" line names). */
async function rssOf(rig: FleetRig): Promise<MemberRss[]> {
  const rows: MemberRss[] = [];
  for (const m of rig.members) {
    const watcher = Number((await rig.lines(m, /fleet watcher: watching etcd/)).at(-1)?.pid);
    rows.push({ member: m.name, daemonKiB: procSample(m.daemon!.pid)?.rssKiB ?? 0, watcherKiB: procSample(watcher)?.rssKiB ?? 0 });
  }
  return rows;
}

async function adopt(rig: FleetRig, dane: boolean): Promise<void> {
  for (const m of rig.members) rig.startDaemon(m);
  await pollUntil(
    async () => {
      if (dane) {
        const j = await rig.journal();
        if (!j || j.phase !== 'STEADY') return undefined;
        return (await Promise.all(rig.members.map((m) => servedHash(m.port)))).every((h) => h === j.current.tlsa) ? true : undefined;
      }
      const s = await serials(rig);
      return new Set(s).size === 1 && (await rig.orders()) > 0 ? true : undefined;
    },
    { deadlineMs: 600_000, intervalMs: 250, what: 'the daemons to adopt the fleet certificate' },
  );
  await rig.settled(3000, 300_000);
}

const serials = (rig: FleetRig) => Promise.all(rig.members.map(async (m) => new X509Certificate(await servedLeafPem(m.port, { servername: FLEET_DOMAIN })).serialNumber));

async function rolloverRow(ttl: number, o: FleetOptions): Promise<FleetRollover> {
  say(`bench: fleet rollover, TTL ${ttl} s, 3 daemon members: starting etcd ×3, BIND ×2, Pebble, Postfix ×3 ...`);
  const rig = await startFleetRig({ members: 3, prefix: `/mxcert/bench-${ttl}/`, daneTtl: ttl, cli: o.cli, logLevel: 'debug' });
  const row: FleetRollover = { ttl, members: 3, totalMs: null, targetMs: 2 * ttl * 1000 + 5000, phases: [], orders: 0, rss: [] };
  try {
    await adopt(rig, true);
    // A rollover long after adoption: the hold over the next key has passed.
    const hold = await rig.journal().then((j) => (j as { holdUntil?: string } | undefined)?.holdUntil);
    if (hold) await pollUntil(() => (Date.now() > Date.parse(hold) ? true : undefined), { deadlineMs: 600_000, intervalMs: 100, what: 'the hold after adoption' });
    row.rss = await rssOf(rig);
    const j0 = (await rig.journal())!;
    const orders0 = await rig.orders();
    const t0 = Date.now();
    const cli = rig.sb.cli(['rollover', '--cert', 'mx', '--wait', '60', '--config', rig.members[0]!.cfg], { timeoutMs: 300_000, env: { ...process.env, MXCERT_LOG_LEVEL: 'debug' } });
    let last = 'STEADY';
    await pollUntil(
      async () => {
        const j = await rig.journal();
        if (j && j.phase !== last) {
          row.phases.push({ phase: j.phase, ms: Date.now() - t0 });
          last = j.phase;
        }
        if (!j || j.phase !== 'STEADY' || j.old || j.current.tlsa !== j0.next.tlsa) return undefined;
        return (await Promise.all(rig.members.map((m) => servedHash(m.port)))).every((h) => h === j0.next.tlsa) ? true : undefined;
      },
      { deadlineMs: 300_000, intervalMs: 100, what: 'the rollover across the daemons' },
    );
    row.totalMs = Date.now() - t0;
    const r = await cli;
    if (o.logFile) await writeFile(o.logFile, `\n--- fleet rollover, TTL ${ttl} s: timeline (ms from \`mxcert rollover\`) ---\n${await timeline(rig, t0, r.stderr)}\n`, { flag: 'a' });
    row.orders = (await rig.orders()) - orders0 + (r.stderr.match(/certificate issued/g) ?? []).length;
    say(`  rollover ${(row.totalMs / 1000).toFixed(2)} s (target 2T + 5 s = ${row.targetMs / 1000} s); phases: ${row.phases.map((p) => `${p.phase} at ${(p.ms / 1000).toFixed(2)} s`).join(', ')}`);
  } catch (err) {
    row.error = (err as Error).message.split('\n')[0];
    say(`  FAILED: ${row.error}`);
  } finally {
    await rig.stop();
  }
  return row;
}

/** Every member's log lines (and the rollover command's) from t0 on, in time order. */
async function timeline(rig: FleetRig, t0: number, cliStderr: string): Promise<string> {
  const rows: Array<[number, string]> = [];
  const add = (who: string, text: string) => {
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        const j = JSON.parse(l) as { time?: number; msg?: string; waiting?: string; why?: string; verdict?: string };
        if (typeof j.time === 'number' && j.time >= t0) rows.push([j.time - t0, `${who}: ${j.msg}${j.why ? ` (${j.why})` : ''}${j.waiting ? ` [${j.waiting}]` : ''}`]);
      } catch {
        // not a log line
      }
    }
  };
  add('cli', cliStderr);
  for (const m of rig.members) add(m.name, await rig.log(m));
  return rows.sort((a, b) => a[0] - b[0]).map(([t, s]) => `${String(t).padStart(6)} ${s}`).join('\n');
}

async function ordersRow(n: number, o: FleetOptions, out: FleetResults): Promise<FleetOrders> {
  say(`bench: fleet of ${n}: orders per renewal ...`);
  const rig = await startFleetRig({ members: n, prefix: `/mxcert/bench-orders-${n}/`, cli: o.cli });
  const row: FleetOrders = { members: n, firstIssuanceOrders: 0, renewals: 0, renewalOrders: 0, convergeMs: null, rss: [] };
  try {
    await adopt(rig, false);
    row.firstIssuanceOrders = await rig.orders();
    row.rss = await rssOf(rig);
    const times: number[] = [];
    for (let i = 0; i < o.renewals; i++) {
      const before = await serials(rig);
      const daemonOrders = await rig.orders();
      let r;
      // The forced pass must lead: when a daemon pass leads at that moment it is a member only.
      for (let k = 0; k < 5 && !(r && /leading this pass/.test(r.stderr)); k++) {
        await pollUntil(async () => ((await rig.leader()) ? undefined : true), { deadlineMs: 60_000, intervalMs: 100, what: 'no pass to lead' });
        r = await rig.sb.cli(['renew', '--force', '--wait', '60', '--config', rig.members[0]!.cfg], { timeoutMs: 300_000 });
      }
      const t0 = Date.now();
      await pollUntil(async () => {
        const s = await serials(rig);
        return new Set(s).size === 1 && s[0] !== before[0] ? true : undefined;
      }, { deadlineMs: 120_000, intervalMs: 100, what: 'every member to serve the renewed certificate' });
      times.push(Date.now() - t0);
      await rig.settled(3000, 300_000);
      row.renewals++;
      row.renewalOrders += (await rig.orders()) - daemonOrders + (r!.stderr.match(/certificate issued/g) ?? []).length;
    }
    row.convergeMs = times.sort((a, b) => a - b)[Math.floor(times.length / 2)] ?? null;
    say(`  ${n} members: first issuance ${row.firstIssuanceOrders} order(s); ${row.renewalOrders} order(s) for ${row.renewals} forced renewal(s); served everywhere ${row.convergeMs} ms after the forced pass`);
    if (n === o.sizes[0]) out.noFleetDaemonKiB = await noFleetDaemon(rig, rig.members[0]!);
  } catch (err) {
    row.error = (err as Error).message.split('\n')[0];
    say(`  FAILED: ${row.error}`);
  } finally {
    await rig.stop();
  }
  return row;
}

/** The same member's certificate as a local one (no fleet block), in a daemon of its own, once its start-up pass is done. */
async function noFleetDaemon(rig: FleetRig, m: RigMember): Promise<number | undefined> {
  await rig.stopDaemon(m);
  const cfg = structuredClone(m.cfgObj);
  delete cfg.fleet;
  cfg.certificates[0].fleet = false;
  cfg.stateDir = path.join(rig.sb.dir, 'state-no-fleet');
  const file = path.join(rig.sb.dir, 'no-fleet.yaml');
  await writeFile(file, stringify(cfg), { mode: 0o600 });
  const log = path.join(rig.sb.dir, 'no-fleet.log');
  const d = startDaemon({ name: 'mxcert run (no fleet)', command: process.execPath, args: [rig.opts.cli ?? path.resolve('bin/mxcert.js'), 'run', '--config', file], cwd: rig.sb.dir, logPath: log, env: { ...process.env, MXCERT_LOG_FORMAT: 'json' } });
  try {
    await pollUntil(async () => ((await import('node:fs/promises')).readFile(log, 'utf8').then((t) => (t.includes('pass finished') ? true : undefined))), { deadlineMs: 300_000, intervalMs: 200, what: 'the start-up pass of the daemon without a fleet' });
    const kib = procSample(d.pid)?.rssKiB;
    say(`  daemon without a fleet: ${((kib ?? 0) / 1024).toFixed(1)} MiB RSS`);
    return kib;
  } finally {
    await stopPid(d.pid, 30_000);
  }
}
