// observeTlsa (src/dane/visibility.ts), the DANE machine's eyes, against a
// small DNS server over TCP on loopback whose answers each test sets: the AA
// bit on each answer, the SOA serial, the TLSA records with their TTLs and
// RRSIGs, error codes, a server that is not there.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import { FakeClock } from '../../src/clock.js';
import { observeTlsa } from '../../src/dane/visibility.js';
import { freePort } from '../env/proc.js';

const OWNER = '_25._tcp.mx1.example.test';
const ZONE = 'example.test';
const H1 = 'aa'.repeat(32);
const H2 = 'bb'.repeat(32);
const NOW = new Date('2026-11-01T00:00:00Z');

interface Script {
  soaAa: boolean;
  tlsaAa: boolean;
  serial: number;
  rcode?: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED';
  tlsa: Array<{ name?: string; hex: string; ttl: number }>;
  /** RRSIG expirations (seconds since the epoch) over the TLSA RRset. */
  sigs?: number[];
  /** SOA in the authority section (NODATA style) instead of the answer. */
  soaInAuthority?: boolean;
}

/** Answers SOA and TLSA questions as `script` says; records the questions in order. */
async function fakeDns(script: Script): Promise<{ port: number; asked: string[] }> {
  const asked: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
        const q = dnsPacket.decode(buf.subarray(2, buf.readUInt16BE(0) + 2));
        buf = buf.subarray(buf.readUInt16BE(0) + 2);
        const question = q.questions![0]!;
        asked.push(`${question.type} ${question.name}`);
        sock.write(dnsPacket.streamEncode(answer(q, question.type, script)));
      }
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((res) => server.close(res));
  });
  return { port: (server.address() as AddressInfo).port, asked };
}

function answer(q: dnsPacket.Packet, type: string, s: Script): dnsPacket.Packet {
  const soa: dnsPacket.Answer = {
    type: 'SOA',
    name: ZONE,
    ttl: 5,
    data: { mname: `ns1.${ZONE}`, rname: `hostmaster.${ZONE}`, serial: s.serial, refresh: 60, retry: 10, expire: 3600, minimum: 5 },
  };
  const aa = type === 'SOA' ? s.soaAa : s.tlsaAa;
  const base = { type: 'response' as const, id: q.id, questions: q.questions, flags: aa ? dnsPacket.AUTHORITATIVE_ANSWER : 0 };
  if (type === 'SOA') return s.soaInAuthority ? { ...base, authorities: [soa] } : { ...base, answers: [soa] };
  const rcode = s.rcode ?? 'NOERROR';
  const answers: dnsPacket.Answer[] = s.tlsa.map((t) => ({
    type: 'TLSA',
    name: t.name ?? OWNER,
    ttl: t.ttl,
    data: { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.from(t.hex, 'hex') },
  })) as unknown as dnsPacket.Answer[];
  for (const exp of s.sigs ?? []) {
    answers.push({
      type: 'RRSIG',
      name: OWNER,
      ttl: 5,
      data: { typeCovered: 'TLSA', algorithm: 13, labels: 5, originalTTL: 5, expiration: exp, inception: exp - 86400, keyTag: 1, signersName: ZONE, signature: Buffer.alloc(64) },
    } as unknown as dnsPacket.Answer);
  }
  return { ...base, flags: base.flags | (rcode === 'NOERROR' ? 0 : rcode === 'NXDOMAIN' ? 3 : rcode === 'SERVFAIL' ? 2 : 5), answers } as dnsPacket.Packet;
}

const good: Script = { soaAa: true, tlsaAa: true, serial: 2026110101, tlsa: [{ hex: H1, ttl: 300 }, { hex: H2, ttl: 300 }] };
const clock = new FakeClock(NOW);
const at = (port: number) => [{ host: '127.0.0.1', port }];

describe('observeTlsa against a DNS server over TCP', () => {
  it('both answers authoritative: records, TTL, serial, time of the answer; SOA asked first, then TLSA', async () => {
    const s = await fakeDns(good);
    const [o] = await observeTlsa(at(s.port), OWNER, { clock, zone: ZONE });
    assert.equal(o!.ok, true, o!.error);
    assert.equal(o!.authoritative, true);
    assert.equal(o!.serial, 2026110101);
    assert.deepEqual(o!.records.map((r) => r.data).sort(), [H1, H2]);
    assert.equal(o!.ttl, 300);
    assert.deepEqual(o!.at, NOW);
    assert.deepEqual(s.asked, [`SOA ${ZONE}`, `TLSA ${OWNER}`], 'the serial is read before the records, so "serial ≥ N and record present" cannot pair an old serial with a new answer the wrong way round');
  });

  it('an SOA answer without the AA bit makes the observation not authoritative', async () => {
    const s = await fakeDns({ ...good, soaAa: false });
    const [o] = await observeTlsa(at(s.port), OWNER, { clock, zone: ZONE });
    assert.equal(o!.ok, true);
    assert.equal(o!.authoritative, false);
  });

  it('a TLSA answer without the AA bit makes the observation not authoritative', async () => {
    const s = await fakeDns({ ...good, tlsaAa: false });
    const [o] = await observeTlsa(at(s.port), OWNER, { clock, zone: ZONE });
    assert.equal(o!.authoritative, false);
  });

  it('the serial from the SOA in the authority section (SOA asked at the owner name, RFC 2308)', async () => {
    const s = await fakeDns({ ...good, soaInAuthority: true });
    const [o] = await observeTlsa(at(s.port), OWNER, { clock });
    assert.equal(o!.serial, 2026110101);
    assert.equal(s.asked[0], `SOA ${OWNER}`);
  });

  it('the RRset’s TTL is the largest its records carry; records at other names are not ours', async () => {
    const s = await fakeDns({ ...good, tlsa: [{ hex: H1, ttl: 8 }, { hex: H2, ttl: 2 }, { name: `_26._tcp.mx1.${ZONE}`, hex: 'cc'.repeat(32), ttl: 99 }] });
    const [o] = await observeTlsa(at(s.port), OWNER, { clock, zone: ZONE });
    assert.deepEqual(o!.records.map((r) => r.data).sort(), [H1, H2]);
    assert.equal(o!.ttl, 8);
  });

  it('the latest RRSIG expiration over the TLSA RRset', async () => {
    const t = NOW.getTime() / 1000;
    const s = await fakeDns({ ...good, sigs: [t + 3600, t + 7200] });
    const [o] = await observeTlsa(at(s.port), OWNER, { clock, zone: ZONE });
    assert.deepEqual(o!.rrsigExpiration, new Date((t + 7200) * 1000));
  });

  it('NXDOMAIN is an answer: no records; SERVFAIL and REFUSED are not', async () => {
    const nx = await fakeDns({ ...good, rcode: 'NXDOMAIN', tlsa: [] });
    const [o] = await observeTlsa(at(nx.port), OWNER, { clock, zone: ZONE });
    assert.equal(o!.ok, true);
    assert.deepEqual(o!.records, []);
    assert.equal(o!.ttl, undefined);
    for (const rcode of ['SERVFAIL', 'REFUSED'] as const) {
      const bad = await fakeDns({ ...good, rcode, tlsa: [] });
      const [b] = await observeTlsa(at(bad.port), OWNER, { clock, zone: ZONE });
      assert.equal(b!.ok, false);
      assert.match(b!.error!, new RegExp(`TLSA query answered ${rcode}`));
    }
  });

  it('a server that is not there: not ok, with the reason, never a throw', async () => {
    const port = await freePort();
    const [o] = await observeTlsa(at(port), OWNER, { clock, zone: ZONE, timeoutMs: 2000 });
    assert.equal(o!.ok, false);
    assert.equal(o!.authoritative, false);
    assert.ok(o!.error && o!.error.length > 0);
    assert.deepEqual(o!.at, NOW);
  });

  it('asks every server, and says which answered what', async () => {
    const a = await fakeDns(good);
    const b = await fakeDns({ ...good, tlsaAa: false, serial: 7 });
    const obs = await observeTlsa([...at(a.port), ...at(b.port)], OWNER, { clock, zone: ZONE });
    assert.deepEqual(obs.map((o) => [o.server.port, o.authoritative, o.serial]), [[a.port, true, 2026110101], [b.port, false, 7]]);
  });
});
