// Fleet coordination on a real 3-member etcd cluster (test/env/etcd.ts):
// compare-and-swap writes, leader election between separate processes with
// failover after kill -9, fencing of a deposed (paused) leader, losing one
// and then two etcd members, lineage watches across a full etcd restart,
// TLS with client certificates, etcd password authentication, and sealed
// keys that were tampered with or sealed under another fleet key.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import { pidAlive, pollUntil, trackPid, untrackPid } from '../env/proc.js';
import type { FleetConfig } from '../../src/config/schema.js';
import { connectFleetEtcd, openEtcd, type FleetEtcd } from '../../src/fleet/etcd-client.js';
import { EtcdAccessError, EtcdUnavailableError, FleetConflictError, LeadershipLostError, NotLeaderError, SealError } from '../../src/fleet/errors.js';
import { campaign, type LeaderTerm } from '../../src/fleet/leader.js';
import { parseFleetKey, seal, unseal, type FleetKey, type SealSlot } from '../../src/fleet/seal.js';
import { ABSENT, FleetStore, type Lineage, type MemberReport } from '../../src/fleet/store.js';
import { watchLineages, type LineageChange } from '../../src/fleet/watch.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MEMBER_SCRIPT = path.join(REPO, 'test/support/fleet-member.ts');
const TTL = 2;
/** Failover must happen within the lease TTL plus this (campaign, watch, a loaded 2-core machine). */
const FAILOVER_MARGIN_MS = 3000;
const REQUEST_TIMEOUT_MS = 1500;

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
});

let prefixN = 0;
/** A fresh prefix per test, so tests on one cluster do not see each other's keys. */
const freshPrefix = () => `/mxcert/t${process.pid}-${++prefixN}/`;

async function client(cluster: EtcdCluster, prefix: string, extra: Partial<Parameters<typeof openEtcd>[0]> = {}): Promise<FleetEtcd> {
  const etcd = await openEtcd({ endpoints: cluster.endpoints, prefix, dialTimeoutMs: 2000, requestTimeoutMs: REQUEST_TIMEOUT_MS, ...extra });
  cleanups.push(() => etcd.close());
  return etcd;
}

function key(): FleetKey {
  const r = parseFleetKey(randomBytes(32).toString('hex'));
  assert.ok(r.ok);
  return r.key;
}

function lineage(member: string, generation: number, units: Lineage['units'] = {}): Lineage {
  return { v: 1, generation, units, updatedBy: member, updatedAt: new Date().toISOString() };
}

function report(member: string, serial: string): MemberReport {
  return { v: 1, member, cert: 'mx', units: { 'ecdsa-p256': { spkiSha256: 'ab'.repeat(32), serial } }, verifiedAt: new Date().toISOString() };
}

function isA<T extends Error>(cls: abstract new (...a: never[]) => T, check?: (e: T) => void): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    check?.(e as T);
    return true;
  };
}

// ---------------------------------------------------------------------------
// Member processes for the election tests

interface MemberEvent {
  event: 'elected' | 'lost' | 'write';
  member: string;
  t: number;
  ok?: boolean;
  code?: string;
  reason?: string;
}

interface MemberProc {
  name: string;
  child: ChildProcess;
  events: MemberEvent[];
  send(line: string): void;
  /** Waits for the next event of `type` after index `from`. */
  next(type: MemberEvent['event'], from: number, deadlineMs: number): Promise<MemberEvent>;
}

function startMember(cluster: EtcdCluster, prefix: string, name: string, onEvent: (p: MemberProc, e: MemberEvent) => void): MemberProc {
  const child = spawn(process.execPath, ['--import', 'tsx', MEMBER_SCRIPT], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, FLEET_ENDPOINTS: cluster.endpoints.join(','), FLEET_PREFIX: prefix, FLEET_MEMBER: name, FLEET_TTL: String(TTL), FLEET_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) },
  });
  trackPid(child.pid!, `fleet member ${name}`);
  const proc: MemberProc = {
    name,
    child,
    events: [],
    send: (line) => child.stdin!.write(`${line}\n`),
    next: (type, from, deadlineMs) =>
      pollUntil(() => proc.events.slice(from).find((e) => e.event === type), { deadlineMs, intervalMs: 20, what: `${name} to report ${type}` }),
  };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const e = JSON.parse(line) as MemberEvent;
    proc.events.push(e);
    onEvent(proc, e);
  });
  cleanups.push(async () => {
    if (pidAlive(child.pid!)) child.kill('SIGKILL');
    untrackPid(child.pid!);
  });
  return proc;
}

// ---------------------------------------------------------------------------

describe('fleet on a 3-member etcd cluster', () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster();
    cleanups.push(() => cluster.stop());
  });

  it('compare-and-swap: of two writers that read the same revision, the second is refused and the first value stays', async () => {
    const prefix = freshPrefix();
    const a = new FleetStore(await client(cluster, prefix));
    const b = new FleetStore(await client(cluster, prefix));

    // Create-if-absent: both saw nothing; one wins.
    const r1 = await a.putReport(report('mx-a', '01'), ABSENT);
    await assert.rejects(b.putReport(report('mx-a', '02'), ABSENT), isA(FleetConflictError, (e) => {
      assert.equal(e.expected, ABSENT);
      assert.equal(e.actual, r1);
      assert.match(e.message, /expected it absent, found it at revision \d+; nothing was written/);
    }));

    // Both read r1; a writes first; b's write based on r1 is refused.
    const readA = await a.getReport('mx-a', 'mx');
    const readB = await b.getReport('mx-a', 'mx');
    assert.equal(readA?.revision, r1);
    assert.equal(readB?.revision, r1);
    const r2 = await a.putReport(report('mx-a', '03'), readA!.revision);
    await assert.rejects(b.putReport(report('mx-a', '04'), readB!.revision), isA(FleetConflictError, (e) => assert.equal(e.actual, r2)));
    const final = await b.getReport('mx-a', 'mx');
    assert.equal(final?.value.units['ecdsa-p256']?.serial, '03');
    assert.equal(final?.revision, r2);
  });

  it('leader-only writes: a leader\'s stale read loses the race too; a fence from a resigned term is refused', async () => {
    const prefix = freshPrefix();
    const etcd = await client(cluster, prefix);
    const store = new FleetStore(etcd);
    const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: TTL });
    const rev = await store.putLineage('mx', lineage('mx-a', 1), ABSENT, term.fence);
    const first = await store.putLineage('mx', lineage('mx-a', 2), rev, term.fence);
    await assert.rejects(store.putLineage('mx', lineage('mx-a', 3), rev, term.fence), isA(FleetConflictError));
    await term.resign();
    assert.equal(term.isLeader(), false);
    await assert.rejects(store.putLineage('mx', lineage('mx-a', 3), first, term.fence), isA(NotLeaderError, (e) => assert.match(e.message, /mx-a is no longer the fleet leader \(no member holds the leader key\)/)));
    assert.equal((await store.getLineage('mx'))?.value.generation, 2);
  });

  it('election between three processes: one leader; kill -9 of the leader hands over within the TTL; a paused leader\'s late write is refused', async (t) => {
    const prefix = freshPrefix();
    const store = new FleetStore(await client(cluster, prefix));
    const gone = new Set<string>();
    let leader: string | undefined;
    const violations: string[] = [];
    const onEvent = (p: MemberProc, e: MemberEvent) => {
      if (e.event === 'elected') {
        if (leader && leader !== p.name && !gone.has(leader)) violations.push(`${p.name} elected while ${leader} leads`);
        leader = p.name;
      } else if (e.event === 'lost' && leader === p.name) leader = undefined;
    };
    const procs = ['mx-a', 'mx-b', 'mx-c'].map((n) => startMember(cluster, prefix, n, onEvent));
    const byName = (n: string) => procs.find((p) => p.name === n)!;

    const first = await pollUntil(() => leader, { deadlineMs: 20_000, what: 'a first leader' });
    assert.equal((await store.leader())?.member, first);

    // kill -9: no resignation, the lease runs out on the server.
    const killedAt = Date.now();
    byName(first).child.kill('SIGKILL');
    gone.add(first);
    const second = await pollUntil(() => (leader && leader !== first ? leader : undefined), { deadlineMs: TTL * 1000 + FAILOVER_MARGIN_MS, what: 'a new leader after kill -9' });
    const failoverMs = Date.now() - killedAt;
    assert.ok(failoverMs <= TTL * 1000 + FAILOVER_MARGIN_MS, `failover took ${failoverMs} ms`);
    t.diagnostic(`failover after kill -9 of the leader: ${failoverMs} ms (lease TTL ${TTL} s)`);
    assert.equal((await store.leader())?.member, second);

    // Pause the leader (a long GC pause, a frozen VM): it cannot renew, another takes over.
    const paused = byName(second);
    const mark = paused.events.length;
    paused.child.kill('SIGSTOP');
    gone.add(second);
    const third = await pollUntil(() => (leader && leader !== second ? leader : undefined), { deadlineMs: TTL * 1000 + FAILOVER_MARGIN_MS, what: 'a leader while the old one is paused' });
    paused.child.kill('SIGCONT');
    gone.delete(second);
    // Its first act on waking: a write with its old term's fence. etcd refuses it.
    paused.send('write');
    const late = await paused.next('write', mark, 10_000);
    assert.equal(late.ok, false, JSON.stringify(late));
    assert.equal(late.code, 'fleet-not-leader');
    const lost = await paused.next('lost', mark, 10_000);
    assert.ok(['lease-expired', 'lease-revoked', 'key-changed'].includes(lost.reason!), lost.reason);

    // The real leader's write goes through.
    const current = byName(third);
    const mark3 = current.events.length;
    current.send('write');
    assert.equal((await current.next('write', mark3, 10_000)).ok, true);
    assert.deepEqual(violations, []);
  });

  it('one etcd member stopped: reads, writes, election and a lineage watch go on', async () => {
    const prefix = freshPrefix();
    const etcd = await client(cluster, prefix);
    const store = new FleetStore(etcd);
    await cluster.stopMember(0);
    try {
      const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: TTL });
      const rev = await store.putLineage('mx', lineage('mx-a', 1), ABSENT, term.fence);
      assert.equal((await store.getLineage('mx'))?.revision, rev);
      await term.resign();
    } finally {
      await cluster.startMember(0);
      await cluster.waitHealthy();
    }
  });

  it('two etcd members stopped: calls fail with EtcdUnavailableError within the deadline, the leader stops, nobody is elected; all resumes with quorum', async (t) => {
    const prefix = freshPrefix();
    const etcd = await client(cluster, prefix);
    const store = new FleetStore(etcd);
    const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: TTL });
    const rev = await store.putLineage('mx', lineage('mx-a', 1), ABSENT, term.fence);
    const lost = new Promise<{ err: LeadershipLostError; at: number }>((resolve) => term.once('lost', (err) => resolve({ err, at: Date.now() })));

    await cluster.stopMember(1);
    await cluster.stopMember(2);
    const quorumGoneAt = Date.now();
    try {
      for (const op of [() => store.getLineage('mx'), () => store.putLineage('mx', lineage('mx-a', 2), rev, term.fence), () => store.listReports()]) {
        const t0 = Date.now();
        await assert.rejects(op(), isA(EtcdUnavailableError));
        const took = Date.now() - t0;
        assert.ok(took <= REQUEST_TIMEOUT_MS + 1000, `a call without quorum took ${took} ms (deadline ${REQUEST_TIMEOUT_MS})`);
      }
      // The leader cannot renew its lease: it stops acting within the TTL of
      // the last renewal etcd confirmed. The etcd member left alone may have
      // been raft's leader: it still confirms renewals (truly extending the
      // lease) until it notices the lost quorum, one election timeout later.
      const { err: why, at } = await lost;
      assert.equal(why.reason, 'lease-expired');
      assert.ok(at - quorumGoneAt <= TTL * 1000 + cluster.electionMs, `leadership ended ${at - quorumGoneAt} ms after quorum was lost (lease TTL ${TTL} s, election timeout ${cluster.electionMs} ms)`);
      t.diagnostic(`the leader stopped acting ${at - quorumGoneAt} ms after quorum was lost (lease TTL ${TTL} s)`);
      assert.equal(term.isLeader(), false);
      assert.throws(() => term.assertLeader('order a certificate'), isA(NotLeaderError));

      // A campaigning member keeps trying and fails, and never leads.
      const failures: unknown[] = [];
      const abort = new AbortController();
      let elected: LeaderTerm | undefined;
      const campaigning = campaign(etcd, { member: 'mx-b', ttlSeconds: TTL, signal: abort.signal, onRetry: (e) => failures.push(e) }).then((t) => (elected = t));
      await pollUntil(() => (failures.length >= 2 ? true : undefined), { deadlineMs: 15_000, what: 'two failed campaign attempts without quorum' });
      assert.equal(elected, undefined);
      assert.ok(failures.every((f) => f instanceof EtcdUnavailableError), String(failures[0]));

      // Quorum returns: the same campaign is elected, writes work again.
      await cluster.startMember(1);
      await cluster.startMember(2);
      await cluster.waitHealthy();
      const term2 = await pollUntil(() => elected, { deadlineMs: 15_000 + TTL * 1000, what: 'the campaign to win once quorum is back' });
      assert.equal((await store.leader())?.member, 'mx-b');
      const cur = await store.getLineage('mx');
      assert.equal(cur?.value.generation, 1, 'nothing was written without quorum');
      await store.putLineage('mx', lineage('mx-b', 2), cur!.revision, term2.fence);
      await term2.resign();
      abort.abort();
      await campaigning;
    } finally {
      for (const i of [1, 2]) if (!cluster.members[i]!.daemon) await cluster.startMember(i);
      await cluster.waitHealthy();
    }
  });

  it('a lineage watch delivers each change once, and keeps delivering after all of etcd was stopped and started again', async () => {
    const prefix = freshPrefix();
    const etcd = await client(cluster, prefix);
    const store = new FleetStore(etcd);
    const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: 10 });
    const rev1 = await store.putLineage('mx', lineage('mx-a', 1), ABSENT, term.fence);
    await term.resign();

    const changes: LineageChange[] = [];
    const states: string[] = [];
    const watch = watchLineages(store, { onChange: (c) => changes.push(c), onState: (s) => states.push(s), retryMs: 200 });
    cleanups.push(() => watch.close());
    await watch.ready;
    assert.deepEqual(changes.map((c) => [c.cert, c.revision]), [['mx', rev1]], 'the snapshot delivers what exists');

    for (let i = 0; i < 3; i++) await cluster.stopMember(i);
    for (let i = 0; i < 3; i++) await cluster.startMember(i);
    await cluster.waitHealthy();

    const term2 = await campaign(etcd, { member: 'mx-b', ttlSeconds: 10 });
    const rev2 = await store.putLineage('mx', lineage('mx-b', 2), rev1, term2.fence);
    await store.putLineage('other', lineage('mx-b', 1), ABSENT, term2.fence);
    await term2.resign();
    await pollUntil(() => (changes.some((c) => c.revision === rev2) && changes.some((c) => c.cert === 'other') ? true : undefined), { deadlineMs: 15_000, what: 'the changes after the restart' });
    const mx = changes.filter((c) => c.cert === 'mx');
    assert.deepEqual(mx.map((c) => c.revision), [rev1, rev2], 'each revision once, in order');
    const v = mx[1]!.lineage;
    assert.ok(v && !(v instanceof Error));
    assert.equal(v.value.generation, 2);
    assert.ok(states.includes('disconnected'), `states: ${states.join(', ')}`);
    // The changes may arrive through the snapshot re-read before the watch
    // stream itself is back: it must come back, within a deadline.
    await pollUntil(() => (states.at(-1) === 'connected' ? true : undefined), { deadlineMs: 15_000, what: `the watch to report connected again (states: ${states.join(', ')})` });
    watch.close();
  });

  it('closing the client ends its watches: a process that watched lineages and closed the client exits by itself', async () => {
    const script = `
      import { openEtcd } from './src/fleet/etcd-client.ts';
      import { FleetStore } from './src/fleet/store.ts';
      import { watchLineages } from './src/fleet/watch.ts';
      const etcd = await openEtcd({ endpoints: ${JSON.stringify(cluster.endpoints)}, prefix: '${freshPrefix()}', dialTimeoutMs: 2000, requestTimeoutMs: 2000 });
      const w = watchLineages(new FleetStore(etcd), { onChange: () => undefined });
      await w.ready;
      etcd.close();
      console.log('closed');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    trackPid(child.pid!, 'watch-close child');
    cleanups.push(() => {
      if (pidAlive(child.pid!)) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await pollUntil(() => (out.includes('closed') ? true : undefined), { deadlineMs: 20_000, what: 'the child to close its client' });
    const code = await Promise.race([exit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))]);
    assert.equal(code, 0, 'the process must exit once its client is closed');
    untrackPid(child.pid!);
  });

  it('sealed keys in etcd: read back with the right key; a wrong fleet key, a tampered value and a moved key each say why', async () => {
    const prefix = freshPrefix();
    const etcd = await client(cluster, prefix);
    const store = new FleetStore(etcd);
    const fleetKey = key();
    const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+not+a+real+key\n-----END PRIVATE KEY-----\n';
    const slot: SealSlot = { prefix, cert: 'mx', keyType: 'ecdsa-p256', role: 'current' };
    const unit = { chainPem: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', serial: '0a', notBefore: new Date().toISOString(), notAfter: new Date(Date.now() + 86_400_000).toISOString(), key: seal(fleetKey, pem, slot) };
    const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: 10 });
    await store.putLineage('mx', lineage('mx-a', 1, { 'ecdsa-p256': unit }), ABSENT, term.fence);
    await store.putLineage('mx2', lineage('mx-a', 1, { 'ecdsa-p256': unit }), ABSENT, term.fence);
    await term.resign();

    // What etcd holds reveals nothing of the key.
    const raw = await cluster.etcdctl(['get', `${prefix}certs/mx/lineage`, '--print-value-only']);
    assert.ok(!raw.stdout.includes('not+a+real+key'));

    const stored = (await store.getLineage('mx'))!.value.units['ecdsa-p256']!;
    assert.equal(unseal(fleetKey, stored.key, slot).toString(), pem);
    const other = key();
    assert.throws(() => unseal(other, stored.key, slot), isA(SealError, (e) => {
      assert.equal(e.reason, 'wrong-key');
      assert.match(e.message, new RegExp(`sealed with key id ${fleetKey.id}, this host has key id ${other.id}`));
    }));

    // Copied to another certificate's lineage.
    const moved = (await store.getLineage('mx2'))!.value.units['ecdsa-p256']!;
    assert.throws(() => unseal(fleetKey, moved.key, { ...slot, cert: 'mx2' }), isA(SealError, (e) => assert.equal(e.reason, 'moved')));

    // Someone with write access to etcd flips a byte of the ciphertext.
    const doc = JSON.parse(raw.stdout) as Lineage;
    const ct = Buffer.from(doc.units['ecdsa-p256']!.key.ct, 'base64');
    ct[3] = ct[3]! ^ 0xff;
    doc.units['ecdsa-p256']!.key.ct = ct.toString('base64');
    const file = path.join(cluster.dir, 'tampered.json');
    await writeFile(file, JSON.stringify(doc));
    await cluster.etcdctl(['put', `${prefix}certs/mx/lineage`, JSON.stringify(doc)]);
    const tampered = (await store.getLineage('mx'))!.value.units['ecdsa-p256']!;
    assert.throws(() => unseal(fleetKey, tampered.key, slot), isA(SealError, (e) => {
      assert.equal(e.reason, 'tampered');
      assert.match(e.message, /fails authentication/);
    }));
  });
});

describe('fleet etcd with client TLS', () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster({ tls: true });
    cleanups.push(() => cluster.stop());
  });

  function fleetConfig(prefix: string, tls: FleetConfig['etcd']['tls']): FleetConfig {
    return {
      member: 'mx-a',
      members: ['mx-a'],
      leaseTtl: 10_000,
      keyEncryption: { keyFile: '/nonexistent' },
      etcd: { endpoints: cluster.endpoints, prefix, tls, dialTimeout: 2000, requestTimeout: REQUEST_TIMEOUT_MS },
    };
  }

  it('connects with the CA and a client certificate from the config\'s files, and reads and writes', async () => {
    const prefix = freshPrefix();
    const t = cluster.tls!;
    const etcd = await connectFleetEtcd(fleetConfig(prefix, { caFile: t.caFile, certFile: t.certFile, keyFile: t.keyFile }));
    cleanups.push(() => etcd.close());
    await etcd.probe();
    const store = new FleetStore(etcd);
    const rev = await store.putReport(report('mx-a', '01'), ABSENT);
    assert.equal((await store.getReport('mx-a', 'mx'))?.revision, rev);
  });

  it('without a client certificate, or with one from another CA, the server refuses: a typed error within the deadline', async () => {
    const t = cluster.tls!;
    for (const tls of [{ caFile: t.caFile }, { caFile: t.caFile, certFile: t.foreignCertFile, keyFile: t.foreignKeyFile }]) {
      const etcd = await connectFleetEtcd(fleetConfig(freshPrefix(), tls));
      cleanups.push(() => etcd.close());
      const t0 = Date.now();
      await assert.rejects(etcd.probe(), isA(EtcdUnavailableError));
      assert.ok(Date.now() - t0 <= 2000 + 1000);
    }
  });

  it('a server certificate from a CA we do not trust is refused', async () => {
    const t = cluster.tls!;
    const etcd = await connectFleetEtcd(fleetConfig(freshPrefix(), { caFile: t.foreignCertFile, certFile: t.certFile, keyFile: t.keyFile }));
    cleanups.push(() => etcd.close());
    await assert.rejects(etcd.probe(), isA(EtcdUnavailableError));
  });
});

describe('fleet etcd with password authentication', () => {
  let cluster: EtcdCluster;
  const authPrefix = '/mxcert/auth/';
  before(async () => {
    cluster = await startEtcdCluster({ auth: true, authPrefix });
    cleanups.push(() => cluster.stop());
  });

  function fleetConfig(prefix: string, passwordFile: string): FleetConfig {
    return {
      member: 'mx-a',
      members: ['mx-a'],
      leaseTtl: 10_000,
      keyEncryption: { keyFile: '/nonexistent' },
      etcd: { endpoints: cluster.endpoints, prefix, auth: { username: cluster.auth!.username, passwordFile }, dialTimeout: 2000, requestTimeout: REQUEST_TIMEOUT_MS },
    };
  }

  it('the password file\'s user works under its prefix; elsewhere, and with a wrong password, EtcdAccessError', async () => {
    const etcd = await connectFleetEtcd(fleetConfig(`${authPrefix}a/`, cluster.auth!.passwordFile));
    cleanups.push(() => etcd.close());
    const store = new FleetStore(etcd);
    const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: TTL });
    await store.putLineage('mx', lineage('mx-a', 1), ABSENT, term.fence);
    await term.resign();

    const outside = await connectFleetEtcd(fleetConfig('/elsewhere/', cluster.auth!.passwordFile));
    cleanups.push(() => outside.close());
    await assert.rejects(new FleetStore(outside).getLineage('mx'), isA(EtcdAccessError, (e) => assert.match(e.message, /permission denied/)));

    const wrong = path.join(cluster.dir, 'wrong-password');
    await writeFile(wrong, 'not-the-password', { mode: 0o600 });
    const denied = await connectFleetEtcd(fleetConfig(`${authPrefix}a/`, wrong));
    cleanups.push(() => denied.close());
    await assert.rejects(denied.probe(), isA(EtcdAccessError, (e) => assert.match(e.message, /authentication failed/)));
    // Campaigning with wrong credentials ends at once instead of retrying for ever.
    await assert.rejects(campaign(denied, { member: 'mx-a', ttlSeconds: TTL }), isA(EtcdAccessError));
  });
});
