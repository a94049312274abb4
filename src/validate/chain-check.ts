// The pre-deploy chain check of docs/architecture.md, "Files on disk": a chain that fails any of these is
// kept for inspection and never deployed. Pure: no I/O, `now` is injected.
//
// Node's OpenSSL-backed X509Certificate parses each certificate first and does
// the signature maths, which covers every algorithm a public CA uses (ECDSA,
// RSA PKCS#1 v1.5, RSA-PSS); the fields it does not expose usably (exact Name
// DER, SAN dNSNames, validity as dates, basicConstraints and keyUsage) come
// from @peculiar/x509 (util/cert-fields.ts), loaded only when a chain is
// checked: its ASN.1 schemas take tens of ms to load, which the daemon and
// `status` must not pay.
//
// Work is bounded before anything parses a certificate: the chain's PEM, the
// number of certificates and each certificate's DER have caps
// (docs/architecture.md, "Security model").
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import { ValidationError } from '../errors.js';
import { certFields, loadX509, type CertFields, type X509Lib } from '../util/cert-fields.js';
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

/** Largest chain accepted, in characters of PEM: a public CA's chain is a few KiB. */
export const MAX_CHAIN_PEM_CHARS = 1024 * 1024;
/** Most certificates in a chain: leaf, intermediates, maybe the root; real chains have 2–4. */
export const MAX_CHAIN_CERTS = 16;
/** Largest certificate accepted, DER octets; real ones are 1–2 KiB, RSA-4096 with many SANs under 16 KiB. */
export const MAX_CERT_OCTETS = 64 * 1024;

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/**
 * The CERTIFICATE blocks of `pem`, in order, each re-wrapped at 64 columns
 * (RFC 7468 §2) and ending in a newline; text between blocks (OpenSSL's
 * "subject=" lines, CRLFs, other block types) is dropped. One pass with
 * indexOf: a lazy regular expression rescans to the end of the text from
 * every BEGIN line that has no END line, quadratic in the input.
 */
export function splitPem(pem: string): string[] {
  const out: string[] = [];
  for (let pos = 0; ; ) {
    const begin = pem.indexOf(BEGIN, pos);
    if (begin < 0) break;
    const end = pem.indexOf(END, begin + BEGIN.length);
    if (end < 0) break;
    const b64 = pem.slice(begin + BEGIN.length, end).replace(/\s+/g, '');
    const lines = b64.match(/.{1,64}/g) ?? [];
    out.push(`${BEGIN}\n${lines.join('\n')}\n${END}\n`);
    pos = end + END.length;
  }
  return out;
}

interface Parsed {
  pem: string;
  der: Buffer;
  /**
   * Serial, Names (DER: RFC 5280 §4.1.2.4 has CAs encode the issuer field
   * exactly as the issuer's subject, so chaining compares bytes; text for
   * messages), validity, SAN. Read at once for the chain; for a trusted root
   * only when it is looked at (fieldsOf), since @peculiar/x509 takes
   * milliseconds per certificate and there are ~140 system roots.
   */
  fields?: CertFields;
  what: string;
  native: NodeX509;
  spki: Buffer;
  /** basicConstraints and keyUsage, read when the certificate is checked as an issuer. */
  ca?: CaFacts;
}

type Read = Parsed & { fields: CertFields };

/** What RFC 5280 §6.1.4 (k)–(n) look at in an issuer. */
interface CaFacts {
  /** undefined: no basicConstraints extension. */
  basicConstraints?: { ca: boolean; pathLength?: number };
  /** undefined: no keyUsage extension (then any use is allowed). */
  keyCertSign?: boolean;
}

/** DER of one normalised PEM block (splitPem), refused above MAX_CERT_OCTETS before decoding. */
function derOf(pem: string): Buffer {
  const b64 = pem.slice(BEGIN.length, pem.length - END.length - 1).replace(/\s+/g, '');
  const octets = Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
  if (octets > MAX_CERT_OCTETS) throw new Error(`it is ${octets} octets of DER, more than the ${MAX_CERT_OCTETS} accepted`);
  return Buffer.from(b64, 'base64');
}

/** OpenSSL's parse, after the size cap; the fields come later (fieldsOf). */
function parseCert(pem: string, what: string): Parsed {
  try {
    const der = derOf(pem);
    const native = new NodeX509(der);
    return { pem, der: native.raw, what, native, spki: native.publicKey.export({ type: 'spki', format: 'der' }) };
  } catch (err) {
    throw new ValidationError('parse', `${what} is not a readable X.509 certificate: ${errMsg(err)}`, { cause: err });
  }
}

function fieldsOf(x509: X509Lib, c: Parsed): Read {
  try {
    c.fields ??= certFields(x509, c.native);
  } catch (err) {
    throw new ValidationError('parse', `${c.what} is not a readable X.509 certificate: ${errMsg(err)}`, { cause: err });
  }
  return c as Read;
}

// Issuers repeat: every certificate a CA issues in a pass comes with the same
// intermediate. What is read from one (its fields and key, its CA facts,
// which keys verify its signature) depends on its bytes alone, so it is kept
// for the life of the process, keyed by those bytes, and a pass over a
// thousand certificates parses the intermediate once instead of a thousand
// times. Leaves are never kept (each is new).
const ISSUER_CACHE_MAX = 64;
const issuerCache = new Map<string, Parsed>();

function parseIssuer(pem: string, what: string): Parsed {
  const hit = issuerCache.get(pem);
  if (hit) return hit;
  const parsed = parseCert(pem, what);
  if (issuerCache.size >= ISSUER_CACHE_MAX) issuerCache.delete(issuerCache.keys().next().value!);
  issuerCache.set(pem, parsed);
  return parsed;
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

function label(c: Read, i: number): string {
  return `certificate ${i + 1} (${c.fields.subject || 'empty subject'})`;
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
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

function isWithin(c: Read, now: Date): 'ok' | 'expired' | 'not-yet-valid' {
  // RFC 5280 §4.1.2.5: the validity period includes both notBefore and notAfter.
  const t = now.getTime();
  if (t < c.fields.notBefore.getTime()) return 'not-yet-valid';
  if (t > c.fields.notAfter.getTime()) return 'expired';
  return 'ok';
}

/** Signature verdicts already reached, per (child, issuer) pair: both are fixed bytes, so the answer is too. */
const verdicts = new WeakMap<Parsed, WeakMap<Parsed, boolean>>();

function verifiedBy(child: Parsed, issuer: Parsed): boolean {
  let known = verdicts.get(child);
  if (!known) verdicts.set(child, (known = new WeakMap()));
  let ok = known.get(issuer);
  if (ok === undefined) {
    try {
      ok = child.native.verify(issuer.native.publicKey);
    } catch {
      // e.g. a key type that cannot verify this signature algorithm
      ok = false;
    }
    known.set(issuer, ok);
  }
  return ok;
}

/**
 * Check an issued chain against its key and the configured names (docs/architecture.md, "Files on disk").
 * Throws ValidationError whose `check` names the first check that failed:
 * parse, key-match, names, chain-order, signature, issuer, validity (in that order).
 */
export async function checkChain(input: ChainCheckInput): Promise<CheckedChain> {
  const x509 = await loadX509();
  const certs = parseChain(input.chainPem, x509);
  const leaf = checkKeyMatch(certs, input.keyPem);

  // names
  const sans = leaf.fields.dnsNames;
  const missing = input.domains.filter((d) => !sans.some((s) => sanCovers(s, d)));
  if (missing.length > 0) {
    throw new ValidationError(
      'names',
      `the leaf does not cover ${missing.join(', ')} (its DNS names: ${sans.length ? sans.join(', ') : 'none'})`,
    );
  }

  checkOrder(certs);
  const anchor = checkSignatures(x509, certs, input.trustedRootsPem);
  checkIssuers(x509, certs, anchor);
  checkValidity(certs, input.now);

  return {
    leafPem: leaf.pem,
    intermediatesPem: certs.slice(1).map((c) => c.pem),
    serial: leaf.fields.serialHex,
    notBefore: leaf.fields.notBefore,
    notAfter: leaf.fields.notAfter,
    names: sans,
    spkiSha256: sha256Hex(leaf.spki),
    issuer: leaf.fields.issuer,
  };
}

/** parse — within the size caps first, so no parser ever sees an oversized input. */
function parseChain(chainPem: string, x509: X509Lib): Read[] {
  if (chainPem.length > MAX_CHAIN_PEM_CHARS) {
    throw new ValidationError('parse', `the chain is ${chainPem.length} characters of PEM, more than the ${MAX_CHAIN_PEM_CHARS} accepted`);
  }
  const blocks = splitPem(chainPem);
  if (blocks.length === 0) throw new ValidationError('parse', 'no certificate in the chain');
  if (blocks.length > MAX_CHAIN_CERTS) {
    throw new ValidationError('parse', `the chain has ${blocks.length} certificates, more than the ${MAX_CHAIN_CERTS} accepted`);
  }
  // OpenSSL reads every certificate before @peculiar/x509 reads any (cert-fields.ts).
  const parsed = blocks.map((pem, i) => (i === 0 ? parseCert : parseIssuer)(pem, `certificate ${i + 1} of the chain`));
  return parsed.map((c) => fieldsOf(x509, c));
}

/** key-match — the leaf is the certificate for our key; anywhere but first is an ordering fault. */
function checkKeyMatch(certs: Read[], keyPem: string): Read {
  let keySpki: Buffer;
  try {
    keySpki = publicKeySpkiDer(keyPem);
  } catch (err) {
    throw new ValidationError('parse', `the private key is not readable: ${errMsg(err)}`, { cause: err });
  }
  const leafAt = certs.findIndex((c) => c.spki.equals(keySpki));
  if (leafAt < 0) {
    throw new ValidationError(
      'key-match',
      `the leaf's public key (SPKI sha256 ${sha256Hex(certs[0]!.spki)}) is not the private key's (SPKI sha256 ${sha256Hex(keySpki)})`,
    );
  }
  if (leafAt > 0) {
    throw new ValidationError('chain-order', `the certificate for the private key is at position ${leafAt + 1}; the leaf must come first`);
  }
  return certs[0]!;
}

/** chain-order — each certificate is issued by the next; anything else is out of order or unrelated. */
function checkOrder(certs: Read[]): void {
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const next = certs[i + 1]!;
    const dup = certs.findIndex((c) => c.der.equals(next.der));
    if (dup < i + 1) {
      throw new ValidationError('chain-order', `${label(next, i + 1)} repeats certificate ${dup + 1}`);
    }
    if (!child.fields.issuerDer.equals(next.fields.subjectDer)) {
      throw new ValidationError(
        'chain-order',
        `${label(child, i)} is issued by "${child.fields.issuer}", but the next one is ${label(next, i + 1)}` +
          ' (out of order, or not part of this chain)',
      );
    }
  }
}

/**
 * signature — each certificate verifies under the next one's key and, with
 * trusted roots, the chain ends at one or is signed by one. Returns that
 * root when it is not itself in the chain: the last issuer of the path.
 */
function checkSignatures(x509: X509Lib, certs: Read[], trustedRootsPem: string[] | undefined): Read | undefined {
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const next = certs[i + 1]!;
    if (!verifiedBy(child, next)) {
      throw new ValidationError('signature', `${label(child, i)} is not signed by the key of ${label(next, i + 1)}`);
    }
  }
  if (!trustedRootsPem) return undefined;
  const roots = parsedRoots(trustedRootsPem);
  const last = certs[certs.length - 1]!;
  if (roots.some((r) => r.der.equals(last.der))) return undefined;
  // OpenSSL's text of two Names is equal when their DER is (the converse
  // need not hold): a cheap filter before a root's own fields are read.
  const anchor = roots.find(
    (r) => r.native.subject === last.native.issuer && fieldsOf(x509, r).fields.subjectDer.equals(last.fields.issuerDer) && verifiedBy(last, r),
  );
  if (!anchor) {
    throw new ValidationError(
      'signature',
      `the chain does not lead to a trusted root: ${label(last, certs.length - 1)} is issued by "${last.fields.issuer}", ` +
        `trusted: ${roots.map((r) => `"${fieldsOf(x509, r).fields.subject}"`).join(', ') || 'none'}`,
    );
  }
  return fieldsOf(x509, anchor);
}

/**
 * issuer — RFC 5280 §6.1.4 (k)–(n) for every certificate that issued another
 * in the path, the trust anchor included (as OpenSSL does): basicConstraints
 * present with cA TRUE, keyCertSign if a keyUsage extension is present, and
 * no more non-self-issued CA certificates below it than its
 * pathLenConstraint allows. A version 1 root without extensions is not
 * accepted as an issuer; every public root today is a version 3 CA.
 */
function checkIssuers(x509: X509Lib, certs: Read[], anchor: Read | undefined): void {
  const path = anchor ? [...certs, anchor] : certs;
  if (path.length < 2) return;
  let below = 0; // non-self-issued CA certificates between this issuer and the leaf
  for (let i = 1; i < path.length; i++) {
    const issuer = path[i]!;
    const who = issuer === anchor ? `the trusted root "${issuer.fields.subject}"` : label(issuer, i);
    const facts = (issuer.ca ??= caFacts(x509, issuer));
    const bc = facts.basicConstraints;
    const notCa = !bc ? 'it has no basicConstraints extension' : !bc.ca ? 'its basicConstraints say cA FALSE' : undefined;
    if (notCa) {
      throw new ValidationError('issuer', `${who} issued certificate ${i} but is not a CA: ${notCa} (RFC 5280 §6.1.4 (k))`);
    }
    if (facts.keyCertSign === false) {
      throw new ValidationError('issuer', `${who} issued certificate ${i} but its keyUsage does not include keyCertSign (certificate signing; RFC 5280 §6.1.4 (n))`);
    }
    if (bc!.pathLength !== undefined && below > bc!.pathLength) {
      throw new ValidationError(
        'issuer',
        `${who} allows ${bc!.pathLength} CA certificate(s) below it (pathLenConstraint), but the path has ${below} (RFC 5280 §6.1.4 (l), (m))`,
      );
    }
    if (!issuer.fields.subjectDer.equals(issuer.fields.issuerDer)) below++; // RFC 5280 §6.1.4 (l): self-issued certificates do not count
  }
}

/** Its extensions were all read with the fields (cert-fields.ts), so an unreadable one was refused at parse already. */
function caFacts(x509: X509Lib, c: Read): CaFacts {
  const bc = c.fields.cert.getExtension(x509.BasicConstraintsExtension);
  const ku = c.fields.cert.getExtension(x509.KeyUsagesExtension);
  return {
    ...(bc ? { basicConstraints: { ca: bc.ca, ...(bc.pathLength !== undefined ? { pathLength: bc.pathLength } : {}) } } : {}),
    ...(ku ? { keyCertSign: (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0 } : {}),
  };
}

/** validity — every certificate served, not just the leaf: an expired intermediate breaks clients just the same. */
function checkValidity(certs: Read[], now: Date): void {
  for (const [i, c] of certs.entries()) {
    const state = isWithin(c, now);
    if (state === 'ok') continue;
    const what = i === 0 ? 'the leaf' : label(c, i);
    throw new ValidationError(
      'validity',
      state === 'expired'
        ? `${what} expired at ${c.fields.notAfter.toISOString()} (now ${now.toISOString()})`
        : `${what} is not valid before ${c.fields.notBefore.toISOString()} (now ${now.toISOString()})`,
    );
  }
}
