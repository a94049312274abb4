import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
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
    assert.equal(ariCertId(pem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });
  it('a serial without the high bit gets no padding byte', async () => {
    const pem = await certWith('01020304', '0102030405060708090a0b0c0d0e0f1011121314');
    assert.equal(ariCertId(pem).split('.')[1], Buffer.from('01020304', 'hex').toString('base64url'));
  });
  it('a certificate without AKI is an error, not a wrong CertID', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=x', keys, signingAlgorithm: alg, notBefore: new Date(), notAfter: new Date(Date.now() + 1e9) });
    assert.throws(() => ariCertId(cert.toString('pem')), /Authority Key Identifier/);
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
