// The pure decisions of the DANE rollover (docs/architecture.md, "DANE
// rollover"; RFC 7671 §8.1): the hold, when a rotation is due, and when a
// swap may happen.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { holdUntil, maySwap, rotationDue } from '../../src/dane/decide.js';
import type { DaneJournal } from '../../src/dane/journal.js';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const at = (ms: number) => new Date(T0 + ms);
const DAY = 86_400_000;

function journal(over: Partial<DaneJournal> = {}): DaneJournal {
  return {
    version: 2,
    phase: 'STEADY',
    current: { id: 'c', tlsa: 'aa'.repeat(32), createdAt: at(0).toISOString() },
    next: { id: 'n', tlsa: 'bb'.repeat(32), createdAt: at(0).toISOString() },
    updatedAt: at(0).toISOString(),
    ...over,
  };
}

describe('holdUntil', () => {
  it('is t_visible + 2 × TTL when that exceeds minHold', () => {
    assert.deepEqual(holdUntil(at(0), 3600, 60_000), at(7_200_000));
  });
  it('is t_visible + minHold when that is longer', () => {
    assert.deepEqual(holdUntil(at(0), 5, 3_600_000), at(3_600_000));
  });
  it('with strict signatures, never before the last RRSIG over an RRset without the record expires', () => {
    assert.deepEqual(holdUntil(at(0), 60, 0, at(5 * DAY)), at(5 * DAY));
    assert.deepEqual(holdUntil(at(0), 60, 0, at(1000)), at(120_000), 'an earlier expiry changes nothing');
  });
  it('is never earlier than t_visible + 2 × TTL (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e12 }), fc.integer({ min: 1, max: 172_800 }), fc.integer({ min: 0, max: 1e10 }), (v, ttl, minHold) => {
        const h = holdUntil(new Date(v), ttl, minHold).getTime();
        return h >= v + 2 * ttl * 1000 && h >= v + minHold;
      }),
    );
  });
});

describe('rotationDue', () => {
  it('after keyLifetime from the current key’s creation, not before', () => {
    const j = journal();
    assert.equal(rotationDue(j, at(90 * DAY - 1), 90 * DAY), false);
    assert.equal(rotationDue(j, at(90 * DAY), 90 * DAY), true);
  });
  it('at once when a rollover was requested', () => {
    assert.equal(rotationDue(journal({ rollover: { requestedAt: at(0).toISOString(), emergency: false } }), at(1), 90 * DAY), true);
  });
});

describe('maySwap', () => {
  const held = journal({ nextVisibleAt: at(0).toISOString(), holdUntil: at(10_000).toISOString() });
  it('not while the next key is missing on some authoritative server', () => {
    assert.equal(maySwap(held, at(20_000), false).ok, false);
  });
  it('not before the hold ends; yes from the hold on', () => {
    assert.match(maySwap(held, at(9_999), true).why, /holding until/);
    assert.equal(maySwap(held, at(9_999), true).ok, false);
    assert.equal(maySwap(held, at(10_000), true).ok, true);
  });
  it('not when no hold was ever started (t_visible unknown)', () => {
    assert.equal(maySwap(journal(), at(DAY), true).ok, false);
  });
  it('an emergency skips the hold but never visibility', () => {
    const e = { ...held, rollover: { requestedAt: at(0).toISOString(), emergency: true } };
    assert.equal(maySwap(e, at(1), true).ok, true);
    assert.equal(maySwap({ ...e, holdUntil: undefined }, at(1), true).ok, true);
    assert.equal(maySwap(e, at(1), false).ok, false, 'a record some server lacks is never served, even in an emergency');
  });
  it('says why, in words (the wait and the log show it)', () => {
    const e = { ...held, rollover: { requestedAt: at(0).toISOString(), emergency: true } };
    assert.deepEqual(maySwap(e, at(1), false), { ok: false, why: 'the next key is not visible on every authoritative server' });
    assert.deepEqual(maySwap(e, at(1), true), { ok: true, why: 'emergency rollover requested' });
    assert.deepEqual(maySwap(journal(), at(DAY), true), { ok: false, why: 'hold not started' });
    assert.deepEqual(maySwap(held, at(9_999), true), { ok: false, why: `holding until ${at(10_000).toISOString()}` });
    assert.deepEqual(maySwap(held, at(10_000), true), { ok: true, why: 'hold passed' });
  });
});
