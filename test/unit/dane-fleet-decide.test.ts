// DANE across a fleet (docs/architecture.md, "DANE across a fleet"): the
// leader's `decide` with the members' reports, and the member's own verdict
// on the lineage (src/fleet/member-decide.ts). Plain data, an explicit clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { afterSwap, decide as decideRaw, type DaneAction, type DaneObservations, type DecidePolicy, type OwnerObservation } from '../../src/dane/decide.js';
import { describeMember, FLEET_WAIT, fleetWhy, membersNotServing, strayMembers, type MemberReport } from '../../src/dane/fleet.js';
import type { DaneJournal } from '../../src/dane/journal.js';
import type { Observation } from '../../src/dane/visibility.js';
import { memberDeployVerdict, type MemberDeployInput, type MemberVerdict } from '../../src/fleet/member-decide.js';
import { at, both, C, DAY, F, iso, N, O, P, POLICY, rec, S, server, settledDecide as decide, steadyJournal } from './dane-fixtures.js';

const X = '12'.repeat(32);
const OWNER = '_25._tcp.mx.example.test.';

function journal(over: Partial<DaneJournal> = {}): DaneJournal {
  return steadyJournal({ publishedAt: iso(0), nextVisibleAt: iso(0), holdUntil: iso(120_000), ...over });
}

const dns = (...servers: Observation[]): OwnerObservation[] => [{ owner: OWNER, servers }];

function obs(servers: Observation[], members: MemberReport[] | undefined, over: Partial<DaneObservations> = {}): DaneObservations {
  return { dns: dns(...servers), deployedTlsa: C, renewalDue: false, ...(members ? { fleet: { members } } : {}), ...over };
}

const serving = (member: string, tlsa: string, verifiedMs = 0): MemberReport => ({ member, servedTlsa: tlsa, serial: '01', verifiedAt: iso(verifiedMs), reportedAt: iso(verifiedMs) });

/** The executor's view: saves are carried out and decide asked again, on the same observations, until another action. */
function settle(j: DaneJournal, o: DaneObservations, p: DecidePolicy, now: Date): DaneAction {
  let a = decideRaw(j, o, p, now);
  for (let i = 0; i < 5 && a.kind === 'save'; i++) a = decideRaw(a.journal, o, p, now);
  return a;
}

function kind<K extends DaneAction['kind']>(a: DaneAction, k: K): Extract<DaneAction, { kind: K }> {
  assert.equal(a.kind, k, JSON.stringify(a));
  return a as Extract<DaneAction, { kind: K }>;
}

describe('fleet, leader: adoption over an empty RRset publishes only once every member serves the current key', () => {
  const j = journal({ phase: 'PUBLISH', publishedAt: undefined, nextVisibleAt: undefined, holdUntil: undefined });

  it('the lineage does not carry the current key yet: it is published to the fleet first (deploy), as without a fleet', () => {
    const a = kind(decide(j, obs(both([]), [{ member: 'mx-a' }], { deployedTlsa: undefined }), POLICY, at(0)), 'deploy');
    assert.equal(a.key, 'current');
    assert.equal(a.liveCheck, false);
  });

  it('a member on another key or without a report: wait, naming each and what it serves since when', () => {
    const members = [serving('mx-a', C, 1000), serving('mx-b', F, 2000), { member: 'mx-c' }];
    const a = kind(decide(j, obs(both([]), members), POLICY, at(5000)), 'wait');
    assert.ok(a.why.startsWith(FLEET_WAIT), a.why);
    assert.match(a.why, /mx-b \(serves 3 1 1 abababababab… \(neither the current, the next nor the old key\), verified 2026-11-01T00:00:02\.000Z\)/);
    assert.match(a.why, /mx-c \(no report\)/);
    assert.doesNotMatch(a.why, /mx-a/);
    assert.equal(a.until, undefined, 'a wait for members, not for a time');
    assert.equal(a.poll, undefined);
  });

  it('a member whose deploy failed: named with its error and the time of its report', () => {
    const members = [serving('mx-a', C), { member: 'mx-b', error: 'the reload hook failed', reportedAt: iso(3000) }];
    const a = kind(decide(j, obs(both([]), members), POLICY, at(5000)), 'wait');
    assert.match(a.why, /mx-b \(error: the reload hook failed; last report 2026-11-01T00:00:03\.000Z\)/);
  });

  it('every member serves it: publish current + next', () => {
    const a = kind(decide(j, obs(both([]), [serving('mx-a', C), serving('mx-b', C)]), POLICY, at(5000)), 'publish');
    assert.deepEqual(a.add, [rec(C), rec(N)]);
    assert.equal(a.then.awaiting?.then, 'STEADY');
  });

  it('a non-empty RRset, or records published before (removed by hand): published at once, members or not (the hold protects them)', () => {
    const behind = [serving('mx-a', C), { member: 'mx-b' }];
    kind(decide(j, obs(both([F]), behind), POLICY, at(0)), 'publish');
    kind(decide({ ...j, publishedAt: iso(0) }, obs(both([]), behind), POLICY, at(0)), 'publish');
  });

  it('several key types: also waits for every member to serve each sibling’s current key', () => {
    const sib = journal({ phase: 'PUBLISH', publishedAt: undefined, current: { id: 'rc', tlsa: 'a1'.repeat(32), createdAt: iso(0) }, next: { id: 'rn', tlsa: 'a2'.repeat(32), createdAt: iso(0) } });
    const members = [serving('mx-a', C), serving('mx-b', C)];
    const sibling = { keyType: 'rsa-2048', journal: sib, deployedTlsa: sib.current.tlsa };
    const a = kind(decide(j, obs(both([]), members, { siblings: [{ ...sibling, fleet: { members: [serving('mx-a', sib.current.tlsa), { member: 'mx-b' }] } }] }), POLICY, at(0)), 'wait');
    assert.ok(a.why.startsWith(FLEET_WAIT), a.why);
    assert.match(a.why, /rsa-2048: mx-b \(no report\)/);
    const ok = kind(decide(j, obs(both([]), members, { siblings: [{ ...sibling, fleet: { members: [serving('mx-a', sib.current.tlsa), serving('mx-b', sib.current.tlsa)] } }] }), POLICY, at(0)), 'publish');
    assert.deepEqual(ok.add.map((r) => r.data), [C, N, sib.current.tlsa, sib.next.tlsa]);
  });
});

describe('fleet, leader: RETIRE_OLD removes the old record only once every member serves the new key, verified since the swap', () => {
  const old = { id: 'o', tlsa: O, createdAt: iso(0) };
  const SWAP_AT = DAY;
  const j = journal({ phase: 'RETIRE_OLD', old, swappedAt: iso(SWAP_AT), retireAfter: iso(SWAP_AT + 60_000), nextVisibleAt: undefined, holdUntil: undefined });
  const after = at(SWAP_AT + 60_000);

  it('before retireAfter: the clock wait, as without a fleet', () => {
    const a = kind(decide(j, obs(both([O, C]), [serving('mx-a', C, SWAP_AT)]), POLICY, at(SWAP_AT + 59_999)), 'wait');
    assert.deepEqual(a.until, at(SWAP_AT + 60_000));
  });

  it('a member still on the old key (say it is down): wait without a deadline, naming it, what it serves and since when', () => {
    const a = kind(decide(j, obs(both([O, C]), [serving('mx-a', C, SWAP_AT + 1), serving('mx-c', O, 5000)]), POLICY, after), 'wait');
    assert.ok(a.why.startsWith(`${FLEET_WAIT} retire waits for members mx-c`), a.why);
    assert.match(a.why, /mx-c \(serves 3 1 1 eeeeeeeeeeee… \(the old key\), verified 2026-11-01T00:00:05\.000Z\)/);
    assert.doesNotMatch(a.why, /mx-a/);
    assert.equal(a.until, undefined);
  });

  it('a member that never reported, or reported the new key before the swap, holds the retire back too', () => {
    const none = kind(decide(j, obs(both([O, C]), [serving('mx-a', C, SWAP_AT), { member: 'mx-b' }]), POLICY, after), 'wait');
    assert.match(none.why, /mx-b \(no report\)/);
    const stale = kind(decide(j, obs(both([O, C]), [serving('mx-a', C, SWAP_AT), serving('mx-b', C, SWAP_AT - 1)]), POLICY, after), 'wait');
    assert.match(stale.why, /mx-b \(serves 3 1 1 cccccccccccc… \(the current key\), verified .*, before the swap at 2026-11-02T00:00:00\.000Z\)/);
  });

  it('every member verified the new key at or after the swap: −H(old) +H(current) +H(new next)', () => {
    const a = kind(decide(j, obs(both([O, C]), [serving('mx-a', C, SWAP_AT), serving('mx-b', C, SWAP_AT + 5)]), POLICY, after), 'publish');
    assert.deepEqual(a.remove, [rec(O)]);
    assert.deepEqual(a.add, [rec(C), rec(N)]);
  });

  it('while it waits, a record members serve gone from a server is published again, and the retire goes on waiting', () => {
    const members = [serving('mx-a', C, SWAP_AT), serving('mx-c', O)];
    const missing = obs([server(P, [O, C]), server(S, [C])], members);
    // First saved (a crash after the update must not forget that the current key's hold starts over)...
    const reset = kind(decide(j, missing, POLICY, after), 'save');
    assert.equal(reset.journal.currentHoldReset, true);
    assert.equal(reset.journal.phase, 'RETIRE_OLD');
    // ...then published.
    const a = kind(decide(reset.journal, missing, POLICY, after), 'publish');
    assert.deepEqual(a.add, [rec(O), rec(C)]);
    assert.deepEqual(a.remove, []);
    assert.deepEqual(a.then.awaiting, { present: [O, C], absent: [], then: 'RETIRE_OLD', ttlBefore: 60 });
    assert.equal(a.then.phase, 'AWAIT_VISIBLE');
    // Once visible: back to RETIRE_OLD, the old key kept; a member may start serving the
    // current key only after a hold from now; the next key's hold is not started (it is not published yet).
    const seen = both([O, C]).map((o) => ({ ...o, at: at(SWAP_AT + 70_000) }));
    const back = kind(decide(a.then, obs(seen, members), POLICY, at(SWAP_AT + 70_000)), 'save');
    assert.equal(back.journal.phase, 'RETIRE_OLD');
    assert.equal(back.journal.old?.id, 'o');
    assert.equal(back.journal.awaiting, undefined);
    assert.equal(back.journal.currentHoldUntil, iso(SWAP_AT + 70_000 + 120_000), 't_visible + 2 × TTL');
    assert.equal(back.journal.currentHoldReset, undefined);
    assert.equal(back.journal.nextVisibleAt, undefined);
    assert.equal(back.journal.holdUntil, undefined);
    kind(decide(back.journal, obs(both([O, C]), members), POLICY, at(SWAP_AT + 70_000)), 'wait');
  });

  it('a record missing during the wait after the swap (before retireAfter) is put back at once too', () => {
    const a = kind(settle(j, obs([server(P, [O, C]), server(S, [O])], [serving('mx-a', C, SWAP_AT)]), POLICY, at(SWAP_AT + 1000)), 'publish');
    assert.deepEqual(a.add, [rec(O), rec(C)]);
    assert.equal(a.then.awaiting?.then, 'RETIRE_OLD');
    assert.equal(a.then.currentHoldReset, true);
  });

  it('killed after putting the record back: the next pass finds it everywhere and still restarts the current key’s hold', () => {
    const reset = { ...j, currentHoldReset: true };
    const seen = both([O, C]).map((o) => ({ ...o, at: at(SWAP_AT + 2000) }));
    const a = kind(decide(reset, obs(seen, [serving('mx-a', C, SWAP_AT)]), POLICY, at(SWAP_AT + 2000)), 'save');
    assert.equal(a.journal.currentHoldReset, undefined);
    assert.equal(a.journal.currentHoldUntil, iso(SWAP_AT + 2000 + 120_000));
    assert.equal(a.journal.phase, 'RETIRE_OLD');
  });

  it('the next swap forgets the current key’s restarted hold', () => {
    const s = afterSwap(journal({ phase: 'SWAP', currentHoldUntil: iso(5), currentHoldReset: true }), { id: 'f', tlsa: F, createdAt: iso(DAY) }, at(DAY), POLICY);
    assert.equal(s.currentHoldUntil, undefined);
    assert.equal(s.currentHoldReset, undefined);
  });

  it('no report set can remove a record unless every member serves the current key since the swap (fast-check)', () => {
    const report = fc.record({
      key: fc.constantFrom(C, N, O, X, undefined),
      verified: fc.option(fc.integer({ min: SWAP_AT - 10_000, max: SWAP_AT + 10_000 }), { nil: undefined }),
      error: fc.option(fc.constant('boom'), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(report, { minLength: 1, maxLength: 4 }), fc.constantFrom([O, C], [C], [O, C, N], [O, C, X]), (rs, records) => {
        const members: MemberReport[] = rs.map((r, i) => ({
          member: `mx-${i}`,
          ...(r.key ? { servedTlsa: r.key } : {}),
          ...(r.verified !== undefined ? { verifiedAt: iso(r.verified) } : {}),
          ...(r.error ? { error: r.error } : {}),
        }));
        const a = settle(j, obs(both(records), members), POLICY, after);
        const ready = rs.every((r) => r.key === C && r.verified !== undefined && r.verified >= SWAP_AT);
        if (a.kind === 'publish' && a.remove.length) assert.ok(ready, JSON.stringify({ members, a }));
        if (!ready) assert.ok(a.kind === 'wait' || (a.kind === 'publish' && !a.remove.length), JSON.stringify(a));
      }),
    );
  });
});

describe('fleet, leader: a member serving a key the journal does not name', () => {
  it('STEADY: a wait naming it instead of idle (with the same deadline)', () => {
    const a = kind(decide(journal(), obs(both([C, N]), [serving('mx-a', C), serving('mx-x', X, 7000)]), POLICY, at(DAY)), 'wait');
    assert.ok(a.why.startsWith(FLEET_WAIT), a.why);
    assert.match(a.why, /mx-x \(serves 3 1 1 121212121212… \(neither the current, the next nor the old key\), verified 2026-11-01T00:00:07\.000Z\)/);
    assert.deepEqual(a.until, at(90 * DAY));
  });

  it('STEADY: the current and next keys are not strays; no report is not a stray', () => {
    kind(decide(journal(), obs(both([C, N]), [serving('mx-a', C), serving('mx-b', N), { member: 'mx-c' }]), POLICY, at(DAY)), 'idle');
  });

  it('does not hold a rotation back (a swap removes nothing)', () => {
    assert.equal(kind(decide(journal(), obs(both([C, N]), [serving('mx-x', X)]), POLICY, at(90 * DAY)), 'save').journal.phase, 'SWAP');
  });

  it('RETIRE_OLD: waits, naming it; never removes a record', () => {
    const j = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(DAY), retireAfter: iso(DAY), nextVisibleAt: undefined, holdUntil: undefined });
    const a = kind(decide(j, obs(both([O, C]), [serving('mx-a', C, DAY), serving('mx-x', X, DAY)]), POLICY, at(2 * DAY)), 'wait');
    assert.match(a.why, /mx-x \(serves 3 1 1 121212121212… \(neither the current, the next nor the old key\)/);
  });

  it('strayMembers and membersNotServing', () => {
    const j = journal({ old: { id: 'o', tlsa: O, createdAt: iso(0) } });
    const ms = [serving('a', C), serving('b', N), serving('c', O), serving('d', X), { member: 'e' }];
    assert.deepEqual(strayMembers(j, ms).map((m) => m.member), ['d']);
    assert.deepEqual(membersNotServing(ms, C).map((m) => m.member), ['b', 'c', 'd', 'e']);
    assert.deepEqual(membersNotServing([serving('a', C, 10), serving('b', C, 9), { member: 'c', servedTlsa: C }], C, iso(10)).map((m) => m.member), ['b', 'c']);
  });
});

describe('fleet, leader: without fleet data nothing changes', () => {
  it('the same observations without `fleet` decide as before (publish, retire, idle)', () => {
    const p = journal({ phase: 'PUBLISH', publishedAt: undefined, nextVisibleAt: undefined, holdUntil: undefined });
    kind(decide(p, obs(both([]), undefined), POLICY, at(0)), 'publish');
    const r = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(0), retireAfter: iso(0) });
    assert.deepEqual(kind(decide(r, obs(both([O, C]), undefined), POLICY, at(1)), 'publish').remove, [rec(O)]);
    kind(decide(journal(), obs(both([C, N]), undefined), POLICY, at(DAY)), 'idle');
  });
});

describe('fleet status text', () => {
  it('fleetWhy: who holds what back, or that every member serves the current key', () => {
    const j = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(DAY) });
    assert.equal(fleetWhy(j, [serving('mx-a', C, DAY), serving('mx-b', C, DAY)]), 'every member (mx-a, mx-b) serves the current key 3 1 1 cccccccccccc…');
    assert.equal(
      fleetWhy(j, [serving('mx-a', C, DAY), serving('mx-b', O, 5), { member: 'mx-c' }]),
      'retire of the old key waits for: mx-b (serves 3 1 1 eeeeeeeeeeee… (the old key), verified 2026-11-01T00:00:00.005Z); mx-c (no report)',
    );
    assert.equal(fleetWhy(journal(), [serving('mx-a', N, 5)]), 'not serving the current key: mx-a (serves 3 1 1 dddddddddddd… (the next key), verified 2026-11-01T00:00:00.005Z)');
    assert.equal(fleetWhy(undefined, [{ member: 'mx-a' }]), 'members: mx-a (no report)');
    assert.equal(fleetWhy(j, []), 'no members expected');
  });

  it('describeMember without a journal names the key only', () => {
    assert.equal(describeMember({ member: 'mx-a', servedTlsa: C }), 'mx-a (serves 3 1 1 cccccccccccc…, never verified)');
    assert.equal(describeMember({ member: 'mx-a', reportedAt: iso(0) }), 'mx-a (no served key reported; last report 2026-11-01T00:00:00.000Z)');
  });
});

// --------------------------------------------------------------------------
// The member's side

function verdict(over: Partial<MemberDeployInput>, now = at(DAY)): MemberVerdict {
  const input: MemberDeployInput = { dane: true, journal: journal(), lineage: { tlsa: C, serial: '02' }, deployed: { tlsa: O, serial: '01' }, dns: dns(...both([C, N])), ...over };
  return memberDeployVerdict(input, now);
}
function vkind<K extends MemberVerdict['kind']>(v: MemberVerdict, k: K): Extract<MemberVerdict, { kind: K }> {
  assert.equal(v.kind, k, JSON.stringify(v));
  return v as Extract<MemberVerdict, { kind: K }>;
}

describe('fleet, member: deploy a lineage key only if the journal names it and DNS serves it everywhere', () => {
  it('the current key, published on every server: deploy', () => {
    vkind(verdict({}), 'deploy');
  });

  it('the current key missing on one server: refuse, naming the server, and keep serving', () => {
    const v = vkind(verdict({ dns: dns(server(P, [C, N]), server(S, [N])) }), 'refuse');
    assert.match(v.why, /not published everywhere: .*5302: lacks TLSA 3 1 1 cccccccccccc/);
  });

  it('a server that does not answer is no evidence: refuse', () => {
    vkind(verdict({ dns: dns(server(P, [C, N]), { server: S, ok: false, authoritative: false, records: [], error: 'timeout' }) }), 'refuse');
    vkind(verdict({ dns: [] }), 'refuse');
  });

  it('a key the journal does not name, or its old key: refuse', () => {
    assert.match(vkind(verdict({ lineage: { tlsa: X, serial: '02' }, dns: dns(...both([C, N, X])) }), 'refuse').why, /not named by the journal/);
    const j = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: F, createdAt: iso(0) } });
    assert.match(vkind(verdict({ journal: j, lineage: { tlsa: F, serial: '02' }, dns: dns(...both([F, C, N])) }), 'refuse').why, /the journal's old key/);
  });

  it('the next key: only in SWAP, only after the hold (unless an emergency)', () => {
    const next = { lineage: { tlsa: N, serial: '02' }, deployed: { tlsa: C, serial: '01' } };
    assert.match(vkind(verdict({ ...next }), 'refuse').why, /next key, but the journal is in STEADY/);
    vkind(verdict({ ...next, journal: journal({ phase: 'SWAP' }) }, at(120_000)), 'deploy');
    const held = vkind(verdict({ ...next, journal: journal({ phase: 'SWAP' }) }, at(119_999)), 'refuse');
    assert.deepEqual(held.until, at(120_000));
    vkind(verdict({ ...next, journal: journal({ phase: 'SWAP', holdUntil: undefined }) }, at(DAY)), 'refuse');
    vkind(verdict({ ...next, journal: journal({ phase: 'SWAP', holdUntil: iso(2 * DAY), rollover: { requestedAt: iso(0), emergency: true } }) }, at(DAY)), 'deploy');
    vkind(verdict({ ...next, journal: journal({ phase: 'SWAP' }), dns: dns(server(P, [C, N]), server(S, [C])) }, at(DAY)), 'refuse');
  });

  it('STEADY or SWAP: the current key only after the hold over {current, next} (restarted whenever a record went missing)', () => {
    const early = vkind(verdict({}, at(119_999)), 'refuse');
    assert.deepEqual(early.until, at(120_000));
    assert.match(early.why, /current key is held until 2026-11-01T00:02:00\.000Z/);
    vkind(verdict({}, at(120_000)), 'deploy');
    vkind(verdict({ journal: journal({ holdUntil: undefined, nextVisibleAt: undefined }) }, at(DAY)), 'refuse');
    vkind(verdict({ journal: journal({ phase: 'SWAP' }) }, at(119_999)), 'refuse');
  });

  it('PUBLISH (after the first publish) or AWAIT_VISIBLE: no hold covers a key yet, refuse', () => {
    assert.match(vkind(verdict({ journal: journal({ phase: 'PUBLISH', holdUntil: undefined }) }), 'refuse').why, /no hold covers the current key/);
    vkind(verdict({ journal: journal({ phase: 'AWAIT_VISIBLE', holdUntil: undefined }) }), 'refuse');
  });

  it('RETIRE_OLD: the current key was held before the swap; after records were put back, only after currentHoldUntil', () => {
    const r = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(DAY), holdUntil: undefined, nextVisibleAt: undefined });
    const d = dns(...both([O, C]));
    vkind(verdict({ journal: r, dns: d }, at(DAY + 1)), 'deploy');
    const held = vkind(verdict({ journal: { ...r, currentHoldUntil: iso(DAY + 5000) }, dns: d }, at(DAY + 4999)), 'refuse');
    assert.deepEqual(held.until, at(DAY + 5000));
    vkind(verdict({ journal: { ...r, currentHoldUntil: iso(DAY + 5000) }, dns: d }, at(DAY + 5000)), 'deploy');
    assert.match(vkind(verdict({ journal: { ...r, currentHoldReset: true }, dns: d }, at(DAY + 5000)), 'refuse').why, /hold starts over/);
  });

  it('adoption over a foreign RRset (DEPLOY_CURRENT): the current key only after the hold', () => {
    const j = journal({ phase: 'DEPLOY_CURRENT' });
    vkind(verdict({ journal: j, dns: dns(...both([F, C, N])) }, at(119_999)), 'refuse');
    vkind(verdict({ journal: j, dns: dns(...both([F, C, N])) }, at(120_000)), 'deploy');
  });

  it('adoption over an empty RRset: the current key is served before anything is published', () => {
    const j = journal({ phase: 'PUBLISH', publishedAt: undefined, nextVisibleAt: undefined, holdUntil: undefined });
    vkind(verdict({ journal: j, deployed: undefined, dns: dns(...both([])) }), 'deploy');
    // Records published before and now gone (removed by hand): caches may hold them, so no.
    vkind(verdict({ journal: { ...j, publishedAt: iso(0) }, deployed: undefined, dns: dns(...both([])) }), 'refuse');
    // A server that did not answer may hold records.
    vkind(verdict({ journal: j, deployed: undefined, dns: dns(server(P, []), { server: S, ok: false, authoritative: false, records: [] }) }), 'refuse');
  });

  it('DANE on but not adopted yet, or the records being withdrawn: refuse a new key', () => {
    assert.match(vkind(verdict({ journal: undefined }), 'refuse').why, /no DANE journal yet/);
    vkind(verdict({ journal: journal({ phase: 'WITHDRAW' }) }), 'refuse');
  });

  it('a renewal that keeps the served key: deploy whatever DNS says (the records do not change)', () => {
    vkind(verdict({ deployed: { tlsa: C, serial: '01' }, dns: dns(...both([])) }), 'deploy');
    vkind(verdict({ deployed: { tlsa: C, serial: '01' }, journal: journal({ phase: 'RELEASE' }), dns: dns(...both([])) }), 'deploy');
  });

  it('without DANE (and no journal): deploy whenever the serial differs', () => {
    vkind(verdict({ dane: false, journal: undefined, lineage: { tlsa: X, serial: '02' }, dns: [] }), 'deploy');
    vkind(verdict({ dane: false, journal: undefined, deployed: undefined, dns: [] }), 'deploy');
  });

  it('DANE off in the config but a journal left (records still published): the DANE checks still apply', () => {
    vkind(verdict({ dane: false, lineage: { tlsa: X, serial: '02' } }), 'refuse');
  });

  it('already serving the lineage: skip when reported; verify when the report lags (crash before it, or from before the swap)', () => {
    const deployed = { tlsa: C, serial: '02' };
    const report = { member: 'mx-a', servedTlsa: C, serial: '02', verifiedAt: iso(DAY) };
    vkind(verdict({ deployed, report }), 'skip');
    vkind(verdict({ deployed }), 'verify');
    vkind(verdict({ deployed, report: { ...report, serial: '01' } }), 'verify');
    const swapped = journal({ phase: 'RETIRE_OLD', old: { id: 'o', tlsa: O, createdAt: iso(0) }, swappedAt: iso(DAY + 1) });
    assert.match(vkind(verdict({ deployed, report, journal: swapped }), 'verify').why, /predates the swap/);
    vkind(verdict({ deployed, report: { ...report, verifiedAt: iso(DAY + 1) }, journal: swapped }), 'skip');
    vkind(verdict({ dane: false, journal: undefined, deployed, report, dns: [] }), 'skip');
    vkind(verdict({ dane: false, journal: undefined, deployed: { serial: '02' }, report, dns: [] }), 'skip');
  });
});
