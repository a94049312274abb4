// The hand-written DER reading of certificates that src/util/cert-fields.ts
// replaced with @peculiar/x509, frozen here (test-only) as the reference the
// parity test in cert-fields.test.ts compares the new code against: Names as
// DER and as text, serial, validity, SAN dNSNames, AKI must come out the same.
// X.690 reader (definite lengths, single-octet tags) below, then RFC 5280 fields.

/** Malformed or unsupported DER. */
export class DerError extends Error {}

// The tags and context-tag rule are the test DER writer's (one table for both).
export { TAG, contextTag } from './der-write.js';
import { TAG } from './der-write.js';

// ---------------------------------------------------------------- reading

/** One decoded TLV (identifier, length, contents). */
export interface Tlv {
  /** The identifier octet: class (bits 8–7), constructed (bit 6), tag number (bits 5–1); X.690 §8.1.2. */
  readonly tag: number;
  /** Offsets into the buffer it was read from: identifier octet, first contents octet, one past the last. */
  readonly start: number;
  readonly valueStart: number;
  readonly end: number;
  /** The whole encoding (identifier, length, contents): a view of the input, not a copy. */
  readonly der: Buffer;
  /** The contents octets: a view of the input, not a copy. */
  readonly value: Buffer;
}

function view(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

/**
 * Read the TLV starting at `offset` of `input`; it must end within `limit`
 * (default: the end of the buffer). Throws DerError on a truncated header,
 * a length beyond the limit, the indefinite form, or a high tag number.
 */
export function readTlv(input: Uint8Array, offset = 0, limit = input.length): Tlv {
  const buf = view(input);
  if (!Number.isInteger(offset) || offset < 0) throw new DerError(`invalid DER offset ${offset}`);
  limit = Math.min(limit, buf.length);
  if (offset >= limit) throw new DerError(`expected a DER element at offset ${offset}, found the end of the data`);
  const tag = buf[offset]!;
  // X.690 §8.1.2.4: tag number 31 in the first octet announces the multi-octet form.
  if ((tag & 0x1f) === 0x1f) throw new DerError(`high-tag-number identifier at offset ${offset} is not supported`);
  let pos = offset + 1;
  if (pos >= limit) throw new DerError(`DER element at offset ${offset} has no length octet`);
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) {
    // X.690 §8.1.3.4: short form, lengths 0–127.
    length = first;
  } else if (first === 0x80) {
    // X.690 §8.1.3.6 indefinite form: BER only, forbidden by DER (§10.1).
    throw new DerError(`DER element at offset ${offset} uses the indefinite length form, which DER forbids`);
  } else if (first === 0xff) {
    throw new DerError(`DER element at offset ${offset} has the reserved length octet 0xff`); // X.690 §8.1.3.5 c)
  } else {
    // X.690 §8.1.3.5: long form, low 7 bits = number of length octets that follow.
    // More than 4 cannot describe anything we could hold in memory. A
    // non-minimal long form (e.g. 0x81 0x05) is BER, not DER, but is accepted:
    // OpenSSL accepts it in certificates too, and the signature covers the bytes.
    const n = first & 0x7f;
    if (n > 4) throw new DerError(`DER element at offset ${offset} has a ${n}-octet length, beyond any input`);
    if (pos + n > limit) throw new DerError(`DER element at offset ${offset} is truncated in its length octets`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos++]!;
  }
  const end = pos + length;
  if (end > limit) {
    throw new DerError(`DER element at offset ${offset} (tag ${hex2(tag)}) claims ${length} octets but only ${limit - pos} remain`);
  }
  return { tag, start: offset, valueStart: pos, end, der: buf.subarray(offset, end), value: buf.subarray(pos, end) };
}

/** The single TLV that makes up all of `input`; trailing octets are an error. */
export function readDer(input: Uint8Array): Tlv {
  const t = readTlv(input, 0);
  if (t.end !== input.length) throw new DerError(`${input.length - t.end} unexpected octets after the DER element`);
  return t;
}

/** Whether `t` is constructed (X.690 §8.1.2.5), i.e. its contents are further TLVs. */
export function isConstructed(t: Tlv): boolean {
  return (t.tag & 0x20) !== 0; // the constructed bit, X.690 §8.1.2.5
}

/**
 * The elements inside a constructed TLV (SEQUENCE, SET, an explicitly tagged
 * [n] or an implicitly tagged SEQUENCE): each must fit exactly. Offsets of the
 * results are into `t.value`.
 */
export function children(t: Tlv): Tlv[] {
  if (!isConstructed(t)) throw new DerError(`expected a constructed element, found primitive tag ${hex2(t.tag)}`);
  const out: Tlv[] = [];
  for (let pos = 0; pos < t.value.length; ) {
    const c = readTlv(t.value, pos);
    out.push(c);
    pos = c.end;
  }
  return out;
}

/** `t` if its identifier octet is `tag`, else a DerError naming `what`. */
export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t) throw new DerError(`${what}: missing`);
  if (t.tag !== tag) throw new DerError(`${what}: expected tag ${hex2(tag)}, found ${hex2(t.tag)}`);
  return t;
}

/**
 * Longest OBJECT IDENTIFIER contents decodeOid accepts. Real OIDs are short
 * (2.25.<UUID> takes 20 octets); the cap keeps a hostile certificate from
 * making the arc arithmetic and the text large (docs/architecture.md,
 * "Security model").
 */
export const MAX_OID_OCTETS = 128;

/**
 * Dotted form of an OBJECT IDENTIFIER's contents (X.690 §8.19): base-128
 * subidentifiers, high bit = "more octets follow"; the first one packs the
 * first two arcs as 40·X + Y (X ≤ 2). Contents longer than MAX_OID_OCTETS are
 * refused before any decoding. Linear in the contents: a subidentifier is
 * built as a Number while it fits in 2^53, otherwise its 7-bit groups are
 * turned into one BigInt at once (arcs such as 2.25.<UUID> exceed 2^53).
 */
export function decodeOid(t: Tlv): string {
  expectTag(t, TAG.OID, 'OBJECT IDENTIFIER');
  const v = t.value;
  if (v.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  if (v.length > MAX_OID_OCTETS) throw new DerError(`OBJECT IDENTIFIER of ${v.length} octets is longer than the ${MAX_OID_OCTETS} accepted`);
  const arcs: Array<number | bigint> = [];
  for (let i = 0; i < v.length; ) {
    // X.690 §8.19.2: a subidentifier's first octet is never 0x80 (no leading zero groups).
    if (v[i] === 0x80) throw new DerError('OBJECT IDENTIFIER has a non-minimal subidentifier');
    let end = i;
    while (end < v.length && v[end]! & 0x80) end++;
    if (end === v.length) throw new DerError('OBJECT IDENTIFIER ends inside a subidentifier');
    arcs.push(subidentifier(v, i, end + 1));
    i = end + 1;
  }
  const head = arcs[0]!;
  const first = head < 40 ? 0 : head < 80 ? 1 : 2;
  const second = typeof head === 'bigint' ? head - BigInt(first * 40) : head - first * 40;
  return [first, second, ...arcs.slice(1)].join('.');
}

/** The value of base-128 groups v[from..to) (X.690 §8.19.2). */
function subidentifier(v: Buffer, from: number, to: number): number | bigint {
  // 7 groups are 49 bits: exact as a Number.
  if (to - from <= 7) {
    let n = 0;
    for (let i = from; i < to; i++) n = n * 128 + (v[i]! & 0x7f);
    return n;
  }
  let bits = '';
  for (let i = from; i < to; i++) bits += (v[i]! & 0x7f).toString(2).padStart(7, '0');
  return BigInt(`0b${bits}`);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/**
 * A certificate validity time (RFC 5280 §4.1.2.5). Exactly the two forms the
 * profile allows, both in UTC with seconds and no fractions:
 * UTCTime YYMMDDHHMMSSZ (§4.1.2.5.1; YY ≥ 50 is 19YY, else 20YY) and
 * GeneralizedTime YYYYMMDDHHMMSSZ (§4.1.2.5.2).
 */
export function decodeTime(t: Tlv): Date {
  const s = t.value.toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === TAG.UTC_TIME) {
    m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s);
    if (!m) throw new DerError(`UTCTime "${s}" is not YYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.1)`);
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s);
    if (!m) throw new DerError(`GeneralizedTime "${s}" is not YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.2)`);
    year = Number(m[1]);
  } else {
    throw new DerError(`expected UTCTime or GeneralizedTime, found tag ${hex2(t.tag)}`);
  }
  const [month, day, hour, minute, second] = m.slice(2).map(Number) as [number, number, number, number, number];
  const mdays = month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1];
  if (mdays === undefined || day < 1 || day > mdays || hour > 23 || minute > 59 || second > 59) {
    throw new DerError(`time "${s}" is not a valid date`);
  }
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  d.setUTCFullYear(year); // Date.UTC maps years 0–99 to 1900–1999; GeneralizedTime means them literally.
  return d;
}

/**
 * The text of a character string (X.680 §41): UTF8String as UTF-8, BMPString
 * as UTF-16BE, UniversalString as UTF-32BE, and the 8-bit types
 * (Printable, IA5, Teletex, Visible, Numeric) one character per octet, as
 * Latin-1. Undefined for any other tag.
 */
export function decodeString(t: Tlv): string | undefined {
  const v = t.value;
  switch (t.tag) {
    case TAG.UTF8_STRING:
      return v.toString('utf8');
    case TAG.BMP_STRING: {
      if (v.length % 2 !== 0) throw new DerError('BMPString has an odd number of octets');
      return Buffer.from(v).swap16().toString('utf16le');
    }
    case TAG.UNIVERSAL_STRING: {
      if (v.length % 4 !== 0) throw new DerError('UniversalString length is not a multiple of 4');
      let out = '';
      for (let i = 0; i < v.length; i += 4) {
        const cp = v.readUInt32BE(i);
        out += cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
      }
      return out;
    }
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.T61_STRING:
    case TAG.VISIBLE_STRING:
    case TAG.NUMERIC_STRING:
      return v.toString('latin1');
    default:
      return undefined;
  }
}


// ---------------------------------------------------------------- certificate fields

export const OID_SUBJECT_ALT_NAME = '2.5.29.17';
export const OID_AUTHORITY_KEY_ID = '2.5.29.35';

export interface CertExtension {
  oid: string;
  critical: boolean;
  /** extnValue's contents: the DER of the extension's own value. */
  value: Buffer;
}

export interface CertFields {
  /** The serial number INTEGER's contents octets exactly as encoded (sign octet included): what ARI's CertID uses (RFC 9773 §4.1). */
  serialDer: Buffer;
  /** The whole issuer and subject Name TLVs (RFC 5280 §4.1.2.4, §4.1.2.6). */
  issuerDer: Buffer;
  subjectDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** In certificate order; empty for a v1/v2 certificate. */
  extensions: CertExtension[];
}

/**
 * Read the fields above from a certificate's DER. Throws DerError on
 * anything that is not a Certificate as RFC 5280 §4.1 lays it out.
 */
export function readCertFields(certDer: Uint8Array): CertFields {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
  const cert = expectTag(readDer(certDer), TAG.SEQUENCE, 'Certificate');
  const tbs = expectTag(children(cert)[0], TAG.SEQUENCE, 'tbsCertificate');
  const f = children(tbs);
  // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, serialNumber, signature,
  //   issuer, validity, subject, subjectPublicKeyInfo, issuerUniqueID [1], subjectUniqueID [2], extensions [3] EXPLICIT }
  let i = f[0]?.tag === 0xa0 ? 1 : 0;
  const serial = expectTag(f[i++], TAG.INTEGER, 'serialNumber');
  expectTag(f[i++], TAG.SEQUENCE, 'signature');
  const issuer = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
  const validity = children(expectTag(f[i++], TAG.SEQUENCE, 'validity'));
  const subject = expectTag(f[i++], TAG.SEQUENCE, 'subject');
  expectTag(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  if (validity.length !== 2) throw new DerError('validity: expected notBefore and notAfter');
  const extensions: CertExtension[] = [];
  const extsWrapper = f.slice(i).find((t) => t.tag === 0xa3);
  if (extsWrapper) {
    const [exts] = children(extsWrapper);
    for (const ext of children(expectTag(exts, TAG.SEQUENCE, 'extensions'))) {
      // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
      const parts = children(expectTag(ext, TAG.SEQUENCE, 'extension'));
      if (parts.length !== 2 && parts.length !== 3) throw new DerError(`extension: expected 2 or 3 elements, found ${parts.length}`);
      const critical = parts.length === 3 && expectTag(parts[1], TAG.BOOLEAN, 'extension critical').value[0] !== 0;
      const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue').value;
      extensions.push({ oid: decodeOid(expectTag(parts[0], TAG.OID, 'extnID')), critical, value });
    }
  }
  return {
    serialDer: serial.value,
    issuerDer: issuer.der,
    subjectDer: subject.der,
    notBefore: decodeTime(validity[0]!),
    notAfter: decodeTime(validity[1]!),
    extensions,
  };
}

/** The first extension with `oid`, as @peculiar/x509's getExtension does. */
export function findExtension(fields: CertFields, oid: string): CertExtension | undefined {
  return fields.extensions.find((e) => e.oid === oid);
}

/**
 * Serial number as lower-case hex of its contents octets without the sign
 * octet DER adds when the high bit is set (X.690 §8.3.2), e.g. "0087654321" →
 * "87654321"; the same text as node's X509Certificate.serialNumber in lower case.
 */
export function serialHex(serialDer: Buffer): string {
  const s = serialDer.length > 1 && serialDer[0] === 0 && (serialDer[1]! & 0x80) !== 0 ? serialDer.subarray(1) : serialDer;
  return s.toString('hex');
}

/** dNSName entries (GeneralName [2] IA5String, RFC 5280 §4.2.1.6) of the subjectAltName extension, in order; [] without one. */
export function sanDnsNames(fields: CertFields): string[] {
  const ext = findExtension(fields, OID_SUBJECT_ALT_NAME);
  if (!ext) return [];
  // SubjectAltName ::= GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2] IMPLICIT IA5String → tag 0x82.
  const names = children(expectTag(readDer(ext.value), TAG.SEQUENCE, 'subjectAltName'));
  return names.filter((n) => n.tag === 0x82).map((n) => n.value.toString('latin1'));
}

/** keyIdentifier ([0] IMPLICIT OCTET STRING) of the authorityKeyIdentifier extension (RFC 5280 §4.2.1.1), if present and non-empty. */
export function authorityKeyId(fields: CertFields): Buffer | undefined {
  const ext = findExtension(fields, OID_AUTHORITY_KEY_ID);
  if (!ext) return undefined;
  const parts = children(expectTag(readDer(ext.value), TAG.SEQUENCE, 'authorityKeyIdentifier'));
  const kid = parts.find((p) => p.tag === 0x80)?.value;
  return kid && kid.length > 0 ? kid : undefined;
}

// Short names for attribute types, the same table @peculiar/x509 uses
// (RFC 4514 §3 plus E, G, I, SN, T), so log lines, status output and
// ValidationError messages read as before.
const ATTR_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
  '2.5.4.42': 'G',
  '2.5.4.43': 'I',
  '2.5.4.4': 'SN',
  '2.5.4.12': 'T',
};

// The DirectoryString choices (RFC 5280 §4.1.2.4) plus IA5String: shown as
// text. Any other value is shown as "#" and the hex of its encoding (RFC 4514 §2.4).
const TEXT_TAGS: ReadonlySet<number> = new Set([
  TAG.T61_STRING,
  TAG.PRINTABLE_STRING,
  TAG.UNIVERSAL_STRING,
  TAG.UTF8_STRING,
  TAG.BMP_STRING,
  TAG.IA5_STRING,
]);

/**
 * RFC 4514 §2.4 escaping, exactly as @peculiar/x509 does it (including
 * its quirk of hex-escaping only the first CR/LF/TAB), so messages do not change.
 */
function escapeValue(s: string): string {
  return s
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (c) => `\\${Buffer.from(c, 'utf8').toString('hex').toUpperCase()}`);
}

/**
 * A Name (RFC 5280 §4.1.2.4) as text for people: "CN=Pebble Intermediate CA
 * 1b2c3d", or "C=DE, O=Example, CN=mx1" — RDNs in certificate order (not
 * RFC 4514's reversed order) joined by ", ", multi-valued RDNs joined by "+".
 * This is the format mxcert has always shown; it is for display only: chaining
 * compares the DER bytes.
 */
export function nameToString(nameDer: Uint8Array): string {
  const rdns = children(expectTag(readDer(nameDer), TAG.SEQUENCE, 'Name'));
  return rdns
    .map((rdn) =>
      children(expectTag(rdn, TAG.SET, 'RelativeDistinguishedName'))
        .map((atv) => {
          // AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }
          const [type, value] = children(expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'));
          const oid = decodeOid(expectTag(type, TAG.OID, 'attribute type'));
          if (!value) throw new DerError(`attribute ${oid} has no value`);
          return `${ATTR_NAMES[oid] ?? oid}=${attrValueText(value)}`;
        })
        .join('+'),
    )
    .join(', ');
}

function attrValueText(value: Tlv): string {
  const text = TEXT_TAGS.has(value.tag) ? decodeString(value) : undefined;
  return text === undefined ? `#${value.der.toString('hex')}` : escapeValue(text);
}
