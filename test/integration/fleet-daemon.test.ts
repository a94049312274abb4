// A fleet of three daemons on real servers (test/support/fleet-rig.ts): a
// 3-node etcd cluster, Pebble, BIND primary + secondary (TSIG updates of an
// inline-signed zone), and three members each running `mxcert run` with its
// own Postfix, state and config, sharing one fleet prefix and key. Their
// schedule is once a year: whatever happens within the test's deadlines is
// started by each daemon's fleet watcher (src/daemon/fleet-child.ts) or its
// due timer, never by a cron tick. The test itself only does what an
// operator would: `mxcert renew --force` and `mxcert rollover` on one member.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { servedLeafPem } from '../support/sandbox.js';
import { assertWatched, DaneWatcher, servedHash, tlsaAt } from '../support/dane-watcher.js';
import { FLEET_DOMAIN, startFleetRig, type FleetRig, type RigMember } from '../support/fleet-rig.js';
import { pidAlive, pollUntil, type RunResult } from '../env/proc.js';
import { stringify } from 'yaml';

const TTL = 2;
const sorted = (a: string[]) => [...a].sort();

describe('a fleet of three daemons follows etcd without waiting for their cron tick', { timeout: 900_000 }, () => {
  let rig: FleetRig;
  let watchers: DaneWatcher[] = [];
  /** Every watcher started, stopped in `after` whichever test failed. */
  const started: DaneWatcher[] = [];
  const watch = (m: RigMember) => {
    const w = new DaneWatcher({ servers: rig.servers, owner: m.owner, smtpPort: m.port, ttl: TTL }).start();
    started.push(w);
    return w;
  };
  let placeholders: string[] = [];

  before(async () => {
    rig = await startFleetRig({ members: 3, prefix: '/mxcert/fleet-daemon/', daneTtl: TTL });
  });
  after(async () => {
    for (const w of started) await w.stop();
    await rig?.stop();
  });

  const serial = async (m: RigMember) => new X509Certificate(await servedLeafPem(m.port, { servername: FLEET_DOMAIN })).serialNumber;
  const serials = () => Promise.all(rig.members.map(serial));
  const allServe = async (tlsa: string) => (await Promise.all(rig.members.map((m) => servedHash(m.port)))).every((h) => h === tlsa);
  const tails = async () => (await Promise.all(rig.members.map(async (m) => `--- ${m.name}\n${(await rig.log(m)).split('\n').slice(-25).join('\n')}`))).join('\n');
  const cli = async (m: RigMember, args: string[]): Promise<RunResult> => {
    const r = await rig.sb.cli([...args, '--config', m.cfg], { timeoutMs: 180_000 });
    assert.equal(r.code, 0, `${m.name}: mxcert ${args.join(' ')} failed:\n${r.stdout}${r.stderr.split('\n').slice(-30).join('\n')}`);
    return r;
  };

  it('the daemons alone adopt the fleet certificate and DANE: one order, every member serves it, the records are published', async () => {
    placeholders = await Promise.all(rig.members.map((m) => servedHash(m.port)));
    watchers = rig.members.map(watch);
    for (const m of rig.members) rig.startDaemon(m);
    const j0 = await pollUntil(async () => {
      const j = await rig.journal();
      return j && j.phase === 'STEADY' && (await allServe(j.current.tlsa)) ? j : undefined;
    }, { deadlineMs: 240_000, intervalMs: 250, what: 'the three daemons to adopt (journal STEADY, every member serving the current key)', detail: () => '' }).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await tails()}`);
    });
    for (const m of rig.members) {
      assert.ok((await rig.lines(m, /fleet watcher: watching etcd/)).length > 0, `${m.name}: its fleet watcher runs`);
      for (const s of rig.servers) assert.deepEqual(await tlsaAt(s, m.owner), sorted([j0.current.tlsa, j0.next.tlsa]), `${m.name} owner at ${s.port}`);
    }
    assert.equal(new Set(await serials()).size, 1, 'one serial everywhere');
    assert.equal(await rig.orders(), 1, 'one ACME order for the fleet');
    // The invariant through adoption (a loaded machine may leave gaps in the sampling; the rollover below checks them).
    for (const w of watchers) await w.stop();
    for (const [i, w] of watchers.entries()) assert.deepEqual(w.violations().filter((v) => !v.includes(`served (any) ${placeholders[i]!.slice(0, 12)}`)), [], `${rig.members[i]!.name}: invariant`);
    watchers = [];
  });

  it('a forced renewal on one member: all three daemons serve the new serial within seconds, with one order', async () => {
    const before = await serials();
    await rig.settled(3000, 120_000);
    const ordersBefore = await rig.orders();
    // The operator's `renew --force` leads its pass when no daemon pass leads at that moment.
    let r: RunResult | undefined;
    for (let i = 0; i < 5 && !(r && /leading this pass/.test(r.stderr)); i++) {
      await pollUntil(async () => ((await rig.leader()) ? undefined : true), { deadlineMs: 30_000, intervalMs: 100, what: 'no pass to lead' });
      r = await cli(rig.members[0]!, ['renew', '--force', '--wait', '60']);
    }
    const cliOrders = (r!.stderr.match(/certificate issued/g) ?? []).length;
    assert.equal(cliOrders, 1, 'the forced pass ordered once');
    const t0 = Date.now();
    const after = await pollUntil(async () => {
      const s = await serials();
      return new Set(s).size === 1 && s[0] !== before[0] ? s : undefined;
    }, { deadlineMs: 60_000, intervalMs: 100, what: 'every daemon to serve the new serial' }).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await tails()}`);
    });
    console.log(`forced renewal served by all three ${Date.now() - t0} ms after the CLI pass ended`);
    assert.notEqual(after[0], before[0]);
    await rig.settled(3000, 120_000);
    assert.equal((await rig.orders()) - ordersBefore, 0, 'no daemon ordered: the one order was the CLI pass');
    for (const m of rig.members.slice(1)) assert.ok((await rig.lines(m, /^fleet: a new lineage of mx/)).length > 0, `${m.name}: nudged by the new lineage`);
  });

  it('a DANE rollover completes across the three daemons; no served key is ever missing from an RRset', async () => {
    const j0 = (await rig.journal())!;
    assert.equal(j0.phase, 'STEADY');
    watchers = rig.members.map(watch);
    const t0 = Date.now();
    await cli(rig.members[0]!, ['rollover', '--cert', 'mx', '--wait', '60']);
    await pollUntil(async () => {
      const j = await rig.journal();
      return j && j.phase === 'STEADY' && !j.old && j.current.tlsa === j0.next.tlsa && (await allServe(j0.next.tlsa)) ? true : undefined;
    }, { deadlineMs: 120_000, intervalMs: 100, what: 'the rollover to complete across the daemons' }).catch(async (err: Error) => {
      throw new Error(`${err.message}\njournal: ${JSON.stringify(await rig.journal())}\n${await tails()}`);
    });
    console.log(`rollover complete on all three ${Date.now() - t0} ms after \`mxcert rollover\` started (TTL ${TTL} s)`);
    const j1 = (await rig.journal())!;
    for (const w of watchers) await w.stop();
    for (const [i, w] of watchers.entries()) {
      const m = rig.members[i]!;
      assertWatched(w, TTL);
      assert.deepEqual(w.violations(), [], `${m.name}: invariant`);
      for (const s of rig.servers) assert.deepEqual(await tlsaAt(s, m.owner), sorted([j1.current.tlsa, j1.next.tlsa]), `${m.name} owner at ${s.port}: current + next`);
    }
    watchers = [];
  });

  it('a quiet fleet stays quiet: no pass nudges another one into a loop', async () => {
    const start = await rig.settled(3000, 120_000);
    const t0 = Date.now();
    // A window to count passes in, not a wait for something to settle.
    await new Promise((r) => setTimeout(r, 20_000));
    const end = await Promise.all(rig.members.map((m) => rig.passes(m)));
    const extra = end.map((n, i) => n - start[i]!);
    console.log(`passes in a ${Date.now() - t0} ms quiet window: ${extra.join(', ')}`);
    for (const [i, n] of extra.entries()) assert.ok(n <= 1, `${rig.members[i]!.name} ran ${n} passes while nothing changed`);
  });

  it('the watcher is restarted when it dies, etcd lost is one log line, SIGHUP without the fleet stops it, SIGTERM ends it', async () => {
    const m = rig.members[1]!;
    const pidOf = async () => Number((await rig.lines(m, /fleet watcher: watching etcd/)).at(-1)?.pid);
    const first = await pidOf();
    assert.ok(pidAlive(first));
    process.kill(first, 'SIGKILL');
    const second = await pollUntil(async () => {
      const p = await pidOf();
      return p !== first && pidAlive(p) ? p : undefined;
    }, { deadlineMs: 30_000, intervalMs: 200, what: 'the daemon to restart its fleet watcher' });
    assert.ok(second > 0);

    // etcd gone: each watcher says so once (stopping the members one by one
    // may show it connected to a survivor in between: a change of state too),
    // then stays silent however often it retries; the daemons keep serving.
    const unavailable = () => Promise.all(rig.members.map((x) => rig.lines(x, /etcd unavailable; retrying quietly/).then((l) => l.length)));
    const watching = () => Promise.all(rig.members.map((x) => rig.lines(x, /fleet watcher: watching etcd/).then((l) => l.length)));
    const down = await unavailable();
    const up = await watching();
    await Promise.all([0, 1, 2].map((i) => rig.cluster.stopMember(i)));
    try {
      const noticed = await pollUntil(async () => {
        const n = await unavailable();
        return n.every((v, i) => v > down[i]!) ? n : undefined;
      }, { deadlineMs: 60_000, intervalMs: 200, what: 'each watcher to notice etcd is gone' });
      const upDuring = await watching();
      // A window of several retry periods (1 s each) without etcd.
      await new Promise((r) => setTimeout(r, 6000));
      assert.deepEqual(await unavailable(), noticed, 'no line per retry');
      assert.deepEqual(await watching(), upDuring, 'and no false recovery');
      for (const x of rig.members) assert.ok(!x.daemon!.hasExited(), `${x.name}: the daemon keeps running`);
      assert.equal(new Set(await serials()).size, 1, 'every member keeps serving');
    } finally {
      for (let i = 0; i < 3; i++) await rig.cluster.startMember(i).catch(() => undefined);
    }
    await rig.cluster.waitHealthy({ deadlineMs: 60_000 });
    await pollUntil(async () => {
      const n = await Promise.all(rig.members.map((x) => rig.lines(x, /fleet watcher: watching etcd/).then((l) => l.length)));
      return n.every((v, i) => v > up[i]!) ? true : undefined;
    }, { deadlineMs: 60_000, intervalMs: 200, what: 'each watcher to watch again once etcd is back' });

    // SIGHUP with the fleet taken out of the config: the watcher stops, the daemon goes on.
    const watcher = await pidOf();
    const cfg = structuredClone(m.cfgObj);
    delete cfg.fleet;
    cfg.certificates[0].fleet = false;
    delete cfg.certificates[0].dane;
    await writeFile(m.cfg, stringify(cfg), { mode: 0o600 });
    process.kill(m.daemon!.pid, 'SIGHUP');
    await pollUntil(async () => ((await rig.lines(m, /fleet watcher stopped/)).length ? true : undefined), { deadlineMs: 30_000, intervalMs: 200, what: 'the watcher to stop on reload' });
    await pollUntil(() => (pidAlive(watcher) ? undefined : true), { deadlineMs: 10_000, what: 'the watcher process to exit' });
    assert.ok(!m.daemon!.hasExited());

    // SIGTERM: each daemon ends, and its watcher with it.
    const others = await Promise.all(rig.members.filter((x) => x !== m).map(async (x) => Number((await rig.lines(x, /fleet watcher: watching etcd/)).at(-1)?.pid)));
    for (const x of rig.members) await rig.stopDaemon(x);
    for (const x of rig.members) assert.deepEqual(await x.daemon!.exited, { code: 0, signal: null }, `${x.name} exits 0`);
    for (const p of others) await pollUntil(() => (pidAlive(p) ? undefined : true), { deadlineMs: 10_000, what: `watcher ${p} to exit with its daemon` });
  });
});
