// Turning DANE off (src/dane/retire.ts): what a retirement decides on plain
// observations, which key a renewal keeps meanwhile and what it says, and
// whether what would be left at an owner still lets DANE senders deliver.
import { describe, it, before, after } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { decideRetire as decideRetireRaw, keptKey, keptKeyNotice, leftUncovered, retireStart, retireView, type RetireAction, type RetireObservations, type RetireView } from '../../src/dane/retire.js';
import { decide, type DecidePolicy, type OwnerObservation } from '../../src/dane/decide.js';
import type { DaneJournal } from '../../src/dane/journal.js';
import { tlsaMatchesChain, usableForSmtp, type TlsaRecord } from '../../src/dane/tlsa.js';
import type { Observation } from '../../src/dane/visibility.js';
import { makePki, type TestPki } from './pki-fixtures.js';
import { retireDane } from '../../src/dane/rollover.js';
import { writeJournal } from '../../src/dane/journal.js';
import { StateStore } from '../../src/store/state-store.js';
import { ConfigError } from '../../src/errors.js';
import { FakeClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { at, C, DAY, F, iso, N, O, P, rec, S, steadyJournal } from './dane-fixtures.js';

const R1 = 'a1'.repeat(32);
const R2 = 'a2'.repeat(32);
const OWNER = '_25._tcp.mx1.example.test.';
const POLICY = { ttl: 60, minHoldMs: 0 };
const journal = steadyJournal;

function server(s: typeof P, records: TlsaRecord[], over: Partial<Observation> = {}): Observation {
  return { server: s, ok: true, authoritative: true, serial: 10, records, ...(records.length ? { ttl: 60 } : {}), at: at(0), ...over };
}

const dns = (...servers: Observation[]): OwnerObservation[] => [{ owner: OWNER, servers }];
const obs = (servers: Observation[], chains: RetireObservations['chains'] = []): RetireObservations => ({ dns: dns(...servers), chains });
const both = (records: TlsaRecord[], over: Partial<Observation> = {}) => [server(P, records, over), server(S, records, over)];

/** As the executor sees it: a first answer that only saves the TTL memory is followed by the real one. */
function decideRetire(v: RetireView, o: RetireObservations, p: typeof POLICY, now: Date): RetireAction {
  const a = decideRetireRaw(v, o, p, now);
  if (a.kind === 'save' && a.view.phase === v.phase && JSON.stringify(a.view.retire) === JSON.stringify(v.retire)) return decideRetireRaw(a.view, o, p, now);
  return a;
}

function kind<K extends RetireAction['kind']>(a: RetireAction, k: K): Extract<RetireAction, { kind: K }> {
  assert.equal(a.kind, k, JSON.stringify(a));
  return a as Extract<RetireAction, { kind: K }>;
}

const view = (phase: RetireView['phase'], over: Partial<RetireView['retire']> = {}): RetireView => ({
  phase,
  retire: { startedAt: iso(0), owners: [OWNER], records: [C, N, R1, R2], ...over },
  ttlSeen: { live: 60 },
});

describe('starting a retirement', () => {
  it('covers every key of every key type (current, next, an old one not yet retired) and every owner ever published at', () => {
    const ec = journal({ old: { id: 'o', tlsa: O, createdAt: iso(0) }, publishedWith: { owners: ['_25._tcp.old.example.test.'], ttl: 60, minHoldMs: 0, publisher: { provider: 'hook' } as never } });
    const rsa = journal({ current: { id: 'rc', tlsa: R1, createdAt: iso(0) }, next: { id: 'rn', tlsa: R2, createdAt: iso(0) } });
    const r = retireStart([ec, rsa], [OWNER], at(5));
    assert.deepEqual(r.records.sort(), [C, N, O, R1, R2].sort());
    assert.deepEqual(r.owners.sort(), ['_25._tcp.old.example.test.', OWNER].sort());
    assert.equal(r.startedAt, iso(5));
  });

  it('the least advanced key type leads after a crash between journal writes; records of all of them', () => {
    const a = journal({ phase: 'RELEASE', retire: { startedAt: iso(0), owners: [OWNER], records: [C, N], goneAt: iso(1), releaseAt: iso(2) } });
    const b = journal({ phase: 'AWAIT_GONE', retire: { startedAt: iso(0), owners: [OWNER], records: [R1, R2] } });
    const v = retireView([a, b])!;
    assert.equal(v.phase, 'AWAIT_GONE');
    assert.deepEqual(v.retire.records.sort(), [C, N, R1, R2].sort());
    assert.equal(retireView([journal()]), undefined, 'no retirement under way');
  });
});

describe('decideRetire: WITHDRAW', () => {
  it('removes exactly mxcert’s records; foreign records stay; remembers the TTL they were served with', () => {
    const a = kind(decideRetire(view('WITHDRAW'), obs([server(P, [rec(C), rec(N), rec(R1), rec(R2)], { ttl: 60 }), server(S, [rec(C), rec(N), rec(R1), rec(R2)])]), POLICY, at(0)), 'publish');
    assert.deepEqual(a.remove.map((r) => r.data), [C, N, R1, R2]);
    assert.equal(a.then.phase, 'AWAIT_GONE');
    assert.equal(a.then.retire.ttlBefore, 60);
  });

  it('refuses when what is left would not match the served certificate: DANE senders would refuse mail', () => {
    const a = kind(decideRetire(view('WITHDRAW'), obs([server(P, [rec(C), rec(N), rec(F)]), server(S, [rec(C), rec(N), rec(F)])], [{ keyType: 'ecdsa-p256', chainDer: [] }]), POLICY, at(0)), 'refuse');
    assert.match(a.why, /would break delivery: _25\._tcp\.mx1\.example\.test\.: 3 1 1 abababababab… would remain, and none matches the certificate served for ecdsa-p256/);
  });

  it('an RRset left empty, or with only records senders cannot use, puts DANE out of force: fine', () => {
    const pkix: TlsaRecord = { usage: 1, selector: 1, matchingType: 1, data: F };
    kind(decideRetire(view('WITHDRAW'), obs([server(P, [rec(C), rec(N), pkix])], [{ keyType: 'ecdsa-p256', chainDer: [] }]), POLICY, at(0)), 'publish');
    kind(decideRetire(view('WITHDRAW'), obs([server(P, [rec(C), rec(N)])]), POLICY, at(0)), 'publish');
  });
});

describe('decideRetire: AWAIT_GONE and RELEASE', () => {
  it('waits (polling) while a server still serves a record of ours, or is behind the withdrawal’s serial', () => {
    const v = view('AWAIT_GONE', { minSerial: 11, ttlBefore: 60 });
    assert.match(kind(decideRetire(v, obs([server(P, [], { serial: 11 }), server(S, [rec(C)], { serial: 11 })]), POLICY, at(0)), 'wait').why, /still serves TLSA/);
    assert.match(kind(decideRetire(v, obs([server(P, [], { serial: 11 }), server(S, [], { serial: 10 })]), POLICY, at(0)), 'wait').why, /serial 10 is behind 11/);
  });

  it('gone everywhere: the keys are kept until 2 × the TTL they were served with, from when the last server was seen without them', () => {
    const v = { ...view('AWAIT_GONE', { minSerial: 11, ttlBefore: 300 }), ttlSeen: undefined };
    const a = kind(decideRetire(v, obs([server(P, [], { serial: 11, at: at(1000) }), server(S, [], { serial: 11, at: at(1500) })]), POLICY, at(2000)), 'save');
    assert.equal(a.view.phase, 'RELEASE');
    assert.equal(a.view.retire.goneAt, iso(1500));
    assert.equal(a.view.retire.releaseAt, iso(1500 + 600_000));
    const minHold = kind(decideRetire(v, obs([server(P, [], { serial: 11, at: at(1000) })]), { ttl: 60, minHoldMs: 3_600_000 }, at(2000)), 'save');
    assert.equal(minHold.view.retire.releaseAt, iso(1000 + 3_600_000), 'minHold applies as to any hold');
  });

  it('RELEASE: waits until releaseAt, then frees the keys', () => {
    const v = { ...view('RELEASE', { goneAt: iso(0), releaseAt: iso(120_000) }), ttlSeen: undefined };
    assert.deepEqual(kind(decideRetire(v, obs([server(P, [])]), POLICY, at(119_999)), 'wait').until, at(120_000));
    kind(decideRetire(v, obs([server(P, [])]), POLICY, at(120_000)), 'free');
  });

  it('RELEASE: a record of ours served again (a server fell back, or someone put it back): withdraw again', () => {
    const v = { ...view('RELEASE', { goneAt: iso(0), releaseAt: iso(120_000) }), ttlSeen: undefined };
    const a = kind(decideRetire(v, obs([server(P, []), server(S, [rec(N)])]), POLICY, at(200_000)), 'save');
    assert.equal(a.view.phase, 'WITHDRAW');
    assert.equal(a.view.retire.releaseAt, undefined);
    assert.match(a.warn!, /served again/);
  });

  it('a server that does not answer is not evidence that our records are back', () => {
    const v = { ...view('RELEASE', { goneAt: iso(0), releaseAt: iso(120_000) }), ttlSeen: undefined };
    kind(decideRetire(v, obs([server(P, []), { server: S, ok: false, authoritative: false, records: [], error: 'timeout' }]), POLICY, at(200_000)), 'free');
  });
});

describe('while the records may still be published', () => {
  it('a renewal keeps the current key, or the next one if an interrupted swap left it served', () => {
    const j = journal();
    assert.equal(keptKey(j, C).id, 'c');
    assert.equal(keptKey(j, undefined).id, 'c');
    assert.equal(keptKey(j, F).id, 'c', 'a key no record names is replaced by the current one');
    assert.equal(keptKey(j, N).id, 'n');
  });

  it('says why, in words', () => {
    const j = journal({ publishedWith: { owners: [OWNER], ttl: 60, minHoldMs: 0, publisher: { provider: 'hook' } as never } });
    assert.equal(
      keptKeyNotice('mx1', j, false),
      `DANE is off in the config but mxcert's TLSA records for mx1 are still published at ${OWNER}; keeping the current key until you run \`mxcert dane retire --cert mx1\``,
    );
    const r = journal({ phase: 'RELEASE', retire: { startedAt: iso(0), owners: [OWNER], records: [C, N], releaseAt: iso(1000) } });
    assert.match(keptKeyNotice('mx1', r, false), /mxcert dane retire is removing mxcert's TLSA records for mx1 at _25\._tcp\.mx1\.example\.test\. \(RELEASE\); keeping the current key until .* \(2026-11-01T00:00:01\.000Z\)$/);
    assert.match(keptKeyNotice('mx1', r, true), /DANE starts again after that$/);
  });
});

describe('what the journal keeps for a retirement', () => {
  const policy: DecidePolicy = { keyLifetimeMs: 90 * 86_400_000, minHoldMs: 0, strictSignatures: false, ttl: 60, resolver: false, extras: [] };
  const publisher = { provider: 'rfc2136', server: '127.0.0.1', port: 53, zone: 'example.test', tsig: { name: 'k', algorithm: 'hmac-sha256', secretFile: '/etc/mxcert/tsig.key' }, ttl: 60 } as never;
  it('the publisher settings (which name their secret, never hold it) and every owner ever published at', () => {
    const j = journal({ nextVisibleAt: iso(0), holdUntil: iso(1), ttlSeen: { live: 60 }, publishedWith: { owners: ['_25._tcp.old.example.test.'], ttl: 60, minHoldMs: 0, publisher } });
    const a = decide(j, { dns: dns(server(P, [rec(C), rec(N)])), deployedTlsa: C, renewalDue: false }, { ...policy, publishedWith: { owners: [OWNER], ttl: 60, minHoldMs: 0, publisher } }, at(10));
    assert.equal(a.kind, 'save');
    const pw = (a as { journal: DaneJournal }).journal.publishedWith!;
    assert.deepEqual(pw.owners, ['_25._tcp.old.example.test.', OWNER]);
    assert.equal(JSON.stringify(pw).includes('secretFile'), true);
    // Already up to date: nothing to save.
    assert.equal(decide({ ...j, publishedWith: pw }, { dns: dns(server(P, [rec(C), rec(N)])), deployedTlsa: C, renewalDue: false }, { ...policy, publishedWith: { owners: [OWNER], ttl: 60, minHoldMs: 0, publisher } }, at(10)).kind, 'idle');
  });
});

describe('TLSA records against a served chain (RFC 7671, RFC 7672 §3.1.3)', () => {
  let pki: TestPki;
  let chain: Buffer[];
  const hash = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');
  const spki = (pem: string) => new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }) as Buffer;
  before(async () => {
    pki = await makePki(new Date());
    chain = [pki.leaf.pem, pki.intermediate.pem].map((p) => new X509Certificate(p).raw);
  });

  it('DANE-EE matches the leaf, by SPKI or whole certificate, SHA-256, SHA-512 or full', () => {
    assert.ok(tlsaMatchesChain({ usage: 3, selector: 1, matchingType: 1, data: hash('sha256', spki(pki.leaf.pem)) }, chain));
    assert.ok(tlsaMatchesChain({ usage: 3, selector: 0, matchingType: 2, data: hash('sha512', chain[0]!) }, chain));
    assert.ok(tlsaMatchesChain({ usage: 3, selector: 1, matchingType: 0, data: spki(pki.leaf.pem).toString('hex') }, chain));
    assert.equal(tlsaMatchesChain({ usage: 3, selector: 1, matchingType: 1, data: hash('sha256', spki(pki.intermediate.pem)) }, chain), false, 'EE never matches an issuer');
  });

  it('DANE-TA matches an issuer in the chain, never the leaf', () => {
    assert.ok(tlsaMatchesChain({ usage: 2, selector: 1, matchingType: 1, data: hash('sha256', spki(pki.intermediate.pem)) }, chain));
    assert.equal(tlsaMatchesChain({ usage: 2, selector: 1, matchingType: 1, data: hash('sha256', spki(pki.leaf.pem)) }, chain), false);
  });

  it('PKIX usages and unknown parameters are unusable for SMTP', () => {
    assert.equal(usableForSmtp({ usage: 1, selector: 1, matchingType: 1, data: F }), false);
    assert.equal(usableForSmtp({ usage: 3, selector: 1, matchingType: 3, data: F }), false);
    assert.equal(tlsaMatchesChain({ usage: 1, selector: 1, matchingType: 1, data: hash('sha256', spki(pki.leaf.pem)) }, chain), false);
  });

  it('leftUncovered: a TA record for the served chain keeps delivery working once ours are gone', () => {
    const ta: TlsaRecord = { usage: 2, selector: 1, matchingType: 1, data: hash('sha256', spki(pki.intermediate.pem)) };
    assert.deepEqual(leftUncovered(dns(server(P, [rec(C), ta])), [C], [{ keyType: 'ecdsa-p256', chainDer: chain }]), []);
    assert.equal(leftUncovered(dns(server(P, [rec(C), rec(F)])), [C], [{ keyType: 'ecdsa-p256', chainDer: chain }]).length, 1);
  });
});

describe('retireDane without the publisher settings', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-retire-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('a journal from before mxcert remembered them, and no dane: block: a config error saying what to put back; nothing changes', async () => {
    const store = new StateStore(dir);
    await writeJournal(store, 'mx1', 'ecdsa-p256', journal(), at(0));
    const file = path.join(dir, 'certs', 'mx1', 'ecdsa-p256', 'dane', 'journal.json');
    const before = await readFile(file, 'utf8');
    await assert.rejects(
      retireDane({ store, name: 'mx1', keyTypes: ['ecdsa-p256'], logger: silentLogger, clock: new FakeClock(at(0)), budgetMs: 0, start: true }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /certificates\[mx1\]\.dane\.publisher: .*put the dane: block back with enabled: false, its endpoints and its publisher/);
        return true;
      },
    );
    assert.equal(await readFile(file, 'utf8'), before);
  });

  it('nothing to retire without DANE state', async () => {
    assert.equal(await retireDane({ store: new StateStore(dir), name: 'mx2', keyTypes: ['ecdsa-p256'], logger: silentLogger, clock: new FakeClock(at(0)), budgetMs: 0, start: true }), undefined);
  });
});

describe('decideRetire: the edges', () => {
  const MX2 = '_25._tcp.mx2.example.test.';
  const two = (a: Observation[], b: Observation[]): OwnerObservation[] => [
    { owner: OWNER, servers: a },
    { owner: MX2, servers: b },
  ];
  const chains = [{ keyType: 'ecdsa-p256', chainDer: [] as Buffer[] }];
  const down: Observation = { server: S, ok: false, authoritative: false, records: [], error: 'timeout' };

  it('only a journal that is retiring counts: a retirement left in a journal of another phase, or a retire phase without its state, does not', () => {
    const leftOver = journal({ retire: { startedAt: iso(0), owners: [OWNER], records: [C, N] } });
    assert.equal(retireView([leftOver]), undefined);
    assert.equal(retireView([journal({ phase: 'WITHDRAW' })]), undefined);
  });

  it('the view has the owners and records of every retiring key type, and the leader’s TTL memory', () => {
    const a = journal({ phase: 'RELEASE', retire: { startedAt: iso(0), owners: [OWNER], records: [C, N] }, ttlSeen: { live: 8 } });
    const b = journal({ phase: 'AWAIT_GONE', retire: { startedAt: iso(0), owners: [MX2], records: [R1, R2] }, ttlSeen: { live: 30 } });
    const v = retireView([a, b])!;
    assert.deepEqual(v.retire.owners, [OWNER, MX2]);
    assert.deepEqual(v.retire.records, [C, N, R1, R2]);
    assert.deepEqual(v.ttlSeen, { live: 30 });
    assert.equal('ttlSeen' in retireView([{ ...b, ttlSeen: undefined }])!, false);
  });

  it('leftUncovered: only a 3 1 1 record with our data is ours; the same data under other parameters stays, and counts', () => {
    for (const other of [
      { usage: 2, selector: 1, matchingType: 1, data: C },
      { usage: 3, selector: 0, matchingType: 1, data: C },
      { usage: 3, selector: 1, matchingType: 2, data: C },
    ]) {
      assert.deepEqual(
        leftUncovered(dns(server(P, [rec(C), other])), [C], chains),
        [`${OWNER}: ${other.usage} ${other.selector} ${other.matchingType} cccccccccccc… would remain, and none matches the certificate served for ecdsa-p256`],
        JSON.stringify(other),
      );
    }
    assert.deepEqual(leftUncovered(dns(server(P, [rec(C), rec(N)])), [C, N], chains), []);
  });

  it('leftUncovered: what a server that did not answer holds is no evidence; every left record and key type named; one that matches is enough', async () => {
    assert.deepEqual(leftUncovered(dns(server(P, [rec(C)]), { ...down, records: [rec(F)] }), [C], chains), []);
    const two2 = [...chains, { keyType: 'rsa-2048', chainDer: [] as Buffer[] }];
    assert.deepEqual(leftUncovered(dns(server(P, [rec(F), rec(O)])), [C], two2), [
      `${OWNER}: 3 1 1 abababababab…, 3 1 1 eeeeeeeeeeee… would remain, and none matches the certificate served for ecdsa-p256, rsa-2048`,
    ]);
    assert.deepEqual(leftUncovered(dns(server(P, [rec(F)])), [C], []), [`${OWNER}: 3 1 1 abababababab… would remain, and none matches the certificate served for (no certificate of mxcert’s deployed)`]);
    const pki = await makePki(new Date());
    const chain = [pki.leaf.pem, pki.intermediate.pem].map((p) => new X509Certificate(p).raw);
    const ee = { usage: 3, selector: 1, matchingType: 1, data: createHash('sha256').update(new X509Certificate(pki.leaf.pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex') };
    assert.deepEqual(leftUncovered(dns(server(P, [rec(C), rec(F), ee])), [C], [{ keyType: 'ecdsa-p256', chainDer: chain }]), [], 'one usable record matching the served chain keeps delivery working');
  });

  it('WITHDRAW: says what it withdrew where; a refusal names every owner', () => {
    const v = { ...view('WITHDRAW'), retire: { startedAt: iso(0), owners: [OWNER, MX2], records: [C, N] } };
    const a = kind(decideRetire(v, { dns: two(both([rec(C), rec(N)]), both([rec(C), rec(N)])), chains }, POLICY, at(0)), 'publish');
    assert.equal(a.say, `withdrew mxcert's TLSA records (2) from ${OWNER}, ${MX2}`);
    assert.deepEqual(a.then.retire, { ...v.retire, ttlBefore: 60 });
    const r = kind(decideRetire(v, { dns: two(both([rec(C), rec(F)]), both([rec(N), rec(O)])), chains }, POLICY, at(0)), 'refuse');
    assert.equal(
      r.why,
      `removing mxcert's TLSA records would break delivery: ${OWNER}: 3 1 1 abababababab… would remain, and none matches the certificate served for ecdsa-p256; ${MX2}: 3 1 1 eeeeeeeeeeee… would remain, and none matches the certificate served for ecdsa-p256. DANE senders would refuse mail. Remove those records too, or publish one that matches the served certificate, then run this again`,
    );
  });

  it('the TTL memory is saved first, and forgotten once caches are done with it', () => {
    const fresh = { ...view('WITHDRAW'), ttlSeen: undefined };
    assert.deepEqual(kind(decideRetireRaw(fresh, obs(both([rec(C)])), POLICY, at(0)), 'save').view, { ...fresh, ttlSeen: { live: 60 } });
    const old = { ...view('RELEASE', { goneAt: iso(0), releaseAt: iso(DAY) }), ttlSeen: { gone: { ttl: 8, until: iso(0) } } };
    const a = kind(decideRetireRaw(old, obs(both([])), POLICY, at(16_000)), 'save');
    assert.equal(a.view.ttlSeen, undefined);
    assert.equal(a.view.phase, 'RELEASE');
  });

  it('AWAIT_GONE: every lagging server listed, polling; a larger TTL served until a moment ago keeps the keys longer', () => {
    const v = view('AWAIT_GONE', { minSerial: 11 });
    assert.deepEqual(decideRetire(v, obs([server(P, [rec(C)], { serial: 11 }), server(S, [rec(N)], { serial: 11 })]), POLICY, at(0)), {
      kind: 'wait',
      why: `waiting for every authoritative server to drop mxcert's records: ${OWNER} 127.0.0.1:5301: still serves TLSA 3 1 1 cccccccccccc…; ${OWNER} 127.0.0.1:5302: still serves TLSA 3 1 1 dddddddddddd…`,
      poll: true,
    });
    const remembered = { ...view('AWAIT_GONE'), ttlSeen: { gone: { ttl: 600, until: iso(500) } } };
    const a = kind(decideRetire(remembered, obs(both([], { at: at(1000) })), POLICY, at(2000)), 'save');
    assert.equal(a.view.retire.releaseAt, iso(500 + 1_200_000), '2 × 600 s after it was last served, not 2 × 60 s after the last answer');
    assert.equal(a.say, `no authoritative server serves them any more; the keys are kept until ${iso(1_200_500)} (2 × TTL, for resolvers' caches)`);
    const shortGone = { ...view('AWAIT_GONE'), ttlSeen: { gone: { ttl: 1, until: iso(0) } } };
    assert.equal(kind(decideRetire(shortGone, obs(both([], { at: at(1000) })), POLICY, at(1500)), 'save').view.retire.releaseAt, iso(121_000), 'a shorter remembered TTL changes nothing');
  });

  it('RELEASE: names where a record of ours is back; foreign records, or our data under other parameters, are not ours', () => {
    const v = { ...view('RELEASE', { goneAt: iso(0), releaseAt: iso(120_000) }), ttlSeen: undefined };
    const a = kind(decideRetire(v, { dns: two([server(P, [rec(C)])], [server(S, [rec(N)])]), chains }, POLICY, at(200_000)), 'save');
    assert.equal(a.warn, `mxcert's records are served again (${OWNER} at 127.0.0.1:5301, ${MX2} at 127.0.0.1:5302); removing them again`);
    for (const other of [rec(F), { usage: 2, selector: 1, matchingType: 1, data: C }, { usage: 3, selector: 0, matchingType: 1, data: C }, { usage: 3, selector: 1, matchingType: 2, data: C }]) {
      kind(decideRetire(v, obs([server(P, [other])]), POLICY, at(200_000)), 'free');
    }
  });

  it('RELEASE: what it says while waiting and when it frees the keys', () => {
    const v = { ...view('RELEASE', { goneAt: iso(0), releaseAt: iso(120_000) }), ttlSeen: undefined };
    assert.deepEqual(decideRetire(v, obs([server(P, [])]), POLICY, at(0)), {
      kind: 'wait',
      why: `keeping the key until ${iso(120_000)}: resolvers may still hold mxcert's records until then`,
      until: at(120_000),
    });
    assert.deepEqual(decideRetire(v, obs([server(P, [])]), POLICY, at(120_000)), { kind: 'free', say: 'retired: mxcert’s records are gone everywhere and caches have expired; keys freed' });
  });

  it('keptKeyNotice: every owner named; without any recorded, says so; no release time yet, none shown', () => {
    const j = journal({ publishedWith: { owners: [OWNER, MX2], ttl: 60, minHoldMs: 0, publisher: { provider: 'hook' } as never } });
    assert.match(keptKeyNotice('mx1', j, false), new RegExp(`still published at ${OWNER.replace(/\./g, '\\.')}, ${MX2.replace(/\./g, '\\.')};`));
    assert.equal(
      keptKeyNotice('mx1', journal(), false),
      "DANE is off in the config but mxcert's TLSA records for mx1 are still published at its TLSA owner names; keeping the current key until you run `mxcert dane retire --cert mx1`",
    );
    const r = journal({ phase: 'AWAIT_GONE', retire: { startedAt: iso(0), owners: [OWNER], records: [C, N] } });
    assert.equal(
      keptKeyNotice('mx1', r, false),
      `mxcert dane retire is removing mxcert's TLSA records for mx1 at ${OWNER} (AWAIT_GONE); keeping the current key until they are gone everywhere and caches have expired`,
    );
    assert.match(keptKeyNotice('mx1', journal({ phase: 'RELEASE' }), false), /^mxcert dane retire is removing mxcert's TLSA records for mx1 at its TLSA owner names \(RELEASE\)/, 'a retire phase without its state');
  });
});
