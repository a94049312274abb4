// Which changes in etcd make a daemon run a pass (src/daemon/fleet-nudge.ts),
// when a fleet DANE journal comes due by time, and when the daemon starts,
// restarts or stops its fleet watcher (src/daemon/fleet-watch.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { claimChanged, dueMargin, DUE_MARGIN_MS, FOLLOWER_GRACE_MS, dueRetryMs, fleetDaneDue, membersMatter, nudgeFor, type NudgeContext } from '../../src/daemon/fleet-nudge.js';
import { watcherRestartMs, watchFingerprint } from '../../src/daemon/fleet-watch.js';
import type { CertificateConfig, Config } from '../../src/config/schema.js';

const NOW = new Date('2026-12-07T08:00:00Z');
const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString();
const journal = (phase: string, extra: object = {}) => ({ version: 2, phase, current: { id: 'c', tlsa: 'aa', createdAt: at(-86_400_000) }, next: { id: 'n', tlsa: 'bb', createdAt: at(-86_400_000) }, updatedAt: at(0), ...extra });
const daneRecord = (phase: string, by = 'mx-b', extra: object = {}) => ({ v: 1, journal: { 'ecdsa-p256': journal(phase, extra) }, next: {}, updatedBy: by, updatedAt: at(0) });
const report = (member: string, serial: string, verifiedAt = at(0), error?: string) => ({
  v: 1,
  member,
  cert: 'mx',
  units: { 'ecdsa-p256': { spkiSha256: 'a'.repeat(64), serial } },
  generation: 3,
  verifiedAt,
  ...(error ? { error: { message: error, at: at(1000) } } : {}),
});
const lineage = (by: string, generation = 4) => ({ v: 1, generation, units: {}, updatedBy: by, updatedAt: at(0) });

function ctx(dane?: unknown): NudgeContext {
  return { member: 'mx-a', certs: ['mx'], dane: new Map(dane === undefined ? [] : [['mx', dane]]) };
}

describe('nudgeFor', () => {
  it("another member's lineage nudges the certificate; this member's own write does not", () => {
    assert.deepEqual(nudgeFor('certs/mx/lineage', lineage('mx-b', 3), lineage('mx-b', 4), ctx()), { certs: ['mx'], why: 'a new lineage of mx (generation 4, by mx-b)' });
    assert.equal(nudgeFor('certs/mx/lineage', undefined, lineage('mx-a'), ctx()), undefined);
    assert.deepEqual(nudgeFor('certs/mx/lineage', lineage('mx-b'), undefined, ctx())?.certs, ['mx']);
  });

  it('a certificate this host does not serve from the fleet nudges nothing', () => {
    assert.equal(nudgeFor('certs/other/lineage', undefined, lineage('mx-b'), ctx()), undefined);
    assert.equal(nudgeFor('certs/other/dane', undefined, daneRecord('SWAP'), ctx()), undefined);
    assert.equal(nudgeFor('members/mx-b/other', undefined, report('mx-b', '01'), ctx(daneRecord('RETIRE_OLD'))), undefined);
  });

  it("another member's DANE journal write nudges (members follow SWAP, the next pass's leader continues); its own does not", () => {
    assert.deepEqual(nudgeFor('certs/mx/dane', daneRecord('STEADY'), daneRecord('RETIRE_OLD'), ctx())?.certs, ['mx']);
    assert.equal(nudgeFor('certs/mx/dane', daneRecord('STEADY', 'mx-a'), daneRecord('RETIRE_OLD', 'mx-a'), ctx()), undefined);
  });

  it("another member's report nudges only while a journal is not STEADY, and only when its claim changed", () => {
    const before = report('mx-b', '01');
    const moved = report('mx-b', '02');
    assert.deepEqual(nudgeFor('members/mx-b/mx', before, moved, ctx(daneRecord('RETIRE_OLD'))), { certs: ['mx'], why: 'mx-b reported on mx' });
    assert.deepEqual(nudgeFor('members/mx-b/mx', before, report('mx-b', '01', at(5000)), ctx(daneRecord('RETIRE_OLD')))?.certs, ['mx'], 'verified again');
    assert.deepEqual(nudgeFor('members/mx-b/mx', undefined, before, ctx(daneRecord('PUBLISH')))?.certs, ['mx'], 'a first report');
    assert.equal(nudgeFor('members/mx-b/mx', before, moved, ctx(daneRecord('STEADY'))), undefined, 'STEADY waits for nobody');
    assert.equal(nudgeFor('members/mx-b/mx', before, moved, ctx()), undefined, 'no DANE: the leader waits for no report');
    assert.equal(nudgeFor('members/mx-b/mx', before, report('mx-b', '01', at(0), 'verify: refused'), ctx(daneRecord('RETIRE_OLD'))), undefined, 'an error stamp alone');
    assert.equal(nudgeFor('members/mx-b/mx', before, { ...before, units: {} }, ctx(daneRecord('RETIRE_OLD'))), undefined, 'withdrawn before a deploy: nothing to act on');
    assert.equal(nudgeFor('members/mx-b/mx', before, undefined, ctx(daneRecord('RETIRE_OLD'))), undefined, 'a report deleted');
  });

  it("this member's own report never nudges it (its pass wrote it): no loop", () => {
    assert.equal(nudgeFor('members/mx-a/mx', report('mx-a', '01'), report('mx-a', '02'), ctx(daneRecord('RETIRE_OLD'))), undefined);
  });

  it('the leader key, written by every pass, never nudges; a removal of another member does', () => {
    assert.equal(nudgeFor('leader', undefined, { member: 'mx-b' }, ctx(daneRecord('RETIRE_OLD'))), undefined);
    assert.equal(nudgeFor('leader', { member: 'mx-b' }, undefined, ctx(daneRecord('RETIRE_OLD'))), undefined);
    assert.deepEqual(nudgeFor('removed/mx-c', undefined, { v: 1, member: 'mx-c' }, ctx())?.certs, ['mx']);
    assert.equal(nudgeFor('removed/mx-a', undefined, { v: 1, member: 'mx-a' }, ctx()), undefined);
  });

  it('a fleet of three that only writes reports settles: each write nudges the others, whose passes write nothing new', () => {
    // Replay: mx-b and mx-c write the same claim again (a pass that changed
    // nothing); the first write nudges, the repeats do not.
    const seen = new Map<string, unknown>();
    let nudges = 0;
    const write = (key: string, value: unknown) => {
      if (nudgeFor(key, seen.get(key), value, ctx(daneRecord('RETIRE_OLD')))) nudges++;
      seen.set(key, value);
    };
    for (let pass = 0; pass < 5; pass++) {
      write('members/mx-b/mx', report('mx-b', '02', at(1000)));
      write('members/mx-c/mx', report('mx-c', '02', at(2000)));
    }
    assert.equal(nudges, 2);
  });
});

describe('membersMatter and claimChanged', () => {
  it('any key type outside STEADY matters; no record or journal does not', () => {
    assert.equal(membersMatter(undefined), false);
    assert.equal(membersMatter({ journal: {} }), false);
    assert.equal(membersMatter(daneRecord('STEADY')), false);
    const mixed = { journal: { 'ecdsa-p256': journal('STEADY'), 'rsa-2048': journal('AWAIT_VISIBLE') } };
    assert.equal(membersMatter(mixed), true);
  });
  it('a report appearing or going is a change; the same claim is not', () => {
    assert.equal(claimChanged(undefined, undefined), false);
    assert.equal(claimChanged(undefined, report('mx-b', '01')), true);
    assert.equal(claimChanged(report('mx-b', '01'), undefined), true);
    assert.equal(claimChanged(report('mx-b', '01'), report('mx-b', '01')), false);
  });
});

describe('fleetDaneDue', () => {
  const cert = { name: 'mx', keys: ['ecdsa-p256'], dane: { enabled: true, keyLifetime: 90 * 86_400_000, minHold: 0, publisher: { ttl: 5 } } } as unknown as CertificateConfig;
  it("RETIRE_OLD: at its retireAfter, from the journal in etcd", () => {
    assert.deepEqual(fleetDaneDue(daneRecord('RETIRE_OLD', 'mx-b', { retireAfter: at(5000) }), cert, NOW), { at: NOW.getTime() + 5000, due: false });
  });
  it('a wait without a deadline is due now; STEADY without a request waits for the key lifetime', () => {
    assert.deepEqual(fleetDaneDue(daneRecord('AWAIT_VISIBLE'), cert, NOW), { at: NOW.getTime(), due: true });
    const steady = fleetDaneDue(daneRecord('STEADY', 'mx-b', { holdUntil: at(-1000) }), cert, NOW)!;
    assert.equal(steady.due, false);
    assert.equal(steady.at, NOW.getTime() - 86_400_000 + 90 * 86_400_000);
    const requested = fleetDaneDue(daneRecord('STEADY', 'mx-b', { holdUntil: at(8000), rollover: { requestedAt: at(0), emergency: false } }), cert, NOW);
    assert.deepEqual(requested, { at: NOW.getTime() + 8000, due: false }, 'a requested rollover: at the end of the hold');
  });
  it('the earliest over the key types; nothing without a record or a journal', () => {
    const two = { ...cert, keys: ['ecdsa-p256', 'rsa-2048'] } as unknown as CertificateConfig;
    const rec = { journal: { 'ecdsa-p256': journal('RETIRE_OLD', { retireAfter: at(9000) }), 'rsa-2048': journal('RETIRE_OLD', { retireAfter: at(3000) }) } };
    assert.equal(fleetDaneDue(rec, two, NOW)?.at, NOW.getTime() + 3000);
    assert.equal(fleetDaneDue(undefined, cert, NOW), undefined);
    assert.equal(fleetDaneDue({ journal: { 'ecdsa-p256': { phase: 'STEADY' } } }, cert, NOW), undefined, 'a journal without keys is not one to time');
  });
  it('at a deadline the member that wrote the record last goes first, the others a grace later', () => {
    assert.equal(dueMargin(daneRecord('RETIRE_OLD', 'mx-a'), 'mx-a'), DUE_MARGIN_MS);
    assert.equal(dueMargin(daneRecord('RETIRE_OLD', 'mx-b'), 'mx-a'), DUE_MARGIN_MS + FOLLOWER_GRACE_MS);
    assert.ok(FOLLOWER_GRACE_MS >= 1000 && FOLLOWER_GRACE_MS <= 5000);
  });
  it('retries back off from 10 s to at most 10 min', () => {
    assert.deepEqual([0, 1, 2, 3, 10].map(dueRetryMs), [10_000, 20_000, 40_000, 80_000, 600_000]);
  });
});

describe('the fleet watcher in the daemon', () => {
  const base = { stateDir: '/var/lib/mxcert', certificates: [{ name: 'mx', keys: ['ecdsa-p256'], fleet: true }] } as unknown as Config;
  const fleet = { member: 'mx-a', members: ['mx-a', 'mx-b'], etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/f/' } };
  it('runs only with a fleet block and a fleet certificate', () => {
    assert.equal(watchFingerprint(base), undefined);
    assert.equal(watchFingerprint({ ...base, fleet, certificates: [{ name: 'mx', keys: ['ecdsa-p256'], fleet: false }] } as unknown as Config), undefined);
    assert.equal(typeof watchFingerprint({ ...base, fleet } as unknown as Config), 'string');
  });
  it('restarts on a reload only when what it watches changed', () => {
    const a = watchFingerprint({ ...base, fleet, schedule: '0 * * * *' } as unknown as Config);
    assert.equal(watchFingerprint({ ...base, fleet, schedule: '5 * * * *' } as unknown as Config), a, 'the schedule is not its business');
    assert.notEqual(watchFingerprint({ ...base, fleet: { ...fleet, member: 'mx-b' } } as unknown as Config), a);
    const withDane = { ...base, fleet, certificates: [{ name: 'mx', keys: ['ecdsa-p256'], fleet: true, dane: { enabled: true } }] };
    assert.notEqual(watchFingerprint(withDane as unknown as Config), a);
  });
  it('restart backoff: 1 s, 2 s, 4 s … at most 60 s', () => {
    assert.deepEqual([1, 2, 3, 4, 7, 20].map(watcherRestartMs), [1000, 2000, 4000, 8000, 60_000, 60_000]);
  });
});
