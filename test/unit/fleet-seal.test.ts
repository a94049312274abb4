// Sealing private keys for etcd (src/fleet/seal.ts): the envelope format is
// pinned by a known answer (members of one fleet may run different mxcert
// versions), and every way a sealed value can be wrong gives its own
// SealError reason: wrong key, moved to another slot, tampered, malformed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SealError } from '../../src/fleet/errors.js';
import { keyId, parseFleetKey, seal, unseal, type FleetKey, type SealedKey, type SealSlot } from '../../src/fleet/seal.js';

const KEY_BYTES = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
const KEY: FleetKey = { bytes: KEY_BYTES, id: keyId(KEY_BYTES) };
const SLOT: SealSlot = { prefix: '/mxcert/example.com/', cert: 'mx', keyType: 'ecdsa-p256', role: 'current' };
const PEM = '-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n';

function fresh(): FleetKey {
  const r = parseFleetKey(randomBytes(32).toString('hex'));
  assert.ok(r.ok);
  return r.key;
}

function reason(r: SealError['reason'], re?: RegExp): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof SealError, `expected SealError, got ${String(e)}`);
    assert.equal(e.reason, r, e.message);
    assert.equal(e.code, 'seal');
    if (re) assert.match(e.message, re);
    return true;
  };
}

/** Flip one bit of a base64 field. */
function flip(b64: string, byte = 0): string {
  const b = Buffer.from(b64, 'base64');
  b[byte] = b[byte]! ^ 0x01;
  return b.toString('base64');
}

describe('fleet key files', () => {
  it('key id: the first 8 bytes of SHA-256 of the raw key, in hex', () => {
    // printf '%s' 000102…1f | xxd -r -p | sha256sum | cut -c1-16
    assert.equal(keyId(KEY_BYTES), '630dcd2966c43366');
  });

  it('accepts 64 hex digits or base64 of 32 bytes, with surrounding whitespace', () => {
    for (const text of [`${KEY_BYTES.toString('hex')}\n`, `  ${KEY_BYTES.toString('hex').toUpperCase()}  `, `${KEY_BYTES.toString('base64')}\n`]) {
      const r = parseFleetKey(Buffer.from(text));
      assert.ok(r.ok, text);
      assert.deepEqual(r.key.bytes, KEY_BYTES);
      assert.equal(r.key.id, '630dcd2966c43366');
    }
  });

  it('refuses anything that is not exactly 32 bytes in hex or base64, raw bytes and placeholders', () => {
    const refused: Array<[string | Buffer, RegExp]> = [
      ['', /empty/],
      [KEY_BYTES.toString('hex').slice(2), /exactly 32 bytes/],
      [`${KEY_BYTES.toString('hex')}00`, /exactly 32 bytes/],
      [randomBytes(31).toString('base64'), /exactly 32 bytes/],
      [randomBytes(48).toString('base64'), /exactly 32 bytes/],
      // 32 raw bytes: a 32-character password must not pass as a key.
      ['correct horse battery staple !!!', /exactly 32 bytes/],
      [randomBytes(32), /exactly 32 bytes/],
      ['0'.repeat(64), /placeholder/],
    ];
    for (const [content, re] of refused) {
      const r = parseFleetKey(content);
      assert.equal(r.ok, false, String(content));
      if (!r.ok) assert.match(r.message, re);
    }
  });
});

describe('seal and unseal', () => {
  it('known answer: fixed key, IV, slot and plaintext give this exact envelope (computed independently with pyca/cryptography AESGCM)', () => {
    const sealed = seal(KEY, PEM, SLOT, Buffer.from('000102030405060708090a0b', 'hex'));
    assert.deepEqual(sealed, {
      v: 1,
      alg: 'A256GCM',
      kid: '630dcd2966c43366',
      slot: SLOT,
      iv: 'AAECAwQFBgcICQoL',
      ct: 'ai/7Nuinh1zED7fb46AuLNeTp3+1InJRFUrIj3MGdJJgMNyZzq0y8xHddcClqgUVqxckrQqE6ox+w285U6asw90R61fZ',
      tag: 'yWalZhO9ev4JQ3ZZU+bDnQ==',
    });
    assert.equal(unseal(KEY, sealed, SLOT).toString(), PEM);
  });

  it('a fresh random IV per seal: the same key sealed twice gives two different ciphertexts, both open', () => {
    const a = seal(KEY, PEM, SLOT);
    const b = seal(KEY, PEM, SLOT);
    assert.notEqual(a.iv, b.iv);
    assert.notEqual(a.ct, b.ct);
    assert.equal(unseal(KEY, a, SLOT).toString(), PEM);
    assert.equal(unseal(KEY, b, SLOT).toString(), PEM);
    assert.ok(!JSON.stringify(a).includes('not a real key'), 'the envelope must not hold the plaintext');
  });

  it('survives a JSON round trip (as stored in etcd)', () => {
    const sealed = JSON.parse(JSON.stringify(seal(KEY, PEM, SLOT))) as unknown;
    assert.equal(unseal(KEY, sealed, SLOT).toString(), PEM);
  });

  it('wrong key: names the key id it was sealed with and the one this host has', () => {
    const other = fresh();
    const sealed = seal(KEY, PEM, SLOT);
    assert.throws(() => unseal(other, sealed, SLOT), reason('wrong-key', new RegExp(`sealed with key id 630dcd2966c43366, this host has key id ${other.id}`)));
  });

  it('moved: a sealed key read from another certificate, key type, role or fleet is refused, naming both places', () => {
    const sealed = seal(KEY, PEM, SLOT);
    const elsewhere: SealSlot[] = [
      { ...SLOT, cert: 'mx2' },
      { ...SLOT, keyType: 'rsa-2048' },
      { ...SLOT, role: 'next' },
      { ...SLOT, prefix: '/mxcert/other.example/' },
    ];
    for (const slot of elsewhere) {
      assert.throws(() => unseal(KEY, sealed, slot), reason('moved', /was sealed for \/mxcert\/example\.com\/certs\/mx ecdsa-p256 current/));
    }
  });

  it('moved with its slot label rewritten to the new place: the bound data no longer verifies (tampered)', () => {
    const sealed = seal(KEY, PEM, SLOT);
    const next: SealSlot = { ...SLOT, role: 'next' };
    assert.throws(() => unseal(KEY, { ...sealed, slot: next }, next), reason('tampered'));
  });

  it('tampered: one bit changed in the ciphertext, the tag or the IV', () => {
    const sealed = seal(KEY, PEM, SLOT);
    for (const edited of [
      { ...sealed, ct: flip(sealed.ct, 5) },
      { ...sealed, tag: flip(sealed.tag, 15) },
      { ...sealed, iv: flip(sealed.iv, 0) },
    ] satisfies SealedKey[]) {
      assert.throws(() => unseal(KEY, edited, SLOT), reason('tampered', /fails authentication/));
    }
  });

  it('a key id edited to this host\'s own does not help: tampered', () => {
    const other = fresh();
    const sealed = seal(other, PEM, SLOT);
    assert.throws(() => unseal(KEY, { ...sealed, kid: KEY.id }, SLOT), reason('tampered'));
  });

  it('malformed: not an envelope, another version, missing or non-base64 fields, a truncated tag', () => {
    const sealed = seal(KEY, PEM, SLOT);
    const cases: unknown[] = [
      null,
      'sealed',
      [],
      { ...sealed, v: 2 },
      { ...sealed, alg: 'A128GCM' },
      { ...sealed, kid: undefined },
      { ...sealed, ct: 'not base64!' },
      { ...sealed, slot: { ...SLOT, role: 'previous' } },
      { ...sealed, tag: Buffer.from(sealed.tag, 'base64').subarray(0, 12).toString('base64') },
    ];
    for (const c of cases) assert.throws(() => unseal(KEY, c, SLOT), reason('malformed'), JSON.stringify(c));
  });
});
