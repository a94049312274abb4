// PKCS#10 CSRs (src/keys/csr.ts) checked by two independent readers: openssl
// (`req -verify`, `req -text`, `req -pubkey`) and @peculiar/x509.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { createCsr } from '../../src/keys/csr.js';
import { generateKeyPem } from '../../src/keys/keygen.js';
import { KEY_TYPES, type KeyType } from '../../src/config/schema.js';
import { MxcertError } from '../../src/errors.js';
import * as der from './der-write.js';
import { children, readDer } from './legacy-cert-fields.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const DOMAINS = ['mx1.example.test', 'mx2.example.test', '*.example.test', 'MX3.Example.Test'];
const SIG_ALG: Record<KeyType, string> = {
  'ecdsa-p256': 'ecdsa-with-SHA256',
  'ecdsa-p384': 'ecdsa-with-SHA384',
  'rsa-2048': 'sha256WithRSAEncryption',
  'rsa-3072': 'sha256WithRSAEncryption',
  'rsa-4096': 'sha256WithRSAEncryption',
};

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxcert-csr-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * `openssl req -verify`: OpenSSL 3.0 exits 0 even when the self-signature
 * does not verify and only says so on stderr, so check the words too.
 */
function opensslVerify(csrPem: string): void {
  const file = join(dir, 'req.pem');
  writeFileSync(file, csrPem);
  const r = spawnSync('openssl', ['req', '-in', file, '-noout', '-verify'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr + r.stdout, /self-signature verify OK/);
  assert.doesNotMatch(r.stderr + r.stdout, /failure/);
}

function openssl(csrPem: string, ...args: string[]): string {
  const file = join(dir, 'req.pem');
  writeFileSync(file, csrPem);
  return execFileSync('openssl', ['req', '-in', file, '-noout', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('createCsr', () => {
  for (const type of KEY_TYPES) {
    it(`${type}: verifies, carries CN and every SAN, the key's public key and ${SIG_ALG[type]}`, async () => {
      const keyPem = await generateKeyPem(type);
      const csr = await createCsr(DOMAINS, keyPem);
      assert.match(csr, /^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE REQUEST-----\n$/);

      opensslVerify(csr);
      const text = openssl(csr, '-text');
      assert.match(text, /Subject: CN ?= ?mx1\.example\.test\n/);
      assert.match(text, /X509v3 Subject Alternative Name: ?\n\s+DNS:mx1\.example\.test, DNS:mx2\.example\.test, DNS:\*\.example\.test, DNS:MX3\.Example\.Test\n/);
      assert.match(text, new RegExp(`Signature Algorithm: ${SIG_ALG[type]}`));
      assert.match(text, /Version: 1 \(0x0\)/);
      assert.doesNotMatch(text, /Key Usage/, 'no keyUsage or extendedKeyUsage requested: the CA decides');
      assert.match(openssl(csr, '-subject', '-nameopt', 'multiline,show_type'), /commonName\s+= UTF8STRING:mx1\.example\.test/);

      const pub = openssl(csr, '-pubkey');
      assert.equal(pub, createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }));

      // A second, independent reader.
      const parsed = new x509.Pkcs10CertificateRequest(csr);
      assert.ok(await parsed.verify());
      assert.equal(parsed.subject, 'CN=mx1.example.test');
      const san = parsed.getExtension('2.5.29.17') as x509.SubjectAlternativeNameExtension;
      assert.deepEqual(san.names.items.map((n) => [n.type, n.value]), DOMAINS.map((d) => ['dns', d]));
      assert.equal(san.critical, false);
      assert.ok(Buffer.from(parsed.publicKey.rawData).equals(createPublicKey(keyPem).export({ type: 'spki', format: 'der' })));
    });
  }

  it('the openssl check does catch a request whose contents do not match its signature', async () => {
    const csr = await createCsr(['mx1.example.test', 'mx2.example.test'], await generateKeyPem('ecdsa-p256'));
    const body = Buffer.from(csr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    body[body.indexOf('mx2.example.test')] = 'n'.charCodeAt(0);
    assert.throws(() => opensslVerify(der.toPem(body, 'CERTIFICATE REQUEST')), /self-signature verify OK/);
  });

  it('RSA signature algorithm has NULL parameters, ECDSA none (RFC 4055 §5, RFC 5758 §3.2)', async () => {
    const algOf = (pem: string): string => {
      const body = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
      return children(readDer(body))[1]!.der.toString('hex');
    };
    assert.equal(algOf(await createCsr(['a.test'], await generateKeyPem('rsa-2048'))), '300d06092a864886f70d01010b0500');
    assert.equal(algOf(await createCsr(['a.test'], await generateKeyPem('ecdsa-p256'))), '300a06082a8648ce3d040302');
    assert.equal(algOf(await createCsr(['a.test'], await generateKeyPem('ecdsa-p384'))), '300a06082a8648ce3d040303');
  });

  it('a single name; a first name too long for a CN leaves the subject empty and the SAN critical', async () => {
    const keyPem = await generateKeyPem('ecdsa-p256');
    const one = openssl(await createCsr(['mx1.example.test'], keyPem), '-text');
    assert.match(one, /Subject: CN ?= ?mx1\.example\.test\n/);
    assert.match(one, /Subject Alternative Name: ?\n\s+DNS:mx1\.example\.test\n/);

    const long = `${'a'.repeat(60)}.example.test`;
    const csr = await createCsr([long, 'mx1.example.test'], keyPem);
    opensslVerify(csr);
    const text = openssl(csr, '-text');
    assert.match(text, /Subject: ?\n/);
    assert.match(text, /X509v3 Subject Alternative Name: critical\n\s+DNS:a{60}\.example\.test, DNS:mx1\.example\.test\n/);
  });

  it('refuses key types mxcert does not use, unreadable keys, no names and non-ASCII names', async () => {
    const isCsrError = (re: RegExp) => (e: unknown) => e instanceof MxcertError && e.code === 'csr' && re.test(e.message);
    const pem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']): string => k.export({ type: 'pkcs8', format: 'pem' }) as string;
    await assert.rejects(createCsr(['a.test'], pem(generateKeyPairSync('ed25519').privateKey)), isCsrError(/ed25519 key/));
    await assert.rejects(createCsr(['a.test'], pem(generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey)), isCsrError(/ec secp521r1 key/));
    await assert.rejects(createCsr(['a.test'], pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey)), isCsrError(/rsa 1024 bits key/));
    await assert.rejects(createCsr(['a.test'], 'not a key'), isCsrError(/not a readable private key/));
    const ok = await generateKeyPem('ecdsa-p256');
    await assert.rejects(createCsr(['a.test'], createPublicKey(ok).export({ type: 'spki', format: 'pem' }) as string), isCsrError(/not a readable private key/));
    await assert.rejects(createCsr([], ok), isCsrError(/at least one/));
    await assert.rejects(createCsr(['bücher.example'], ok), isCsrError(/printable ASCII.*"bücher\.example"/));
  });
});
