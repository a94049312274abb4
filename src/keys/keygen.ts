// Private keys for certificates (docs/architecture.md `keys`, §6 next-key generation).
// Keys are PKCS#8 PEM so one format covers EC and RSA, and Postfix, Exim and
// Dovecot (OpenSSL) all read it.
import { createPrivateKey, createPublicKey, generateKeyPair, X509Certificate, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { KeyType } from '../config/schema.js';

const generateKeyPairAsync = promisify(generateKeyPair);

const EC_CURVES = { 'ecdsa-p256': 'P-256', 'ecdsa-p384': 'P-384' } as const;
const RSA_BITS = { 'rsa-2048': 2048, 'rsa-3072': 3072, 'rsa-4096': 4096 } as const;

/** A fresh private key of `type`, as PKCS#8 PEM. Async: RSA-4096 takes seconds, the daemon must not block. */
export async function generateKeyPem(type: KeyType): Promise<string> {
  const pkcs8 = { type: 'pkcs8', format: 'pem' } as const;
  const spki = { type: 'spki', format: 'pem' } as const;
  if (type === 'ecdsa-p256' || type === 'ecdsa-p384') {
    const { privateKey } = await generateKeyPairAsync('ec', {
      namedCurve: EC_CURVES[type],
      publicKeyEncoding: spki,
      privateKeyEncoding: pkcs8,
    });
    return privateKey;
  }
  if (type === 'rsa-2048' || type === 'rsa-3072' || type === 'rsa-4096') {
    const { privateKey } = await generateKeyPairAsync('rsa', {
      modulusLength: RSA_BITS[type],
      publicExponent: 0x10001,
      publicKeyEncoding: spki,
      privateKeyEncoding: pkcs8,
    });
    return privateKey;
  }
  throw new Error(`unsupported key type: ${String(type satisfies never)}`);
}

/**
 * The public key of a private key, public key or certificate PEM.
 * Throws if `pem` holds none of those.
 */
export function publicKeyOf(pem: string): KeyObject {
  if (pem.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(pem).publicKey;
  // createPublicKey derives the public half from a private key PEM too.
  return createPublicKey(pem);
}

/**
 * SubjectPublicKeyInfo DER of a private key, public key or certificate PEM:
 * what TLSA 3 1 x hashes (RFC 6698 §2.1.2, selector 1) and what the chain
 * check compares to prove a key and a certificate belong together.
 */
export function publicKeySpkiDer(pem: string): Buffer {
  return publicKeyOf(pem).export({ type: 'spki', format: 'der' });
}

/**
 * The mxcert key type of a private key, public key or certificate PEM;
 * undefined for a readable key of a kind mxcert does not issue (e.g. Ed25519,
 * RSA-1024, P-521). Throws if `pem` is not a key or certificate at all, so a
 * corrupt key file is reported instead of silently treated as "other type".
 */
export function keyTypeOf(pem: string): KeyType | undefined {
  const key = pem.includes('PRIVATE KEY-----') ? createPrivateKey(pem) : publicKeyOf(pem);
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    // Node reports OpenSSL curve names.
    if (details.namedCurve === 'prime256v1') return 'ecdsa-p256';
    if (details.namedCurve === 'secp384r1') return 'ecdsa-p384';
    return undefined;
  }
  if (key.asymmetricKeyType === 'rsa') {
    switch (details.modulusLength) {
      case 2048: return 'rsa-2048';
      case 3072: return 'rsa-3072';
      case 4096: return 'rsa-4096';
      default: return undefined;
    }
  }
  return undefined;
}
