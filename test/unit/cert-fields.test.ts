// cert-fields.ts (certificate fields through @peculiar/x509) against the
// hand-written DER reading it replaced (legacy-cert-fields.ts, frozen as the
// reference): the same serial (contents octets and hex), Names (as DER and as
// text), validity, SAN dNSNames and Authority Key Identifier, on the unit-test
// PKI, openssl-made certificates (multi-valued RDNs, escapes, a high-bit
// serial, GeneralizedTime, mixed SAN types, RSA) and hand-built DER with the
// odd string types, attribute values and serials a CA could put in a
// certificate. Then what asn1js reads leniently and OpenSSL does not.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as der from './der-write.js';
import * as legacy from './legacy-cert-fields.js';
import { CertFieldsError, readCertFields } from '../../src/util/cert-fields.js';
import { makeLeaf, makePki } from './pki-fixtures.js';
import { atv, buildCert, cn, ext, name, rdn, sanExt } from './der-cert.js';

/** What src/ computed before, with its own DER reading. */
function viaLegacy(pem: string) {
  const f = legacy.readCertFields(new NodeX509(pem).raw);
  return {
    serial: legacy.serialHex(f.serialDer),
    serialDer: f.serialDer.toString('hex'),
    issuer: legacy.nameToString(f.issuerDer),
    subject: legacy.nameToString(f.subjectDer),
    issuerDer: f.issuerDer.toString('hex'),
    subjectDer: f.subjectDer.toString('hex'),
    notBefore: f.notBefore.toISOString(),
    notAfter: f.notAfter.toISOString(),
    names: legacy.sanDnsNames(f),
    aki: legacy.authorityKeyId(f)?.toString('hex'),
  };
}

async function viaNew(pem: string): Promise<ReturnType<typeof viaLegacy>> {
  const f = await readCertFields(new NodeX509(pem));
  return {
    serial: f.serialHex,
    serialDer: f.serialDer.toString('hex'),
    issuer: f.issuer,
    subject: f.subject,
    issuerDer: f.issuerDer.toString('hex'),
    subjectDer: f.subjectDer.toString('hex'),
    notBefore: f.notBefore.toISOString(),
    notAfter: f.notAfter.toISOString(),
    names: f.dnsNames,
    aki: f.authorityKeyId?.toString('hex'),
  };
}

const CN = '2.5.4.3';
const plainTimes = {
  notBefore: der.utcTime(new Date('2025-01-01T00:00:00Z')),
  notAfter: der.utcTime(new Date('2025-04-01T00:00:00Z')),
};

describe('certificate fields: parity with the DER reading they replaced', () => {
  const certs: Array<[string, string]> = [];
  let dir: string;

  before(async () => {
    const now = new Date('2025-06-01T12:00:00Z');
    const pki = await makePki(now, ['mx1.example.test', 'MX2.Example.Test', '*.example.test']);
    certs.push(['fixture root', pki.root.pem], ['fixture intermediate', pki.intermediate.pem], ['fixture leaf', pki.leaf.pem]);
    certs.push(['fixture leaf without SAN', (await makeLeaf(pki.intermediate, now, { names: [], subject: 'CN=a+O=b, C=DE' })).pem]);

    dir = mkdtempSync(join(tmpdir(), 'mxcert-certfields-'));
    const openssl = (file: string, args: string[]): void => {
      execFileSync('openssl', ['req', '-x509', '-nodes', '-keyout', join(dir, `${file}.key`), '-out', join(dir, file), ...args], { stdio: 'pipe' });
      certs.push([`openssl ${file}`, readFileSync(join(dir, file), 'utf8')]);
    };
    openssl('multi-rdn.pem', [
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-days', '10000', '-set_serial', '0x87654321', '-multivalue-rdn',
      '-subj', '/C=DE/ST=Berlin/L=Berlin/O=Example, Inc./OU=Mail+CN=mx1.example.test/emailAddress=hostmaster@example.test/DC=example/serialNumber=42/title=Post\\+master/GN=Given/SN=Sur/initials=I',
      '-addext', 'subjectAltName=DNS:mx1.example.test,IP:127.0.0.1,email:a@example.test,DNS:*.example.test',
    ]);
    openssl('rsa.pem', [
      '-newkey', 'rsa:2048', '-days', '30', '-set_serial', '1',
      '-subj', '/CN= leading and trailing space /O=quote " and <angle> ;semi\\\\back/OU=#hash',
      '-addext', 'subjectAltName=DNS:mail.example.test',
    ]);
    openssl('pebble-like.pem', [
      '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-days', '5', '-set_serial', '0x00ff00', '-subj', '/CN=Pebble Intermediate CA 1b2c3d',
    ]);

    // Hand-built: every DirectoryString choice, IA5, a NumericString and
    // non-string values (BIT STRING, SEQUENCE: shown as #hex; OpenSSL refuses others),
    // an unregistered attribute type, CR/LF.
    const odd = name(
      rdn(atv(CN, der.tlv(der.TAG.BMP_STRING, Buffer.from('00e40042ac00', 'hex')))),
      rdn(atv(CN, der.tlv(der.TAG.T61_STRING, Buffer.from([0xe4, 0x41])))),
      rdn(atv(CN, der.tlv(der.TAG.UNIVERSAL_STRING, Buffer.from('000000e400000041', 'hex')))),
      rdn(atv('2.5.4.5', der.tlv(der.TAG.NUMERIC_STRING, Buffer.from('123')))),
      rdn(atv('2.5.4.10', der.bitString(Buffer.from('vis')))),
      rdn(atv('1.3.6.1.4.1.311.60.2.1.3', der.printableString('DE'))),
      rdn(atv('1.2.3.4', der.sequence(der.integer(5))), atv('2.5.4.11', der.utf8String('a\r\nb\tc'))),
      rdn(atv(CN, der.utf8String('Grüße, +"<>;\\ '))),
    );
    certs.push([
      'hand-built odd names',
      buildCert({ serial: Buffer.from('00', 'hex'), issuer: odd, subject: name(), ...plainTimes }),
    ]);
    for (const serial of ['80', 'ff01', '7f', '00ff', '0102030405060708090a0b0c0d0e0f1011121314']) {
      certs.push([`hand-built serial ${serial}`, buildCert({ serial: Buffer.from(serial, 'hex'), issuer: cn('CA'), subject: cn('x'), ...plainTimes })]);
    }
    certs.push([
      'hand-built 1999 UTCTime, negative-looking serial, critical SAN, AKI with issuer+serial',
      buildCert({
        serial: Buffer.from('0080', 'hex'),
        issuer: name(rdn(atv(CN, der.printableString('Old CA')))),
        subject: name(),
        notBefore: der.utcTime(new Date('1999-12-31T23:59:59Z')),
        notAfter: der.generalizedTime(new Date('2050-01-01T00:00:00Z')),
        extensions: [
          ext('2.5.29.17', der.sequence(der.implicit(1, der.ia5String('a@b')), der.implicit(2, der.ia5String('only.example.test'))), true),
          ext('2.5.29.35', der.sequence(der.implicit(0, der.octetString(Buffer.from('0102', 'hex'))), der.tlv(0x82, Buffer.from([7])))),
        ],
      }),
    ]);
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the same fields for every certificate', async () => {
    assert.ok(certs.length >= 14);
    for (const [what, pem] of certs) assert.deepEqual(await viaNew(pem), viaLegacy(pem), what);
  });

  it('formats names as before (spot checks)', async () => {
    const byName = new Map(certs);
    assert.equal((await viaNew(byName.get('fixture leaf')!)).issuer, 'CN=mxcert Test Intermediate');
    assert.equal((await viaNew(byName.get('openssl pebble-like.pem')!)).subject, 'CN=Pebble Intermediate CA 1b2c3d');
    assert.equal(
      (await viaNew(byName.get('openssl multi-rdn.pem')!)).subject,
      'C=DE, ST=Berlin, L=Berlin, O=Example\\, Inc., OU=Mail+CN=mx1.example.test, E=hostmaster@example.test, DC=example, ' +
        '2.5.4.5=42, T=Post\\+master, G=Given, SN=Sur, I=I',
    );
    assert.equal((await viaNew(byName.get('openssl multi-rdn.pem')!)).serial, '87654321');
    assert.equal((await viaNew(byName.get('openssl pebble-like.pem')!)).serial, 'ff00');
    assert.equal((await viaNew(byName.get('hand-built serial 80')!)).serialDer, '80', 'a negative serial as encoded, no sign octet added');
    assert.equal((await viaNew(byName.get('openssl multi-rdn.pem')!)).serialDer, '0087654321');
  });

  it('serial is node’s serialNumber in lower case', async () => {
    for (const [what, pem] of certs) {
      if (what.startsWith('hand-built')) continue; // serials 0, 0x80, 0x0080: node prints "0", "-80", "80"
      assert.equal((await viaNew(pem)).serial, new NodeX509(pem).serialNumber.toLowerCase(), what);
    }
  });

  it('refuses a validity time RFC 5280 §4.1.2.5 does not allow, as the DER reading did', async () => {
    const utc = (text: string) => der.tlv(der.TAG.UTC_TIME, Buffer.from(text));
    const gen = (text: string) => der.tlv(der.TAG.GENERALIZED_TIME, Buffer.from(text));
    // asn1js reads the first two as 1899, the third as 3 March; OpenSSL refuses or reads them otherwise.
    for (const bad of [utc('2501010000Z'), utc('250101000000+0100'), utc('250231000000Z'), gen('20250101000000.5Z'), gen('20250101000000')]) {
      const pem = buildCert({ serial: Buffer.from('01', 'hex'), issuer: name(), subject: name(), notBefore: bad, notAfter: plainTimes.notAfter });
      assert.throws(() => legacy.readCertFields(new NodeX509(pem).raw), legacy.DerError, bad.subarray(2).toString());
      await assert.rejects(readCertFields(new NodeX509(pem)), (e: unknown) => e instanceof CertFieldsError && /notBefore .*RFC 5280 §4\.1\.2\.5/.test(e.message), bad.subarray(2).toString());
    }
    const late = buildCert({ serial: Buffer.from('01', 'hex'), issuer: name(), subject: name(), notBefore: plainTimes.notBefore, notAfter: gen('99991231235959Z') });
    assert.equal((await readCertFields(new NodeX509(late))).notAfter.toISOString(), '9999-12-31T23:59:59.000Z');
  });

  it('an extension twice, or an OID asn1js cannot hold posing as subjectAltName, is refused', async () => {
    const times = { serial: Buffer.from('01', 'hex'), issuer: cn('CA'), subject: cn('x'), ...plainTimes };
    // 2.5.29.17.<arc of 10 base-128 octets, > 2^56>: OpenSSL reads it as what it is; asn1js drops the arc.
    const oid = Buffer.concat([der.oid('2.5.29.17').subarray(2), Buffer.alloc(9, 0x81), Buffer.from([0x01])]);
    const posing = der.sequence(der.tlv(der.TAG.OID, oid), der.octetString(der.sequence(der.implicit(2, der.ia5String('evil.example.test')))));
    const alone = buildCert({ ...times, extensions: [posing] });
    assert.equal(new NodeX509(alone).subjectAltName, undefined, 'OpenSSL sees no subjectAltName');
    assert.deepEqual(legacy.sanDnsNames(legacy.readCertFields(new NodeX509(alone).raw)), [], 'nor did the DER reading');
    await assert.rejects(readCertFields(new NodeX509(alone)), /OpenSSL finds no subjectAltName extension, @peculiar\/x509 does/);

    const withReal = buildCert({ ...times, extensions: [sanExt('mx1.example.test'), posing] });
    await assert.rejects(readCertFields(new NodeX509(withReal)), /extension 2\.5\.29\.17 appears more than once \(RFC 5280 §4\.2\)/);
    const twice = buildCert({ ...times, extensions: [sanExt('mx1.example.test'), sanExt('evil.example.test')] });
    await assert.rejects(readCertFields(new NodeX509(twice)), /extension 2\.5\.29\.17 appears more than once/);
    // The same look-alike OID elsewhere is just an unknown extension.
    const harmless = Buffer.concat([der.oid('1.2.3').subarray(2), Buffer.alloc(9, 0x81), Buffer.from([0x01])]);
    const ok = buildCert({ ...times, extensions: [sanExt('mx1.example.test'), der.sequence(der.tlv(der.TAG.OID, harmless), der.octetString(der.nullValue()))] });
    assert.deepEqual((await readCertFields(new NodeX509(ok))).dnsNames, ['mx1.example.test']);
  });

  it('refuses an unreadable extension', async () => {
    const bad = buildCert({ serial: Buffer.from('01', 'hex'), issuer: name(), subject: name(), ...plainTimes, extensions: [ext('2.5.29.17', Buffer.from('3002820568', 'hex'))] });
    await assert.rejects(readCertFields(new NodeX509(bad)), (e: unknown) => e instanceof CertFieldsError && /extensions are not readable/.test(e.message));
  });
});
