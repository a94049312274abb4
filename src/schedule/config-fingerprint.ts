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

/** An array index as JavaScript orders object keys: such keys come first, in numeric order. */
const isIndexKey = (k: string): boolean => /^(0|[1-9]\d*)$/.test(k) && Number(k) < 4294967295;

/**
 * JSON with object keys sorted and inline secrets dropped, so equal configs
 * give equal text. Written straight to text: status computes this for every
 * certificate, and building the sorted copy first cost more than the hash.
 * It is the text JSON.stringify gives for that copy (built by assigning the
 * sorted keys to a fresh object), so stored fingerprints stay valid: index
 * keys first, `__proto__` never an own key, undefined and functions dropped
 * from objects and null in arrays.
 */
function canonicalJson(v: unknown): string | undefined {
  if (Array.isArray(v)) return `[${Array.from(v, (x) => canonicalJson(x) ?? 'null').join(',')}]`;
  if (v && typeof v === 'object') {
    const sorted = Object.keys(v).sort();
    const keys = [...sorted.filter(isIndexKey).sort((x, y) => Number(x) - Number(y)), ...sorted.filter((k) => !isIndexKey(k))];
    const parts: string[] = [];
    for (const k of keys) {
      if (INLINE_SECRETS.has(k) || k === '__proto__') continue;
      const x = canonicalJson((v as Record<string, unknown>)[k]);
      if (x !== undefined) parts.push(`${JSON.stringify(k)}:${x}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(v) as string | undefined;
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
  const doc = canonicalJson({ v: 1, acme, cert: { ...rest, hooks: deployHooks }, keyType })!;
  return createHash('sha256').update(doc).digest('hex');
}
