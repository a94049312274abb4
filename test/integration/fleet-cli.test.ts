// `mxcert fleet status` and `mxcert fleet remove` through the bundled CLI
// (run `npm run build` first), against a real 3-member etcd cluster: the
// JSON view of leader, members, reports, removals and lineages; removal is
// idempotent and refuses names that are no member; a host cut off from
// etcd fails within the deadline instead of hanging; a config without a
// fleet is a usage error.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import { freePort, registerTempDir, run } from '../env/proc.js';
import { CLI } from '../support/sandbox.js';
import { openEtcd } from '../../src/fleet/etcd-client.js';
import { campaign } from '../../src/fleet/leader.js';
import { parseFleetKey, seal } from '../../src/fleet/seal.js';
import { ABSENT, FleetStore } from '../../src/fleet/store.js';
import type { FleetStatusView } from '../../src/fleet/status.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
});

let dir: string;
let cluster: EtcdCluster;
const PREFIX = '/mxcert/cli-test/';
const KEY_HEX = randomBytes(32).toString('hex');

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-fleet-cli-'));
  registerTempDir(dir);
  await mkdir(path.join(dir, 'out'), { mode: 0o700 });
  await writeFile(path.join(dir, 'fleet.key'), `${KEY_HEX}\n`, { mode: 0o600 });
  cluster = await startEtcdCluster();
  cleanups.push(() => cluster.stop());
});

async function config(fleet: Record<string, unknown> | undefined, name = `config-${randomBytes(4).toString('hex')}.yaml`): Promise<string> {
  const file = path.join(dir, name);
  const doc = {
    stateDir: path.join(dir, 'state'),
    acme: { directory: 'https://acme.example.test/directory' },
    ...(fleet ? { fleet } : {}),
    certificates: [{ name: 'mx', fleet: fleet !== undefined, domains: ['mx.example.com'], challenge: { type: 'http-01', http: { listen: '[::]:80' } }, output: { combined: path.join(dir, 'out', 'mx.pem') } }],
  };
  await writeFile(file, stringify(doc), { mode: 0o600 });
  return file;
}

function fleetBlock(endpoints: string[], member = 'mx-a'): Record<string, unknown> {
  return {
    member,
    members: ['mx-a', 'mx-b', 'mx-c'],
    etcd: { endpoints, prefix: PREFIX, dialTimeout: '2s', requestTimeout: '2s' },
    keyEncryption: { keyFile: path.join(dir, 'fleet.key') },
  };
}

const mxcert = (args: string[]) => run(process.execPath, [CLI, ...args], { allowFailure: true, timeoutMs: 30_000, env: { ...process.env, MXCERT_LOG_LEVEL: 'silent' } });

describe('mxcert fleet status / remove', () => {
  it('status: JSON with the leader, every member with its reports, removals and the stored lineages', async () => {
    const cfg = await config(fleetBlock(cluster.endpoints));
    const empty = await mxcert(['fleet', 'status', '--config', cfg]);
    assert.equal(empty.code, 0, empty.stderr);
    const v0 = JSON.parse(empty.stdout) as FleetStatusView;
    assert.equal(v0.leader, null);
    assert.deepEqual(v0.members.map((m) => [m.name, m.configured, m.reports.length]), [['mx-a', true, 0], ['mx-b', true, 0], ['mx-c', true, 0]]);
    const key = parseFleetKey(KEY_HEX);
    assert.ok(key.ok);
    assert.deepEqual(v0.self, { member: 'mx-a', keyId: key.key.id });

    // A leader, a lineage, a report from mx-b and one from a host not in this config.
    const etcd = await openEtcd({ endpoints: cluster.endpoints, prefix: PREFIX, dialTimeoutMs: 2000, requestTimeoutMs: 2000 });
    cleanups.push(() => etcd.close());
    const store = new FleetStore(etcd);
    const term = await campaign(etcd, { member: 'mx-b', ttlSeconds: 10 });
    cleanups.push(() => term.resign());
    const notAfter = new Date(Date.now() + 86_400_000).toISOString();
    const sealed = seal(key.key, 'pem', { prefix: PREFIX, cert: 'mx', keyType: 'ecdsa-p256', role: 'current' });
    await store.putLineage('mx', { v: 1, generation: 4, units: { 'ecdsa-p256': { chainPem: 'x', serial: '0a1b', notBefore: new Date().toISOString(), notAfter, key: sealed } }, updatedBy: 'mx-b', updatedAt: new Date().toISOString() }, ABSENT, term.fence);
    const report = (member: string) => ({ v: 1 as const, member, cert: 'mx', units: { 'ecdsa-p256': { spkiSha256: 'cd'.repeat(32), serial: '0a1b' } }, generation: 4, verifiedAt: new Date().toISOString() });
    await store.putReport(report('mx-b'), ABSENT);
    await store.putReport(report('mx-d'), ABSENT);

    const r = await mxcert(['fleet', 'status', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as FleetStatusView;
    assert.equal(v.leader?.member, 'mx-b');
    const b = v.members.find((m) => m.name === 'mx-b')!;
    assert.equal(b.leader, true);
    assert.deepEqual(b.reports.map((x) => [x.cert, x.units['ecdsa-p256']?.serial, x.generation]), [['mx', '0a1b', 4]]);
    const d = v.members.find((m) => m.name === 'mx-d')!;
    assert.equal(d.configured, false, 'a member known only from etcd is shown, marked');
    assert.deepEqual(v.certificates, [{ name: 'mx', generation: 4, updatedBy: 'mx-b', updatedAt: v.certificates[0]!.updatedAt, units: { 'ecdsa-p256': { serial: '0a1b', notAfter, sealedWith: key.key.id } } }]);
    assert.deepEqual(v.problems, []);
    assert.ok(!r.stdout.includes(sealed.ct), 'no sealed key material in the status');
  });

  it('remove: writes removed/MEMBER once (idempotent), refuses a name that is no member, and status shows it', async () => {
    const cfg = await config(fleetBlock(cluster.endpoints));
    const first = await mxcert(['fleet', 'remove', 'mx-c', '--json', '--config', cfg]);
    assert.equal(first.code, 0, first.stderr);
    const rec = JSON.parse(first.stdout) as { member: string; removedAt: string; removedBy: string };
    assert.equal(rec.member, 'mx-c');
    assert.equal(rec.removedBy, 'mx-a');
    const again = await mxcert(['fleet', 'remove', 'mx-c', '--json', '--config', cfg]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as typeof rec).removedAt, rec.removedAt, 'the first removal is kept');

    const typo = await mxcert(['fleet', 'remove', 'mx-x', '--config', cfg]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /mx-x is neither in fleet\.members \(mx-a, mx-b, mx-c\) nor has it reported to the fleet; nothing removed/);
    const bad = await mxcert(['fleet', 'remove', 'MX_C', '--config', cfg]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not a member name/);

    const status = JSON.parse((await mxcert(['fleet', 'status', '--config', cfg])).stdout) as FleetStatusView;
    assert.deepEqual(status.members.find((m) => m.name === 'mx-c')?.removed, { at: rec.removedAt, by: 'mx-a' });
    assert.equal(status.members.find((m) => m.name === 'mx-x'), undefined);
  });

  it('etcd unreachable: exit 1 with a message naming etcd, within the deadline', async () => {
    const port = await freePort();
    const cfg = await config(fleetBlock([`http://127.0.0.1:${port}`]));
    const t0 = Date.now();
    const r = await mxcert(['fleet', 'status', '--config', cfg]);
    const took = Date.now() - t0;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^mxcert: etcd \(http:\/\/127\.0\.0\.1:\d+\) unavailable: could not read the leader key: .*ECONNREFUSED/);
    assert.ok(took < 2000 + 5000, `took ${took} ms`);
  });

  it('a config without a fleet block: usage error', async () => {
    const cfg = await config(undefined);
    const r = await mxcert(['fleet', 'status', '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /has no fleet block/);
  });
});
