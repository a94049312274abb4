// The daemon's metrics on a fleet member, against a real 3-node etcd
// cluster: a member that blocks the retire of the old key is exported with
// the time the wait began, every member with its last live verification,
// and etcd losing quorum shows as mxcert_fleet_etcd_up 0 within the request
// deadline (docs/architecture.md, "Fleet").
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import { registerTempDir } from '../env/proc.js';
import { loadConfig } from '../../src/config/load.js';
import { openEtcd } from '../../src/fleet/etcd-client.js';
import { campaign } from '../../src/fleet/leader.js';
import { ABSENT, FleetStore } from '../../src/fleet/store.js';
import { MxcertMetrics } from '../../src/metrics/metrics.js';

const PREFIX = '/mxcert/metrics-test/';
const CUR = 'cc'.repeat(32);
const NEXT = 'dd'.repeat(32);
const OLD = 'ee'.repeat(32);

describe('fleet metrics from etcd', { timeout: 180_000 }, () => {
  let dir: string;
  let cluster: EtcdCluster;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-fleet-metrics-'));
    registerTempDir(dir);
    await mkdir(path.join(dir, 'out'), { mode: 0o700 });
    await writeFile(path.join(dir, 'fleet.key'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    cluster = await startEtcdCluster();
  });
  after(async () => {
    await cluster?.stop().catch(() => undefined);
  });

  it('names the member the retire waits for and since when; etcd without quorum shows as down', async () => {
    const file = path.join(dir, 'config.yaml');
    const fleet = { member: 'mx-a', members: ['mx-a', 'mx-b', 'mx-c'], etcd: { endpoints: cluster.endpoints, prefix: PREFIX, dialTimeout: '2s', requestTimeout: '2s' }, keyEncryption: { keyFile: path.join(dir, 'fleet.key') } };
    const cert = { name: 'mx', fleet: true, domains: ['mx.example.com'], challenge: { type: 'http-01', http: { listen: '[::]:80' } }, output: { combined: path.join(dir, 'out', 'mx.pem') } };
    await writeFile(file, stringify({ stateDir: path.join(dir, 'state'), acme: { directory: 'https://acme.example.test/directory' }, fleet, certificates: [cert] }), { mode: 0o600 });
    const config = await loadConfig(file);

    const etcd = await openEtcd({ endpoints: cluster.endpoints, prefix: PREFIX, dialTimeoutMs: 2000, requestTimeoutMs: 2000 });
    const store = new FleetStore(etcd);
    const swappedAt = new Date(Date.now() - 3_600_000).toISOString();
    const t = new Date().toISOString();
    try {
      const term = await campaign(etcd, { member: 'mx-a', ttlSeconds: 10 });
      const journal = { version: 2, phase: 'RETIRE_OLD', current: { id: 'c', tlsa: CUR, createdAt: t }, next: { id: 'n', tlsa: NEXT, createdAt: t }, old: { id: 'o', tlsa: OLD, createdAt: t }, swappedAt, updatedAt: t };
      await store.putDane('mx', { v: 1, journal: { 'ecdsa-p256': journal }, next: {}, updatedBy: 'mx-a', updatedAt: t }, ABSENT, term.fence);
      await term.resign();
      const report = (member: string, tlsa: string, verifiedAt: string) => ({ v: 1 as const, member, cert: 'mx', units: { 'ecdsa-p256': { spkiSha256: tlsa, serial: '0a' } }, verifiedAt });
      await store.putReport(report('mx-a', CUR, t), ABSENT);
      const bSeen = new Date(Date.now() - 7_200_000).toISOString();
      await store.putReport(report('mx-b', OLD, bSeen), ABSENT);
    } finally {
      etcd.close();
    }

    const m = new MxcertMetrics({ processMetrics: false });
    await m.refresh(config, new Date());
    const text = await m.text();
    const sec = (iso: string) => String(Date.parse(iso) / 1000);
    assert.match(text, /mxcert_fleet_etcd_up 1\n/);
    for (const who of ['mx-b', 'mx-c']) {
      assert.ok(text.includes(`mxcert_fleet_retire_waiting_since_timestamp_seconds{cert="mx",key_type="ecdsa-p256",member="${who}"} ${sec(swappedAt)}\n`), `${who} blocks the retire:\n${text}`);
    }
    assert.doesNotMatch(text, /mxcert_fleet_retire_waiting_since_timestamp_seconds\{[^}]*member="mx-a"/, 'mx-a serves the current key since the swap');
    assert.match(text, /mxcert_fleet_member_last_verified_timestamp_seconds\{cert="mx",key_type="ecdsa-p256",member="mx-b"\} \d+/);
    assert.doesNotMatch(text, /mxcert_fleet_member_last_verified_timestamp_seconds\{[^}]*member="mx-c"/, 'mx-c never reported');

    await cluster.stopMember(1);
    await cluster.stopMember(2);
    try {
      const t0 = Date.now();
      await m.refresh(config, new Date());
      assert.ok(Date.now() - t0 < 10_000, 'the refresh does not hang');
      const down = await m.text();
      assert.match(down, /mxcert_fleet_etcd_up 0\n/);
      assert.ok(down.includes(`member="mx-c"} ${sec(swappedAt)}\n`), 'the last known blockers stay');
    } finally {
      await cluster.startMember(1);
      await cluster.startMember(2);
    }
    await cluster.waitHealthy({ deadlineMs: 30_000 });
  });
});
