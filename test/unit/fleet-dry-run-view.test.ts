import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fleetDryRunView, type FleetDryRunInput } from '../../src/fleet/dry-run-view.js';
import { resultText } from '../../src/cli/renew.js';

const at = new Date('2026-12-07T10:00:00.000Z');
const base = (over: Partial<FleetDryRunInput> = {}): FleetDryRunInput => ({
  member: 'mx-b',
  lineage: { serial: '0a1b', generation: 4, notAfter: '2026-12-09T00:00:00.000Z' },
  deployedSerial: '0a1b',
  dane: false,
  plan: { due: false, reason: 'lifetime-fraction', at },
  ...over,
});

describe('fleetDryRunView (renew --dry-run on a fleet certificate)', () => {
  it('another member leads: this pass is a member and orders nothing, even when the lineage is due', () => {
    const v = fleetDryRunView(base({ leader: 'mx-a', plan: { due: true, reason: 'lifetime-fraction', at } }));
    assert.equal(v.role, 'member');
    assert.equal(v.wouldOrder, false);
    assert.equal(v.leader, 'mx-a');
    assert.match(v.lines[0]!, /^mx-a leads the fleet: this pass would act as a member and order nothing$/);
    assert.match(v.lines[1]!, /the lineage \(serial 0a1b, generation 4, .*\) is due \(lifetime-fraction\): its leader orders, not this member/);
  });
  it('this host holds the leader key in another pass (the daemon): still a member for this pass', () => {
    const v = fleetDryRunView(base({ leader: 'mx-b', plan: { due: true, reason: 'lifetime-fraction', at } }));
    assert.equal(v.wouldOrder, false);
    assert.match(v.lines[0]!, /^mx-b \(this host, in another pass\) leads/);
  });
  it('nobody leads and the lineage is due: it would campaign and order once', () => {
    const v = fleetDryRunView(base({ plan: { due: true, reason: 'lifetime-fraction', at } }));
    assert.equal(v.role, 'candidate');
    assert.equal(v.wouldOrder, true);
    assert.match(v.lines[1]!, /elected, this pass would order once and publish the new lineage/);
  });
  it('nobody leads, not due: no order', () => {
    const v = fleetDryRunView(base());
    assert.equal(v.wouldOrder, false);
    assert.match(v.lines[1]!, /is not due \(lifetime-fraction, at 2026-12-07T10:00:00.000Z\)/);
  });
  it('deploy: the stored lineage serial when this host serves another one; nothing when it serves it', () => {
    const behind = fleetDryRunView(base({ deployedSerial: '09ff' }));
    assert.equal(behind.wouldDeploy, '0a1b');
    assert.match(behind.lines[2]!, /^would deploy serial 0a1b \(generation 4\) from the stored lineage; this host serves serial 09ff now$/);
    const fresh = fleetDryRunView(base({ deployedSerial: undefined }));
    assert.equal(fresh.wouldDeploy, '0a1b');
    assert.match(fresh.lines[2]!, /serves nothing of mxcert now/);
    const same = fleetDryRunView(base());
    assert.equal(same.wouldDeploy, undefined);
    assert.match(same.lines[2]!, /serves the lineage's serial 0a1b already: nothing to deploy/);
  });
  it('a key that does not open here: it would refuse the lineage and keep serving', () => {
    const v = fleetDryRunView(base({ deployedSerial: '09ff', sealError: 'sealed with key id aa, this host has key id bb' }));
    assert.equal(v.wouldDeploy, undefined);
    assert.match(v.lines[2]!, /would refuse the stored lineage \(serial 0a1b\) and keep serving 09ff: sealed with key id aa/);
  });
  it('no lineage yet; DANE phases', () => {
    const none = fleetDryRunView(base({ lineage: undefined, deployedSerial: undefined, plan: { due: true, reason: 'missing', at } }));
    assert.equal(none.wouldOrder, true);
    assert.match(none.lines[1]!, /the fleet has no lineage yet; it is due \(missing\)/);
    assert.match(none.lines[2]!, /nothing to deploy from the fleet: there is no lineage yet/);
    assert.equal(none.danePhase, null);
    const dane = fleetDryRunView(base({ dane: true, danePhase: 'RETIRE_OLD', deployedSerial: '09ff' }));
    assert.equal(dane.danePhase, 'RETIRE_OLD');
    assert.match(dane.lines[3]!, /the fleet's DANE journal is in RETIRE_OLD/);
    assert.match(dane.lines[2]!, /if the DANE journal and every authoritative server allow it/);
    assert.match(fleetDryRunView(base({ dane: true })).lines[3]!, /DANE is on but the fleet has no DANE journal yet/);
  });
  it('the renew text: the fleet lines, and a due lineage on a member is not "would renew now"', () => {
    const fleet = fleetDryRunView(base({ leader: 'mx-a', plan: { due: true, reason: 'lifetime-fraction', at } }));
    const t = resultText({ cert: 'mx', keyType: 'ecdsa-p256', status: 'planned', plan: { due: true, reason: 'lifetime-fraction', at }, fleet });
    assert.match(t, /^mx \(ecdsa-p256\): fleet: mx-a leads the fleet/);
    assert.match(t, /mx \(ecdsa-p256\): the fleet's lineage is due \(lifetime-fraction\); this member would not order it\n$/);
    assert.doesNotMatch(t, /would renew now/);
  });
});
