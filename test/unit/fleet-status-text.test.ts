import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderFleet, retireWaitLines } from '../../src/cli/fleet-status-text.js';
import type { FleetStatusView } from '../../src/fleet/status.js';

const view = (over: Partial<FleetStatusView> = {}): FleetStatusView => ({
  prefix: '/mxcert/x/',
  self: { member: 'mx-a', keyId: '0123456789abcdef' },
  leader: { member: 'mx-b', since: '2026-01-01T00:00:00.000Z' },
  members: [
    { name: 'mx-a', configured: true, leader: false, removed: null, reports: [{ cert: 'mx', units: { 'ecdsa-p256': { spkiSha256: 'ab'.repeat(32), serial: '01ff' } }, generation: 3, verifiedAt: '2026-01-01T00:00:00.000Z' }] },
    { name: 'mx-b', configured: true, leader: true, removed: null, reports: [] },
    { name: 'mx-c', configured: false, leader: false, removed: { at: '2026-01-02T00:00:00.000Z', by: 'mx-a' }, reports: [{ cert: 'mx', units: {}, verifiedAt: '2026-01-01T00:00:00.000Z', error: { message: 'fleet: the sealed key … fails authentication', at: '2026-01-01T00:00:00.000Z' } }] },
  ],
  certificates: [{ name: 'mx', generation: 3, updatedBy: 'mx-b', updatedAt: '2026-01-01T00:00:00.000Z', units: { 'ecdsa-p256': { serial: '01ff', notAfter: '2026-03-01T00:00:00.000Z', sealedWith: '0123456789abcdef' } } }],
  problems: [],
  ...over,
});

describe('renderFleet (the fleet part of mxcert status)', () => {
  it('names the leader, the lineage and what each member serves, with errors and removals', () => {
    const t = renderFleet('fleet', view());
    assert.match(t, /^fleet:\n  leader: mx-b since /);
    assert.match(t, /  lineage mx \(generation 3, by mx-b .*\): ecdsa-p256 serial 01ff until /);
    assert.match(t, /  mx-a: mx: ecdsa-p256 serial 01ff, SPKI abababababababab…; verified .*, generation 3\n/);
    assert.match(t, /  mx-b \(leader\): no report\n/);
    assert.match(t, /  mx-c \(not in fleet.members, removed .* by mx-a\): mx: no served key reported; verified .*; last error .*: fleet: the sealed key … fails authentication\n/);
  });
  it('says when nobody leads and lists problems', () => {
    const t = renderFleet('fleet', view({ leader: null, problems: ['fleet key members/mx-d/mx: not JSON'] }));
    assert.match(t, /  leader: none \(no pass is running\)/);
    assert.match(t, /  problem: fleet key members\/mx-d\/mx: not JSON\n$/);
  });
  it('RETIRE_OLD: names each member the retire of the old key waits for, with what it last reported and when', () => {
    const t = '2026-01-01T00:00:00.000Z';
    const j = (phase: string) => ({ version: 2, phase, current: { id: 'c', tlsa: 'ab'.repeat(32), createdAt: t }, next: { id: 'n', tlsa: 'dd'.repeat(32), createdAt: t }, old: { id: 'o', tlsa: 'ee'.repeat(32), createdAt: t }, swappedAt: '2025-12-31T00:00:00.000Z', updatedAt: t });
    const v = view({ members: [
      { name: 'mx-a', configured: true, leader: false, removed: null, reports: [{ cert: 'mx', units: { 'ecdsa-p256': { spkiSha256: 'ab'.repeat(32), serial: '01ff' } }, verifiedAt: t }] },
      { name: 'mx-b', configured: true, leader: false, removed: null, reports: [{ cert: 'mx', units: { 'ecdsa-p256': { spkiSha256: 'ee'.repeat(32), serial: '01fe' } }, verifiedAt: '2025-12-30T00:00:00.000Z' }] },
      { name: 'mx-c', configured: true, leader: false, removed: { at: t, by: 'mx-a' }, reports: [] },
    ] });
    const lines = retireWaitLines(v, { mx: { 'ecdsa-p256': j('RETIRE_OLD') } });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^  mx \(ecdsa-p256\): DANE RETIRE_OLD since the swap at .*: retire of the old key waits for: mx-b \(serves 3 1 1 eeeeeeeeeeee… \(the old key\), verified 2025-12-30T00:00:00.000Z\)\n$/);
    assert.doesNotMatch(lines[0]!, /mx-a|mx-c/, 'mx-a serves the current key since the swap; mx-c was removed');
    assert.deepEqual(retireWaitLines(v, { mx: { 'ecdsa-p256': j('STEADY') } }), []);
  });
});
