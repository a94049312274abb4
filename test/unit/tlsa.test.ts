// TLSA computation and the pure visibility verdict (RFC 7671, docs/architecture.md, "DANE").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publicKeySpkiDer } from '../../src/keys/keygen.js';
import {
  applyTlsaChange,
  hasTlsa,
  formatTlsa,
  fromDnsPacket,
  parseTlsa,
  sameTlsa,
  sameTlsaSet,
  shortTlsa,
  tlsa311,
  tlsaOwner,
  zoneLine,
  type TlsaRecord,
} from '../../src/dane/tlsa.js';
import { assessVisibility, rrsigTimeToDate, serialAtLeast, type Observation } from '../../src/dane/visibility.js';
import { configSchema } from '../../src/config/schema.js';
import { checkChange, retryDelayMs } from '../../src/dane/publisher.js';

// A fixed P-256 public key; its "3 1 1" value was computed independently:
//   openssl pkey -pubin -in pub.pem -outform DER | openssl dgst -sha256
const PUB_PEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+jzsbEn4fwLnygmKnCuEjlGsDRD9
qmzg/grVFwyXgMW6g181RxC37C98Daj9a7mFusk4noF9LtlbdL2nog2WAA==
-----END PUBLIC KEY-----
`;
const PUB_311 = 'fa51be570e51ffd332b9f7995be021ca73310fe6828544adcfb6eeb0156a05ac';

const hex = (c: string) => c.repeat(64);
const rec = (c: string): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: hex(c) });

function opensslSpkiSha256(pem: string): string {
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'DER'], { input: pem });
  return execFileSync('openssl', ['dgst', '-sha256', '-r'], { input: der }).toString().split(/\s/)[0]!;
}

describe('tlsa311', () => {
  it('is SHA-256 over the SubjectPublicKeyInfo (known answer)', () => {
    const r = tlsa311(publicKeySpkiDer(PUB_PEM));
    assert.deepEqual(r, { usage: 3, selector: 1, matchingType: 1, data: PUB_311 });
    assert.equal(formatTlsa(r), `3 1 1 ${PUB_311}`);
  });

  it('matches openssl for fresh EC and RSA keys, from the private key and from a certificate alike', () => {
    for (const [type, o] of [['ec', { namedCurve: 'P-384' }], ['rsa', { modulusLength: 2048 }]] as const) {
      const { privateKey, publicKey } = generateKeyPairSync(type as 'ec', o as { namedCurve: string });
      const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const privPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      const want = opensslSpkiSha256(pubPem);
      assert.equal(tlsa311(publicKeySpkiDer(privPem)).data, want, type);
      // A self-signed certificate for the key: selector 1 ignores everything but the key.
      const dir = mkdtempSync(join(tmpdir(), 'mxcert-tlsa-test-'));
      try {
        const keyFile = join(dir, 'key.pem');
        writeFileSync(keyFile, privPem, { mode: 0o600 });
        const cert = execFileSync('openssl', ['req', '-new', '-x509', '-key', keyFile, '-subj', '/CN=mx1.example.test', '-days', '1']).toString();
        assert.equal(tlsa311(publicKeySpkiDer(cert)).data, want, `${type} via certificate`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('refuses input that is not DER SubjectPublicKeyInfo', () => {
    assert.throws(() => tlsa311(Buffer.alloc(0)), /empty/);
    assert.throws(() => tlsa311(Buffer.from(PUB_PEM)), /not DER/);
  });
});

describe('tlsaOwner', () => {
  it('names _port._tcp.host., absolute and lowercase', () => {
    assert.equal(tlsaOwner('mx1.example.test', 25), '_25._tcp.mx1.example.test.');
    assert.equal(tlsaOwner('MX1.Example.TEST.', 2525), '_2525._tcp.mx1.example.test.');
    assert.equal(tlsaOwner('mail.example.com', 465), '_465._tcp.mail.example.com.');
  });
  it('rejects bad ports and names', () => {
    assert.throws(() => tlsaOwner('mx1.example.test', 0), /port/);
    assert.throws(() => tlsaOwner('mx1.example.test', 70000), /port/);
    assert.throws(() => tlsaOwner('mx1 example.test', 25), /host name/);
    assert.throws(() => tlsaOwner('', 25), /host name/);
    assert.throws(() => tlsaOwner('a..b', 25), /host name/);
    assert.throws(() => tlsaOwner('mx1.example.test\nupdate delete x', 25), /host name/);
  });
  it('takes a host name of up to 240 characters: with _65535._tcp. in front it stays within the 253 of a DNS name (RFC 1035 §2.3.4)', () => {
    const host = (last: number) => ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(last)].join('.');
    assert.equal(host(48).length, 240);
    const owner = tlsaOwner(host(48), 65535);
    assert.equal(owner, `_65535._tcp.${host(48)}.`);
    assert.ok(owner.length - 1 <= 253, `${owner.length - 1} characters without the root dot`);
    assert.equal(tlsaOwner(`${host(48)}.`, 25), `_25._tcp.${host(48)}.`, 'a trailing dot does not count');
    assert.throws(() => tlsaOwner(host(49), 25), /invalid host name/);
    assert.throws(() => tlsaOwner('x'.repeat(64), 25), /invalid host name/, 'a label longer than 63');
  });
});

describe('parseTlsa / formatTlsa', () => {
  it('round-trips', () => {
    const r = rec('a');
    assert.deepEqual(parseTlsa(formatTlsa(r)), r);
    assert.deepEqual(parseTlsa(`3 1 1 ${PUB_311}`), tlsa311(publicKeySpkiDer(PUB_PEM)));
  });

  it('accepts whitespace, case, chunked hex, parentheses and RFC 7218 mnemonics', () => {
    const want = { usage: 3, selector: 1, matchingType: 1, data: PUB_311 };
    assert.deepEqual(parseTlsa(`  3\t1  1   ${PUB_311.toUpperCase()}  \n`), want);
    // dig splits long RDATA into chunks.
    assert.deepEqual(parseTlsa(`3 1 1 ${PUB_311.slice(0, 56)} ${PUB_311.slice(56)}`), want);
    assert.deepEqual(parseTlsa(`3 1 1 (\n ${PUB_311.slice(0, 32)}\n ${PUB_311.slice(32)} )`), want);
    assert.deepEqual(parseTlsa(`DANE-EE SPKI SHA2-256 ${PUB_311}`), want);
    assert.deepEqual(parseTlsa(`2 0 0 ${'ab'.repeat(100)}`), { usage: 2, selector: 0, matchingType: 0, data: 'ab'.repeat(100) });
  });

  it('rejects garbage with a message that says what is wrong', () => {
    assert.throws(() => parseTlsa(''), /expected "usage selector matching-type hex-data"/);
    assert.throws(() => parseTlsa('3 1 1'), /expected/);
    assert.throws(() => parseTlsa(`3 1 1 ${'zz'.repeat(32)}`), /not hexadecimal/);
    assert.throws(() => parseTlsa(`3 1 1 ${PUB_311}a`), /odd number/);
    assert.throws(() => parseTlsa(`3 1 1 ${PUB_311}ab`), /needs 32 bytes/);
    assert.throws(() => parseTlsa(`3 1 2 ${PUB_311}`), /needs 64 bytes/);
    assert.throws(() => parseTlsa(`256 1 1 ${PUB_311}`), /usage must be 0-255/);
    assert.throws(() => parseTlsa(`3 x 1 ${PUB_311}`), /selector must be 0-255/);
    assert.throws(() => parseTlsa(`3 1 -1 ${PUB_311}`), /matching type must be 0-255/);
    assert.throws(() => parseTlsa(`3 1 1 ${PUB_311}; comment`), /not hexadecimal/);
  });

  it('compares records case-insensitively and sets ignoring order', () => {
    assert.ok(sameTlsa(rec('a'), { ...rec('a'), data: hex('A') }));
    assert.ok(!sameTlsa(rec('a'), { ...rec('a'), usage: 2 }));
    // 3 0 1 hashes the whole certificate, 3 1 1 the key: the same digest under another selector is another record.
    assert.ok(!sameTlsa(rec('a'), { ...rec('a'), selector: 0 }));
    assert.ok(!sameTlsa(rec('a'), { ...rec('a'), matchingType: 2 }));
    assert.ok(!hasTlsa([{ ...rec('a'), selector: 0 }], rec('a')));
    assert.deepEqual(applyTlsaChange([{ ...rec('a'), selector: 0 }], { add: [rec('a')], remove: [] }), [{ ...rec('a'), selector: 0 }, rec('a')]);
    assert.ok(!sameTlsa(rec('a'), rec('b')));
    assert.ok(sameTlsaSet([rec('a'), rec('b')], [rec('b'), rec('a'), rec('a')]));
    assert.ok(!sameTlsaSet([rec('a')], [rec('a'), rec('b')]));
    assert.ok(!sameTlsaSet([rec('a'), rec('b')], [rec('a'), rec('c')]), 'same size, one record differs');
  });

  it('edges of names, ports, fields, data and TTLs', () => {
    // One-character labels, surrounding blanks, the port range's ends.
    assert.equal(tlsaOwner('a.b', 1), '_1._tcp.a.b.');
    assert.equal(tlsaOwner('  MX1.example.test.\t', 65535), '_65535._tcp.mx1.example.test.');
    for (const port of [65536, 1.5]) assert.throws(() => tlsaOwner('a.b', port), /invalid port/);
    // Field values: 255 (private use) is an octet; digits with anything after them are not.
    assert.deepEqual(parseTlsa(`255 255 0 ab`), { usage: 255, selector: 255, matchingType: 0, data: 'ab' });
    assert.deepEqual(parseTlsa(`25 1 1 ${PUB_311}`).usage, 25);
    assert.throws(() => parseTlsa(`3x 1 1 ${PUB_311}`), /usage must be 0-255, got "3x"/);
    assert.throws(() => parseTlsa(`3 1 1000 ${PUB_311}`), /matching type must be 0-255/);
    // Data: hex throughout (not just at the end); the length message counts octets.
    assert.throws(() => parseTlsa('3 0 0 zz12'), /not hexadecimal/);
    assert.throws(() => parseTlsa(`3 1 2 ${PUB_311}`), /matching type 2 needs 64 bytes of data, got 32$/);
    // Parentheses glued to the data, as in a multi-line zone-file record.
    assert.deepEqual(parseTlsa(`3 1 1(${PUB_311.slice(0, 32)}\n${PUB_311.slice(32)})`), { usage: 3, selector: 1, matchingType: 1, data: PUB_311 });
    // Long input is quoted cut at 200 characters.
    const long = `3 1 1 ${'g'.repeat(300)}`;
    assert.throws(() => parseTlsa(long), (e: Error) => e.message.includes(`"${long.slice(0, 200)}…"`) && !e.message.includes(long.slice(0, 201)));
    const exactly = `3 1 1 ${'g'.repeat(194)}`;
    assert.throws(() => parseTlsa(exactly), (e: Error) => e.message.includes(`"${exactly}"`) && !e.message.includes('…'));
    // TTLs: 0 and 2^31 - 1 are valid (RFC 2181 §8), 2^31 is not; an owner already absolute gets no second dot.
    assert.equal(zoneLine('_25._tcp.a.b.', 0, rec('a')), `_25._tcp.a.b. 0 IN TLSA 3 1 1 ${hex('a')}`);
    assert.match(zoneLine('_25._tcp.a.b', 0x7fffffff, rec('a')), /^_25\._tcp\.a\.b\. 2147483647 IN TLSA /);
    assert.throws(() => zoneLine('_25._tcp.a.b.', 0x80000000, rec('a')), /invalid TTL/);
    assert.equal(shortTlsa(rec('a')), `3 1 1 ${'a'.repeat(12)}…`);
  });

  it('fromDnsPacket takes each field as one octet and nothing else', () => {
    const good = { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.from(PUB_311, 'hex') };
    assert.deepEqual(fromDnsPacket({ ...good, usage: 0, matchingType: 255 }), { usage: 0, selector: 1, matchingType: 255, data: PUB_311 });
    for (const bad of [{ usage: 256 }, { usage: -1 }, { selector: 1.5 }, { matchingType: '1' }, { usage: Number.NaN }, { certificate: PUB_311 }]) {
      assert.throws(() => fromDnsPacket({ ...good, ...bad }), /malformed TLSA RDATA/, JSON.stringify(bad));
    }
  });

  it('zoneLine is master-file syntax', () => {
    assert.equal(zoneLine('_25._tcp.mx1.example.test', 300, rec('a')), `_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 ${hex('a')}`);
    assert.throws(() => zoneLine('_25._tcp.mx1.example.test.', -1, rec('a')), /TTL/);
  });

  it('converts dns-packet TLSA data', () => {
    const buf = Buffer.from(PUB_311, 'hex');
    assert.deepEqual(fromDnsPacket({ usage: 3, selector: 1, matchingType: 1, certificate: buf }), { usage: 3, selector: 1, matchingType: 1, data: PUB_311 });
    assert.throws(() => fromDnsPacket({ usage: 3, selector: 1, certificate: buf }), /malformed/);
    assert.throws(() => fromDnsPacket(undefined), /malformed/);
  });
});

describe('applyTlsaChange', () => {
  it('removes exactly what is asked, adds, keeps foreign records', () => {
    const foreign = rec('f');
    assert.deepEqual(applyTlsaChange([foreign, rec('a')], { add: [rec('b')], remove: [rec('a')] }), [foreign, rec('b')]);
    assert.deepEqual(applyTlsaChange([], { add: [rec('a'), rec('a')], remove: [] }), [rec('a')]);
    // Removing something absent, adding something present: no change.
    assert.deepEqual(applyTlsaChange([foreign, rec('a')], { add: [rec('a')], remove: [rec('c')] }), [foreign, rec('a')]);
  });
  it('keeps a record that is both added and removed (the safe direction)', () => {
    assert.deepEqual(applyTlsaChange([rec('a')], { add: [rec('a')], remove: [rec('a')] }), [rec('a')]);
  });
});

describe('RFC 1982 serial arithmetic', () => {
  it('orders serials modulo 2^32', () => {
    assert.ok(serialAtLeast(5, 5));
    assert.ok(serialAtLeast(6, 5));
    assert.ok(!serialAtLeast(5, 6));
    // Wraparound: 3 comes after 4294967290.
    assert.ok(serialAtLeast(3, 4294967290));
    assert.ok(!serialAtLeast(4294967290, 3));
    assert.ok(serialAtLeast(2026112301, 2026112300));
    // Exactly 2^31 apart is undefined (RFC 1982 §3.2): never "at least".
    assert.ok(!serialAtLeast(2 ** 31, 0));
    assert.ok(!serialAtLeast(0, 2 ** 31));
    assert.ok(serialAtLeast(2 ** 31 - 1, 0));
  });

  it('resolves RRSIG times nearest to now (RFC 4034 §3.1.5)', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const exp = Math.floor(now.getTime() / 1000) + 14 * 86400;
    assert.equal(rrsigTimeToDate(exp, now).toISOString(), '2026-01-15T00:00:00.000Z');
    // After 2106 the 32-bit value wraps.
    const late = new Date((2 ** 32 - 100) * 1000);
    assert.equal(rrsigTimeToDate(50, late).getTime(), (2 ** 32 + 50) * 1000);
  });
});

describe('assessVisibility', () => {
  const s1 = { host: '127.0.0.1', port: 5301 };
  const s2 = { host: '127.0.0.2', port: 5302 };
  const obs = (server: typeof s1, over: Partial<Observation> = {}): Observation => ({
    server,
    ok: true,
    authoritative: true,
    serial: 10,
    records: [rec('a'), rec('b')],
    ttl: 60,
    ...over,
  });

  it('agrees when every server is authoritative, current, has every present and no absent record', () => {
    const exp1 = new Date('2026-01-10T00:00:00Z');
    const exp2 = new Date('2026-01-12T00:00:00Z');
    const v = assessVisibility([obs(s1, { rrsigExpiration: exp1 }), obs(s2, { ttl: 300, rrsigExpiration: exp2 })], {
      present: [rec('a')],
      absent: [rec('c')],
      minSerial: 10,
    });
    assert.deepEqual(v, { allAgree: true, lagging: [], maxTtl: 300, maxRrsigExpiration: exp2 });
  });

  it('flags a lagging secondary by serial and by missing record', () => {
    const v = assessVisibility([obs(s1, { serial: 11 }), obs(s2, { serial: 10, records: [rec('a')] })], {
      present: [rec('a'), rec('b')],
      absent: [],
      minSerial: 11,
    });
    assert.equal(v.allAgree, false);
    assert.equal(v.lagging.length, 2);
    assert.match(v.lagging[0]!, /^127\.0\.0\.2:5302: serial 10 is behind 11$/);
    assert.match(v.lagging[1]!, /^127\.0\.0\.2:5302: lacks TLSA 3 1 1 bbbb/);
  });

  it('uses serial arithmetic across the wrap', () => {
    const want = { present: [rec('a')], absent: [], minSerial: 4294967295 };
    assert.equal(assessVisibility([obs(s1, { serial: 1 })], want).allAgree, true);
    assert.equal(assessVisibility([obs(s1, { serial: 4294967294 })], want).allAgree, false);
  });

  it('flags a record that should be gone but is still served', () => {
    const v = assessVisibility([obs(s1), obs(s2)], { present: [], absent: [rec('b')] });
    assert.equal(v.allAgree, false);
    assert.deepEqual(v.lagging.map((l) => l.split(':')[0]), ['127.0.0.1', '127.0.0.2']);
    assert.match(v.lagging[0]!, /still serves TLSA 3 1 1 bbbb/);
  });

  it('does not trust a non-authoritative answer even with the right records', () => {
    const v = assessVisibility([obs(s1), obs(s2, { authoritative: false })], { present: [rec('a')], absent: [] });
    assert.equal(v.allAgree, false);
    assert.deepEqual(v.lagging, ['127.0.0.2:5302: answer not authoritative (AA bit clear)']);
  });

  it('counts an unreachable server, a missing serial and an empty server list as disagreement', () => {
    const down: Observation = { server: s2, ok: false, error: 'no answer over TCP within 3000 ms', authoritative: false, records: [] };
    const v = assessVisibility([obs(s1, { serial: undefined }), down], { present: [rec('a')], absent: [], minSerial: 1 });
    assert.equal(v.allAgree, false);
    assert.deepEqual(v.lagging, ['127.0.0.1:5301: no SOA serial in its answer', '127.0.0.2:5302: no usable answer (no answer over TCP within 3000 ms)']);
    assert.equal(assessVisibility([], { present: [], absent: [] }).allAgree, false);
  });
});

describe('dane config', () => {
  const base = {
    acme: { directory: 'https://ca.example/dir' },
    certificates: [
      {
        name: 'mx1',
        domains: ['mx1.example.test'],
        challenge: { type: 'http-01', http: { listen: '[::]:80' } },
        dane: {} as Record<string, unknown>,
      },
    ],
  };
  const parse = (dane: Record<string, unknown>) => configSchema.safeParse({ ...base, certificates: [{ ...base.certificates[0], dane }] });

  it('accepts each publisher with defaults', () => {
    const r = parse({
      enabled: true,
      endpoints: [{ host: 'mx1.example.test', port: 25 }],
      publisher: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.test', tsig: { name: 'k', secretFile: '/etc/k' } },
      extraRecords: [`2 1 1 ${PUB_311}`],
    });
    assert.ok(r.success, JSON.stringify(!r.success && r.error.issues));
    const d = r.data.certificates[0]!.dane!;
    assert.equal(d.publisher?.provider, 'rfc2136');
    if (d.publisher?.provider === 'rfc2136') {
      assert.equal(d.publisher.port, 53);
      assert.equal(d.publisher.ttl, 3600);
    }
    assert.ok(parse({ publisher: { provider: 'pdns', url: 'http://127.0.0.1:8081', zone: 'example.test', apiKeyFile: '/etc/k' } }).success);
    assert.ok(parse({ publisher: { provider: 'hook', command: '/usr/lib/mxcert/hooks/nsupdate-tlsa', nameservers: ['127.0.0.1:53'] } }).success);
  });

  it('rejects unknown providers, missing API keys, bad extra records', () => {
    assert.ok(!parse({ publisher: { provider: 'route53' } }).success);
    const noKey = parse({ publisher: { provider: 'pdns', url: 'http://127.0.0.1:8081', zone: 'example.test' } });
    assert.ok(!noKey.success);
    assert.deepEqual(noKey.error.issues[0]!.path.slice(-2), ['publisher', 'apiKeyFile']);
    const bad = parse({ extraRecords: ['3 1 1 nothex'] });
    assert.ok(!bad.success);
    assert.match(bad.error.issues[0]!.message, /not hexadecimal/);
    assert.ok(!parse({ publisher: { provider: 'hook', command: '/x', nameservers: [] } }).success);
  });
});

describe('publisher helpers', () => {
  it('checkChange refuses bad TTLs and records before anything is sent', () => {
    assert.doesNotThrow(() => checkChange({ add: [rec('a')], remove: [rec('b')] }, 300));
    assert.throws(() => checkChange({ add: [], remove: [] }, -1), /invalid TTL/);
    assert.throws(() => checkChange({ add: [], remove: [] }, 1.5), /invalid TTL/);
    assert.throws(() => checkChange({ add: [{ ...rec('a'), data: 'zz' }], remove: [] }, 300), /invalid TLSA record/);
    assert.throws(() => checkChange({ add: [], remove: [{ ...rec('a'), usage: 256 }] }, 300), /invalid TLSA record/);
    assert.throws(() => checkChange({ add: [{ ...rec('a'), data: `${hex('a')}\nupdate delete x` }], remove: [] }, 300), /invalid TLSA record/);
  });

  it('retryDelayMs grows exponentially with jitter, capped', () => {
    assert.equal(retryDelayMs(1, () => 0), 25);
    assert.equal(retryDelayMs(1, () => 1), 50);
    assert.equal(retryDelayMs(3, () => 1), 200);
    assert.equal(retryDelayMs(30, () => 1), 2000);
    assert.equal(retryDelayMs(30, () => 0), 1000);
  });
});
