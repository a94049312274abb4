// The pure parts of the lifecycle commands: alternate chains (RFC 8555
// §7.4.2 Link rel="alternate", certbot's --preferred-chain rule), the
// keyChange inner JWS (§7.3.5), the revocation payload (§7.6, RFC 5280
// §5.3.1 reasons), the contact-required classification (§7.3), the
// problem-type constants (§6.7) and the "revoked" renewal reason.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { alternateLinks, pickChain, topIssuerCn } from '../../src/acme/chains.js';
import { accountKeyFromPem, keyChangeInnerJws, newAccountKeyPem } from '../../src/acme/jws.js';
import { revocationPayload, REVOCATION_REASONS } from '../../src/acme/revoke.js';
import { contactRequired } from '../../src/acme/account.js';
import { ACME_ERROR_PREFIX, PROBLEM, isProblem, shortProblemType } from '../../src/acme/problems.js';
import { AcmeProblemError } from '../../src/errors.js';
import { renewalTime } from '../../src/schedule/renewal-time.js';
import { makeIntermediate, makeLeaf, makeRoot, DAY } from './pki-fixtures.js';

const json = (b64: string) => JSON.parse(Buffer.from(b64, 'base64url').toString('utf8')) as Record<string, unknown>;

describe('alternate chains', () => {
  it('Link header: only rel="alternate" targets, in order, whatever the spelling', () => {
    const header =
      '<https://ca.test/dir>;rel="index", <https://ca.test/cert/1/alternate/1>;rel="alternate", ' +
      '<https://ca.test/cert/1/alternate/2>; rel=alternate, <https://ca.test/x>; title="a, b"; rel="up"';
    assert.deepEqual(alternateLinks(header), ['https://ca.test/cert/1/alternate/1', 'https://ca.test/cert/1/alternate/2']);
    assert.deepEqual(alternateLinks(['<https://a.test/1>;rel="alternate"', '<https://a.test/2>;rel="up alternate"']), ['https://a.test/1', 'https://a.test/2']);
    assert.deepEqual(alternateLinks(undefined), []);
    assert.deepEqual(alternateLinks('<https://ca.test/dir>;rel="index"'), []);
  });

  it('picks the chain whose topmost certificate is issued by the preferred CN; none: undefined', async () => {
    const now = new Date();
    const rootA = await makeRoot('Root A', now);
    const rootB = await makeRoot('Root B', now);
    const intA = await makeIntermediate('Intermediate A', rootA, now);
    const intB = await makeIntermediate('Intermediate B', rootB, now);
    const leaf = await makeLeaf(intA, now);
    const chainA = leaf.pem + intA.pem;
    const chainB = leaf.pem + intB.pem;
    assert.equal(await topIssuerCn(chainA), 'Root A');
    assert.equal(await pickChain([chainA, chainB], 'Root B'), 1);
    assert.equal(await pickChain([chainA, chainB], 'Root A'), 0);
    // The leaf's own issuer is not what is matched: the topmost certificate's is.
    assert.equal(await pickChain([chainA, chainB], 'Intermediate A'), undefined);
    assert.equal(await pickChain([chainA], 'root a'), undefined, 'exact match, as certbot');
    assert.equal(await topIssuerCn('not a chain'), undefined);
  });

  it('reads the issuer CN from the Name itself: a multi-valued RDN, and no match when a Name has two CNs', async () => {
    const now = new Date();
    // Node prints "CN=Root C+O=Example" as "O=Example + CN=Root C".
    const multi = await makeRoot('Root C+O=Example', now);
    const intC = await makeIntermediate('Intermediate C', multi, now);
    const chainC = (await makeLeaf(intC, now)).pem + intC.pem;
    assert.equal(await topIssuerCn(chainC), 'Root C');
    assert.equal(await pickChain([chainC], 'Root C'), 0);
    const twoCns = await makeRoot('Root D, CN=Root E', now);
    const chainD = (await makeIntermediate('Intermediate D', twoCns, now)).pem;
    assert.equal(await topIssuerCn(chainD), undefined, 'ambiguous: two CNs');
    assert.equal(await pickChain([chainD], 'Root E'), undefined);
  });
});

describe('account key change (RFC 8555 §7.3.5)', () => {
  it('inner JWS: signed by the new key, header has its JWK and the URL and no nonce; payload names account and old key', () => {
    const oldKey = accountKeyFromPem(newAccountKeyPem());
    const newKey = accountKeyFromPem(newAccountKeyPem());
    const jws = keyChangeInnerJws(newKey, { url: 'https://ca.test/key-change', accountUrl: 'https://ca.test/acct/7', oldKey });
    assert.deepEqual(json(jws.protected), { alg: 'ES256', jwk: newKey.jwk, url: 'https://ca.test/key-change' });
    assert.deepEqual(json(jws.payload), { account: 'https://ca.test/acct/7', oldKey: oldKey.jwk });
    const input = Buffer.from(`${jws.protected}.${jws.payload}`);
    const sig = Buffer.from(jws.signature, 'base64url');
    assert.ok(verify('sha256', input, { key: createPublicKey({ key: newKey.jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, sig));
    assert.ok(!verify('sha256', input, { key: createPublicKey({ key: oldKey.jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, sig), 'not the old key');
  });
});

describe('revocation payload (RFC 8555 §7.6)', () => {
  it('the certificate as base64url DER; RFC 5280 reason codes; unspecified sends none', async () => {
    const now = new Date();
    const leaf = await makeLeaf(await makeIntermediate('I', await makeRoot('R', now), now), now);
    const der = new X509Certificate(leaf.pem).raw.toString('base64url');
    assert.deepEqual(revocationPayload(leaf.pem, 'keyCompromise'), { certificate: der, reason: 1 });
    assert.deepEqual(revocationPayload(leaf.pem, 'superseded'), { certificate: der, reason: 4 });
    assert.deepEqual(revocationPayload(leaf.pem, 'cessationOfOperation'), { certificate: der, reason: 5 });
    assert.deepEqual(revocationPayload(leaf.pem, 'affiliationChanged'), { certificate: der, reason: 3 });
    assert.deepEqual(revocationPayload(leaf.pem, 'unspecified'), { certificate: der });
    assert.deepEqual(Object.keys(REVOCATION_REASONS).sort(), ['affiliationChanged', 'cessationOfOperation', 'keyCompromise', 'superseded', 'unspecified']);
    assert.throws(() => revocationPayload('garbage', 'superseded'), /not readable/);
  });
});

describe('problem types (RFC 8555 §6.7)', () => {
  it('constants are full URNs; isProblem compares exactly', () => {
    assert.equal(PROBLEM.badNonce, 'urn:ietf:params:acme:error:badNonce');
    for (const v of Object.values(PROBLEM)) assert.ok(v.startsWith(ACME_ERROR_PREFIX));
    assert.equal(shortProblemType(PROBLEM.alreadyReplaced), 'alreadyReplaced');
    const err = new AcmeProblemError('x', { problem: { type: PROBLEM.orderNotReady } });
    assert.ok(isProblem(err, PROBLEM.orderNotReady));
    assert.ok(!isProblem(err, PROBLEM.badNonce));
    assert.ok(!isProblem(new Error('orderNotReady'), PROBLEM.orderNotReady));
  });

  it('a contact is required: invalidContact/unsupportedContact, or malformed about the contact, when none was sent', () => {
    assert.ok(contactRequired({ type: PROBLEM.invalidContact, detail: 'contact required' }, false));
    assert.ok(contactRequired({ type: PROBLEM.unsupportedContact }, false));
    assert.ok(contactRequired({ type: PROBLEM.malformed, detail: 'a contact email address is required' }, false));
    assert.ok(!contactRequired({ type: PROBLEM.malformed, detail: 'JWS verification error' }, false));
    assert.ok(!contactRequired({ type: PROBLEM.invalidContact, detail: 'contact "mailto:x" is invalid' }, true), 'we sent one: the address is bad, not missing');
    assert.ok(!contactRequired(undefined, false));
  });
});

describe('renewal timing after a revocation', () => {
  it('revoked renews now, after the failure backoff, before anything else', () => {
    const now = new Date('2026-11-01T00:00:00Z');
    const current = { notBefore: new Date(now.getTime() - DAY), notAfter: new Date(now.getTime() + 89 * DAY), names: ['mx1.example.test'] };
    assert.deepEqual(renewalTime({ current, wantedNames: ['mx1.example.test'], revoked: true, now }), { at: now, reason: 'revoked' });
    assert.equal(renewalTime({ current, wantedNames: ['mx1.example.test'], revoked: false, now }).reason, 'lifetime-fraction');
    const failed = renewalTime({ current, wantedNames: ['mx1.example.test'], revoked: true, failures: { count: 1, lastAt: now }, now });
    assert.equal(failed.reason, 'backoff');
  });
});
