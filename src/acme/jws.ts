// JSON Web Signatures for ACME (RFC 8555 §6.2), with node:crypto only.
// Pure functions of a key and the data; no I/O, no clock.
//
// Why our own and not a JOSE library: an ACME client needs exactly one JWS
// shape (flattened JSON serialization, RFC 7515 §7.2.2), three algorithms
// and the RFC 7638 thumbprint. Loading a general library for that cost more
// start-up time than the whole issuance.
import { createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { AcmeInputError } from '../errors.js';

/** An account key with what every request needs precomputed. */
export interface AccountKey {
  readonly key: KeyObject;
  /** The public JWK, members as RFC 7638 §3.2 requires for the thumbprint. */
  readonly jwk: Record<string, string>;
  readonly alg: 'ES256' | 'ES384' | 'RS256';
  /** base64url SHA-256 JWK thumbprint (RFC 7638 §3), the tail of every key authorization. */
  readonly thumbprint: string;
}

export interface FlattenedJws {
  protected: string;
  payload: string;
  signature: string;
}

export function b64u(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** A fresh ECDSA P-256 account key as PKCS#8 PEM (stored 0600 by the state store). */
export function newAccountKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Parse a stored account key (PKCS#8 or SEC1/PKCS#1 PEM): EC P-256, P-384 or RSA. */
export function accountKeyFromPem(pem: string): AccountKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new AcmeInputError(`the stored ACME account key is not readable: ${(err as Error).message}`, { cause: err });
  }
  const pub = createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>;
  let jwk: Record<string, string>;
  let alg: AccountKey['alg'];
  if (pub.kty === 'EC' && (pub.crv === 'P-256' || pub.crv === 'P-384')) {
    // RFC 7638 §3.2: only the required members, in lexicographic order.
    jwk = { crv: pub.crv, kty: 'EC', x: pub.x!, y: pub.y! };
    alg = pub.crv === 'P-256' ? 'ES256' : 'ES384';
  } else if (pub.kty === 'RSA') {
    jwk = { e: pub.e!, kty: 'RSA', n: pub.n! };
    alg = 'RS256';
  } else {
    throw new AcmeInputError(`unsupported ACME account key type (${pub.kty}${pub.crv ? ` ${pub.crv}` : ''}); use ECDSA P-256/P-384 or RSA`);
  }
  return { key, jwk, alg, thumbprint: jwkThumbprint(jwk) };
}

/**
 * RFC 7638 §3: SHA-256 over the JSON of the required members in
 * lexicographic order, no whitespace; base64url.
 */
export function jwkThumbprint(jwk: Record<string, string>): string {
  const required = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : undefined;
  if (!required) throw new AcmeInputError(`no thumbprint for JWK key type ${jwk.kty}`);
  const canonical = `{${required.map((k) => `${JSON.stringify(k)}:${JSON.stringify(jwk[k])}`).join(',')}}`;
  return b64u(createHash('sha256').update(canonical).digest());
}

function signingInput(protectedHeader: Record<string, unknown>, payload: unknown): { protected: string; payload: string } {
  return {
    protected: b64u(JSON.stringify(protectedHeader)),
    // POST-as-GET (RFC 8555 §6.3) has an empty payload, not "{}" or "null".
    payload: payload === '' ? '' : b64u(JSON.stringify(payload)),
  };
}

/**
 * A request body for `url` (RFC 8555 §6.2): `kid` once the account URL is
 * known, the JWK itself for newAccount (and revocation by certificate key).
 */
export function signJws(
  account: AccountKey,
  req: { url: string; nonce: string; kid?: string; payload: unknown },
): FlattenedJws {
  const header: Record<string, unknown> = { alg: account.alg, nonce: req.nonce, url: req.url };
  if (req.kid) header.kid = req.kid;
  else header.jwk = account.jwk;
  return signWith(account, signingInput(header, req.payload));
}

/** ECDSA signatures are the raw r||s concatenation (RFC 7518 §3.4), not DER. */
function signWith(account: AccountKey, input: { protected: string; payload: string }): FlattenedJws {
  const hash = account.alg === 'ES384' ? 'sha384' : 'sha256';
  const sig = sign(hash, Buffer.from(`${input.protected}.${input.payload}`), {
    key: account.key,
    ...(account.alg === 'RS256' ? {} : { dsaEncoding: 'ieee-p1363' as const }),
  });
  return { ...input, signature: b64u(sig) };
}

/**
 * The inner JWS of a key change (RFC 8555 §7.3.5): signed by the NEW key,
 * its header carries that key's JWK and the keyChange URL and no nonce; the
 * payload names the account and its old key. It travels as the payload of
 * an outer JWS signed by the old key.
 */
export function keyChangeInnerJws(newKey: AccountKey, req: { url: string; accountUrl: string; oldKey: AccountKey }): FlattenedJws {
  return signWith(newKey, signingInput({ alg: newKey.alg, jwk: newKey.jwk, url: req.url }, { account: req.accountUrl, oldKey: req.oldKey.jwk }));
}

/**
 * externalAccountBinding for newAccount (RFC 8555 §7.3.4): the account's JWK
 * signed with the CA-issued MAC key, HS256. CAs hand the key out base64url
 * encoded; Buffer's base64 decoder accepts both alphabets.
 */
export function externalAccountBinding(account: AccountKey, eab: { kid: string; hmacKey: string }, newAccountUrl: string): FlattenedJws {
  const input = signingInput({ alg: 'HS256', kid: eab.kid, url: newAccountUrl }, account.jwk);
  const mac = createHmac('sha256', Buffer.from(eab.hmacKey, 'base64')).update(`${input.protected}.${input.payload}`).digest();
  return { ...input, signature: b64u(mac) };
}

/** RFC 8555 §8.1: token "." thumbprint. */
export function keyAuthorization(account: AccountKey, token: string): string {
  return `${token}.${account.thumbprint}`;
}

/**
 * What a solver must serve for a challenge: the key authorization for
 * http-01 (§8.3), its base64url SHA-256 digest as the TXT value for dns-01 (§8.4).
 */
export function challengeResponse(account: AccountKey, type: string, token: string): string {
  const ka = keyAuthorization(account, token);
  return type === 'dns-01' ? b64u(createHash('sha256').update(ka).digest()) : ka;
}
