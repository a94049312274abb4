import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { generateKeyPem, keyTypeOf, publicKeySpkiDer } from '../../src/keys/keygen.js';
import { KEY_TYPES } from '../../src/config/schema.js';
import { makePki } from './pki-fixtures.js';

describe('generateKeyPem', () => {
  for (const type of KEY_TYPES) {
    it(`makes a PKCS#8 ${type} key that keyTypeOf recognises`, async () => {
      const pem = await generateKeyPem(type);
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
      assert.equal(keyTypeOf(pem), type);
      const key = createPrivateKey(pem);
      assert.equal(key.asymmetricKeyType, type.startsWith('rsa') ? 'rsa' : 'ec');
      if (type.startsWith('rsa')) assert.equal(key.asymmetricKeyDetails?.publicExponent, 65537n);
    });
  }

  it('makes a different key every time', async () => {
    assert.notEqual(await generateKeyPem('ecdsa-p256'), await generateKeyPem('ecdsa-p256'));
  });
});

describe('publicKeySpkiDer', () => {
  it('is the same for a private key, its public key and its certificate', async () => {
    const { leaf } = await makePki(new Date());
    const fromKey = publicKeySpkiDer(leaf.keyPem);
    const fromCert = publicKeySpkiDer(leaf.pem);
    const fromPub = publicKeySpkiDer(createPublicKey(leaf.keyPem).export({ type: 'spki', format: 'pem' }) as string);
    assert.ok(fromKey.equals(fromCert));
    assert.ok(fromKey.equals(fromPub));
    assert.ok(fromKey.equals(new X509Certificate(leaf.pem).publicKey.export({ type: 'spki', format: 'der' })));
    assert.equal(fromKey[0], 0x30, 'DER SEQUENCE');
  });

  it('differs between keys and throws on garbage', async () => {
    assert.ok(!publicKeySpkiDer(await generateKeyPem('ecdsa-p256')).equals(publicKeySpkiDer(await generateKeyPem('ecdsa-p256'))));
    assert.throws(() => publicKeySpkiDer('hello'));
  });
});

describe('keyTypeOf', () => {
  it('reads certificates and public keys too', async () => {
    const { leaf } = await makePki(new Date());
    assert.equal(keyTypeOf(leaf.pem), 'ecdsa-p256');
    assert.equal(keyTypeOf(createPublicKey(leaf.keyPem).export({ type: 'spki', format: 'pem' }) as string), 'ecdsa-p256');
  });

  it('is undefined for key kinds mxcert does not issue, and throws on garbage', () => {
    const pem = (k: ReturnType<typeof generateKeyPairSync>) =>
      k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.equal(keyTypeOf(pem(generateKeyPairSync('ed25519'))), undefined);
    assert.equal(keyTypeOf(pem(generateKeyPairSync('ec', { namedCurve: 'P-521' }))), undefined);
    assert.equal(keyTypeOf(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }))), undefined);
    assert.throws(() => keyTypeOf('not a key'));
  });
});
