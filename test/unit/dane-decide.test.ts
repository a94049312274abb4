// The DANE machine's decisions (src/dane/decide.ts), phase by phase, on plain
// observations: what each authoritative server returned, what is deployed,
// the siblings, the resolver, the backoff. No I/O, an explicit clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADOPTION_WAIT,
  afterPublish,
  afterSwap,
  afterSwapFailed,
  decide as decideRaw,
  latestAnswer,
  needsResolver,
  noRecordsAnywhere,
  rememberTtl,
  servedEverywhere,
  verdictAt,
  type DaneAction,
  type DaneObservations,
  type DecidePolicy,
  type OwnerObservation,
} from '../../src/dane/decide.js';
import { upgradeJournal, type DaneJournal } from '../../src/dane/journal.js';
import { isRetirePhase, PHASES } from '../../src/dane/phases.js';
import type { Observation } from '../../src/dane/visibility.js';
import { at, both, C, DAY, F, iso, N, O, P, POLICY, rec, S, server, settledDecide as decide, steadyJournal } from './dane-fixtures.js';

const OWNER = '_25._tcp.mx1.example.test.';

function journal(over: Partial<DaneJournal> = {}): DaneJournal {
  return steadyJournal({ nextVisibleAt: iso(0), holdUntil: iso(120_000), ...over });
}

function dns(...servers: Observation[]): OwnerObservation[] {
  return [{ owner: OWNER, servers }];
}

function obs(servers: Observation[], over: Partial<DaneObservations> = {}): DaneObservations {
  return { dns: dns(...servers), deployedTlsa: C, renewalDue: false, ...over };
}

function kind<K extends DaneAction['kind']>(a: DaneAction, k: K): Extract<DaneAction, { kind: K }> {
  assert.equal(a.kind, k, JSON.stringify(a));
  return a as Extract<DaneAction, { kind: K }>;
}

describe('decide: no journal', () => {
  it('adopts (keys first, before anything is published)', () => {
    assert.deepEqual(decide(undefined, { dns: [], renewalDue: false }, POLICY, at(0)), { kind: 'adopt' });
  });
});

describe('decide: PUBLISH', () => {
  const j = journal({ phase: 'PUBLISH', nextVisibleAt: undefined, holdUntil: undefined });

  it('no TLSA on any server and the current key not served: deploy it first, without a live DNS check', () => {
    const a = kind(decide(j, obs(both([]), { deployedTlsa: undefined }), POLICY, at(0)), 'deploy');
    assert.equal(a.key, 'current');
    assert.equal(a.liveCheck, false);
    assert.match(a.say, /before publishing/);
  });

  it('a server that did not answer is no evidence of an empty RRset: publish (and hold) instead of deploying', () => {
    const down: Observation = { server: S, ok: false, error: 'timeout', authoritative: false, records: [] };
    const a = kind(decide(j, obs([server(P, []), down], { deployedTlsa: undefined }), POLICY, at(0)), 'publish');
    assert.equal(a.then.awaiting?.then, 'DEPLOY_CURRENT');
    assert.equal(noRecordsAnywhere(dns(server(P, []), down)), false);
    assert.equal(noRecordsAnywhere(dns(server(P, [], { authoritative: false }), server(S, []))), false, 'a non-authoritative empty answer proves nothing either');
    assert.equal(noRecordsAnywhere(dns(server(P, []), server(S, []))), true);
  });

  it('a foreign RRset and the current key not served: publish current + next, then hold before serving it', () => {
    const a = kind(decide(j, obs(both([F], { ttl: 8 }), { deployedTlsa: undefined }), POLICY, at(0)), 'publish');
    assert.deepEqual(a.add, [rec(C), rec(N)]);
    assert.deepEqual(a.remove, []);
    assert.equal(a.then.phase, 'AWAIT_VISIBLE');
    assert.deepEqual(a.then.awaiting, { present: [C, N], absent: [], then: 'DEPLOY_CURRENT', ttlBefore: 8 });
  });

  it('the current key already served (records went missing, or DANE first deployed): publish, then STEADY', () => {
    const a = kind(decide(j, obs(both([])), POLICY, at(0)), 'publish');
    assert.equal(a.then.awaiting?.then, 'STEADY');
    assert.equal(a.then.awaiting?.ttlBefore, undefined, 'no RRset before, no TTL before');
  });

  it('the TTL before the update is the largest any server served', () => {
    const a = kind(decide(j, obs([server(P, [F], { ttl: 8 }), server(S, [F], { ttl: 30 })]), POLICY, at(0)), 'publish');
    assert.equal(a.then.awaiting?.ttlBefore, 30);
  });

  it('extra records go out with ours', () => {
    const a = kind(decide(j, obs(both([F])), { ...POLICY, extras: [{ usage: 2, selector: 1, matchingType: 1, data: O }] }, at(0)), 'publish');
    assert.deepEqual(a.add, [rec(C), rec(N), { usage: 2, selector: 1, matchingType: 1, data: O }]);
  });

  it('adoption with siblings: waits until every key type serves its current key, then publishes all of them at once', () => {
    const sib = journal({ current: { id: 'rc', tlsa: 'a1'.repeat(32), createdAt: iso(0) }, next: { id: 'rn', tlsa: 'a2'.repeat(32), createdAt: iso(0) } });
    const waiting = kind(decide(j, obs(both([]), { siblings: [{ keyType: 'rsa-2048' }] }), POLICY, at(0)), 'wait');
    assert.ok(waiting.why.startsWith(ADOPTION_WAIT), waiting.why);
    assert.match(waiting.why, /rsa-2048/);
    const notServed = kind(decide(j, obs(both([]), { siblings: [{ keyType: 'rsa-2048', journal: sib, deployedTlsa: 'ff'.repeat(32) }] }), POLICY, at(0)), 'wait');
    assert.ok(notServed.why.startsWith(ADOPTION_WAIT));
    const a = kind(decide(j, obs(both([]), { siblings: [{ keyType: 'rsa-2048', journal: sib, deployedTlsa: sib.current.tlsa }] }), POLICY, at(0)), 'publish');
    assert.deepEqual(a.add.map((r) => r.data), [C, N, sib.current.tlsa, sib.next.tlsa]);
  });

  it('siblings are not waited for once DANE is in force (the RRset is not empty)', () => {
    const a = kind(decide(j, obs(both([F]), { siblings: [{ keyType: 'rsa-2048' }] }), POLICY, at(0)), 'publish');
    assert.deepEqual(a.add, [rec(C), rec(N)]);
  });

  it('strictSignatures: remembers the RRSIG expiry of the RRset without the new record', () => {
    const sig = server(P, [F], { rrsigExpiration: at(5 * DAY) });
    const strict = kind(decide(j, obs([sig, server(S, [F])]), { ...POLICY, strictSignatures: true }, at(0)), 'publish');
    assert.equal(strict.then.unsignedNextUntil, iso(5 * DAY));
    const lax = kind(decide(j, obs([sig, server(S, [F])]), POLICY, at(0)), 'publish');
    assert.equal(lax.then.unsignedNextUntil, undefined);
  });
});

describe('decide: AWAIT_VISIBLE', () => {
  const awaiting = { present: [C, N], absent: [], minSerial: 11, then: 'STEADY' as const };
  const j = journal({ phase: 'AWAIT_VISIBLE', awaiting, nextVisibleAt: undefined, holdUntil: undefined });

  it('a server without the record: wait, and look again in this pass', () => {
    const a = kind(decide(j, obs([server(P, [C, N], { serial: 11 }), server(S, [C], { serial: 10 })]), POLICY, at(0)), 'wait');
    assert.equal(a.poll, true);
    assert.match(a.why, /not yet visible everywhere: .*5302: lacks TLSA/);
  });

  it('a server at or past the update’s serial without our record: the update was undone (zones only move forward), so it is sent again', () => {
    const a = kind(decide({ ...j, awaiting: { ...awaiting, then: 'DEPLOY_CURRENT' } }, obs([server(P, [C], { serial: 12 }), server(S, [C, N], { serial: 11 })]), POLICY, at(0)), 'save');
    assert.equal(a.journal.phase, 'PUBLISH');
    assert.equal(a.journal.awaiting, undefined);
    assert.match(a.warn ?? '', /our update was undone: .*5301: lacks TLSA 3 1 1 dddd/);
    // Without the update's serial nothing can be concluded: wait.
    const { minSerial: _, ...noSerial } = awaiting;
    kind(decide({ ...j, awaiting: noSerial }, obs([server(P, [C], { serial: 12 }), server(S, [C, N], { serial: 11 })]), POLICY, at(0)), 'wait');
  });

  it('RETIRE_OLD’s update undone (the old record back on a server past its serial): back to RETIRE_OLD, the old key kept', () => {
    const old = { id: 'o', tlsa: O, createdAt: iso(0) };
    const r = journal({ phase: 'AWAIT_VISIBLE', old, awaiting: { present: [C, N], absent: [O], minSerial: 11, then: 'STEADY' }, nextVisibleAt: undefined, holdUntil: undefined });
    const a = kind(decide(r, obs([server(P, [C, N, O], { serial: 12 }), server(S, [C, N], { serial: 11 })]), POLICY, at(0)), 'save');
    assert.equal(a.journal.phase, 'RETIRE_OLD');
    assert.equal(a.journal.old?.id, 'o');
  });

  it('a server behind the update’s serial: wait', () => {
    const a = kind(decide(j, obs([server(P, [C, N], { serial: 11 }), server(S, [C, N], { serial: 10 })]), POLICY, at(0)), 'wait');
    assert.match(a.why, /serial 10 is behind 11/);
  });

  it('an answer without the AA bit: wait', () => {
    const a = kind(decide(j, obs([server(P, [C, N], { serial: 11 }), server(S, [C, N], { serial: 11, authoritative: false })]), POLICY, at(0)), 'wait');
    assert.match(a.why, /not authoritative/);
  });

  it('all agree: STEADY, t_visible and the hold recorded', () => {
    const a = kind(decide(j, obs(both([C, N], { serial: 11 })), POLICY, at(5000)), 'save');
    assert.equal(a.journal.phase, 'STEADY');
    assert.equal(a.journal.awaiting, undefined);
    assert.ok(a.journal.nextVisibleAt, 't_visible set');
    assert.equal(Date.parse(a.journal.holdUntil!) - Date.parse(a.journal.nextVisibleAt!), 2 * 60_000, 'hold = 2 × TTL');
  });

  it('the hold is minHold when that is longer than 2 × TTL', () => {
    const a = kind(decide(j, obs(both([C, N], { serial: 11 })), { ...POLICY, minHoldMs: DAY }, at(5000)), 'save');
    assert.equal(Date.parse(a.journal.holdUntil!) - Date.parse(a.journal.nextVisibleAt!), DAY);
  });

  it('a t_visible already known is kept', () => {
    const a = kind(decide({ ...j, nextVisibleAt: iso(1000) }, obs(both([C, N], { serial: 11 })), POLICY, at(5000)), 'save');
    assert.equal(a.journal.nextVisibleAt, iso(1000));
  });

  it('after RETIRE_OLD’s update: the old key file is deleted once no server serves its record', () => {
    const old = { id: 'o', tlsa: O, createdAt: iso(0) };
    const r = journal({ phase: 'AWAIT_VISIBLE', old, awaiting: { present: [C, N], absent: [O], then: 'STEADY' }, nextVisibleAt: undefined, holdUntil: undefined });
    const still = kind(decide(r, obs([server(P, [C, N]), server(S, [C, N, O])]), POLICY, at(0)), 'wait');
    assert.match(still.why, /still serves TLSA/);
    const a = kind(decide(r, obs(both([C, N])), POLICY, at(0)), 'delete-key');
    assert.equal(a.key.id, 'o');
    assert.equal(a.then.old, undefined);
    assert.equal(a.then.phase, 'STEADY');
  });

  it('adoption over a foreign RRset goes on to DEPLOY_CURRENT', () => {
    const a = kind(decide({ ...j, awaiting: { ...awaiting, then: 'DEPLOY_CURRENT' } }, obs(both([F, C, N], { serial: 11 }), { deployedTlsa: undefined }), POLICY, at(0)), 'save');
    assert.equal(a.journal.phase, 'DEPLOY_CURRENT');
  });

  it('a server that falls back after t_visible: the hold starts over', () => {
    const held = { ...j, nextVisibleAt: iso(0), holdUntil: iso(120_000) };
    const a = kind(decide(held, obs([server(P, [C, N], { serial: 11 }), server(S, [C], { serial: 11 })]), POLICY, at(1000)), 'save');
    assert.equal(a.journal.nextVisibleAt, undefined);
    assert.equal(a.journal.holdUntil, undefined);
  });

  it('only the old record lingering does not restart the hold of current + next', () => {
    const held = journal({ phase: 'AWAIT_VISIBLE', old: { id: 'o', tlsa: O, createdAt: iso(0) }, awaiting: { present: [C, N], absent: [O], then: 'STEADY' } });
    kind(decide(held, obs([server(P, [C, N]), server(S, [C, N, O])]), POLICY, at(1000)), 'wait');
  });
});

describe('decide: DEPLOY_CURRENT (adoption over a non-empty RRset)', () => {
  const j = journal({ phase: 'DEPLOY_CURRENT', nextVisibleAt: iso(0), holdUntil: iso(120_000) });
  const o = (servers: Observation[]) => obs(servers, { deployedTlsa: undefined });

  it('during the hold: wait until it ends', () => {
    const a = kind(decide(j, o(both([F, C, N])), POLICY, at(119_999)), 'wait');
    assert.deepEqual(a.until, at(120_000));
    assert.match(a.why, /before serving the current key/);
  });

  it('after the hold: deploy the current key with the live check, then STEADY', () => {
    const a = kind(decide(j, o(both([F, C, N])), POLICY, at(120_000)), 'deploy');
    assert.equal(a.key, 'current');
    assert.equal(a.liveCheck, true);
    assert.equal(a.then?.phase, 'STEADY');
  });

  it('a record of ours gone from a server: publish again, the hold starts over', () => {
    const a = kind(decide(j, o([server(P, [F, C, N]), server(S, [F, N])]), POLICY, at(200_000)), 'save');
    assert.equal(a.journal.phase, 'PUBLISH');
    assert.equal(a.journal.holdUntil, undefined);
  });
});

describe('decide: STEADY', () => {
  const j = journal();

  it('nothing due: idle until the rotation', () => {
    const a = kind(decide(j, obs(both([C, N])), POLICY, at(DAY)), 'idle');
    assert.deepEqual(a.until, at(90 * DAY));
  });

  it('the next record gone from one server: publish again and forget t_visible (the hold starts over)', () => {
    const a = kind(decide(j, obs([server(P, [C, N]), server(S, [C])]), POLICY, at(DAY)), 'save');
    assert.equal(a.journal.phase, 'PUBLISH');
    assert.equal(a.journal.nextVisibleAt, undefined, 'hold reset');
    assert.equal(a.journal.holdUntil, undefined, 'hold reset');
  });

  it('the current record gone: publish again', () => {
    const a = kind(decide(j, obs([server(P, [N]), server(S, [C, N])]), POLICY, at(DAY)), 'save');
    assert.equal(a.journal.phase, 'PUBLISH');
  });

  it('a server not answering: publish again (and do not trust the hold)', () => {
    const a = kind(decide(j, obs([server(P, [C, N]), { server: S, ok: false, authoritative: false, records: [], error: 'timeout' }]), POLICY, at(DAY)), 'save');
    assert.equal(a.journal.phase, 'PUBLISH');
  });

  it('a renewal due, or another key in the files: same-key renewal with the live check', () => {
    assert.equal(kind(decide(j, obs(both([C, N]), { renewalDue: true }), POLICY, at(DAY)), 'deploy').key, 'current');
    const a = kind(decide(j, obs(both([C, N]), { deployedTlsa: F }), POLICY, at(DAY)), 'deploy');
    assert.equal(a.key, 'current');
    assert.equal(a.liveCheck, true);
  });

  it('rotation due during the hold: wait until it ends', () => {
    const r = { ...j, rollover: { requestedAt: iso(0), emergency: false } };
    const a = kind(decide(r, obs(both([C, N])), POLICY, at(60_000)), 'wait');
    assert.match(a.why, /^rotation due, holding until/);
    assert.deepEqual(a.until, at(120_000));
  });

  it('rotation due during the hold, with a renewal due (or --force): same-key renewal now, the rotation still waits', () => {
    const r = { ...j, rollover: { requestedAt: iso(0), emergency: false } };
    const a = kind(decide(r, obs(both([C, N]), { renewalDue: true }), POLICY, at(60_000)), 'deploy');
    assert.equal(a.key, 'current');
    assert.equal(a.liveCheck, true);
    assert.match(a.say, /the rotation waits: holding until/);
    assert.equal(a.then, undefined, 'the journal stays as it is: the rollover request is kept');
    const p = { ...POLICY, resolver: true };
    assert.equal(kind(decide(j, obs(both([C, N]), { renewalDue: true, resolver: { ok: false, why: 'no AD bit' } }), p, at(90 * DAY)), 'deploy').key, 'current');
  });

  it('rotation due after the hold: SWAP', () => {
    assert.equal(kind(decide(j, obs(both([C, N])), POLICY, at(90 * DAY)), 'save').journal.phase, 'SWAP');
  });

  it('rotation due during a failure backoff: wait for the backoff; an emergency does not', () => {
    const a = kind(decide(j, obs(both([C, N]), { backoffUntil: at(91 * DAY) }), POLICY, at(90 * DAY)), 'wait');
    assert.match(a.why, /backing off after a failure/);
    const e = { ...j, rollover: { requestedAt: iso(0), emergency: true } };
    assert.equal(kind(decide(e, obs(both([C, N]), { backoffUntil: at(91 * DAY) }), POLICY, at(1000)), 'save').journal.phase, 'SWAP');
  });

  it('an emergency skips the hold, never visibility', () => {
    const e = { ...j, rollover: { requestedAt: iso(0), emergency: true } };
    assert.equal(kind(decide(e, obs(both([C, N])), POLICY, at(1000)), 'save').journal.phase, 'SWAP');
    assert.equal(kind(decide(e, obs([server(P, [C, N]), server(S, [C])]), POLICY, at(1000)), 'save').journal.phase, 'PUBLISH');
  });

  it('with a validating resolver: its verdict holds the swap back', () => {
    const p = { ...POLICY, resolver: true };
    const no = kind(decide(j, obs(both([C, N]), { resolver: { ok: false, why: 'no AD bit' } }), p, at(90 * DAY)), 'wait');
    assert.equal(no.why, 'rotation due, no AD bit');
    kind(decide(j, obs(both([C, N])), p, at(90 * DAY)), 'wait');
    assert.equal(kind(decide(j, obs(both([C, N]), { resolver: { ok: true, why: 'AD' } }), p, at(90 * DAY)), 'save').journal.phase, 'SWAP');
  });
});

describe('decide: SWAP', () => {
  const j = journal({ phase: 'SWAP' });

  it('the checks pass again: deploy the next key with the live check', () => {
    const a = kind(decide(j, obs(both([C, N])), POLICY, at(DAY)), 'deploy');
    assert.equal(a.key, 'next');
    assert.equal(a.liveCheck, true);
    assert.equal(a.emergency, undefined);
  });

  it('resumed after a crash with the next record gone: back to STEADY, no swap', () => {
    assert.equal(kind(decide(j, obs([server(P, [C, N]), server(S, [C])]), POLICY, at(DAY)), 'save').journal.phase, 'STEADY');
  });

  it('resumed inside the hold (the hold restarted meanwhile): back to STEADY', () => {
    assert.equal(kind(decide({ ...j, holdUntil: iso(2 * DAY) }, obs(both([C, N])), POLICY, at(DAY)), 'save').journal.phase, 'STEADY');
    assert.equal(kind(decide({ ...j, holdUntil: undefined }, obs(both([C, N])), POLICY, at(DAY)), 'save').journal.phase, 'STEADY');
  });

  it('the resolver does not validate: back to STEADY', () => {
    const p = { ...POLICY, resolver: true };
    assert.equal(kind(decide(j, obs(both([C, N]), { resolver: { ok: false, why: 'SERVFAIL' } }), p, at(DAY)), 'save').journal.phase, 'STEADY');
    assert.equal(kind(decide(j, obs(both([C, N]), { resolver: { ok: true, why: 'AD' } }), p, at(DAY)), 'deploy').key, 'next');
  });

  it('an emergency is flagged (it is logged loudly) and skips the hold', () => {
    const a = kind(decide({ ...j, holdUntil: iso(2 * DAY), rollover: { requestedAt: iso(0), emergency: true } }, obs(both([C, N])), POLICY, at(DAY)), 'deploy');
    assert.equal(a.emergency, true);
  });

  it('after the swap: old ← current ← next ← fresh, RETIRE_OLD, hold and request cleared', () => {
    const fresh = { id: 'f', tlsa: F, createdAt: iso(DAY) };
    const s = afterSwap({ ...j, rollover: { requestedAt: iso(0), emergency: false }, lastError: 'x' }, fresh, at(DAY), POLICY);
    assert.equal(s.phase, 'RETIRE_OLD');
    assert.deepEqual([s.old?.id, s.current.id, s.next.id], ['c', 'n', 'f']);
    assert.equal(s.rollover, undefined);
    assert.equal(s.lastError, undefined);
    assert.equal(s.holdUntil, undefined);
    assert.equal(s.nextVisibleAt, undefined);
    assert.equal(s.swappedAt, iso(DAY));
    assert.equal(s.retireAfter, iso(DAY + 60_000), 'one TTL after the swap');
    const failed = afterSwapFailed(j, 'verify: boom');
    assert.equal(failed.phase, 'STEADY');
    assert.equal(failed.lastError, 'verify: boom');
  });
});

describe('decide: RETIRE_OLD', () => {
  const old = { id: 'o', tlsa: O, createdAt: iso(0) };
  const j = journal({ phase: 'RETIRE_OLD', old, swappedAt: iso(DAY), retireAfter: iso(DAY + 60_000), nextVisibleAt: undefined, holdUntil: undefined });

  it('waits at least one TTL after the swap', () => {
    const a = kind(decide(j, obs(both([O, C])), POLICY, at(DAY + 59_999)), 'wait');
    assert.deepEqual(a.until, at(DAY + 60_000));
    assert.match(a.why, /retiring the old record after/);
  });

  it('then one update: −H(old) +H(current) +H(new next), and waits for it everywhere', () => {
    const a = kind(decide(j, obs(both([O, C], { ttl: 30 })), POLICY, at(DAY + 60_000)), 'publish');
    assert.deepEqual(a.remove, [rec(O)]);
    assert.deepEqual(a.add, [rec(C), rec(N)]);
    assert.deepEqual(a.then.awaiting, { present: [C, N], absent: [O], then: 'STEADY', ttlBefore: 30 });
  });

  it('a journal from before retireAfter existed: one TTL after swappedAt', () => {
    const legacy = { ...j, retireAfter: undefined };
    kind(decide(legacy, obs(both([O, C])), POLICY, at(DAY + 59_999)), 'wait');
    kind(decide(legacy, obs(both([O, C])), POLICY, at(DAY + 60_000)), 'publish');
  });

  it('the serial the primary reports is what every server must reach', () => {
    const a = kind(decide(j, obs(both([O, C])), POLICY, at(DAY + 60_000)), 'publish');
    assert.equal(afterPublish(a.then, 42).awaiting?.minSerial, 42);
    assert.equal(afterPublish(a.then, undefined).awaiting?.minSerial, undefined);
  });
});

describe('the validating resolver is asked only when a swap is being decided', () => {
  const p = { ...POLICY, resolver: true };
  it('SWAP, and STEADY with a rotation due; not otherwise, not without a resolver', () => {
    assert.equal(needsResolver(journal({ phase: 'SWAP' }), p, at(0)), true);
    assert.equal(needsResolver(journal(), p, at(90 * DAY)), true);
    assert.equal(needsResolver(journal(), p, at(DAY)), false);
    assert.equal(needsResolver(journal({ phase: 'AWAIT_VISIBLE' }), p, at(90 * DAY)), false);
    assert.equal(needsResolver(journal({ phase: 'SWAP' }), POLICY, at(0)), false);
  });
});

describe('journals written by earlier versions', () => {
  const legacy = (phase: string, over: object = {}) => ({ version: 1, phase, current: { id: 'c', tlsa: C, createdAt: iso(0) }, next: { id: 'n', tlsa: N, createdAt: iso(0) }, updatedAt: iso(0), ...over });

  it('old phase names read as today’s', () => {
    assert.equal(upgradeJournal(legacy('PUBLISH_NEXT'), 'j').phase, 'PUBLISH');
    assert.equal(upgradeJournal(legacy('ISSUE'), 'j').phase, 'SWAP');
    assert.equal(upgradeJournal(legacy('VERIFY_LIVE'), 'j').phase, 'SWAP');
    assert.equal(upgradeJournal(legacy('RETIRE'), 'j').phase, 'RETIRE_OLD');
    for (const p of ['STEADY', 'AWAIT_VISIBLE', 'SWAP']) assert.equal(upgradeJournal(legacy(p), 'j').phase, p);
  });

  it('an old AWAIT_VISIBLE of an adoption over a foreign RRset still goes on to deploy the current key after the hold', () => {
    const j = upgradeJournal(legacy('AWAIT_VISIBLE', { awaiting: { present: [C, N], absent: [], then: 'DEPLOY_CURRENT' } }), 'j');
    assert.equal(kind(decide(j, obs(both([F, C, N]), { deployedTlsa: undefined }), POLICY, at(0)), 'save').journal.phase, 'DEPLOY_CURRENT');
  });

  it('an old RETIRE waits one TTL after swappedAt', () => {
    const j = upgradeJournal(legacy('RETIRE', { old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(0) }), 'j');
    kind(decide(j, obs(both([O, C])), POLICY, at(59_999)), 'wait');
    kind(decide(j, obs(both([O, C])), POLICY, at(60_000)), 'publish');
  });

  it('a phase nobody wrote, or a journal without keys, is an error naming the file', () => {
    assert.throws(() => upgradeJournal(legacy('DANCING'), '/state/journal.json'), /\/state\/journal\.json: not a DANE journal.*DANCING/);
    assert.throws(() => upgradeJournal({ phase: 'STEADY' }, 'x'), /not a DANE journal/);
  });
});

describe('the hold covers every TTL a cache may hold an RRset without the new record for', () => {
  const P2: DecidePolicy = { ...POLICY, ttl: 2, minHoldMs: 0 };
  const awaiting = { present: [C, N], absent: [], then: 'DEPLOY_CURRENT' as const, ttlBefore: 8 };
  const j = journal({ phase: 'AWAIT_VISIBLE', awaiting, nextVisibleAt: undefined, holdUntil: undefined, ttlSeen: { live: 2 } });

  it('BIND rewrote the RRset’s TTL from 8 to 2 with our record: the hold is 2 × 8 s, not 2 × 2 s', () => {
    const a = kind(decide(j, obs(both([F, C, N], { ttl: 2, at: at(1000) }), { deployedTlsa: undefined }), P2, at(1000)), 'save');
    assert.equal(a.journal.nextVisibleAt, iso(1000));
    assert.equal(a.journal.holdUntil, iso(17_000));
    assert.equal(a.journal.holdTtl, 8);
  });

  it('t_visible is when the last server to agree was seen agreeing, not when the pass or the polling began', () => {
    const fresh = { ...j, awaiting: { ...awaiting, ttlBefore: 2 } };
    const seen = [server(P, [F, C, N], { ttl: 2, at: at(3000) }), server(S, [F, C, N], { ttl: 2, at: at(3200) })];
    const a = kind(decide(fresh, obs(seen, { deployedTlsa: undefined }), P2, at(5000)), 'save');
    assert.equal(a.journal.nextVisibleAt, iso(3200));
    assert.equal(a.journal.holdUntil, iso(7200));
    assert.deepEqual(latestAnswer(dns(...seen)), at(3200));
  });

  it('a larger TTL remembered from an earlier pass, served until u: the hold lasts until u + 2 × that TTL', () => {
    const remembered = { ...j, awaiting: { ...awaiting, ttlBefore: 2 }, ttlSeen: { live: 2, gone: { ttl: 30, until: iso(500) } } };
    const a = kind(decide(remembered, obs(both([F, C, N], { ttl: 2, at: at(1000) }), { deployedTlsa: undefined }), P2, at(1000)), 'save');
    assert.equal(a.journal.holdUntil, iso(60_500));
    assert.equal(a.journal.holdTtl, 30, 'RETIRE_OLD will wait that long after the swap too');
  });

  it('the TTL memory is saved before anything else happens (the next action may lower the TTL)', () => {
    const p = journal({ phase: 'PUBLISH', nextVisibleAt: undefined, holdUntil: undefined });
    const a = kind(decideRaw(p, obs(both([F], { ttl: 8 }), { deployedTlsa: undefined }), P2, at(0)), 'save');
    assert.deepEqual(a.journal.ttlSeen, { live: 8 });
    assert.equal(a.journal.phase, 'PUBLISH');
  });

  it('rememberTtl: the TTL served now; a larger one that stopped being served is kept, dated, for 2 × its TTL', () => {
    const d = (ttl?: number) => dns(server(P, ttl === undefined ? [] : [F], ttl === undefined ? {} : { ttl }));
    const gone8 = { ttl: 8, until: iso(1000) };
    assert.deepEqual(rememberTtl(undefined, d(8), at(0)), { live: 8 });
    assert.equal(rememberTtl(undefined, d(), at(0)), undefined);
    assert.deepEqual(rememberTtl({ live: 8 }, d(8), at(0)), { live: 8 });
    assert.deepEqual(rememberTtl({ live: 2 }, d(8), at(0)), { live: 8 }, 'a raise needs no memory: the larger TTL is served');
    assert.deepEqual(rememberTtl({ live: 8 }, d(2), at(1000)), { live: 2, gone: gone8 });
    assert.deepEqual(rememberTtl({ live: 8 }, d(), at(1000)), { gone: gone8 }, 'an RRset removed altogether dates it too');
    assert.deepEqual(rememberTtl({ live: 2, gone: gone8 }, d(2), at(16_999)), { live: 2, gone: gone8 });
    assert.deepEqual(rememberTtl({ live: 2, gone: gone8 }, d(2), at(17_000)), { live: 2 }, 'caches are done with it');
    assert.equal(rememberTtl({ gone: gone8 }, d(), at(17_000)), undefined);
    assert.deepEqual(rememberTtl({ live: 9, gone: { ttl: 10, until: iso(0) } }, d(), at(16_000)), { gone: { ttl: 9, until: iso(16_000) } }, 'of two, the one caches hold longer');
    assert.deepEqual(rememberTtl({ live: 2, gone: { ttl: 30, until: iso(0) } }, d(), at(1000)), { gone: { ttl: 30, until: iso(0) } });
    assert.deepEqual(rememberTtl({ live: 2 }, dns(server(P, [F], { ttl: 2 }), server(S, [F], { ttl: 8 })), at(0)), { live: 8 }, 'the largest over every server');
  });

  it('RETIRE_OLD waits the larger TTL after the swap', () => {
    const s = afterSwap(journal({ phase: 'SWAP', holdTtl: 8 }), { id: 'f', tlsa: F, createdAt: iso(0) }, at(DAY), P2);
    assert.equal(s.retireAfter, iso(DAY + 8000));
    kind(decide(s, obs(both([C, N], { ttl: 2 })), P2, at(DAY + 7999)), 'wait');
    kind(decide(s, obs(both([C, N], { ttl: 2 })), P2, at(DAY + 8000)), 'publish');
  });

  it('STEADY with everything served but no t_visible (a reset hold): starts the hold now instead of waiting forever', () => {
    const a = kind(decide(journal({ nextVisibleAt: undefined, holdUntil: undefined }), obs(both([C, N], { at: at(100) })), POLICY, at(200)), 'save');
    assert.equal(a.journal.nextVisibleAt, iso(100));
    assert.equal(a.journal.holdUntil, iso(120_100));
  });
});

describe('journal phases that are not what they seem', () => {
  const legacy = (phase: unknown) => ({ version: 1, phase, current: { id: 'c', tlsa: C, createdAt: iso(0) }, next: { id: 'n', tlsa: N, createdAt: iso(0) }, updatedAt: iso(0) });

  it('a phase named like an object property (constructor, __proto__, toString) or not a string is no phase', () => {
    for (const p of ['constructor', '__proto__', 'toString', 'hasOwnProperty', ['RETIRE'], 7, null]) {
      assert.throws(() => upgradeJournal(legacy(p), '/state/j.json'), /\/state\/j\.json: not a DANE journal/, JSON.stringify(p));
    }
  });

  it('the retirement phases are left to mxcert dane retire; a phase this version does not know waits, never acts', () => {
    for (const phase of ['WITHDRAW', 'AWAIT_GONE', 'RELEASE'] as const) {
      assert.equal(isRetirePhase(phase), true, phase);
      const a = kind(decide(journal({ phase }), obs(both([C, N])), POLICY, at(90 * DAY)), 'wait');
      assert.equal(a.why, 'mxcert dane retire is removing the records (src/dane/retire.ts moves it)');
    }
    for (const phase of PHASES.filter((p) => !['WITHDRAW', 'AWAIT_GONE', 'RELEASE'].includes(p))) assert.equal(isRetirePhase(phase), false, phase);
    const odd = { ...journal(), phase: 'DANCING' } as unknown as DaneJournal;
    assert.deepEqual(decide(odd, obs(both([C, N])), POLICY, at(90 * DAY)), { kind: 'wait', why: 'unknown phase DANCING' });
  });
});

describe('decide: what each step says (the log and status show it)', () => {
  it('PUBLISH: the deploy before publishing and the publish', () => {
    const p = journal({ phase: 'PUBLISH', nextVisibleAt: undefined, holdUntil: undefined });
    assert.equal(kind(decide(p, obs(both([]), { deployedTlsa: undefined }), POLICY, at(0)), 'deploy').say, 'deployed a certificate for the current key (serial %s) before publishing');
    assert.equal(kind(decide(p, obs(both([F])), POLICY, at(0)), 'publish').say, 'published 3 1 1 current + next');
  });

  it('adoption: waits naming every key type not ready yet; no other wait is an adoption wait', () => {
    const p = journal({ phase: 'PUBLISH', nextVisibleAt: undefined, holdUntil: undefined });
    const a = kind(decide(p, obs(both([]), { siblings: [{ keyType: 'rsa-2048' }, { keyType: 'ecdsa-p384' }] }), POLICY, at(0)), 'wait');
    assert.equal(a.why, 'adoption: publishing once rsa-2048, ecdsa-p384 also serves its current key');
    // The orchestrator retries at once only after an adoption wait.
    const hold = kind(decide(journal({ phase: 'DEPLOY_CURRENT' }), obs(both([F, C, N]), { deployedTlsa: undefined }), POLICY, at(0)), 'wait');
    assert.equal(hold.why.startsWith(ADOPTION_WAIT), false, hold.why);
    const lag = kind(decide(journal({ phase: 'AWAIT_VISIBLE', awaiting: { present: [C, N], absent: [], then: 'STEADY' }, nextVisibleAt: undefined, holdUntil: undefined }), obs([server(P, [C, N]), server(S, [C])]), POLICY, at(0)), 'wait');
    assert.equal(lag.why.startsWith(ADOPTION_WAIT), false, lag.why);
  });

  it('AWAIT_VISIBLE: every lagging server listed; the old key deleted, or the records visible', () => {
    const w = journal({ phase: 'AWAIT_VISIBLE', awaiting: { present: [C, N], absent: [], then: 'STEADY' }, nextVisibleAt: undefined, holdUntil: undefined });
    const lag = kind(decide(w, obs([server(P, [C]), server(S, [N])]), POLICY, at(0)), 'wait');
    assert.equal(lag.why, `not yet visible everywhere: ${OWNER} 127.0.0.1:5301: lacks TLSA 3 1 1 dddddddddddd…; ${OWNER} 127.0.0.1:5302: lacks TLSA 3 1 1 cccccccccccc…`);
    const old = { id: 'o', tlsa: O, createdAt: iso(0) };
    const gone = kind(decide({ ...w, old, awaiting: { present: [C, N], absent: [O], then: 'STEADY' } }, obs(both([C, N])), POLICY, at(0)), 'delete-key');
    assert.deepEqual(gone.say, [`old key ${'ee'.repeat(8)}… retired and deleted`, 'visible on every authoritative server']);
    assert.equal(kind(decide(w, obs(both([C, N])), POLICY, at(0)), 'save').say, 'visible on every authoritative server');
  });

  it('DEPLOY_CURRENT and STEADY: publishing again, the deploy after the hold, a same-key renewal', () => {
    const warn = 'our records are not served everywhere; publishing again';
    const dc = journal({ phase: 'DEPLOY_CURRENT' });
    assert.equal(kind(decide(dc, obs([server(P, [C, N]), server(S, [C])]), POLICY, at(0)), 'save').warn, warn);
    assert.equal(kind(decide(dc, obs(both([C, N])), POLICY, at(120_000)), 'deploy').say, 'deployed the current key after the hold (serial %s)');
    assert.equal(kind(decide(journal(), obs([server(P, [C, N]), server(S, [C])]), POLICY, at(DAY)), 'save').warn, warn);
    assert.equal(kind(decide(journal(), obs(both([C, N]), { renewalDue: true }), POLICY, at(DAY)), 'deploy').say, 'renewed with the current key (serial %s)');
  });

  it('SWAP and RETIRE_OLD: the swap, a swap called off, the retirement', () => {
    const sw = journal({ phase: 'SWAP' });
    assert.equal(kind(decide(sw, obs(both([C, N])), POLICY, at(DAY)), 'deploy').say, 'swapped to the next key (serial %s); new next key generated');
    const off = kind(decide({ ...sw, holdUntil: iso(2 * DAY) }, obs(both([C, N])), POLICY, at(DAY)), 'save');
    assert.equal(off.warn, `not swapping now (holding until ${iso(2 * DAY)}); back to STEADY`);
    const r = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(0), retireAfter: iso(0) });
    assert.equal(kind(decide(r, obs(both([O, C])), POLICY, at(0)), 'publish').say, 'retired the old record and published the new next key');
  });
});

describe('decide: edges of the rules', () => {
  it('DEPLOY_CURRENT with no hold started: waits, saying so, with no end time', () => {
    const a = kind(decide(journal({ phase: 'DEPLOY_CURRENT', holdUntil: undefined }), obs(both([F, C, N]), { deployedTlsa: undefined }), POLICY, at(0)), 'wait');
    assert.deepEqual(a, { kind: 'wait', why: 'holding until (hold not started) before serving the current key' });
  });

  it('STEADY, rotation due, t_visible known but no hold recorded: waits without an end time', () => {
    const a = kind(decide(journal({ holdUntil: undefined }), obs(both([C, N])), POLICY, at(90 * DAY)), 'wait');
    assert.deepEqual(a, { kind: 'wait', why: 'rotation due, hold not started' });
  });

  it('a failure backoff ending now, or already over, holds nothing back', () => {
    assert.equal(kind(decide(journal(), obs(both([C, N]), { backoffUntil: at(90 * DAY) }), POLICY, at(90 * DAY)), 'save').journal.phase, 'SWAP');
    assert.equal(kind(decide(journal(), obs(both([C, N]), { backoffUntil: at(DAY) }), POLICY, at(90 * DAY)), 'save').journal.phase, 'SWAP');
    const a = kind(decide(journal(), obs(both([C, N]), { backoffUntil: at(90 * DAY + 1) }), POLICY, at(90 * DAY)), 'wait');
    assert.deepEqual(a.until, at(90 * DAY + 1));
    assert.equal(a.why, `rotation due, backing off after a failure until ${iso(90 * DAY + 1)}`);
  });

  it('a validating resolver configured but not asked: no swap, saying why', () => {
    const a = kind(decide(journal(), obs(both([C, N])), { ...POLICY, resolver: true }, at(90 * DAY)), 'wait');
    assert.deepEqual(a, { kind: 'wait', why: 'rotation due, the validating resolver was not asked' });
  });

  it('PUBLISH: an RRset before it without a TTL leaves no ttlBefore; a remembered unsigned-until is kept', () => {
    const p = journal({ phase: 'PUBLISH', nextVisibleAt: undefined, holdUntil: undefined });
    assert.deepEqual(kind(decide(p, obs(both([])), POLICY, at(0)), 'publish').then.awaiting, { present: [C, N], absent: [], then: 'STEADY' });
    const kept = kind(decide({ ...p, unsignedNextUntil: iso(DAY) }, obs(both([F])), POLICY, at(0)), 'publish');
    assert.equal(kept.then.unsignedNextUntil, iso(DAY));
  });

  it('AWAIT_VISIBLE of a journal without `awaiting` (written before it existed): current + next, then STEADY', () => {
    const j = journal({ phase: 'AWAIT_VISIBLE', nextVisibleAt: undefined, holdUntil: undefined });
    kind(decide(j, obs([server(P, [C, N]), server(S, [N])]), POLICY, at(0)), 'wait');
    const a = kind(decide(j, obs(both([C, N])), POLICY, at(0)), 'save');
    assert.equal(a.journal.phase, 'STEADY');
    assert.equal(a.journal.holdUntil, iso(120_000));
  });

  it('records observed without a TTL: the hold falls back to the policy TTL', () => {
    const j = journal({ phase: 'AWAIT_VISIBLE', awaiting: { present: [C, N], absent: [], then: 'STEADY' }, nextVisibleAt: undefined, holdUntil: undefined });
    const a = kind(decideRaw(j, obs(both([C, N], { ttl: undefined })), POLICY, at(0)), 'save');
    assert.equal(a.journal.holdUntil, iso(120_000));
    assert.equal(a.journal.holdTtl, 60);
  });

  it('RETIRE_OLD without an old key (deleted before a crash): publishes current + next, removes nothing', () => {
    const r = journal({ phase: 'RETIRE_OLD', swappedAt: iso(0), retireAfter: iso(0) });
    const a = kind(decide(r, obs(both([C, N])), POLICY, at(0)), 'publish');
    assert.deepEqual(a.remove, []);
    assert.deepEqual(a.add, [rec(C), rec(N)]);
    assert.equal(a.then.phase, 'AWAIT_VISIBLE');
    assert.deepEqual(a.then.awaiting, { present: [C, N], absent: [], then: 'STEADY', ttlBefore: 60 });
  });

  it('RETIRE_OLD with extra records: they go out again with ours', () => {
    const extra = { usage: 2, selector: 1, matchingType: 1, data: F };
    const r = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(0), retireAfter: iso(0) });
    assert.deepEqual(kind(decide(r, obs(both([O, C])), { ...POLICY, extras: [extra] }, at(0)), 'publish').add, [rec(C), rec(N), extra]);
  });

  it('afterPublish: without a serial, or with nothing awaited, the journal is unchanged', () => {
    const then = journal({ phase: 'AWAIT_VISIBLE', awaiting: { present: [C, N], absent: [], then: 'STEADY' } });
    assert.deepStrictEqual(afterPublish(then, undefined), then);
    const steady = journal();
    assert.deepStrictEqual(afterPublish(steady, 42), steady);
    assert.deepEqual(afterPublish(then, 42).awaiting, { present: [C, N], absent: [], then: 'STEADY', minSerial: 42 });
  });

  it('the publisher settings are remembered, with every owner ever published at', () => {
    const pw = { kind: 'rfc2136', owners: [OWNER], ttl: 60 } as unknown as NonNullable<DecidePolicy['publishedWith']>;
    const first = kind(decide(journal(), obs(both([C, N])), { ...POLICY, publishedWith: pw }, at(DAY)), 'save');
    assert.deepEqual(first.journal.publishedWith, pw);
    const moved = { ...pw, owners: ['_25._tcp.mx2.example.test.'] };
    const second = kind(decide(first.journal, obs(both([C, N])), { ...POLICY, publishedWith: moved }, at(DAY)), 'save');
    assert.deepEqual(second.journal.publishedWith, { ...moved, owners: [OWNER, '_25._tcp.mx2.example.test.'] });
    kind(decide(second.journal, obs(both([C, N])), { ...POLICY, publishedWith: moved }, at(DAY)), 'idle');
  });
});

describe('views over several owner names', () => {
  const MX2 = '_25._tcp.mx2.example.test.';
  const two = (a: Observation[], b: Observation[]): OwnerObservation[] => [
    { owner: OWNER, servers: a },
    { owner: MX2, servers: b },
  ];

  it('visible means visible at every owner', () => {
    const j = journal({ phase: 'AWAIT_VISIBLE', awaiting: { present: [C, N], absent: [], then: 'STEADY' }, nextVisibleAt: undefined, holdUntil: undefined });
    const a = kind(decide(j, { dns: two(both([C, N]), both([C])), deployedTlsa: C, renewalDue: false }, POLICY, at(0)), 'wait');
    assert.match(a.why, /_25\._tcp\.mx2\.example\.test\. 127\.0\.0\.1:5301: lacks TLSA/);
    assert.equal(servedEverywhere(two(both([C, N]), both([C])), [C, N]), false);
    assert.equal(servedEverywhere(two(both([C, N]), both([C, N])), [C, N]), true);
  });

  it('the largest TTL and the latest RRSIG expiry over every owner; owners without RRSIGs add none', () => {
    const v = verdictAt(two(both([F], { ttl: 30, rrsigExpiration: at(DAY) }), both([F], { ttl: 8 })), { present: [], absent: [] });
    assert.equal(v.maxTtl, 30);
    assert.deepEqual(v.maxRrsigExpiration, at(DAY));
    const w = verdictAt(two(both([F], { ttl: 8, rrsigExpiration: at(DAY) }), both([F], { ttl: 30, rrsigExpiration: at(3 * DAY) })), { present: [], absent: [] });
    assert.equal(w.maxTtl, 30);
    assert.deepEqual(w.maxRrsigExpiration, at(3 * DAY));
    assert.equal(verdictAt(two(both([F]), both([F])), { present: [], absent: [] }).maxRrsigExpiration, undefined, 'an unsigned zone');
  });

  it('strictSignatures over an unsigned zone: nothing to wait for', () => {
    const p = journal({ phase: 'PUBLISH', nextVisibleAt: undefined, holdUntil: undefined });
    assert.equal(kind(decide(p, obs(both([F])), { ...POLICY, strictSignatures: true }, at(0)), 'publish').then.unsignedNextUntil, undefined);
  });

  it('no records anywhere: at every owner, and an owner nobody answered for is no evidence', () => {
    assert.equal(noRecordsAnywhere(two(both([]), both([F]))), false);
    assert.equal(noRecordsAnywhere(two(both([]), both([]))), true);
    assert.equal(noRecordsAnywhere([{ owner: OWNER, servers: [] }]), false);
  });

  it('the latest answer ignores servers that never answered', () => {
    const down: Observation = { server: S, ok: false, error: 'timeout', authoritative: false, records: [] };
    assert.deepEqual(latestAnswer(two([server(P, [C], { at: at(700) }), down], [server(S, [C], { at: at(300) })])), at(700));
    assert.equal(latestAnswer(dns(down)), undefined);
  });

  it('rememberTtl: of two remembered TTLs that caches hold equally long, the one already kept stays', () => {
    // gone: 10 s until T0 (caches done at T0 + 20 s); live 9 s dropped at T0 + 2 s (done at T0 + 20 s too).
    const kept = { ttl: 10, until: iso(0) };
    assert.deepEqual(rememberTtl({ live: 9, gone: kept }, dns(server(P, [F], { ttl: 1 })), at(2000)), { live: 1, gone: kept });
  });
});
