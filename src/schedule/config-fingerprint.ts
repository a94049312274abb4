// A fingerprint of what decides how a (certificate, key type) is issued and
// deployed, stored with each failure, so that a config changed since the
// failure lifts the backoff (docs/architecture.md, "When to renew"): an
// operator who fixed a hook or a zone name should not wait out a day.
//
// Secrets are never part of it: a secret is named by its reference
// (secretFile path, secretEnv name), and an inline secret is left out. So
// the stored hash reveals nothing about a secret, not even to a dictionary
// attack, and `status` computes it without reading a secret; the price is
// that a secret changed in place inside the same file does not lift the
// backoff (`renew --force` does).
import { createHash } from 'node:crypto';
import type { CertificateConfig, Config } from '../config/schema.js';

/** Keys whose values are secrets written into the config itself. */
const INLINE_SECRETS = new Set(['secret', 'apiKey', 'hmacKey']);

/** JSON with object keys sorted and inline secrets dropped, so equal configs give equal text. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      if (INLINE_SECRETS.has(k)) continue;
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

/**
 * SHA-256 (hex) over the parts that affect issuance and deployment: the
 * ACME settings, the names, this key type, the challenge (with its resolved
 * defaults), outputs, deploy hooks, verification and DANE. Not the failure
 * hooks (they do not change the outcome) nor the other key types.
 */
export function configFingerprint(acme: Config['acme'], cert: CertificateConfig, keyType: string): string {
  const { keys: _keys, hooks, ...rest } = cert;
  const { failure: _failure, ...deployHooks } = hooks;
  const doc = canonical({ v: 1, acme, cert: { ...rest, hooks: deployHooks }, keyType });
  return createHash('sha256').update(JSON.stringify(doc)).digest('hex');
}
