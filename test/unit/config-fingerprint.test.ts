// configFingerprint writes its canonical JSON straight to text (status does it
// for every certificate). Fingerprints are stored with failures, so the text
// must stay exactly what the earlier implementation hashed: JSON.stringify of
// a copy with sorted keys and inline secrets dropped, kept here as the oracle.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { configFingerprint } from '../../src/schedule/config-fingerprint.js';
import type { CertificateConfig, Config } from '../../src/config/schema.js';

const INLINE_SECRETS = new Set(['secret', 'apiKey', 'hmacKey']);
function oracleCanonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(oracleCanonical);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      if (INLINE_SECRETS.has(k)) continue;
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = oracleCanonical(x);
    }
    return out;
  }
  return v;
}
function oracle(acme: unknown, cert: Record<string, unknown> & { hooks: Record<string, unknown> }, keyType: string): string {
  const { keys: _keys, hooks, ...rest } = cert;
  const { failure: _failure, ...deployHooks } = hooks;
  const doc = oracleCanonical({ v: 1, acme, cert: { ...rest, hooks: deployHooks }, keyType });
  return createHash('sha256').update(JSON.stringify(doc)).digest('hex');
}

// Keys that JavaScript orders, stores or drops in its own way, next to ordinary ones.
const key = fc.oneof(fc.constantFrom('__proto__', '0', '1', '2', '10', '01', '4294967295', '4294967294', '-1', 'secret', 'apiKey', 'hmacKey', 'secretFile', 'a', 'B', 'é', 'constructor'), fc.string());
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), fc.constant(undefined), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(key, tie('v'), { maxKeys: 4 })),
})).v;
const dict = fc.dictionary(key, value, { maxKeys: 6 });

describe('configFingerprint', () => {
  it('hashes the same text as JSON.stringify of the sorted copy (fast-check)', () => {
    fc.assert(
      fc.property(dict, dict, dict, dict, fc.string(), (acme, rest, hooks, failure, keyType) => {
        const cert = { ...rest, keys: ['ecdsa-p256'], hooks: { ...hooks, failure } };
        assert.equal(
          configFingerprint(acme as unknown as Config['acme'], cert as unknown as CertificateConfig, keyType),
          oracle(acme, cert, keyType),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('a config-like certificate: same hash as before, and a changed zone changes it', () => {
    const acme = { directory: 'https://acme.example.test/dir', email: 'a@example.test', ari: true, eab: { kid: 'k', hmacKey: 'c2VjcmV0' } };
    const cert = {
      name: 'mx1',
      domains: ['mx1.example.test'],
      keys: ['ecdsa-p256', 'rsa-2048'],
      challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', port: 53, zone: 'example.test', tsig: { name: 'k', secretFile: '/etc/k' } } },
      output: { combined: '/etc/postfix/tls/mx1-{keytype}.pem', mode: '0600' },
      hooks: { deploy: ['/usr/lib/mxcert/hooks/postfix-reload'], failure: ['/bin/notify'], timeout: 60000, env: { '10': 'x', '2': 'y', Z: 'z' } },
      verify: { smtp: [], timeout: 15000 },
    };
    const fp = configFingerprint(acme as unknown as Config['acme'], cert as unknown as CertificateConfig, 'ecdsa-p256');
    assert.equal(fp, oracle(acme, cert, 'ecdsa-p256'));
    const other = { ...cert, challenge: { ...cert.challenge, dns: { ...cert.challenge.dns, zone: 'example.org' } } };
    assert.notEqual(configFingerprint(acme as unknown as Config['acme'], other as unknown as CertificateConfig, 'ecdsa-p256'), fp);
  });
});
