// DANE across a fleet on real servers: a 3-node etcd cluster, Pebble, BIND
// primary + secondary, and three members (mx-a, mx-b, mx-c), each with its
// own Postfix on its own port (so its own TLSA owner), its own state and
// config, sharing one fleet prefix and key. Whoever finds no leader leads a
// pass; the journal and keys live in etcd. An independent watcher per
// member (openssl against its Postfix, dig against every authoritative
// server) checks the invariant: the served key is in every TLSA RRset seen
// in the preceding 2 × TTL. One member is left out during the rollover: the
// retire of the old key waits for it, and completes once it has run.
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { CLI, servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { fleetMemberConfig, memberPostfixes } from '../support/fleet-rig.js';
import { assertWatched, DaneWatcher, servedHash, tlsaAt } from '../support/dane-watcher.js';
import type { PostfixEnv } from '../env/postfix.js';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import type { DnsServerAddr } from '../env/bind.js';
import { pidAlive, pollUntil, run, trackPid, untrackPid, type RunResult } from '../env/proc.js';
import { openEtcd } from '../../src/fleet/etcd-client.js';
import { campaign } from '../../src/fleet/leader.js';

const PREFIX = '/mxcert/fleet-dane/';
const NAMES = ['mx-a', 'mx-b', 'mx-c'] as const;
const DOMAIN = 'mx.example.test';
const TTL = 2;

interface Journal {
  phase: string;
  current: { tlsa: string };
  next: { tlsa: string };
  old?: { tlsa: string };
}

interface Member {
  name: string;
  cfg: string;
  port: number;
  owner: string;
  watcher: DaneWatcher;
  log: string[];
  /** The same config with DANE turned off (dane.enabled: false, the block kept). */
  off: string;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sorted = (a: string[]) => [...a].sort();

describe('DANE rollover across a fleet of three', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  let cluster: EtcdCluster;
  let servers: DnsServerAddr[];
  const postfixes: PostfixEnv[] = [];
  const members: Member[] = [];

  before(async () => {
    sb = await startSandbox({ secondary: true, pebble: { validitySeconds: 3600 } });
    servers = [sb.bind.primary, sb.bind.secondary!];
    cluster = await startEtcdCluster();
    const keyFile = path.join(sb.dir, 'fleet.key');
    await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const smtp = await memberPostfixes(sb, NAMES, DOMAIN, postfixes);
    for (const [i, name] of NAMES.entries()) {
      const cfg = fleetMemberConfig(sb, {
        name,
        names: NAMES,
        own: smtp[i]!,
        keyFile,
        endpoints: cluster.endpoints,
        prefix: PREFIX,
        domain: DOMAIN,
        dane: { ttl: TTL, everyone: smtp },
      });
      const owner = `_${smtp[i]!.port}._tcp.${DOMAIN}`;
      const on = await sb.writeConfig(cfg, path.join(sb.dir, `${name}.yaml`));
      const offCfg = JSON.parse(JSON.stringify(cfg)) as SandboxConfig;
      offCfg.certificates[0].dane.enabled = false;
      members.push({
        name,
        port: smtp[i]!.port,
        owner,
        off: await sb.writeConfig(offCfg, path.join(sb.dir, `${name}-dane-off.yaml`)),
        cfg: on,
        watcher: new DaneWatcher({ servers, owner, smtpPort: smtp[i]!.port, ttl: TTL }),
        log: [],
      });
    }
  });
  after(async () => {
    for (const m of members) await m.watcher.stop();
    for (const pf of postfixes) await pf.stop().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await sb?.stop();
  });

  async function journal(): Promise<Journal | undefined> {
    const r = await cluster.etcdctl(['get', `${PREFIX}certs/mx/dane`, '--print-value-only']);
    const text = r.stdout.trim();
    if (!text) return undefined;
    return (JSON.parse(text) as { journal: Record<string, Journal> }).journal['ecdsa-p256'];
  }

  async function cli(m: Member, args: string[]): Promise<RunResult> {
    const r = await sb.cli([...args, '--config', m.cfg]);
    m.log.push(`$ mxcert ${args.join(' ')} (${m.name}) → ${r.code}\n${r.stdout}${r.stderr.split('\n').slice(-25).join('\n')}`);
    assert.equal(r.code, 0, `${m.name}: a pass failed:\n${m.log.at(-1)}`);
    return r;
  }

  /** Timer-like passes of `who`, in turn, until `done`. */
  async function drive(who: Member[], done: (j: Journal | undefined) => Promise<boolean> | boolean, what: string): Promise<RunResult[]> {
    const deadline = Date.now() + 180_000;
    const outs: RunResult[] = [];
    while (!(await done(await journal()))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${who.flatMap((m) => m.log.slice(-2)).join('\n----\n')}`);
      for (const m of who) outs.push(await cli(m, ['renew']));
      await pause(200);
    }
    return outs;
  }

  const allServe = async (tlsa: string) => (await Promise.all(members.map((m) => servedHash(m.port)))).every((h) => h === tlsa);

  it('adopts, rolls over, waits for a member left out, and completes once it has run; no served key is ever missing from an RRset', async () => {
    const placeholders = await Promise.all(members.map((m) => servedHash(m.port)));
    for (const m of members) m.watcher.start();

    await drive(members, async (j) => Boolean(j && j.phase === 'STEADY' && (await allServe(j.current.tlsa))), 'adoption by the fleet');
    const j0 = (await journal())!;
    for (const m of members) for (const s of servers) assert.deepEqual(await tlsaAt(s, m.owner), sorted([j0.current.tlsa, j0.next.tlsa]), `${m.name} owner at ${s.port}`);

    await cli(members[0]!, ['rollover', '--cert', 'mx']);
    const [a, b, c] = members as [Member, Member, Member];
    // mx-c is down (its timer does not run): the swap happens, the old record stays.
    const outs = await drive([a, b], (j) => Boolean(j && j.phase === 'RETIRE_OLD' && j.current.tlsa === j0.next.tlsa), 'the swap');
    const more = await drive([a, b], async () => (await servedHash(a.port)) === j0.next.tlsa && (await servedHash(b.port)) === j0.next.tlsa, 'a and b serving the new key');
    const waited = [...outs, ...more, await cli(a, ['renew']), await cli(b, ['renew'])];
    const jw = (await journal())!;
    assert.equal(jw.phase, 'RETIRE_OLD', 'retire waits');
    assert.equal(jw.old?.tlsa, j0.current.tlsa, 'the old key is still published');
    assert.match(waited.at(-1)!.stdout + waited.at(-2)!.stdout, /retire waits for members mx-c/, 'the pass names the member it waits for');
    assert.equal(await servedHash(c.port), j0.current.tlsa, 'mx-c still serves the old key, which is still published');
    const st = await cli(a, ['status']);
    assert.match(st.stdout, /  mx \(ecdsa-p256\): DANE RETIRE_OLD since the swap at .*: retire of the old key waits for: mx-c \(serves 3 1 1 [0-9a-f]{12}… \(the old key\), verified /, 'status names the member the retire waits for and when it last verified');
    const fs = JSON.parse((await cli(a, ['fleet', 'status'])).stdout) as { members: Array<{ name: string; reports: Array<{ units: Record<string, { spkiSha256: string }> }> }> };
    assert.equal(fs.members.find((m) => m.name === 'mx-c')?.reports[0]?.units['ecdsa-p256']?.spkiSha256, j0.current.tlsa, 'fleet status shows mx-c on the old key');

    // mx-c comes back: it deploys the new key, and the retire completes.
    await drive(members, (j) => Boolean(j && j.phase === 'STEADY' && !j.old && j.current.tlsa === j0.next.tlsa), 'the retire');
    const j1 = (await journal())!;
    for (const m of members) await m.watcher.stop();
    for (const m of members) assertWatched(m.watcher, TTL);
    for (const [i, m] of members.entries()) {
      assert.deepEqual(m.watcher.violations().filter((v) => !v.includes(`served (any) ${placeholders[i]!.slice(0, 12)}`)), [], `${m.name}: invariant`);
      assert.equal(await servedHash(m.port), j0.next.tlsa, `${m.name} serves the former next key`);
      for (const s of servers) assert.deepEqual(await tlsaAt(s, m.owner), sorted([j1.current.tlsa, j1.next.tlsa]), `${m.name} owner at ${s.port}: current + next`);
      const served = m.watcher.servedKeys().filter((k) => k === j0.current.tlsa || k === j0.next.tlsa);
      assert.deepEqual(served, [j0.current.tlsa, j0.next.tlsa], `${m.name}: served old, then new`);
    }
  });

  it('kill -9 of the leading pass at random instants of a rollover: no invariant violation, the rollover completes under a new leader', async () => {
    const j0 = (await journal())!;
    assert.equal(j0.phase, 'STEADY');
    const watchers = members.map((m) => new DaneWatcher({ servers, owner: m.owner, smtpPort: m.port, ttl: TTL }).start());
    try {
      // The request goes into the fleet's journal without a pass of its own, so the whole rollover happens under the kills.
      const key = `${PREFIX}certs/mx/dane`;
      const rec = JSON.parse((await cluster.etcdctl(['get', key, '--print-value-only'])).stdout.trim()) as { journal: Record<string, { rollover?: unknown }> };
      rec.journal['ecdsa-p256']!.rollover = { requestedAt: new Date().toISOString(), emergency: false };
      await cluster.etcdctl(['put', key, JSON.stringify(rec)]);
      const noLeader = () =>
        pollUntil(async () => ((await cluster.etcdctl(['get', `${PREFIX}leader`, '--print-value-only'])).stdout.trim() ? undefined : true), { deadlineMs: 15_000, intervalMs: 100, what: "the killed leader's lease to expire" });
      const kills: string[] = [];
      // Kill instants are drawn within the length of the last pass that ran to
      // its end: a pass that does little is over in well under a second, and a
      // fixed range would mostly miss it (the rollover would then complete with
      // few kills, testing little).
      let passMs = 4000;
      for (let trial = 0; trial < 24 && (kills.length < 6 || (await journal())?.phase !== 'STEADY'); trial++) {
        // A pass that finds no leader key leads: wait for the killed one's lease to expire.
        await noLeader();
        const m = members[trial % members.length]!;
        const child = spawn(process.execPath, [CLI, 'renew', '--config', m.cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
        trackPid(child.pid!, `mxcert renew (${m.name})`);
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        const startedAt = Date.now();
        let endedAt: number | undefined;
        child.once('exit', () => (endedAt = Date.now()));
        const delay = 100 + Math.floor(Math.random() * Math.max(200, passMs - 100));
        await pause(delay);
        if (endedAt !== undefined) passMs = endedAt - startedAt;
        else if (pidAlive(child.pid!)) {
          child.kill('SIGKILL');
          const led = stderr.includes('leading this pass') ? 'leading' : 'not (yet) leading';
          kills.push(`${m.name} after ${delay} ms (${led}, journal ${(await journal())?.phase}, last step: ${/"msg":"([^"]*)"[^\n]*\n?$/.exec(stderr)?.[1] ?? '-'})`);
        }
        await pollUntil(() => (pidAlive(child.pid!) ? undefined : true), { deadlineMs: 5000, intervalMs: 20, what: 'the killed pass to exit' });
        untrackPid(child.pid!);
      }
      console.log(`kills:\n${kills.join('\n')}`);
      assert.ok(kills.length >= 5, `at least five passes were killed mid-way: ${kills.join('; ')}`);
      await drive(members, (j) => Boolean(j && j.phase === 'STEADY' && !j.old && j.current.tlsa === j0.next.tlsa), 'the rollover after the kills');
      await drive(members, async () => allServe(j0.next.tlsa), 'every member serving the new key');
    } finally {
      for (const w of watchers) await w.stop();
    }
    for (const [i, w] of watchers.entries()) {
      assertWatched(w, TTL);
      assert.deepEqual(w.violations(), [], `${members[i]!.name}: invariant through the kills`);
    }
  });
  it('DANE off on a fleet certificate: the leader keeps the key; dane retire refuses while a member would be left uncovered, then retires through the fleet', async () => {
    const noLeader = () =>
      pollUntil(async () => ((await cluster.etcdctl(['get', `${PREFIX}leader`, '--print-value-only'])).stdout.trim() ? undefined : true), { deadlineMs: 15_000, intervalMs: 100, what: 'no leader' });
    const off = async (m: Member, args: string[], expect = 0): Promise<RunResult> => {
      const r = await sb.cli([...args, '--config', m.off]);
      m.log.push(`$ mxcert ${args.join(' ')} (${m.name}, DANE off) → ${r.code}\n${r.stdout}${r.stderr.split('\n').slice(-25).join('\n')}`);
      assert.equal(r.code, expect, m.log.at(-1));
      return r;
    };
    const daneRevision = async () => {
      const r = await cluster.etcdctl(['get', `${PREFIX}certs/mx/dane`, '-w', 'json']);
      return String((JSON.parse(r.stdout) as { kvs?: Array<{ mod_revision: number }> }).kvs?.[0]?.mod_revision ?? 'absent');
    };
    const [a, b, c] = members as [Member, Member, Member];
    await noLeader();
    const j = (await journal())!;
    assert.equal(j.phase, 'STEADY');
    const serialBefore = new X509Certificate(await servedLeafPem(a.port, { servername: DOMAIN })).serialNumber;

    // A forced renewal with DANE off keeps the key the published records name, on every member.
    const forced = await off(a, ['renew', '--force']);
    assert.match(forced.stdout + forced.stderr, /DANE is off in the config but mxcert's TLSA records for mx are still published/);
    await off(b, ['renew']);
    await off(c, ['renew']);
    for (const m of members) assert.equal(await servedHash(m.port), j.current.tlsa, `${m.name} still serves the current key`);
    assert.notEqual(new X509Certificate(await servedLeafPem(a.port, { servername: DOMAIN })).serialNumber, serialBefore, 'a new certificate was deployed');
    for (const m of members) for (const s of servers) assert.deepEqual(await tlsaAt(s, m.owner), sorted([j.current.tlsa, j.next.tlsa]), `${m.name}: the records stay`);

    // Another member leads a pass: the command refuses and changes nothing.
    const etcd = await openEtcd({ endpoints: cluster.endpoints, prefix: PREFIX, dialTimeoutMs: 2000, requestTimeoutMs: 2000 });
    try {
      const term = await campaign(etcd, { member: 'mx-b', ttlSeconds: 10 });
      const busy = await off(c, ['dane', 'retire', '--cert', 'mx'], 1);
      assert.match(busy.stderr, /mx-b leads the fleet now \(a pass is running\); only the leader withdraws TLSA records: nothing changed/);
      await term.resign();
    } finally {
      etcd.close();
    }

    // A foreign record that matches the served leaf stays at mx-a's owner; mx-c reports a serial the fleet does not know.
    const leafDer = new X509Certificate(await servedLeafPem(a.port, { servername: DOMAIN })).raw;
    const foreign = `3 0 1 ${createHash('sha256').update(leafDer).digest('hex')}`;
    const dns = sb.baseConfig().certificates[0].challenge.dns as { server: string; port: number; zone: string };
    await run('nsupdate', ['-v', '-k', sb.bind.tsig.keyFile], { input: `server ${dns.server} ${dns.port}\nzone ${dns.zone}\nupdate add ${a.owner}. ${TTL} TLSA ${foreign}\nsend\n` });
    const reportKey = `${PREFIX}members/mx-c/mx`;
    const report = JSON.parse((await cluster.etcdctl(['get', reportKey, '--print-value-only'])).stdout.trim()) as { units: Record<string, { serial: string }> };
    report.units['ecdsa-p256']!.serial = 'ff01';
    await cluster.etcdctl(['put', reportKey, JSON.stringify(report)]);
    const rev = await daneRevision();
    const refused = await off(a, ['dane', 'retire', '--cert', 'mx'], 1);
    assert.match(refused.stderr, /would remain, and none matches the certificate served for ecdsa-p256 on mx-c \(serial ff01, not the lineage's\)/);
    assert.doesNotMatch(refused.stderr, /served for [^;]*ecdsa-p256 on mx-a[ ,]/, 'mx-a, on the lineage, is covered by the foreign record');
    assert.equal(await daneRevision(), rev, 'the fleet journal is unchanged');
    for (const m of members) for (const s of servers) assert.deepEqual(await tlsaAt(s, m.owner), sorted([j.current.tlsa, j.next.tlsa]), `${m.name}: nothing withdrawn`);

    // mx-c checks and reports again; now every member is covered: the retirement goes through the fleet.
    await noLeader();
    await off(c, ['renew']);
    await noLeader();
    const done = await off(a, ['dane', 'retire', '--cert', 'mx']);
    assert.match(done.stdout, /mx: withdrew mxcert's TLSA records \(\d+\) from /);
    for (const m of members) {
      for (const s of servers) await pollUntil(async () => ((await tlsaAt(s, m.owner)).length === 0 ? true : undefined), { deadlineMs: 30_000, intervalMs: 200, what: `${m.name}: mxcert's records gone at ${s.port}` });
    }
    // The leader's passes carry it to the end: journal and keys leave etcd.
    const deadline = Date.now() + 120_000;
    while (await journal()) {
      assert.ok(Date.now() < deadline, `the retirement did not finish:\n${members.flatMap((m) => m.log.slice(-1)).join('\n')}`);
      await noLeader();
      await off(a, ['renew']);
      await pause(500);
    }
    for (const m of members) assert.equal(await servedHash(m.port), j.current.tlsa, `${m.name} served the kept key throughout`);
  });
});
