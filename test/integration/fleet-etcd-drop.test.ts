// etcd lost in the middle of a fleet pass (docs/architecture.md, "When etcd
// is unavailable"), on real servers: a 3-node etcd cluster, Pebble issuing
// short-lived certificates, BIND for dns-01 and Postfix serving an ECDSA and
// an RSA chain. The one member's deploy hook freezes two of the three etcd
// nodes (SIGSTOP: quorum lost) right after the ECDSA files are deployed, so
// the point of failure is deterministic: the ECDSA report write, then the
// RSA lineage read. Both units must fail with the etcd-unavailable message;
// the failure hook must run for the RSA certificate (in its last third) and
// not for the fresh ECDSA one; nothing half-written (no claim in etcd for a
// key the member did not report); and once quorum is back the next pass
// completes.
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { POSTFIX_RELOAD_HOOK, servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import { pollUntil, registerTempDir } from '../env/proc.js';

const PREFIX = '/mxcert/fleet-drop/';
const VALIDITY_S = 75;
const KEYS = ['ecdsa-p256', 'rsa-2048'] as const;

describe('etcd lost in the middle of a fleet pass', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let cluster: EtcdCluster;
  let dir: string;
  let failures: string;
  let plain: string;
  let dropping: string;
  const frozen: number[] = [];

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: VALIDITY_S } });
    await sb.useDualChains();
    cluster = await startEtcdCluster();
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-fleet-drop-'));
    registerTempDir(dir);
    await chmod(dir, 0o755);
    failures = path.join(dir, 'failures');
    const failureHook = path.join(dir, 'record-failure');
    await writeFile(failureHook, `#!/bin/sh\nprintf '%s|%s\\n' "$MXCERT_KEY_TYPE" "$MXCERT_ERROR" >> '${failures}'\n`, { mode: 0o755 });
    const keyFile = path.join(dir, 'fleet.key');
    await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const cfg = (extraDeploy: string[][]): SandboxConfig => {
      const c = sb.baseConfig({ keys: [...KEYS] });
      c.fleet = {
        member: 'mx-a',
        members: ['mx-a'],
        etcd: { endpoints: cluster.endpoints, prefix: PREFIX, dialTimeout: '2s', requestTimeout: '2s' },
        keyEncryption: { keyFile },
        leaseTtl: '2s',
      };
      Object.assign(c.certificates[0], { name: 'mx', fleet: true, hooks: { deploy: [[POSTFIX_RELOAD_HOOK, sb.postfix.configDir], ...extraDeploy], failure: [failureHook] } });
      return c;
    };
    plain = await sb.writeConfig(cfg([]), path.join(sb.dir, 'plain.yaml'));
    // Freezes etcd nodes 2 and 3 (PIDs known now; the cluster is not restarted in this test).
    const pids = cluster.members.slice(1).map((m) => String(m.daemon!.pid));
    dropping = await sb.writeConfig(cfg([['/usr/bin/kill', '-STOP', ...pids]]), path.join(sb.dir, 'dropping.yaml'));
    frozen.push(...pids.map(Number));
  });
  after(async () => {
    for (const pid of frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone already
      }
    }
    await cluster?.stop().catch(() => undefined);
    await sb?.stop();
  });

  const leaf = async (family: 'ecdsa' | 'rsa') => new X509Certificate(await servedLeafPem(sb.postfix.port, { keyFamily: family }));
  const units = (stdout: string) =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { keyType?: string; status: string; error?: string; code?: string })
      .filter((u) => u.keyType);

  it('both units fail with the etcd message, the failure hook runs for the certificate in its last third, the member keeps serving, the next pass completes', async () => {
    const first = await sb.cli(['renew', '--format', 'json', '--config', plain]);
    assert.equal(first.code, 0, first.stdout + first.stderr.split('\n').slice(-20).join('\n'));
    const ecdsa0 = await leaf('ecdsa');
    const rsa0 = await leaf('rsa');
    assert.match(ecdsa0.subjectAltName ?? '', /mx1\.example\.test/);
    assert.match(rsa0.subjectAltName ?? '', /mx1\.example\.test/);
    // Wait (polling the clock, nothing else) until both served certificates are in their last third.
    const lastThird = (c: X509Certificate) => {
      const from = Date.parse(c.validFrom);
      return Date.now() >= from + ((Date.parse(c.validTo) - from) * 2) / 3;
    };
    await pollUntil(() => (lastThird(ecdsa0) && lastThird(rsa0) ? true : undefined), { deadlineMs: VALIDITY_S * 1000, intervalMs: 500, what: 'the served certificates to reach their last third' });
    const rsaFile = await readFile(sb.combinedPath('rsa-2048'));

    // --force: the ECDSA unit orders, publishes, deploys (the hook freezes etcd), then cannot report.
    const r = await sb.cli(['renew', '--force', '--format', 'json', '--config', dropping]);
    const detail = r.stdout + r.stderr.split('\n').slice(-30).join('\n');
    assert.equal(r.code, 1, detail);
    const out = units(r.stdout);
    assert.deepEqual(out.map((u) => [u.keyType, u.status, u.code]), [['ecdsa-p256', 'failed', 'etcd-unavailable'], ['rsa-2048', 'failed', 'etcd-unavailable']], detail);
    for (const u of out) assert.match(u.error ?? '', /^etcd unavailable: keeping what is served \(/);

    // The failure hook ran once, for RSA: its served certificate is in its last third; ECDSA serves a fresh one.
    const hooks = (await readFile(failures, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
    assert.equal(hooks.length, 1, `failure hooks: ${hooks.join(' / ')}`);
    assert.match(hooks[0]!, /^rsa-2048\|etcd unavailable: keeping what is served/);
    // RSA keeps serving its old certificate, its files untouched; ECDSA serves what it deployed and verified.
    assert.equal((await leaf('rsa')).serialNumber, rsa0.serialNumber);
    assert.deepEqual(await readFile(sb.combinedPath('rsa-2048')), rsaFile);
    const ecdsa1 = await leaf('ecdsa');
    assert.notEqual(ecdsa1.serialNumber, ecdsa0.serialNumber);

    // Quorum back.
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
    await cluster.waitHealthy({ deadlineMs: 30_000 });
    // Nothing half-written: the lineage names the new ECDSA certificate, and this member's
    // report makes no claim about ECDSA (withdrawn before its files changed).
    const get = async (key: string) => JSON.parse((await cluster.etcdctl(['get', `${PREFIX}${key}`, '--print-value-only'])).stdout.trim()) as Record<string, unknown>;
    const lineage = (await get('certs/mx/lineage')) as { units: Record<string, { serial: string }> };
    assert.equal(BigInt(`0x${lineage.units['ecdsa-p256']!.serial}`), BigInt(`0x${ecdsa1.serialNumber}`));
    const report = (await get('members/mx-a/mx')) as { units: Record<string, { serial: string }> };
    assert.equal(report.units['ecdsa-p256'], undefined, 'no claim for the ECDSA key in the report');
    // The dead pass's leader key goes with its lease; then the next pass leads, renews RSA and reports both.
    await pollUntil(async () => ((await cluster.etcdctl(['get', `${PREFIX}leader`, '--print-value-only'])).stdout.trim() === '' ? true : undefined), { deadlineMs: 30_000, intervalMs: 200, what: 'the old leader key to expire' });
    const next = await sb.cli(['renew', '--format', 'json', '--config', plain]);
    assert.equal(next.code, 0, next.stdout + next.stderr.split('\n').slice(-30).join('\n'));
    assert.equal((await leaf('ecdsa')).serialNumber, ecdsa1.serialNumber);
    const rsa2 = await leaf('rsa');
    assert.notEqual(rsa2.serialNumber, rsa0.serialNumber, 'RSA, due, is renewed now');
    const after = (await get('members/mx-a/mx')) as { units: Record<string, { serial: string }> };
    assert.equal(BigInt(`0x${after.units['ecdsa-p256']!.serial}`), BigInt(`0x${ecdsa1.serialNumber}`));
    assert.equal(BigInt(`0x${after.units['rsa-2048']!.serial}`), BigInt(`0x${rsa2.serialNumber}`));
  });
});
