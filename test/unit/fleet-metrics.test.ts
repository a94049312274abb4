// Fleet metrics: which member holds back the retire of the old key and
// since when (src/metrics/fleet-samples.ts), and how MxcertMetrics exports it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fleetSamples, type FleetUnitView } from '../../src/metrics/fleet-samples.js';
import { MxcertMetrics } from '../../src/metrics/metrics.js';

const CUR = 'cc'.repeat(32);
const OLD = 'ee'.repeat(32);
const SWAP = '2026-12-07T08:00:00.000Z';
const s = (iso: string) => Date.parse(iso) / 1000;

const unit = (phase: string, over: Partial<FleetUnitView> = {}): FleetUnitView => ({
  cert: 'mx',
  keyType: 'ecdsa-p256',
  journal: { phase: phase as never, swappedAt: SWAP, current: { id: 'c', tlsa: CUR, createdAt: SWAP } },
  members: [
    { member: 'mx-a', servedTlsa: CUR, verifiedAt: '2026-12-07T08:01:00.000Z' },
    // Serves the current key, but verified before the swap: a stale report, counted as blocking.
    { member: 'mx-b', servedTlsa: CUR, verifiedAt: '2026-12-07T07:59:00.000Z' },
    { member: 'mx-c', servedTlsa: OLD, verifiedAt: '2026-12-06T12:00:00.000Z' },
    { member: 'mx-d' },
  ],
  ...over,
});

describe('fleet metrics', () => {
  it('RETIRE_OLD: every member not serving the current key since the swap, with the swap time', () => {
    const { retireWaiting, lastVerified } = fleetSamples([unit('RETIRE_OLD')]);
    assert.deepEqual(retireWaiting.map((x) => [x.member, x.value]), [['mx-b', s(SWAP)], ['mx-c', s(SWAP)], ['mx-d', s(SWAP)]]);
    assert.deepEqual(lastVerified.map((x) => [x.member, x.value]), [['mx-a', s('2026-12-07T08:01:00.000Z')], ['mx-b', s('2026-12-07T07:59:00.000Z')], ['mx-c', s('2026-12-06T12:00:00.000Z')]]);
  });
  it('other phases and no journal: nobody blocks a retire', () => {
    assert.deepEqual(fleetSamples([unit('STEADY'), unit('SWAP'), unit('STEADY', { journal: undefined })]).retireWaiting, []);
  });
  it('exported as gauges per member; etcd down keeps the last values and says so', async () => {
    const m = new MxcertMetrics({ processMetrics: false });
    m.setFleet([unit('RETIRE_OLD')]);
    let text = await m.text();
    assert.match(text, new RegExp(`mxcert_fleet_retire_waiting_since_timestamp_seconds\\{cert="mx",key_type="ecdsa-p256",member="mx-c"\\} ${s(SWAP)}\\n`));
    assert.doesNotMatch(text, /mxcert_fleet_retire_waiting_since_timestamp_seconds\{[^}]*member="mx-a"/);
    assert.match(text, /mxcert_fleet_member_last_verified_timestamp_seconds\{cert="mx",key_type="ecdsa-p256",member="mx-c"\} 1796558400\n/);
    assert.match(text, /mxcert_fleet_etcd_up 1\n/);
    m.setFleet(new Error('etcd unavailable'));
    text = await m.text();
    assert.match(text, /mxcert_fleet_etcd_up 0\n/);
    assert.match(text, /member="mx-c"\} 1796558400\n/);
    m.setFleet([unit('STEADY')]);
    assert.doesNotMatch(await m.text(), /mxcert_fleet_retire_waiting_since_timestamp_seconds\{/, 'the retire done: no member waited for');
  });
});
