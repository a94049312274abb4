import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  backoffUntil,
  chooseAriInstant,
  emergencyPoint,
  fallbackRenewalTime,
  jitterFor,
  renewalTime,
  type RenewalInput,
} from '../../src/schedule/renewal-time.js';

const DAY = 86_400_000;
const H = 3_600_000;
const M = 60_000;
const t0 = Date.UTC(2026, 10, 1);
const d = (ms: number) => new Date(t0 + ms);
const cert = (lifeMs: number, names = ['mx1.example.test']) => ({ notBefore: d(0), notAfter: d(lifeMs), names });

describe('fallback renewal point (no ARI)', () => {
  it('a 90-day certificate renews at day 60', () => {
    assert.equal(fallbackRenewalTime(cert(90 * DAY)).getTime(), t0 + 60 * DAY);
  });
  it('a 6-day (160 h) certificate renews with half its lifetime left', () => {
    assert.equal(fallbackRenewalTime(cert(160 * H)).getTime(), t0 + 80 * H);
  });
  it('a 47-day certificate renews with a third left', () => {
    assert.equal(fallbackRenewalTime(cert(47 * DAY)).getTime(), t0 + Math.round((47 * DAY * 2) / 3));
  });
  it('jitter only delays, by at most 2% of the lifetime', () => {
    const base = fallbackRenewalTime(cert(90 * DAY)).getTime();
    assert.equal(fallbackRenewalTime(cert(90 * DAY), 0.5).getTime(), base + 0.9 * DAY);
    assert.ok(fallbackRenewalTime(cert(90 * DAY), 0.9999).getTime() < base + 1.8 * DAY + 1);
  });
  it('jitterFor is stable and in [0,1)', () => {
    assert.equal(jitterFor('mx1/ecdsa-p256'), jitterFor('mx1/ecdsa-p256'));
    assert.notEqual(jitterFor('mx1/ecdsa-p256'), jitterFor('mx1/rsa-2048'));
    for (const k of ['a', 'b', 'mx1', 'x'.repeat(100)]) assert.ok(jitterFor(k) >= 0 && jitterFor(k) < 1);
  });
});

describe('renewalTime decisions', () => {
  const base = (over: Partial<RenewalInput>): RenewalInput => ({ current: cert(90 * DAY), wantedNames: ['mx1.example.test'], now: d(DAY), ...over });
  it('forced wins over everything', () => {
    const r = renewalTime(base({ force: true, failures: { count: 3, lastAt: d(DAY) } }));
    assert.deepEqual(r, { at: d(DAY), reason: 'forced' });
  });
  it('missing certificate: now', () => {
    assert.equal(renewalTime(base({ current: undefined })).reason, 'missing');
  });
  it('changed names: now', () => {
    assert.equal(renewalTime(base({ wantedNames: ['mx1.example.test', 'mx2.example.test'] })).reason, 'names-changed');
  });
  it('not due before the fallback point', () => {
    const r = renewalTime(base({ now: d(59 * DAY) }));
    assert.equal(r.reason, 'lifetime-fraction');
    assert.ok(r.at.getTime() > t0 + 59 * DAY);
  });
  it('ARI instant used when present, even early in the lifetime', () => {
    const r = renewalTime(base({ ari: { window: { start: d(10 * DAY), end: d(11 * DAY) }, at: d(10.5 * DAY) } }));
    assert.deepEqual(r, { at: d(10.5 * DAY), reason: 'ari-window' });
  });
  it('an ARI window in the past means renew at once', () => {
    const r = renewalTime(base({ now: d(30 * DAY), ari: { window: { start: d(5 * DAY), end: d(6 * DAY) }, at: d(5.5 * DAY) } }));
    assert.ok(r.at.getTime() <= t0 + 30 * DAY);
  });
  it('in the last 1/20 of the lifetime: emergency, whatever ARI says', () => {
    const r = renewalTime(base({ now: d(86 * DAY), ari: { window: { start: d(89 * DAY), end: d(100 * DAY) }, at: d(95 * DAY) } }));
    assert.deepEqual(r, { at: d(86 * DAY), reason: 'emergency' });
  });
  it('after failures: 1 min, 10 min, 100 min, then daily', () => {
    const lastAt = d(61 * DAY);
    const steps = [1, 2, 3, 4, 7].map((count) => backoffUntil({ count, lastAt }, cert(90 * DAY)).getTime() - lastAt.getTime());
    assert.deepEqual(steps, [M, 10 * M, 100 * M, DAY, DAY]);
    const r = renewalTime(base({ now: d(61 * DAY), failures: { count: 2, lastAt } }));
    assert.deepEqual(r, { at: new Date(lastAt.getTime() + 10 * M), reason: 'backoff' });
  });
  it('backoff of a 6-day certificate is capped so three attempts fit before expiry', () => {
    const c = cert(6 * DAY);
    const lastAt = d(5 * DAY); // one day left
    const until = backoffUntil({ count: 4, lastAt }, c);
    assert.equal(until.getTime() - lastAt.getTime(), 6 * H);
  });
  it('Retry-After from the CA is never undercut', () => {
    const lastAt = d(61 * DAY);
    const until = backoffUntil({ count: 1, lastAt, retryAfterUntil: d(61 * DAY + 3 * H) }, cert(90 * DAY));
    assert.equal(until.getTime(), t0 + 61 * DAY + 3 * H);
  });
  it('once the backoff has passed, the normal decision applies', () => {
    const lastAt = d(61 * DAY);
    const r = renewalTime(base({ now: d(61 * DAY + 2 * M), failures: { count: 1, lastAt } }));
    assert.equal(r.reason, 'lifetime-fraction');
    assert.ok(r.at.getTime() <= t0 + 61 * DAY + 2 * M, 'due');
  });
});

describe('ARI instant choice', () => {
  const win = { start: d(10 * DAY), end: d(12 * DAY) };
  it('is kept while the window is unchanged', () => {
    const first = chooseAriInstant(win, undefined, () => 0.25);
    assert.equal(first.at.getTime(), t0 + 10.5 * DAY);
    const again = chooseAriInstant({ start: d(10 * DAY), end: d(12 * DAY) }, first, () => 0.9);
    assert.equal(again.at.getTime(), first.at.getTime(), 'not redrawn');
  });
  it('is redrawn when the window changes', () => {
    const first = chooseAriInstant(win, undefined, () => 0.25);
    const moved = chooseAriInstant({ start: d(3 * DAY), end: d(4 * DAY) }, first, () => 0.5);
    assert.equal(moved.at.getTime(), t0 + 3.5 * DAY);
  });
});

describe('properties', () => {
  const lifetime = fc.integer({ min: H, max: 400 * DAY });
  it('the instant lies within [notBefore, notAfter] (or is now, when due)', () => {
    fc.assert(
      fc.property(lifetime, fc.double({ min: 0, max: 1.2, noNaN: true }), fc.double({ min: 0, max: 0.999, noNaN: true }), fc.option(fc.tuple(fc.double({ min: -0.5, max: 2, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 0.999, noNaN: true }))), (life, nowFrac, jitter, ari) => {
        const c = cert(life);
        const now = d(Math.floor(life * nowFrac));
        const ariChoice = ari
          ? chooseAriInstant({ start: d(life * ari[0]), end: d(life * ari[0] + life * ari[1]) }, undefined, () => ari[2])
          : undefined;
        const r = renewalTime({ current: c, wantedNames: c.names, now, jitter, ari: ariChoice });
        const at = r.at.getTime();
        if (at <= now.getTime()) return; // due now
        assert.ok(at >= c.notBefore.getTime() && at <= c.notAfter.getTime(), `${r.reason} at ${at - t0} outside [0, ${life}]`);
      }),
      { numRuns: 2000 },
    );
  });
  it('an ARI instant lies inside its window', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e12 }), fc.integer({ min: 0, max: 30 * DAY }), fc.double({ min: 0, max: 0.99999, noNaN: true }), (start, len, rnd) => {
        const c = chooseAriInstant({ start: new Date(start), end: new Date(start + len) }, undefined, () => rnd);
        assert.ok(c.at.getTime() >= start && c.at.getTime() <= start + len);
      }),
    );
  });
  it('without ARI, never due before the fallback point', () => {
    fc.assert(
      fc.property(lifetime, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 0.999, noNaN: true }), (life, nowFrac, jitter) => {
        const c = cert(life);
        const now = d(Math.floor(life * nowFrac));
        const r = renewalTime({ current: c, wantedNames: c.names, now, jitter });
        const due = r.at.getTime() <= now.getTime();
        if (due) assert.ok(now.getTime() >= fallbackRenewalTime(c, 0).getTime(), `due at ${nowFrac} of the lifetime (${r.reason})`);
      }),
      { numRuns: 2000 },
    );
  });
  it('emergency always wins over ARI and the fallback (absent a pending backoff)', () => {
    fc.assert(
      fc.property(lifetime, fc.double({ min: 0.95, max: 1.5, noNaN: true }), fc.double({ min: 0, max: 3, noNaN: true }), (life, nowFrac, ariStart) => {
        const c = cert(life);
        const now = d(Math.ceil(life * nowFrac));
        fc.pre(now.getTime() >= emergencyPoint(c).getTime());
        const ari = chooseAriInstant({ start: d(life * ariStart), end: d(life * ariStart + DAY) }, undefined, () => 0.5);
        const r = renewalTime({ current: c, wantedNames: c.names, now, ari });
        assert.deepEqual(r, { at: now, reason: 'emergency' });
      }),
      { numRuns: 1000 },
    );
  });
  it('backoff leaves room for at least three attempts before expiry', () => {
    fc.assert(
      fc.property(lifetime, fc.double({ min: 0, max: 0.99, noNaN: true }), fc.integer({ min: 1, max: 20 }), (life, failFrac, count) => {
        const c = cert(life);
        const lastAt = d(Math.floor(life * failFrac));
        const left = c.notAfter.getTime() - lastAt.getTime();
        const delay = backoffUntil({ count, lastAt }, c).getTime() - lastAt.getTime();
        assert.ok(delay <= Math.max(M, left / 4) + 1, `delay ${delay} vs ${left} left`);
      }),
    );
  });
});
