// In-process test PKI for unit tests: root → intermediate → leaf, EC P-256,
// built with @peculiar/x509 over node's WebCrypto. No files, no openssl.
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Issued {
  pem: string;
  keyPem: string;
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  subject: string;
}

export async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function keyPemOf(keys: CryptoKeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

let serial = 1;

async function issue(opts: {
  subject: string;
  issuer?: Issued;
  /** Sign with these keys instead of the issuer's (for bad-signature cases). */
  signingKeys?: CryptoKeyPair;
  issuerName?: string;
  keys?: CryptoKeyPair;
  ca: boolean;
  names?: string[];
  notBefore: Date;
  notAfter: Date;
  /** Instead of the default basicConstraints and keyUsage for `ca`. */
  constraints?: x509.Extension[];
}): Promise<Issued> {
  const keys = opts.keys ?? (await newKeys());
  const signing = opts.signingKeys ?? opts.issuer?.keys ?? keys;
  const extensions: x509.Extension[] = [];
  if (opts.constraints) {
    extensions.push(...opts.constraints);
  } else if (opts.ca) {
    extensions.push(new x509.BasicConstraintsExtension(true, undefined, true));
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true));
  } else {
    extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
    extensions.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true));
  }
  if (opts.names) {
    extensions.push(new x509.SubjectAlternativeNameExtension(opts.names.map((value) => ({ type: 'dns' as const, value }))));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0') + 'a1b2',
    subject: opts.subject,
    issuer: opts.issuerName ?? opts.issuer?.subject ?? opts.subject,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: signing.privateKey,
    extensions,
  });
  return { pem: cert.toString('pem') + '\n', keyPem: await keyPemOf(keys), cert, keys, subject: opts.subject };
}

export function makeRoot(name: string, now: Date): Promise<Issued> {
  return issue({ subject: `CN=${name}`, ca: true, notBefore: new Date(now.getTime() - 365 * DAY), notAfter: new Date(now.getTime() + 3650 * DAY) });
}

export function makeIntermediate(
  name: string,
  issuer: Issued,
  now: Date,
  opts: { notBefore?: Date; notAfter?: Date; signingKeys?: CryptoKeyPair } = {},
): Promise<Issued> {
  return issue({
    subject: `CN=${name}`,
    issuer,
    ca: true,
    signingKeys: opts.signingKeys,
    notBefore: opts.notBefore ?? new Date(now.getTime() - 30 * DAY),
    notAfter: opts.notAfter ?? new Date(now.getTime() + 1000 * DAY),
  });
}

/**
 * A certificate under `issuer` with exactly the given basicConstraints and
 * keyUsage (null: the extension is left out), e.g. an end-entity certificate
 * used as an issuer, or a CA with a pathLenConstraint.
 */
export async function makeIssuer(
  name: string,
  issuer: Issued | undefined,
  now: Date,
  opts: {
    basicConstraints: { ca: boolean; pathLength?: number } | null;
    keyUsage: x509.KeyUsageFlags | null;
    /** Add subject and authority key identifiers (RFC 5280 §4.2.1.1-2), which OpenSSL needs to tell a self-issued CA from a self-signed one. */
    keyIds?: boolean;
  },
): Promise<Issued> {
  const keys = await newKeys();
  const constraints: x509.Extension[] = [];
  if (opts.basicConstraints) constraints.push(new x509.BasicConstraintsExtension(opts.basicConstraints.ca, opts.basicConstraints.pathLength, true));
  if (opts.keyUsage !== null) constraints.push(new x509.KeyUsagesExtension(opts.keyUsage, true));
  if (opts.keyIds) {
    constraints.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
    constraints.push(await x509.AuthorityKeyIdentifierExtension.create((issuer?.keys ?? keys).publicKey));
  }
  return issue({
    subject: `CN=${name}`,
    issuer,
    keys,
    ca: opts.basicConstraints?.ca ?? false,
    constraints,
    notBefore: new Date(now.getTime() - 30 * DAY),
    notAfter: new Date(now.getTime() + 1000 * DAY),
  });
}

export function makeLeaf(
  issuer: Issued,
  now: Date,
  opts: { names?: string[]; keys?: CryptoKeyPair; notBefore?: Date; notAfter?: Date; signingKeys?: CryptoKeyPair; subject?: string } = {},
): Promise<Issued> {
  return issue({
    subject: opts.subject ?? 'CN=mx1.example.test',
    issuer,
    ca: false,
    keys: opts.keys,
    signingKeys: opts.signingKeys,
    names: opts.names ?? ['mx1.example.test'],
    notBefore: opts.notBefore ?? new Date(now.getTime() - DAY),
    notAfter: opts.notAfter ?? new Date(now.getTime() + 89 * DAY),
  });
}

export interface TestPki {
  root: Issued;
  intermediate: Issued;
  leaf: Issued;
}

export async function makePki(now: Date, leafNames?: string[]): Promise<TestPki> {
  const root = await makeRoot('mxcert Test Root', now);
  const intermediate = await makeIntermediate('mxcert Test Intermediate', root, now);
  const leaf = await makeLeaf(intermediate, now, leafNames ? { names: leafNames } : {});
  return { root, intermediate, leaf };
}

export { DAY };
