import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  backoffUntil,
  chooseAriInstant,
  configChangedSince,
  emergencyPoint,
  emergencyRetryMs,
  fallbackRenewalTime,
  jitterFor,
  namesDiffer,
  renewalTime,
  retryAfterInstant,
  RETRY_AFTER_MAX_MS,
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
  it('a name removed from the config: now (names-changed), not kept until the next renewal', () => {
    const two = cert(90 * DAY, ['mx1.example.test', 'mx2.example.test']);
    assert.deepEqual(renewalTime(base({ current: two, wantedNames: ['mx1.example.test'] })), { at: d(DAY), reason: 'names-changed' });
    assert.equal(renewalTime(base({ current: two, wantedNames: ['MX2.example.test', 'mx1.example.test.'] })).reason, 'lifetime-fraction', 'same set: case and a final dot do not count');
    assert.equal(namesDiffer(['a.test', 'b.test'], ['b.test', 'a.test']), false);
    assert.equal(namesDiffer(['a.test', 'b.test'], ['a.test']), true);
    assert.equal(namesDiffer(['a.test'], ['a.test', 'b.test']), true);
    assert.equal(namesDiffer(['*.a.test'], ['a.test']), true, 'a wildcard is not its base name');
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
  it('a config changed since the failures lifts the backoff (the operator fixed something)', () => {
    const lastAt = d(DAY);
    const failures = { count: 3, lastAt, configFingerprint: 'A' };
    const now = d(DAY + 5 * M); // 100 min of backoff left under the old config
    assert.equal(renewalTime(base({ current: undefined, now, failures, configFingerprint: 'A' })).reason, 'backoff', 'same config: still waiting');
    assert.deepEqual(renewalTime(base({ current: undefined, now, failures, configFingerprint: 'B' })), { at: now, reason: 'missing' });
    assert.equal(configChangedSince(failures, 'B'), true);
    assert.equal(configChangedSince(failures, 'A'), false);
  });
  it('an unknown fingerprint on either side keeps the backoff (history from before fingerprints)', () => {
    const now = d(DAY + 5 * M);
    const r1 = renewalTime(base({ current: undefined, now, failures: { count: 3, lastAt: d(DAY) }, configFingerprint: 'B' }));
    const r2 = renewalTime(base({ current: undefined, now, failures: { count: 3, lastAt: d(DAY), configFingerprint: 'A' } }));
    assert.deepEqual([r1.reason, r2.reason], ['backoff', 'backoff']);
  });
  it('a changed config does not lift the CA\'s Retry-After (it is about the account, not the config)', () => {
    const lastAt = d(DAY);
    const failures = { count: 1, lastAt, retryAfterUntil: d(DAY + 2 * H), configFingerprint: 'A' };
    assert.deepEqual(renewalTime(base({ current: undefined, now: d(DAY + H), failures, configFingerprint: 'B' })), { at: d(DAY + 2 * H), reason: 'backoff' });
    assert.equal(renewalTime(base({ current: undefined, now: d(DAY + 2 * H), failures, configFingerprint: 'B' })).reason, 'missing');
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

describe('Retry-After is capped and never beats the emergency rule', () => {
  const YEAR_S = 31_536_000;
  it('a 90-day certificate with 2 days left and Retry-After of a year: the next attempt within the emergency interval (1 h), not months out', () => {
    const c = cert(90 * DAY);
    const lastAt = d(88 * DAY);
    const failures = { count: 1, lastAt, retryAfterUntil: retryAfterInstant(lastAt, YEAR_S) };
    const until = backoffUntil(failures, c);
    assert.equal(emergencyRetryMs(c), H);
    assert.equal(until.getTime() - lastAt.getTime(), H);
    // As the scheduler sees it, from persisted state a minute later.
    const r = renewalTime({ current: c, wantedNames: c.names, now: d(88 * DAY + M), failures: { count: 1, lastAt, retryAfterUntil: new Date(lastAt.getTime() + YEAR_S * 1000) } });
    assert.deepEqual(r, { at: new Date(lastAt.getTime() + H), reason: 'backoff' });
  });
  it('outside the emergency window a long Retry-After is honoured up to one day', () => {
    const lastAt = d(61 * DAY);
    const until = backoffUntil({ count: 1, lastAt, retryAfterUntil: new Date(lastAt.getTime() + YEAR_S * 1000) }, cert(90 * DAY));
    assert.equal(until.getTime() - lastAt.getTime(), RETRY_AFTER_MAX_MS);
    assert.equal(RETRY_AFTER_MAX_MS, DAY);
  });
  it('for a short-lived certificate the Retry-After cap is the backoff cap (a quarter of the time left)', () => {
    const c = cert(6 * DAY);
    const lastAt = d(4 * DAY); // two days left: cap 12 h
    const until = backoffUntil({ count: 1, lastAt, retryAfterUntil: new Date(lastAt.getTime() + YEAR_S * 1000) }, c);
    assert.equal(until.getTime() - lastAt.getTime(), 12 * H);
  });
  it('a failure just before the emergency point: the backoff ends at the emergency point at the latest', () => {
    const c = cert(90 * DAY);
    const e = emergencyPoint(c).getTime();
    const lastAt = new Date(e - 3 * H);
    const until = backoffUntil({ count: 4, lastAt, retryAfterUntil: new Date(lastAt.getTime() + DAY) }, c);
    assert.equal(until.getTime(), e);
  });
  it('inside the emergency window the short interval also caps the ordinary daily step', () => {
    const c = cert(90 * DAY);
    const lastAt = d(87 * DAY);
    assert.equal(backoffUntil({ count: 9, lastAt }, c).getTime() - lastAt.getTime(), H);
  });
  it('the next attempt is never after notAfter minus the margin while that is ahead; never sooner than a minute', () => {
    const c = cert(DAY); // margin: 1/100 of a day = 14.4 min; emergency window: the last 72 min
    // 17 min left: a quarter of that (4.25 min) would end 12.75 min before expiry, inside the margin.
    const lastAt = new Date(c.notAfter.getTime() - 17 * M);
    const until = backoffUntil({ count: 3, lastAt, retryAfterUntil: new Date(lastAt.getTime() + DAY) }, c);
    assert.equal(until.getTime(), c.notAfter.getTime() - 14.4 * M);
    const late = new Date(c.notAfter.getTime() - 14.4 * M - 10_000); // 10 s before that point
    assert.equal(backoffUntil({ count: 1, lastAt: late }, c).getTime() - late.getTime(), M);
  });
  it('a persisted Retry-After deadline is capped, and an absurd header gives a valid date', () => {
    const at = d(0);
    assert.equal(retryAfterInstant(at, 120).getTime(), t0 + 120_000);
    assert.equal(retryAfterInstant(at, YEAR_S).getTime(), t0 + DAY);
    assert.equal(retryAfterInstant(at, 99_999_999_999_999).toISOString(), new Date(t0 + DAY).toISOString());
    assert.equal(retryAfterInstant(at, Number.POSITIVE_INFINITY).getTime(), t0 + DAY);
  });
  it('an unreadable persisted Retry-After is ignored, not an invalid date', () => {
    const lastAt = d(61 * DAY);
    const until = backoffUntil({ count: 1, lastAt, retryAfterUntil: new Date('garbage') }, cert(90 * DAY));
    assert.equal(until.getTime() - lastAt.getTime(), M);
  });
});

describe('boundaries pinned (each test fails if that detail changes)', () => {
  const base = (over: Partial<RenewalInput>): RenewalInput => ({ current: cert(90 * DAY), wantedNames: ['mx1.example.test'], now: d(DAY), ...over });
  it('the emergency starts at its point exactly, not a millisecond later', () => {
    const at = emergencyPoint(cert(90 * DAY));
    assert.deepEqual(renewalTime(base({ now: at })), { at, reason: 'emergency' });
    assert.equal(renewalTime(base({ now: new Date(at.getTime() - 1) })).reason, 'lifetime-fraction');
  });
  it('a revoked certificate is due now, whatever its age', () => {
    assert.deepEqual(renewalTime(base({ revoked: true })), { at: d(DAY), reason: 'revoked' });
    assert.equal(renewalTime(base({ revoked: false })).reason, 'lifetime-fraction');
  });
  it('names differ when as many are wanted but one is another', () => {
    assert.equal(namesDiffer(['mx1.example.test', 'mx2.example.test'], ['mx1.example.test', 'mx3.example.test']), true);
    assert.equal(renewalTime(base({ current: cert(90 * DAY, ['mx1.example.test', 'mx2.example.test']), wantedNames: ['MX2.example.test.', 'mx1.example.test'] })).reason, 'lifetime-fraction');
  });
  it('the emergency window is the last 1/20 of the lifetime, not more', () => {
    assert.equal(emergencyPoint(cert(100 * DAY)).getTime(), t0 + 95 * DAY);
    // 6 days left of 90 (inside 1/10, outside 1/20): ARI still decides.
    const r = renewalTime(base({ now: d(84 * DAY), ari: { window: { start: d(86 * DAY), end: d(87 * DAY) }, at: d(86.5 * DAY) } }));
    assert.equal(r.reason, 'ari-window');
    assert.equal(renewalTime(base({ now: d(84 * DAY) })).reason, 'lifetime-fraction');
  });
  it('a certificate of exactly 10 days renews with half its lifetime left; one a millisecond longer with a third', () => {
    assert.equal(fallbackRenewalTime(cert(10 * DAY)).getTime(), t0 + 5 * DAY);
    assert.equal(fallbackRenewalTime(cert(10 * DAY + 3)).getTime(), t0 + (10 * DAY + 3) - (10 * DAY + 3) / 3);
  });
  it('names compare case-insensitively both ways (a SAN in capitals does not re-issue on every pass)', () => {
    assert.equal(renewalTime(base({ current: cert(90 * DAY, ['MX1.Example.TEST']), wantedNames: ['mx1.example.test'] })).reason, 'lifetime-fraction');
    assert.equal(renewalTime(base({ wantedNames: ['MX1.EXAMPLE.test'] })).reason, 'lifetime-fraction');
  });
  it('an ARI window whose end alone changes is re-picked', () => {
    const first = chooseAriInstant({ start: d(10 * DAY), end: d(12 * DAY) }, undefined, () => 0.25);
    const moved = chooseAriInstant({ start: d(10 * DAY), end: d(14 * DAY) }, first, () => 0.5);
    assert.equal(moved.at.getTime(), t0 + 12 * DAY);
    assert.equal(moved.window.end.getTime(), t0 + 14 * DAY);
  });
  it('an ARI window whose start alone changes is re-picked too', () => {
    const first = chooseAriInstant({ start: d(10 * DAY), end: d(14 * DAY) }, undefined, () => 0.5);
    const moved = chooseAriInstant({ start: d(11 * DAY), end: d(14 * DAY) }, first, () => 0.5);
    assert.equal(moved.at.getTime(), t0 + 12.5 * DAY);
    assert.equal(moved.window.start.getTime(), t0 + 11 * DAY);
  });
  it('backoff without a known validity: the step alone, and a Retry-After up to a day', () => {
    assert.equal(backoffUntil({ count: 2, lastAt: d(0) }).getTime(), t0 + 10 * M);
    assert.equal(backoffUntil({ count: 1, lastAt: d(0), retryAfterUntil: d(5 * H) }).getTime(), t0 + 5 * H);
    assert.equal(backoffUntil({ count: 1, lastAt: d(0), retryAfterUntil: d(3 * DAY) }).getTime(), t0 + DAY);
  });
  it('a failure within emergencyRetryMs of notAfter is no longer pulled to notAfter minus that margin', () => {
    // 90 days: the margin is an hour. From notAfter - 1 h on, the step (10 min after a second failure,
    // at most a quarter of the time left) stands.
    const v = cert(90 * DAY);
    for (const [before, step] of [[H, 10 * M], [30 * M, 7.5 * M]] as const) {
      const lastAt = d(90 * DAY - before);
      assert.equal(backoffUntil({ count: 2, lastAt }, v).getTime(), lastAt.getTime() + step, `${before / M} min before notAfter`);
    }
    // 70 min before notAfter the step (a quarter: 17.5 min) would end past notAfter - 1 h: pulled back to it.
    assert.equal(backoffUntil({ count: 3, lastAt: d(90 * DAY - 70 * M) }, v).getTime(), t0 + 90 * DAY - H);
  });
  it('the backoff ends at its instant: due then for the usual reason, not still "backoff"', () => {
    const failures = { count: 1, lastAt: d(DAY) };
    const until = backoffUntil(failures, cert(90 * DAY));
    assert.deepEqual(renewalTime(base({ failures, now: new Date(until.getTime() - 1) })), { at: until, reason: 'backoff' });
    assert.equal(renewalTime(base({ failures, now: until, current: undefined })).reason, 'missing');
  });
  it('jitterFor is 32-bit FNV-1a over the key, scaled to [0, 1) (values computed independently)', () => {
    // h = 2166136261; for each octet: h ^= octet; h = h * 16777619 mod 2^32; then h / 2^32 (Python, outside mxcert).
    assert.equal(jitterFor('mx1/ecdsa-p256'), 478621174 / 2 ** 32);
    assert.equal(jitterFor('a'), 3826002220 / 2 ** 32);
  });
  it('an ARI instant past the emergency point is clamped to the emergency point, not to notAfter', () => {
    const r = renewalTime(base({ ari: { window: { start: d(88 * DAY), end: d(100 * DAY) }, at: d(89 * DAY) } }));
    assert.deepEqual(r, { at: emergencyPoint(cert(90 * DAY)), reason: 'ari-window' });
    assert.equal(r.at.getTime(), t0 + 85.5 * DAY);
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
  it('whatever the Retry-After: never more than a day, never past the emergency bound, never past notAfter minus the margin, never under a minute', () => {
    fc.assert(
      fc.property(lifetime, fc.double({ min: 0, max: 1.2, noNaN: true }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 100 * 365 * 86_400 }), (life, failFrac, count, retryAfterS) => {
        const c = cert(life);
        const last = Math.floor(life * failFrac);
        const lastAt = d(last);
        const until = backoffUntil({ count, lastAt, retryAfterUntil: new Date(t0 + last + retryAfterS * 1000) }, c).getTime() - t0;
        const short = emergencyRetryMs(c);
        assert.ok(until - last >= M, 'at least a minute');
        assert.ok(until - last <= DAY, 'at most a day');
        assert.ok(until <= Math.max(emergencyPoint(c).getTime() - t0, last + short), 'the emergency rule wins');
        if (last < life - short) assert.ok(until <= Math.max(life - short, last + M), 'not after notAfter minus the margin');
      }),
      { numRuns: 3000 },
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
