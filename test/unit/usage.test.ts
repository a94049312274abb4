// `usage: [server, client]`: a warning naming the certificate when the issued
// leaf lacks the clientAuth EKU; nothing when it has it, has no EKU
// extension (unrestricted, RFC 5280 §4.2.1.12) or has anyExtendedKeyUsage.
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { pino } from 'pino';
import { EKU_ANY, EKU_CLIENT_AUTH, EKU_SERVER_AUTH, ekuNames, extendedKeyUsages, missingUsages, warnOnMissingUsage } from '../../src/validate/usage.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function leafWith(ekus: string[] | undefined): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const extensions: x509.Extension[] = [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'mx1.example.com' }])];
  if (ekus) extensions.push(new x509.ExtendedKeyUsageExtension(ekus));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=mx1.example.com',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions,
  });
  return cert.toString('pem') + '\n';
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: pino({ level: 'info' }, sink).child({ cert: 'mx1', keyType: 'ecdsa-p256' }) };
}

describe('usage / extended key usage', () => {
  it('reads the EKU OIDs, or undefined without the extension', async () => {
    assert.deepEqual(extendedKeyUsages(await leafWith([EKU_SERVER_AUTH, EKU_CLIENT_AUTH])), [EKU_SERVER_AUTH, EKU_CLIENT_AUTH]);
    assert.equal(extendedKeyUsages(await leafWith(undefined)), undefined);
    // An EKU extension listing nothing (its SEQUENCE must have one entry, RFC 5280 §4.2.1.12) restricts nothing either.
    const empty = await leafWith([]);
    assert.equal(extendedKeyUsages(empty), undefined);
    assert.deepEqual(missingUsages(empty, ['server', 'client']), []);
  });

  it('missingUsages per case', async () => {
    const serverOnly = await leafWith([EKU_SERVER_AUTH]);
    assert.deepEqual(missingUsages(serverOnly, ['server', 'client']), ['client']);
    assert.deepEqual(missingUsages(serverOnly, ['server']), []);
    assert.deepEqual(missingUsages(await leafWith([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]), ['server', 'client']), []);
    assert.deepEqual(missingUsages(await leafWith(undefined), ['server', 'client']), [], 'no EKU extension: unrestricted');
    assert.deepEqual(missingUsages(await leafWith([EKU_ANY]), ['server', 'client']), []);
    assert.deepEqual(missingUsages(await leafWith([EKU_CLIENT_AUTH]), ['server', 'client']), ['server']);
  });

  it('warns, naming the certificate, exactly when client is listed and clientAuth is missing', async () => {
    const serverOnly = await leafWith([EKU_SERVER_AUTH]);
    const a = capture();
    assert.deepEqual(warnOnMissingUsage({ name: 'mx1', usage: ['server', 'client'] }, serverOnly, a.log), ['client']);
    const warns = a.lines.filter((l) => l['level'] === 40);
    assert.equal(warns.length, 1);
    assert.match(String(warns[0]!['msg']), /^certificate mx1 lacks the clientAuth extended key usage/);
    assert.deepEqual(warns[0]!['eku'], ['serverAuth']);
    assert.equal(warns[0]!['missing'], 'clientAuth');

    const b = capture();
    assert.deepEqual(warnOnMissingUsage({ name: 'mx1', usage: ['server'] }, serverOnly, b.log), []);
    assert.deepEqual(warnOnMissingUsage({ name: 'mx1' }, serverOnly, b.log), [], 'usage absent means [server]');
    assert.deepEqual(warnOnMissingUsage({ name: 'mx1', usage: ['server', 'client'] }, await leafWith([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]), b.log), []);
    assert.equal(b.lines.length, 0);
  });

  it('never throws on an unreadable leaf; logs instead, with the reason', () => {
    const c = capture();
    assert.deepEqual(warnOnMissingUsage({ name: 'mx1', usage: ['server', 'client'] }, 'not a certificate', c.log), []);
    assert.match(String(c.lines[0]?.['msg']), /^certificate mx1: could not read its extended key usage$/);
    assert.equal(typeof c.lines[0]?.['err'], 'string');
    assert.ok(String(c.lines[0]?.['err']).length > 0);
  });

  it('the OIDs are the registered ones (RFC 5280 §4.2.1.12) and have names', () => {
    assert.equal(EKU_ANY, '2.5.29.37.0');
    assert.deepEqual(
      ekuNames([EKU_SERVER_AUTH, EKU_CLIENT_AUTH, EKU_ANY, '1.3.6.1.5.5.7.3.3', '1.3.6.1.5.5.7.3.4', '1.3.6.1.5.5.7.3.8', '1.3.6.1.5.5.7.3.9', '1.2.3.4']),
      ['serverAuth', 'clientAuth', 'anyExtendedKeyUsage', 'codeSigning', 'emailProtection', 'timeStamping', 'OCSPSigning', '1.2.3.4'],
    );
  });

  it('a leaf whose EKU lacks serverAuth: a warning about servers, naming the EKUs it has', async () => {
    const clientOnly = await leafWith([EKU_CLIENT_AUTH, '1.3.6.1.5.5.7.3.4']);
    const c = capture();
    assert.deepEqual(warnOnMissingUsage({ name: 'mx1' }, clientOnly, c.log), ['server'], 'usage absent means [server]');
    const warns = c.lines.filter((l) => l['level'] === 40);
    assert.equal(warns.length, 1);
    assert.equal(warns[0]!['msg'], 'certificate mx1 lacks the serverAuth extended key usage, but usage lists server: TLS clients will refuse it');
    assert.deepEqual(warns[0]!['eku'], ['clientAuth', 'emailProtection']);
    assert.deepEqual(warns[0]!['usage'], ['server']);
    assert.equal(warns[0]!['missing'], 'serverAuth');
  });
});
