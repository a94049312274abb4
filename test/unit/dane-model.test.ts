// The DANE machine against a small model of the world (test/support/dane-model.ts):
// fast-check drives random histories of passes, kills, lag, fallbacks, hand
// edits and TTL changes; `decide` and the executor are the real ones.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { simulate, type ModelParams, type WorldEvent } from '../support/dane-model.js';

const pass = fc.record({
  kind: fc.constant('pass' as const),
  renewalDue: fc.boolean(),
  crashAt: fc.option(fc.nat(12), { nil: undefined }),
  crashAfter: fc.boolean(),
  failDeploy: fc.boolean().map((b) => b && Math.random() < 0.2),
});

const event: fc.Arbitrary<WorldEvent> = fc.oneof(
  { arbitrary: pass, weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 20_000 }) }), weight: 5 },
  { arbitrary: fc.constant({ kind: 'rollover' as const }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('foreign-add' as const), ttlUp: fc.integer({ min: 0, max: 12 }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('hand-remove' as const), what: fc.constantFrom('current' as const, 'next' as const, 'foreign' as const, 'all' as const) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('fallback' as const), server: fc.nat(3), back: fc.integer({ min: 1, max: 4 }) }), weight: 1 },
);

export const params: fc.Arbitrary<ModelParams> = fc.record({
  ttl: fc.integer({ min: 1, max: 5 }),
  minHoldMs: fc.constantFrom(0, 1000, 7000),
  keyLifetimeMs: fc.integer({ min: 10_000, max: 60_000 }),
  lags: fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 0, maxLength: 3 }),
  foreignTtl: fc.option(fc.integer({ min: 1, max: 15 }), { nil: undefined }),
});

describe('the DANE machine in a modelled world (fast-check)', () => {
  it('never serves a key missing from an RRset returned within 2 × TTL, through crashes, lag, fallbacks and hand edits', async () => {
    const totals = { swaps: 0, crashes: 0, passes: 0 };
    await fc.assert(
      fc.asyncProperty(params, fc.array(event, { minLength: 5, maxLength: 40 }), async (p, events) => {
        // mxcert runs from the start: the world before its first look is not its doing.
        const w = await simulate(p, [{ kind: 'pass', renewalDue: false, crashAfter: false, failDeploy: false }, ...events]);
        totals.swaps += w.stats.swaps;
        totals.crashes += w.stats.crashes;
        totals.passes += w.stats.passes;
        assert.deepEqual(w.violations, []);
      }),
      { numRuns: Number(process.env.MXCERT_MODEL_RUNS ?? 400) },
    );
    // The histories must actually exercise swaps and crashes, or the property says little.
    assert.ok(totals.swaps > 100, JSON.stringify(totals));
    assert.ok(totals.crashes > 100, JSON.stringify(totals));
  });
});
