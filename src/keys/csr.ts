// PKCS#10 certificate signing requests (RFC 2986) for ACME finalize (RFC 8555
// §7.4), built and signed by @peculiar/x509's Pkcs10CertificateRequestGenerator
// over node's WebCrypto. The library is imported here, on the issuing path
// only (util/cert-fields.ts: loadX509).
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { CsrError } from '../errors.js';
import { keyTypeOf } from './keygen.js';
import { loadX509 } from '../util/cert-fields.js';

/** RFC 5280 Appendix A: ub-common-name INTEGER ::= 64. */
const CN_MAX = 64;

interface SigningAlg {
  /** WebCrypto import parameters of the private and public key. */
  key: RsaHashedImportParams | EcKeyImportParams;
  /** WebCrypto signing parameters; the library writes the matching AlgorithmIdentifier. */
  sign: Algorithm | EcdsaParams;
}

// ECDSA: ecdsa-with-SHA256/384, parameters absent (RFC 5758 §3.2).
// RSA PKCS#1 v1.5: sha256WithRSAEncryption, parameters NULL (RFC 4055 §5, RFC 8017 Appendix A.2.4).
const ALGS = {
  'ecdsa-with-SHA256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  'ecdsa-with-SHA384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
  sha256WithRSAEncryption: { key: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' } },
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

/** The node key pair as WebCrypto keys: what the generator signs with (node runs the signature in its thread pool). */
async function cryptoKeys(key: KeyObject, alg: SigningAlg): Promise<CryptoKeyPair> {
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const [privateKey, publicKey] = await Promise.all([
    webcrypto.subtle.importKey('pkcs8', pkcs8, alg.key, false, ['sign']),
    webcrypto.subtle.importKey('spki', spki, alg.key, true, ['verify']),
  ]);
  return { privateKey, publicKey };
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
  const x509 = await loadX509();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      // A Name from JSON, not from text: a domain is never read as DN syntax.
      name: new x509.Name(withCn ? [{ CN: [{ utf8String: cn }] }] : []),
      // GeneralNames of dNSName entries, in the order given; critical with an empty subject.
      extensions: [new x509.SubjectAlternativeNameExtension(domains.map((d) => ({ type: 'dns' as const, value: d })), !withCn)],
      signingAlgorithm: alg.sign,
      keys: await cryptoKeys(key, alg),
    },
    webcrypto as unknown as Crypto,
  );
  const pem = csr.toString('pem');
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
