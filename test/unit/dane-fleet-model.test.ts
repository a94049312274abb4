// DANE across a fleet in a modelled world (test/support/dane-fleet-model.ts):
// fast-check drives random histories of leader passes, leader kills and
// failovers, members applying the lineage late, a member down for a while,
// lag, fallbacks and hand edits. `decide`, the executor and the member's
// verdict are the real ones.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { simulateFleet, type FleetEvent, type FleetParams } from '../support/dane-fleet-model.js';

const pass = fc.record({
  kind: fc.constant('pass' as const),
  renewalDue: fc.boolean(),
  crashAt: fc.option(fc.nat(12), { nil: undefined }),
  crashAfter: fc.boolean(),
  failDeploy: fc.boolean().map((b) => b && Math.random() < 0.2),
});

const event: fc.Arbitrary<FleetEvent> = fc.oneof(
  { arbitrary: pass, weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant('member' as const), index: fc.nat(3), crash: fc.boolean().map((b) => b && Math.random() < 0.3) }), weight: 4 },
  { arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 20_000 }) }), weight: 5 },
  { arbitrary: fc.constant({ kind: 'rollover' as const }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('down' as const), index: fc.nat(3) }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'up' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'failover' as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('foreign-add' as const), ttlUp: fc.integer({ min: 0, max: 12 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('hand-remove' as const), what: fc.constantFrom('current' as const, 'next' as const, 'foreign' as const, 'all' as const) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('fallback' as const), server: fc.nat(3), back: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
);

const fleetParams: fc.Arbitrary<FleetParams> = fc.record({
  ttl: fc.integer({ min: 1, max: 5 }),
  minHoldMs: fc.constantFrom(0, 1000, 7000),
  keyLifetimeMs: fc.integer({ min: 10_000, max: 60_000 }),
  lags: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 0, maxLength: 3 }),
  foreignTtl: fc.option(fc.integer({ min: 1, max: 15 }), { nil: undefined }),
  members: fc.integer({ min: 2, max: 4 }),
});

/**
 * Histories fast-check found while a rule was taken out: each breaks the
 * invariant, or the rollover's completion, without the rule it names.
 */
const FOUND: Array<{ rule: string; params: FleetParams; events: FleetEvent[] }> = [
  {
    rule: "the first publish waits for every member (src/dane/decide.ts)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], members: 2 },
    events: [{ kind: 'member', index: 0, crash: false }, { kind: 'wait', ms: 0 }, { kind: 'failover' }, { kind: 'rollover' }, { kind: 'down', index: 0 }],
  },
  {
    rule: "the retire waits for every member (src/dane/decide.ts)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], members: 2 },
    events: [{ kind: 'foreign-add', ttlUp: 0 }, { kind: 'up' }, { kind: 'rollover' }, { kind: 'wait', ms: 0 }, { kind: 'down', index: 0 }],
  },
  {
    rule: "the retire puts back missing records (liveness)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], foreignTtl: 1, members: 2 },
    events: [{ kind: 'wait', ms: 10000 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'down', index: 0 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'hand-remove', what: 'current' }],
  },
  {
    rule: "the retire puts back missing records before its clock wait",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [0], foreignTtl: 4, members: 3 },
    events: [{ kind: 'wait', ms: 8000 }, { kind: 'rollover' }, { kind: 'down', index: 0 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'fallback', server: 0, back: 1 }, { kind: 'rollover' }],
  },
  {
    rule: "the current key’s hold restarts after a record came back (currentHoldUntil)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [0], foreignTtl: 2, members: 2 },
    events: [{ kind: 'wait', ms: 4000 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'rollover' }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'fallback', server: 0, back: 1 }, { kind: 'fallback', server: 0, back: 1 }],
  },
  {
    rule: "a missing record is noted before it is put back (currentHoldReset)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], foreignTtl: 1, members: 2 },
    events: [{ kind: 'wait', ms: 7695 }, { kind: 'wait', ms: 2305 }, { kind: 'foreign-add', ttlUp: 1 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'wait', ms: 0 }, { kind: 'hand-remove', what: 'current' }, { kind: 'pass', renewalDue: false, crashAt: 1, crashAfter: false, failDeploy: false }, { kind: 'hand-remove', what: 'current' }],
  },
  {
    rule: "an undone update is sent again (liveness, src/dane/decide.ts)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [0], foreignTtl: 1, members: 2 },
    events: [{ kind: 'fallback', server: 0, back: 1 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'hand-remove', what: 'current' }, { kind: 'member', index: 0, crash: false }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'wait', ms: 0 }, { kind: 'member', index: 0, crash: false }],
  },
  {
    rule: "a member waits for the hold (src/fleet/member-decide.ts)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], members: 2 },
    events: [{ kind: 'member', index: 0, crash: false }, { kind: 'failover' }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'wait', ms: 0 }, { kind: 'foreign-add', ttlUp: 0 }],
  },
  {
    rule: "a member deploys only a key every server publishes",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], foreignTtl: 1, members: 2 },
    events: [{ kind: 'wait', ms: 2000 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'hand-remove', what: 'current' }, { kind: 'up' }, { kind: 'down', index: 0 }, { kind: 'foreign-add', ttlUp: 0 }, { kind: 'member', index: 3, crash: false }],
  },
  {
    rule: "a member serves the current key before the first publish (liveness)",
    params: { ttl: 1, minHoldMs: 0, keyLifetimeMs: 10000, lags: [], members: 2 },
    events: [{ kind: 'up' }, { kind: 'member', index: 0, crash: false }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, { kind: 'fallback', server: 0, back: 1 }, { kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }],
  },
];

describe('DANE across a fleet in a modelled world (fast-check)', () => {
  for (const h of FOUND) {
    it(`a history that needs: ${h.rule}`, async () => {
      const f = await simulateFleet(h.params, [{ kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, ...h.events]);
      assert.deepEqual(f.w.violations, []);
      assert.equal(f.liveness, undefined);
    });
  }

  it('no member ever serves a key missing from an RRset returned within 2 × TTL, and the rollover completes once every member is up', async () => {
    const totals = { swaps: 0, crashes: 0, passes: 0, retireWaits: 0, publishWaits: 0, memberDeploys: 0, refusals: 0, downs: 0, failovers: 0 };
    await fc.assert(
      fc.asyncProperty(fleetParams, fc.array(event, { minLength: 5, maxLength: 60 }), async (p, events) => {
        const f = await simulateFleet(p, [{ kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, ...events]);
        totals.swaps += f.w.stats.swaps;
        totals.crashes += f.w.stats.crashes;
        totals.passes += f.w.stats.passes;
        for (const k of Object.keys(f.fleetStats) as Array<keyof typeof f.fleetStats>) totals[k] += f.fleetStats[k];
        assert.deepEqual(f.w.violations, []);
        assert.equal(f.liveness, undefined);
      }),
      { numRuns: Number(process.env.MXCERT_MODEL_RUNS ?? 300) },
    );
    assert.ok(totals.swaps > 100, JSON.stringify(totals));
    assert.ok(totals.crashes > 100, JSON.stringify(totals));
    // ...and retires held back by members, the first publish waiting for them, refusals, members down and failovers.
    for (const k of ['retireWaits', 'publishWaits', 'refusals', 'downs', 'failovers'] as const) assert.ok(totals[k] > 50, JSON.stringify(totals));
    if (process.env.MXCERT_MODEL_STATS) console.log(totals);
  });
});
