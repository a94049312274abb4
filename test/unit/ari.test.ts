import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { MxcertError } from '../../src/errors.js';
import * as der from './der-write.js';
import { buildCert, cn, ext } from './der-cert.js';
import { ariCertId, nextAriCheck, parseRenewalInfo } from '../../src/acme/ari.js';
import { parseRetryAfter } from '../../src/acme/transport.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

async function certWith(serialHex: string, akiHex: string): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex,
    subject: 'CN=mx1.example.test',
    issuer: 'CN=Test CA',
    notBefore: new Date('2026-11-01T00:00:00Z'),
    notAfter: new Date('2026-12-01T00:00:00Z'),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    extensions: [new x509.AuthorityKeyIdentifierExtension(akiHex)],
  });
  return cert.toString('pem');
}

describe('ARI CertID (RFC 9773 §4.1)', () => {
  it('matches the RFC example (AKI 69:88:5B:…:D4, serial 00:87:65:43:21)', async () => {
    const pem = await certWith('0087654321', '69885B6B87464041E1B37B847BA0AE2CDE01C8D4');
    assert.equal(await ariCertId(pem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });
  it('a serial without the high bit gets no padding byte', async () => {
    const pem = await certWith('01020304', '0102030405060708090a0b0c0d0e0f1011121314');
    assert.equal((await ariCertId(pem)).split('.')[1], Buffer.from('01020304', 'hex').toString('base64url'));
  });
  it('a certificate without AKI is an error, not a wrong CertID', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=x', keys, signingAlgorithm: alg, notBefore: new Date(), notAfter: new Date(Date.now() + 1e9) });
    await assert.rejects(ariCertId(cert.toString('pem')), /Authority Key Identifier/);
  });
});

/** An independent computation: the library's serial hex with DER's sign octet put back (X.690 §8.3.2). */
function previousCertId(leafPem: string): string {
  const cert = new x509.X509Certificate(leafPem);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)!;
  let serial = Buffer.from(cert.serialNumber, 'hex');
  if (serial.length > 0 && (serial[0]! & 0x80) !== 0) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${Buffer.from(aki.keyId!, 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}

describe('ARI CertID from the DER', () => {
  const times = { notBefore: der.utcTime(new Date('2026-11-01T00:00:00Z')), notAfter: der.utcTime(new Date('2026-12-01T00:00:00Z')) };
  const akiExt = (keyId: string): Buffer => ext('2.5.29.35', der.sequence(der.implicit(0, der.octetString(Buffer.from(keyId, 'hex')))));

  it('RFC 9773 §4.1 example, serial written exactly as 00 87 65 43 21', async () => {
    const pem = buildCert({ serial: Buffer.from('0087654321', 'hex'), issuer: cn('CA'), subject: cn('mx1'), ...times, extensions: [akiExt('69885B6B87464041E1B37B847BA0AE2CDE01C8D4')] });
    assert.equal(await ariCertId(pem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('the serial octets exactly as encoded: a high bit keeps its 0x00, a (forbidden) negative serial gets none', async () => {
    const aki = akiExt('0102');
    const certId = (serial: string) => ariCertId(buildCert({ serial: Buffer.from(serial, 'hex'), issuer: cn('CA'), subject: cn('mx1'), ...times, extensions: [aki] }));
    assert.equal(await certId('0080'), `AQI.${Buffer.from('0080', 'hex').toString('base64url')}`);
    assert.equal(await certId('80'), `AQI.${Buffer.from('80', 'hex').toString('base64url')}`);
    assert.equal(await certId('7f'), `AQI.${Buffer.from('7f', 'hex').toString('base64url')}`);
  });

  it('same CertID as computed from @peculiar/x509\'s serialNumber and keyId on openssl-issued certificates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mxcert-ari-'));
    try {
      for (const serial of ['0x87654321', '0x01', '0x7f', '0x80', '0x00ffeeddccbbaa99887766554433221100', '0x0102030405060708090a0b0c0d0e0f1011121314']) {
        const out = join(dir, 'c.pem');
        execFileSync('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', join(dir, 'k.pem'), '-out', out, '-days', '1', '-set_serial', serial, '-subj', '/CN=mx1.example.test'], { stdio: 'pipe' });
        const pem = readFileSync(out, 'utf8');
        assert.equal(await ariCertId(pem), previousCertId(pem), serial);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unreadable certificate or AKI is an ARI error', async () => {
    await assert.rejects(ariCertId('not a certificate'), (e: unknown) => e instanceof MxcertError && e.code === 'ari');
    const badAki = buildCert({ serial: Buffer.from([1]), issuer: cn('CA'), subject: cn('mx1'), ...times, extensions: [ext('2.5.29.35', Buffer.from('3005800201', 'hex'))] });
    await assert.rejects(ariCertId(badAki), (e: unknown) => e instanceof MxcertError && e.code === 'ari' && /not readable/.test(e.message));
    const emptyAki = buildCert({ serial: Buffer.from([1]), issuer: cn('CA'), subject: cn('mx1'), ...times, extensions: [akiExt('')] });
    await assert.rejects(ariCertId(emptyAki), /Authority Key Identifier/);
  });
});

describe('renewalInfo responses', () => {
  it('parses a recorded response (Let\'s Encrypt shape)', () => {
    const body = {
      suggestedWindow: { start: '2026-12-19T17:37:42Z', end: '2026-12-21T17:37:42Z' },
      explanationURL: 'https://community.example/ari-incident',
    };
    const info = parseRenewalInfo(body, 21600);
    assert.equal(info.window.start.toISOString(), '2026-12-19T17:37:42.000Z');
    assert.equal(info.window.end.toISOString(), '2026-12-21T17:37:42.000Z');
    assert.equal(info.explanationURL, 'https://community.example/ari-incident');
    assert.equal(info.retryAfter, 21600);
  });
  it('rejects malformed windows', () => {
    assert.throws(() => parseRenewalInfo({}), /suggestedWindow/);
    assert.throws(() => parseRenewalInfo({ suggestedWindow: { start: 'soon', end: 'later' } }), /suggestedWindow/);
    assert.throws(() => parseRenewalInfo({ suggestedWindow: { start: '2026-12-21T00:00:00Z', end: '2026-12-20T00:00:00Z' } }), /ends before/);
  });
  it('Retry-After: seconds or HTTP date; next check clamped to [1 min, 1 day], 6 h default', () => {
    const now = new Date('2026-11-23T00:00:00Z');
    assert.equal(parseRetryAfter('120'), 120);
    assert.equal(parseRetryAfter('Mon, 23 Nov 2026 01:00:00 GMT', now), 3600);
    assert.equal(parseRetryAfter('nonsense'), undefined);
    assert.equal(nextAriCheck(now, 5).getTime() - now.getTime(), 60_000);
    assert.equal(nextAriCheck(now, 10 * 86400).getTime() - now.getTime(), 86_400_000);
    assert.equal(nextAriCheck(now, undefined).getTime() - now.getTime(), 6 * 3_600_000);
    assert.equal(nextAriCheck(now, 7200).getTime() - now.getTime(), 7_200_000);
  });
});
