// JWS for ACME (src/acme/jws.ts): signatures that verify, the RFC 7638
// thumbprint, the RFC 8555 §7.3.4 external account binding and the challenge
// responses of §8.3/§8.4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { accountKeyFromPem, challengeResponse, externalAccountBinding, jwkThumbprint, keyAuthorization, newAccountKeyPem, signJws } from '../../src/acme/jws.js';

const json = (b64: string) => JSON.parse(Buffer.from(b64, 'base64url').toString('utf8')) as Record<string, unknown>;

test('RFC 7638 §3.1 example thumbprint', () => {
  const n =
    '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
  assert.equal(jwkThumbprint({ kty: 'RSA', n, e: 'AQAB', alg: 'RS256', kid: '2011-04-29' }), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
});

// An EC known answer (RFC 7638 has only an RSA example). A throwaway P-256
// test key; the thumbprint was derived outside mxcert and node:
//   pub=$(openssl ec -in k.pem -pubout -outform DER | tail -c 65 | xxd -p -c 200)   # 04 || X || Y
//   X=$(echo ${pub:2:64} | xxd -r -p | basenc --base64url | tr -d =), Y likewise from ${pub:66:64}
//   printf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' "$X" "$Y" | openssl dgst -sha256 -binary | basenc --base64url | tr -d =
const EC_TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqDAmgxO48GdEobIT
cY4b6f/bUQ6ZdvirEurZ0xqHZrWhRANCAASGm5CO2KWfaj0ca94+iHfHc/8dHEXP
GNfQpgH1HIJd6kfjInb3AuvW/YXbSArjH5ZQKK9jscyDWlbF829MDhLP
-----END PRIVATE KEY-----
`;
const EC_X = 'hpuQjtiln2o9HGvePoh3x3P_HRxFzxjX0KYB9RyCXeo';
const EC_Y = 'R-MidvcC69b9hdtICuMfllAor2OxzINaVsXzb0wOEs8';
const EC_THUMBPRINT = 'JVsXGjm0euDKSMrSgFlIOxwjh7SiptKN6IN-nIBCWFc';

test('RFC 7638 §3: an EC P-256 thumbprint, members crv, kty, x, y in that order whatever order the JWK has', () => {
  const acct = accountKeyFromPem(EC_TEST_KEY);
  assert.deepEqual(acct.jwk, { crv: 'P-256', kty: 'EC', x: EC_X, y: EC_Y });
  assert.equal(acct.thumbprint, EC_THUMBPRINT);
  assert.equal(jwkThumbprint({ y: EC_Y, x: EC_X, kty: 'EC', crv: 'P-256', kid: 'ignored', use: 'sig' }), EC_THUMBPRINT);
  assert.equal(keyAuthorization(acct, 'tok'), `tok.${EC_THUMBPRINT}`);
});

for (const [label, pem, alg, hash] of [
  ['ECDSA P-256', newAccountKeyPem(), 'ES256', 'sha256'],
  ['ECDSA P-384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'sec1', format: 'pem' }).toString(), 'ES384', 'sha384'],
  ['RSA 2048', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(), 'RS256', 'sha256'],
] as const) {
  test(`${label}: protected header, payload and a signature that verifies with the JWK`, () => {
    const acct = accountKeyFromPem(pem);
    assert.equal(acct.alg, alg);
    const jws = signJws(acct, { url: 'https://ca.test/new-order', nonce: 'n0nce', kid: 'https://ca.test/acct/1', payload: { identifiers: [{ type: 'dns', value: 'mx.example' }] } });
    const header = json(jws.protected);
    assert.deepEqual(header, { alg, nonce: 'n0nce', url: 'https://ca.test/new-order', kid: 'https://ca.test/acct/1' });
    assert.deepEqual(json(jws.payload), { identifiers: [{ type: 'dns', value: 'mx.example' }] });
    const pub = createPublicKey({ key: acct.jwk, format: 'jwk' });
    const ok = verify(hash, Buffer.from(`${jws.protected}.${jws.payload}`), { key: pub, ...(alg === 'RS256' ? {} : { dsaEncoding: 'ieee-p1363' as const }) }, Buffer.from(jws.signature, 'base64url'));
    assert.ok(ok, 'signature verifies (ECDSA as raw r||s, RFC 7518 §3.4)');
    if (alg === 'ES256') assert.equal(Buffer.from(jws.signature, 'base64url').length, 64);
    if (alg === 'ES384') assert.equal(Buffer.from(jws.signature, 'base64url').length, 96);
    // A tampered payload must not verify.
    assert.ok(!verify(hash, Buffer.from(`${jws.protected}.${jws.payload}x`), { key: pub, ...(alg === 'RS256' ? {} : { dsaEncoding: 'ieee-p1363' as const }) }, Buffer.from(jws.signature, 'base64url')));
  });
}

test('newAccount carries the JWK, not a kid; POST-as-GET has an empty payload', () => {
  const acct = accountKeyFromPem(newAccountKeyPem());
  const reg = signJws(acct, { url: 'https://ca.test/new-acct', nonce: 'a', payload: { termsOfServiceAgreed: true } });
  const h = json(reg.protected);
  assert.deepEqual(h.jwk, acct.jwk);
  assert.equal(h.kid, undefined);
  const get = signJws(acct, { url: 'https://ca.test/authz/1', nonce: 'b', kid: 'https://ca.test/acct/1', payload: '' });
  assert.equal(get.payload, '');
});

test('external account binding (RFC 8555 §7.3.4): HS256 over the account JWK with the CA kid', () => {
  const acct = accountKeyFromPem(newAccountKeyPem());
  const macKey = Buffer.from('a secret MAC key from the CA, 32b').toString('base64url');
  const eab = externalAccountBinding(acct, { kid: 'kid-1', hmacKey: macKey }, 'https://ca.test/new-acct');
  assert.deepEqual(json(eab.protected), { alg: 'HS256', kid: 'kid-1', url: 'https://ca.test/new-acct' });
  assert.deepEqual(json(eab.payload), acct.jwk);
  const mac = createHmac('sha256', Buffer.from(macKey, 'base64url')).update(`${eab.protected}.${eab.payload}`).digest('base64url');
  assert.equal(eab.signature, mac);
});

test('challenge responses: key authorization for http-01, its SHA-256 for dns-01', () => {
  const acct = accountKeyFromPem(newAccountKeyPem());
  const ka = keyAuthorization(acct, 'tok');
  assert.equal(ka, `tok.${acct.thumbprint}`);
  assert.equal(challengeResponse(acct, 'http-01', 'tok'), ka);
  assert.equal(challengeResponse(acct, 'dns-01', 'tok'), createHash('sha256').update(ka).digest('base64url'));
});

test('an unreadable or unsupported account key is a clear error', () => {
  assert.throws(() => accountKeyFromPem('not a key'), /account key is not readable/);
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.throws(() => accountKeyFromPem(ed), /unsupported ACME account key type \(OKP/);
});
