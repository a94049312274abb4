import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { challengeOwner } from '../../src/obtain/dns01.js';
import { ChallengeError } from '../../src/errors.js';

describe('challengeOwner (RFC 8555 §8.4)', () => {
  it('is _acme-challenge under the identifier, lower case, absolute', () => {
    assert.equal(challengeOwner('MX1.Example.com', 'example.com'), '_acme-challenge.mx1.example.com.');
    assert.equal(challengeOwner('mx1.example.com.', 'example.com'), '_acme-challenge.mx1.example.com.');
  });
  it('uses the base name of a wildcard', () => {
    assert.equal(challengeOwner('*.example.com', 'example.com'), '_acme-challenge.example.com.');
  });
  it('refuses a name outside the zone, naming both', () => {
    assert.throws(() => challengeOwner('mx1.example.org', 'example.com'), (e: unknown) => e instanceof ChallengeError && /_acme-challenge\.mx1\.example\.org\. is not in the configured zone example\.com\./.test(e.message));
    // A suffix match on a label boundary only.
    assert.throws(() => challengeOwner('mx1.badexample.com', 'example.com'), ChallengeError);
  });
});
