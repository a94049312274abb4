// cert-fields.ts (our DER reading of certificates) against @peculiar/x509,
// which it replaced in src/: the same serial, names (as DER and as text),
// validity, SAN dNSNames and Authority Key Identifier, on the unit-test PKI,
// openssl-made certificates (multi-valued RDNs, escapes, a high-bit serial,
// GeneralizedTime, mixed SAN types, RSA) and hand-built DER with the odd
// string types and attribute values a CA could put in a Name.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import * as der from '../../src/util/der.js';
import { authorityKeyId, nameToString, readCertFields, sanDnsNames, serialHex } from '../../src/util/cert-fields.js';
import { makeLeaf, makePki } from './pki-fixtures.js';
import { atv, buildCert, ext, name, rdn } from './der-cert.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** What src/ computed with @peculiar/x509 before, field by field. */
function viaPeculiar(pem: string) {
  const cert = new x509.X509Certificate(pem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  return {
    serial: cert.serialNumber.toLowerCase(),
    issuer: cert.issuer,
    subject: cert.subject,
    issuerDer: Buffer.from(cert.issuerName.toArrayBuffer()).toString('hex'),
    subjectDer: Buffer.from(cert.subjectName.toArrayBuffer()).toString('hex'),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    names: san ? san.names.items.filter((n) => n.type === 'dns').map((n) => n.value) : [],
    aki: aki?.keyId ? aki.keyId.toLowerCase() : undefined,
  };
}

function viaDer(pem: string): ReturnType<typeof viaPeculiar> {
  const f = readCertFields(new NodeX509(pem).raw);
  return {
    serial: serialHex(f.serialDer),
    issuer: nameToString(f.issuerDer),
    subject: nameToString(f.subjectDer),
    issuerDer: f.issuerDer.toString('hex'),
    subjectDer: f.subjectDer.toString('hex'),
    notBefore: f.notBefore.toISOString(),
    notAfter: f.notAfter.toISOString(),
    names: sanDnsNames(f),
    aki: authorityKeyId(f)?.toString('hex'),
  };
}

const CN = '2.5.4.3';
const plainTimes = {
  notBefore: der.utcTime(new Date('2025-01-01T00:00:00Z')),
  notAfter: der.utcTime(new Date('2025-04-01T00:00:00Z')),
};

describe('certificate fields: parity with @peculiar/x509', () => {
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

  it('gives the same fields for every certificate', () => {
    assert.ok(certs.length >= 9);
    for (const [what, pem] of certs) assert.deepEqual(viaDer(pem), viaPeculiar(pem), what);
  });

  it('formats names as before (spot checks)', () => {
    const byName = new Map(certs);
    assert.equal(viaDer(byName.get('fixture leaf')!).issuer, 'CN=mxcert Test Intermediate');
    assert.equal(viaDer(byName.get('openssl pebble-like.pem')!).subject, 'CN=Pebble Intermediate CA 1b2c3d');
    assert.equal(
      viaDer(byName.get('openssl multi-rdn.pem')!).subject,
      'C=DE, ST=Berlin, L=Berlin, O=Example\\, Inc., OU=Mail+CN=mx1.example.test, E=hostmaster@example.test, DC=example, ' +
        '2.5.4.5=42, T=Post\\+master, G=Given, SN=Sur, I=I',
    );
    assert.equal(viaDer(byName.get('openssl multi-rdn.pem')!).serial, '87654321');
    assert.equal(viaDer(byName.get('openssl pebble-like.pem')!).serial, 'ff00');
  });

  it('serial is node’s serialNumber in lower case', () => {
    for (const [what, pem] of certs) {
      if (what.startsWith('hand-built')) continue; // serials 0 and 0x0080: node prints "0" / "80"
      assert.equal(viaDer(pem).serial, new NodeX509(pem).serialNumber.toLowerCase(), what);
    }
  });

  it('refuses a certificate that is not one, with a DER error', () => {
    assert.throws(() => readCertFields(Buffer.from('3003020101', 'hex')), /tbsCertificate/);
    assert.throws(() => readCertFields(Buffer.from('30800000', 'hex')), /indefinite/);
    const bad = buildCert({
      serial: Buffer.from('01', 'hex'),
      issuer: name(),
      subject: name(),
      notBefore: der.tlv(der.TAG.UTC_TIME, Buffer.from('2501010000Z')),
      notAfter: plainTimes.notAfter,
    });
    assert.throws(() => readCertFields(new NodeX509(bad).raw), /RFC 5280 §4\.1\.2\.5\.1/);
  });
});
