// The safety check of `mxcert dane retire` on a fleet certificate: what
// would remain at an owner must match the chain every expected member
// serves (src/renew/fleet-retire.ts memberChains + src/dane/retire.ts).
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { memberChains } from '../../src/renew/fleet-retire.js';
import type { MemberReport } from '../../src/fleet/store.js';
import { decideRetire, type RetireView } from '../../src/dane/retire.js';
import type { TlsaRecord } from '../../src/dane/tlsa.js';
import type { Observation } from '../../src/dane/visibility.js';
import { makePki, type TestPki } from './pki-fixtures.js';

const OURS = 'cc'.repeat(32);
const OWNER = '_25._tcp.mx.example.test.';
const at = new Date('2026-12-07T00:00:00Z');
const rec = (usage: number, selector: number, data: string): TlsaRecord => ({ usage, selector, matchingType: 1, data });
const server = (records: TlsaRecord[]): Observation => ({ server: { host: '127.0.0.1', port: 5301 }, ok: true, authoritative: true, serial: 10, records, ttl: 60, at });
const view: RetireView = { phase: 'WITHDRAW', retire: { startedAt: at.toISOString(), owners: [OWNER], records: [OURS] } };

describe('memberChains and the fleet retirement safety check', () => {
  let pki: TestPki;
  let lineage: Record<string, { serial: string; chainPem: string }>;
  let leafHash: string;
  before(async () => {
    pki = await makePki(at);
    lineage = { 'ecdsa-p256': { serial: '0a1b', chainPem: pki.leaf.pem + pki.intermediate.pem } };
    leafHash = createHash('sha256').update(new X509Certificate(pki.leaf.pem).raw).digest('hex');
  });
  const report = (serial: string): Pick<MemberReport, 'units'> => ({ units: { 'ecdsa-p256': { spkiSha256: 'ab'.repeat(32), serial } } });

  it('a member on the lineage serial gets the lineage chain; others get none, with the reason', () => {
    const chains = memberChains(['mx-a', 'mx-b', 'mx-c', 'mx-d'], new Map([['mx-a', report('0a1b')], ['mx-b', report('0999')], ['mx-d', { units: {} }]]), lineage, ['ecdsa-p256']);
    assert.deepEqual(chains.map((c) => [c.keyType, c.chainDer.length]), [
      ['ecdsa-p256 on mx-a', 2],
      ["ecdsa-p256 on mx-b (serial 0999, not the lineage's)", 0],
      ['ecdsa-p256 on mx-c (no report)', 0],
      ['ecdsa-p256 on mx-d (no served key reported)', 0],
    ]);
    assert.deepEqual(chains[0]!.chainDer[0], new X509Certificate(pki.leaf.pem).raw);
  });

  it('a record left that matches the lineage leaf: allowed while every member serves the lineage', () => {
    const chains = memberChains(['mx-a', 'mx-b'], new Map([['mx-a', report('0a1b')], ['mx-b', report('0a1b')]]), lineage, ['ecdsa-p256']);
    const obs = { dns: [{ owner: OWNER, servers: [server([rec(3, 1, OURS), rec(3, 0, leafHash)])] }], chains };
    let a = decideRetire(view, obs, { ttl: 60, minHoldMs: 0 }, at);
    if (a.kind === 'save') a = decideRetire(a.view, obs, { ttl: 60, minHoldMs: 0 }, at);
    assert.equal(a.kind, 'publish');
  });

  it('the same record, one member on another serial: refused, naming that member', () => {
    const chains = memberChains(['mx-a', 'mx-b'], new Map([['mx-a', report('0a1b')], ['mx-b', report('0999')]]), lineage, ['ecdsa-p256']);
    const obs = { dns: [{ owner: OWNER, servers: [server([rec(3, 1, OURS), rec(3, 0, leafHash)])] }], chains };
    let a = decideRetire(view, obs, { ttl: 60, minHoldMs: 0 }, at);
    if (a.kind === 'save') a = decideRetire(a.view, obs, { ttl: 60, minHoldMs: 0 }, at);
    assert.equal(a.kind, 'refuse');
    assert.match((a as { why: string }).why, /none matches the certificate served for ecdsa-p256 on mx-b \(serial 0999, not the lineage's\)/);
    assert.doesNotMatch((a as { why: string }).why, /on mx-a/);
  });

  it('nothing but ours at the owner: allowed whatever the members serve (an empty RRset puts DANE out of force)', () => {
    const chains = memberChains(['mx-a', 'mx-b'], new Map(), lineage, ['ecdsa-p256']);
    const obs = { dns: [{ owner: OWNER, servers: [server([rec(3, 1, OURS)])] }], chains };
    let a = decideRetire(view, obs, { ttl: 60, minHoldMs: 0 }, at);
    if (a.kind === 'save') a = decideRetire(a.view, obs, { ttl: 60, minHoldMs: 0 }, at);
    assert.equal(a.kind, 'publish');
  });
});
