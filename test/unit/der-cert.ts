// Hand-built certificates for unit tests: TBSCertificate (RFC 5280 §4.1)
// written with der-write.ts and signed with node:crypto, so a test can put
// anything in a Name, a time or an extension (things no generator library will
// write), while node's X509Certificate (OpenSSL) still parses it.
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as der from './der-write.js';

export const EC_KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const ECDSA_SHA256 = der.sequence(der.oid('1.2.840.10045.4.3.2'));

export const atv = (type: string, value: Buffer): Buffer => der.sequence(der.oid(type), value);
export const rdn = (...atvs: Buffer[]): Buffer => der.setOf(...atvs);
export const name = (...rdns: Buffer[]): Buffer => der.sequence(...rdns);
export const cn = (text: string): Buffer => name(rdn(atv('2.5.4.3', der.utf8String(text))));
export const ext = (id: string, value: Buffer, critical = false): Buffer =>
  der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
export const sanExt = (...dnsNames: string[]): Buffer =>
  ext('2.5.29.17', der.sequence(...dnsNames.map((n) => der.implicit(2, der.ia5String(n)))));

export interface CertSpec {
  /** INTEGER contents octets, written as given. */
  serial: Buffer;
  issuer: Buffer;
  subject: Buffer;
  notBefore: Buffer;
  notAfter: Buffer;
  extensions?: Buffer[];
  /** Key certified (its public half) and, unless `signingKey`, signing; EC P-256. Default EC_KEY. */
  key?: KeyObject;
  signingKey?: KeyObject;
}

/** A v3 certificate as PEM, signed ecdsa-with-SHA256. */
export function buildCert(spec: CertSpec): string {
  const key = spec.key ?? EC_KEY;
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)),
    der.tlv(der.TAG.INTEGER, spec.serial),
    ECDSA_SHA256,
    spec.issuer,
    der.sequence(spec.notBefore, spec.notAfter),
    spec.subject,
    createPublicKey(key).export({ type: 'spki', format: 'der' }),
    ...(spec.extensions ? [der.explicit(3, der.sequence(...spec.extensions))] : []),
  );
  const sig = sign('sha256', tbs, spec.signingKey ?? key);
  return der.toPem(der.sequence(tbs, ECDSA_SHA256, der.bitString(sig)), 'CERTIFICATE');
}
