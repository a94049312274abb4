// The pre-deploy chain check of DESIGN §3: a chain that fails any of these is
// kept for inspection and never deployed. Pure: no I/O, `now` is injected.
//
// Node's OpenSSL-backed X509Certificate parses the certificate and does the
// signature maths, which covers every algorithm a public CA uses (ECDSA, RSA
// PKCS#1 v1.5, RSA-PSS); the fields it does not expose usably (exact Name DER,
// SAN dNSNames, validity as dates) come from our DER reading (cert-fields.ts),
// which replaced a general ASN.1/X.509 library and its 20-40 ms of module loading.
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { nameToString, readCertFields, sanDnsNames, serialHex, type CertFields } from '../util/cert-fields.js';
import { publicKeySpkiDer } from '../keys/keygen.js';

export interface CheckedChain {
  /** The leaf, normalised PEM ending in a newline. */
  leafPem: string;
  /** The issuers as the CA returned them (may end with a root), each ending in a newline. */
  intermediatesPem: string[];
  /** Lower-case hex, no leading zero bytes. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** The leaf's SAN dNSNames. */
  names: string[];
  /** SHA-256 of the leaf's SubjectPublicKeyInfo, hex: the TLSA 3 1 1 data (RFC 6698 §2.1). */
  spkiSha256: string;
  /** The leaf's issuer DN, for logs and status. */
  issuer: string;
}

export interface ChainCheckInput {
  keyPem: string;
  /** Leaf first, then issuers, as the CA returned them. */
  chainPem: string;
  domains: string[];
  now: Date;
  /** If given, the chain must end at (or be issued by) one of these. */
  trustedRootsPem?: string[];
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/**
 * The CERTIFICATE blocks of `pem`, in order, each re-wrapped at 64 columns
 * (RFC 7468 §2) and ending in a newline; text between blocks (OpenSSL's
 * "subject=" lines, CRLFs, other block types) is dropped.
 */
export function splitPem(pem: string): string[] {
  const out: string[] = [];
  for (const m of pem.matchAll(CERT_BLOCK)) {
    const b64 = (m[1] ?? '').replace(/\s+/g, '');
    const lines = b64.match(/.{1,64}/g) ?? [];
    out.push(`-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`);
  }
  return out;
}

interface Parsed {
  pem: string;
  der: Buffer;
  fields: CertFields;
  native: NodeX509;
  /** DER of subject and issuer: RFC 5280 §4.1.2.4 has CAs encode the issuer field exactly as the issuer's subject, so chaining compares bytes. */
  subjectDer: Buffer;
  issuerDer: Buffer;
  /** Subject and issuer as text for messages, e.g. "CN=Pebble Intermediate CA 1b2c3d" (nameToString). */
  subject: string;
  issuer: string;
  spki: Buffer;
}

function parseCert(pem: string, what: string): Parsed {
  try {
    const native = new NodeX509(pem);
    const fields = readCertFields(native.raw);
    return {
      pem,
      der: native.raw,
      fields,
      native,
      subjectDer: fields.subjectDer,
      issuerDer: fields.issuerDer,
      subject: nameToString(fields.subjectDer),
      issuer: nameToString(fields.issuerDer),
      spki: native.publicKey.export({ type: 'spki', format: 'der' }),
    };
  } catch (err) {
    throw new ValidationError('parse', `${what} is not a readable X.509 certificate: ${errMsg(err)}`, { cause: err });
  }
}

// The trusted roots are the same array for every certificate of a pass
// (renew/deps.ts), by default Node's ~140 system roots: parse them once per
// array, not once per certificate checked.
const rootsCache = new WeakMap<readonly string[], Parsed[]>();

function parsedRoots(pems: readonly string[]): Parsed[] {
  let roots = rootsCache.get(pems);
  if (!roots) {
    roots = pems.flatMap((p) => splitPem(p)).map((pem, i) => parseCert(pem, `trusted root ${i + 1}`));
    rootsCache.set(pems, roots);
  }
  return roots;
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function label(c: Parsed, i: number): string {
  return `certificate ${i + 1} (${c.subject || 'empty subject'})`;
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function leafDnsNames(leaf: Parsed): string[] {
  try {
    return sanDnsNames(leaf.fields);
  } catch (err) {
    throw new ValidationError('parse', `the leaf's subjectAltName extension is not readable: ${errMsg(err)}`, { cause: err });
  }
}

function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * Whether SAN dNSName `san` covers configured name `domain`: case-insensitive
 * (RFC 4343), and a wildcard `*.` stands for exactly one whole left-most label
 * (RFC 6125 §6.4.3; partial-label wildcards are not issued by public CAs).
 */
export function sanCovers(san: string, domain: string): boolean {
  const s = normaliseName(san);
  const d = normaliseName(domain);
  if (s === d) return true;
  if (!s.startsWith('*.')) return false;
  const dot = d.indexOf('.');
  if (dot <= 0) return false;
  const firstLabel = d.slice(0, dot);
  return firstLabel !== '*' && d.slice(dot + 1) === s.slice(2);
}

function isWithin(c: Parsed, now: Date): 'ok' | 'expired' | 'not-yet-valid' {
  // RFC 5280 §4.1.2.5: the validity period includes both notBefore and notAfter.
  const t = now.getTime();
  if (t < c.fields.notBefore.getTime()) return 'not-yet-valid';
  if (t > c.fields.notAfter.getTime()) return 'expired';
  return 'ok';
}

function verifiedBy(child: Parsed, issuer: Parsed): boolean {
  try {
    return child.native.verify(issuer.native.publicKey);
  } catch {
    // e.g. a key type that cannot verify this signature algorithm
    return false;
  }
}

/**
 * Check an issued chain against its key and the configured names (DESIGN §3).
 * Throws ValidationError whose `check` names the first check that failed:
 * parse, key-match, names, chain-order, signature, validity (in that order).
 */
export async function checkChain(input: ChainCheckInput): Promise<CheckedChain> {
  const blocks = splitPem(input.chainPem);
  if (blocks.length === 0) throw new ValidationError('parse', 'no certificate in the chain');
  const certs = blocks.map((pem, i) => parseCert(pem, `certificate ${i + 1} of the chain`));

  let keySpki: Buffer;
  try {
    keySpki = publicKeySpkiDer(input.keyPem);
  } catch (err) {
    throw new ValidationError('parse', `the private key is not readable: ${errMsg(err)}`, { cause: err });
  }

  // key-match — the leaf is the certificate for our key; anywhere but first is an ordering fault.
  const leafAt = certs.findIndex((c) => c.spki.equals(keySpki));
  if (leafAt < 0) {
    throw new ValidationError(
      'key-match',
      `the leaf's public key (SPKI sha256 ${sha256Hex(certs[0]!.spki)}) is not the private key's (SPKI sha256 ${sha256Hex(keySpki)})`,
    );
  }
  if (leafAt > 0) {
    throw new ValidationError(
      'chain-order',
      `the certificate for the private key is at position ${leafAt + 1}; the leaf must come first`,
    );
  }
  const leaf = certs[0]!;

  // names
  const sans = leafDnsNames(leaf);
  const missing = input.domains.filter((d) => !sans.some((s) => sanCovers(s, d)));
  if (missing.length > 0) {
    throw new ValidationError(
      'names',
      `the leaf does not cover ${missing.join(', ')} (its DNS names: ${sans.length ? sans.join(', ') : 'none'})`,
    );
  }

  // chain-order — each certificate is issued by the next; anything else is out of order or unrelated.
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const next = certs[i + 1]!;
    const dup = certs.findIndex((c) => c.der.equals(next.der));
    if (dup < i + 1) {
      throw new ValidationError('chain-order', `${label(next, i + 1)} repeats certificate ${dup + 1}`);
    }
    if (!child.issuerDer.equals(next.subjectDer)) {
      throw new ValidationError(
        'chain-order',
        `${label(child, i)} is issued by "${child.issuer}", but the next one is ${label(next, i + 1)}` +
          ' (out of order, or not part of this chain)',
      );
    }
  }

  // signature
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const next = certs[i + 1]!;
    if (!verifiedBy(child, next)) {
      throw new ValidationError('signature', `${label(child, i)} is not signed by the key of ${label(next, i + 1)}`);
    }
  }
  if (input.trustedRootsPem) {
    const roots = parsedRoots(input.trustedRootsPem);
    const last = certs[certs.length - 1]!;
    const anchored =
      roots.some((r) => r.der.equals(last.der)) ||
      roots.some((r) => r.subjectDer.equals(last.issuerDer) && verifiedBy(last, r));
    if (!anchored) {
      throw new ValidationError(
        'signature',
        `the chain does not lead to a trusted root: ${label(last, certs.length - 1)} is issued by "${last.issuer}", ` +
          `trusted: ${roots.map((r) => `"${r.subject}"`).join(', ') || 'none'}`,
      );
    }
  }

  // validity — every certificate served, not just the leaf: an expired intermediate breaks clients just the same.
  for (const [i, c] of certs.entries()) {
    const state = isWithin(c, input.now);
    if (state === 'ok') continue;
    const what = i === 0 ? 'the leaf' : label(c, i);
    throw new ValidationError(
      'validity',
      state === 'expired'
        ? `${what} expired at ${c.fields.notAfter.toISOString()} (now ${input.now.toISOString()})`
        : `${what} is not valid before ${c.fields.notBefore.toISOString()} (now ${input.now.toISOString()})`,
    );
  }

  return {
    leafPem: leaf.pem,
    intermediatesPem: certs.slice(1).map((c) => c.pem),
    serial: serialHex(leaf.fields.serialDer),
    notBefore: leaf.fields.notBefore,
    notAfter: leaf.fields.notAfter,
    names: sans,
    spkiSha256: sha256Hex(leaf.spki),
    issuer: leaf.issuer,
  };
}
