// Sealing private keys for storage in etcd (docs/architecture.md, "Fleet",
// "Sealed keys"). A snapshot or a reader of etcd must learn nothing of a
// key, and a writer of etcd must not be able to make a member deploy a key
// it did not seal, nor a sealed key from another place.
//
// AES-256-GCM (NIST SP 800-38D) with the fleet key (`keyEncryption.keyFile`,
// 32 bytes), a fresh random 96-bit IV per seal (SP 800-38D §8.2.2; far below
// the 2^32 seals per key that random IVs allow), a 128-bit tag, and as
// additional authenticated data the slot the value is sealed for: fleet
// prefix, certificate, key type and role (current or next). The envelope
// names its slot and key id in clear, so a failure can say which of
// "wrong key", "moved" or "tampered" it is; both are also in the AAD, so
// editing them only turns the failure into "tampered".
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { SealError } from './errors.js';

export const FLEET_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ENVELOPE_VERSION = 1;

/** Where a sealed value belongs. */
export interface SealSlot {
  /** The fleet's etcd prefix, e.g. `/mxcert/example.com/`. */
  prefix: string;
  /** The certificate's config name. */
  cert: string;
  /** e.g. `ecdsa-p256`. */
  keyType: string;
  /** `current` (the lineage's key) or `next` (the DANE pre-published key). */
  role: 'current' | 'next';
}

/** What is stored: JSON-safe, every binary field base64. */
export interface SealedKey {
  v: 1;
  alg: 'A256GCM';
  /** keyId() of the fleet key it was sealed with. */
  kid: string;
  slot: SealSlot;
  iv: string;
  ct: string;
  tag: string;
}

/** A fleet key, parsed: the 32 bytes and their id. */
export interface FleetKey {
  bytes: Buffer;
  id: string;
}

/**
 * The key id: the first 8 bytes of SHA-256 over the 32 raw key bytes, in
 * hex. Revealing 64 bits of a hash of a 256-bit random key reveals nothing
 * usable; an operator can compute it with `xxd -r -p fleet.key | sha256sum`
 * (hex form) to compare hosts.
 */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

const HEX_KEY_RE = /^[0-9a-fA-F]{64}$/;
const B64_KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

/**
 * The fleet key in a key file's content: 64 hex digits (`openssl rand -hex
 * 32`) or the base64 of 32 bytes (`openssl rand -base64 32`), with optional
 * surrounding whitespace. Raw binary is not accepted: a 32-character
 * password would otherwise pass as a key.
 */
export function parseFleetKey(content: Buffer | string): { ok: true; key: FleetKey } | { ok: false; message: string } {
  const text = (typeof content === 'string' ? content : content.toString('latin1')).trim();
  let bytes: Buffer | undefined;
  if (HEX_KEY_RE.test(text)) bytes = Buffer.from(text, 'hex');
  else if (B64_KEY_RE.test(text)) bytes = Buffer.from(text, 'base64');
  if (!bytes || bytes.length !== FLEET_KEY_BYTES) {
    const what = text.length === 0 ? 'the file is empty' : `found ${text.length} characters that are neither`;
    return { ok: false, message: `must hold exactly 32 bytes as 64 hex digits or base64 (openssl rand -hex 32); ${what}` };
  }
  if (bytes.every((b) => b === bytes![0])) return { ok: false, message: 'holds a placeholder (every byte the same), not a random key; use openssl rand -hex 32' };
  return { ok: true, key: { bytes, id: keyId(bytes) } };
}

/** The additional authenticated data: version, key id and slot, unambiguous (a JSON array). */
function aad(kid: string, slot: SealSlot): Buffer {
  return Buffer.from(JSON.stringify(['mxcert-fleet-seal', ENVELOPE_VERSION, kid, slot.prefix, slot.cert, slot.keyType, slot.role]), 'utf8');
}

/** Seal `plaintext` (a PEM private key) for `slot`. `iv` is for known-answer tests only. */
export function seal(key: FleetKey, plaintext: Buffer | string, slot: SealSlot, iv: Buffer = randomBytes(IV_BYTES)): SealedKey {
  if (iv.length !== IV_BYTES) throw new RangeError(`IV must be ${IV_BYTES} bytes`);
  const cipher = createCipheriv('aes-256-gcm', key.bytes, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(key.id, slot));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { v: 1, alg: 'A256GCM', kid: key.id, slot: { ...slot }, iv: iv.toString('base64'), ct: ct.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

const sameSlot = (a: SealSlot, b: SealSlot): boolean => a.prefix === b.prefix && a.cert === b.cert && a.keyType === b.keyType && a.role === b.role;
const slotText = (s: SealSlot): string => `${s.prefix}certs/${s.cert} ${s.keyType} ${s.role}`;

/**
 * Open a sealed value found at `slot`. Throws SealError: `malformed`,
 * `wrong-key` (naming both key ids), `moved` (naming both slots) or
 * `tampered`, in that order of checking.
 */
export function unseal(key: FleetKey, sealed: unknown, slot: SealSlot): Buffer {
  const env = envelope(sealed);
  if (env.kid !== key.id) {
    throw new SealError('wrong-key', `the key for ${slotText(slot)} was sealed with key id ${env.kid}, this host has key id ${key.id} (fleet.keyEncryption.keyFile differs between members)`);
  }
  if (!sameSlot(env.slot, slot)) {
    throw new SealError('moved', `the key found at ${slotText(slot)} was sealed for ${slotText(env.slot)}; a sealed key is only valid where it was sealed`);
  }
  const iv = Buffer.from(env.iv, 'base64');
  const tag = Buffer.from(env.tag, 'base64');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SealError('malformed', `the sealed key at ${slotText(slot)} has an IV or tag of the wrong length`);
  const decipher = createDecipheriv('aes-256-gcm', key.bytes, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad(env.kid, env.slot));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(Buffer.from(env.ct, 'base64')), decipher.final()]);
  } catch (err) {
    throw new SealError('tampered', `the sealed key at ${slotText(slot)} fails authentication (AES-256-GCM tag): it was changed after sealing`, { cause: err });
  }
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** The envelope's shape, checked field by field; anything else is `malformed`. */
function envelope(v: unknown): SealedKey {
  const bad = (why: string): never => {
    throw new SealError('malformed', `not a sealed key: ${why}`);
  };
  if (!v || typeof v !== 'object' || Array.isArray(v)) return bad('not an object');
  const o = v as Record<string, unknown>;
  if (o['v'] !== ENVELOPE_VERSION) return bad(`version ${JSON.stringify(o['v'])} (this mxcert reads version ${ENVELOPE_VERSION})`);
  if (o['alg'] !== 'A256GCM') return bad(`algorithm ${JSON.stringify(o['alg'])}`);
  if (typeof o['kid'] !== 'string' || !/^[0-9a-f]{16}$/.test(o['kid'])) return bad('no key id');
  for (const f of ['iv', 'ct', 'tag'] as const) {
    if (typeof o[f] !== 'string' || !B64_RE.test(o[f] as string)) return bad(`field ${f} is not base64`);
  }
  const s = o['slot'] as Record<string, unknown> | undefined;
  if (!s || typeof s !== 'object' || !['prefix', 'cert', 'keyType'].every((k) => typeof s[k] === 'string') || (s['role'] !== 'current' && s['role'] !== 'next')) {
    return bad('no slot');
  }
  return v as SealedKey;
}
