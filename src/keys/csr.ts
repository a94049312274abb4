// PKCS#10 certificate signing requests (RFC 2986) for ACME finalize (RFC 8555
// §7.4), written with der.ts and signed with node:crypto: no ASN.1 library to
// load at start-up.
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { CsrError } from '../errors.js';
import { keyTypeOf } from './keygen.js';
import * as der from '../util/der.js';

const OID_CN = '2.5.4.3';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14'; // PKCS #9 (RFC 2985 §5.4.2)
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** RFC 5280 Appendix A: ub-common-name INTEGER ::= 64. */
const CN_MAX = 64;

interface SigningAlg {
  /** node:crypto digest name. */
  hash: 'sha256' | 'sha384';
  /** AlgorithmIdentifier DER for signatureAlgorithm. */
  algorithmId: Buffer;
}

// ECDSA: RFC 5758 §3.2 — the parameters field MUST be absent.
// RSA PKCS#1 v1.5: RFC 4055 §5 / RFC 8017 Appendix A.2.4 — parameters NULL.
const ALGS = {
  'ecdsa-with-SHA256': { hash: 'sha256', algorithmId: der.sequence(der.oid('1.2.840.10045.4.3.2')) },
  'ecdsa-with-SHA384': { hash: 'sha384', algorithmId: der.sequence(der.oid('1.2.840.10045.4.3.3')) },
  sha256WithRSAEncryption: { hash: 'sha256', algorithmId: der.sequence(der.oid('1.2.840.113549.1.1.11'), der.nullValue()) },
} as const satisfies Record<string, SigningAlg>;

/**
 * The signature algorithm for a key mxcert generates (keys/keygen.ts): each
 * curve with its matching hash (RFC 5480 §4), RSA with SHA-256 as every
 * public CA accepts. Anything else is refused rather than guessed.
 */
function signingAlgFor(key: KeyObject, keyPem: string): SigningAlg {
  const type = keyTypeOf(keyPem);
  switch (type) {
    case 'ecdsa-p256':
      return ALGS['ecdsa-with-SHA256'];
    case 'ecdsa-p384':
      return ALGS['ecdsa-with-SHA384'];
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return ALGS.sha256WithRSAEncryption;
    case undefined: {
      const d = key.asymmetricKeyDetails ?? {};
      const what = [key.asymmetricKeyType, d.namedCurve, d.modulusLength && `${d.modulusLength} bits`].filter(Boolean).join(' ');
      throw new CsrError(`cannot make a CSR with a ${what} key: mxcert signs with ECDSA P-256/P-384 or RSA 2048/3072/4096 keys`);
    }
    default:
      throw new CsrError(`unsupported key type ${String(type satisfies never)}`);
  }
}

function signAsync(hash: string, data: Buffer, key: KeyObject): Promise<Buffer> {
  // The callback form runs in libuv's thread pool: an RSA-4096 signature does not stall the daemon.
  // ECDSA signatures come out DER-encoded (Ecdsa-Sig-Value, RFC 3279 §2.2.3), node's default and what X.509 wants.
  return new Promise((resolve, reject) => sign(hash, data, key, (err, sig) => (err ? reject(err) : resolve(sig))));
}

/**
 * A PKCS#10 request (RFC 2986 §4) for `domains`, signed with `keyPem`, as PEM
 * ("CERTIFICATE REQUEST", RFC 7468 §7):
 * - subject CN = domains[0] (UTF8String, RFC 5280 §4.1.2.6). If it is longer
 *   than the 64-character ub-common-name, the subject is left empty instead:
 *   CAs refuse an over-long CN, and the names are carried by the SAN anyway;
 *   the SAN is then marked critical, as RFC 5280 §4.2.1.6 requires for an
 *   empty subject.
 * - an extensionRequest attribute (RFC 2985 §5.4.2) with a subjectAltName of
 *   every domain as a dNSName, in the order given: what ACME CAs read.
 */
export async function createCsr(domains: string[], keyPem: string): Promise<string> {
  if (domains.length === 0) throw new CsrError('a CSR needs at least one domain name');
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CsrError(`the CSR key is not a readable private key: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const alg = signingAlgFor(key, keyPem);

  const nonAscii = domains.filter((d) => !/^[\x21-\x7e]+$/.test(d));
  if (nonAscii.length > 0) {
    // dNSName is an IA5String of the A-label form (RFC 5280 §4.2.1.6, §7.2).
    throw new CsrError(`domain names must be printable ASCII (A-labels for IDNs): ${nonAscii.map((d) => JSON.stringify(d)).join(', ')}`);
  }
  const cn = domains[0]!;
  const withCn = cn.length <= CN_MAX;
  const subject = withCn ? der.sequence(der.setOf(der.sequence(der.oid(OID_CN), der.utf8String(cn)))) : der.sequence();

  // GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2] IMPLICIT IA5String.
  const sanValue = der.sequence(...domains.map((d) => der.implicit(2, der.ia5String(d))));
  // Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }: DER omits a FALSE default (X.690 §11.5).
  const san = der.sequence(der.oid(OID_SUBJECT_ALT_NAME), ...(withCn ? [] : [der.boolean(true)]), der.octetString(sanValue));
  // Attribute ::= SEQUENCE { type, values SET OF }; the value is Extensions ::= SEQUENCE OF Extension.
  const extensionRequest = der.sequence(der.oid(OID_EXTENSION_REQUEST), der.setOf(der.sequence(san)));

  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  // CertificationRequestInfo ::= SEQUENCE { version INTEGER v1(0), subject, subjectPKInfo, attributes [0] IMPLICIT SET OF Attribute }
  const info = der.sequence(der.integer(0), subject, spki, der.implicit(0, der.setOf(extensionRequest)));
  const signature = await signAsync(alg.hash, info, key);
  // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
  return der.toPem(der.sequence(info, alg.algorithmId, der.bitString(signature)), 'CERTIFICATE REQUEST');
}
