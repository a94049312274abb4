// A minimal DER (ITU-T X.690, Distinguished Encoding Rules) reader and writer:
// just enough to read the certificate fields mxcert needs (cert-fields.ts) and
// to write a PKCS#10 request (keys/csr.ts) without an ASN.1 library, whose
// import cost dominated `mxcert renew` start-up.
//
// Scope, on purpose: single-octet identifiers (tag numbers 0–30, X.690
// §8.1.2.2 — every tag X.509 and PKCS#10 use), definite lengths only. The
// reader works on views of the input buffer (no copies) and throws DerError on
// anything malformed instead of guessing.
import { MxcertError } from '../errors.js';

/** Malformed or unsupported DER. */
export class DerError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('der', message, options);
  }
}

/** Universal tags (X.680 §8.4 table 1) as complete identifier octets; SEQUENCE and SET are constructed (X.690 §8.9, §8.11). */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

const CONSTRUCTED = 0x20;
const CONTEXT = 0x80;

/** Identifier octet of context-specific tag [n] (X.690 §8.1.2: class bits 10, then the constructed bit). */
export function contextTag(n: number, constructed: boolean): number {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new DerError(`context tag [${n}] needs the high-tag-number form, which is not supported`);
  return CONTEXT | (constructed ? CONSTRUCTED : 0) | n;
}

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
  return (t.tag & CONSTRUCTED) !== 0;
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

// ---------------------------------------------------------------- writing

/** Length octets in the minimal form DER requires (X.690 §10.1, §8.1.3). */
function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** A TLV with identifier octet `tag` and contents `content`. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  if ((tag & 0x1f) === 0x1f) throw new DerError('high-tag-number identifiers are not supported');
  return Buffer.concat([Buffer.from([tag]), lengthOctets(content.length), content]);
}

/** SEQUENCE / SEQUENCE OF of already-encoded elements, in the given order. */
export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(items));
}

/** SET OF already-encoded elements: DER orders them by their encodings (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Buffer {
  return tlv(TAG.SET, Buffer.concat([...items].sort((a, b) => Buffer.compare(a, b))));
}

/**
 * INTEGER (X.690 §8.3): two's complement in the fewest octets. A bigint or
 * number is encoded by value (negative allowed); a byte array is taken as an
 * unsigned magnitude (a serial number, an RSA modulus): leading zeros dropped,
 * one 0x00 added when the high bit is set so it stays positive.
 */
export function integer(value: bigint | number | Uint8Array): Buffer {
  let bytes: number[];
  if (typeof value === 'number' || typeof value === 'bigint') {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new DerError(`INTEGER ${value} is not a safe integer`);
    let v = BigInt(value);
    bytes = [];
    // Emit low octets until the rest is pure sign extension of the top octet's bit 8.
    for (;;) {
      const b = Number(v & 0xffn);
      bytes.unshift(b);
      v >>= 8n;
      if ((v === 0n && (b & 0x80) === 0) || (v === -1n && (b & 0x80) !== 0)) break;
    }
  } else {
    let i = 0;
    while (i < value.length - 1 && value[i] === 0) i++;
    bytes = [...value.subarray(i)];
    if (bytes.length === 0) bytes = [0];
    if ((bytes[0]! & 0x80) !== 0) bytes.unshift(0);
  }
  return tlv(TAG.INTEGER, Buffer.from(bytes));
}

/** BOOLEAN: DER writes TRUE as 0xff (X.690 §11.1). */
export function boolean(v: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
}

/** NULL (X.690 §8.8), e.g. the parameters of sha256WithRSAEncryption. */
export function nullValue(): Buffer {
  return Buffer.from([TAG.NULL, 0x00]);
}

/** OBJECT IDENTIFIER from dotted form (X.690 §8.19). */
export function oid(dotted: string): Buffer {
  if (!/^[0-2]\.(0|[1-9]\d*)(\.(0|[1-9]\d*))*$/.test(dotted)) throw new DerError(`"${dotted}" is not a dotted OID`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs[0]! < 2n && arcs[1]! >= 40n) throw new DerError(`OID ${dotted}: second arc must be below 40 under arc ${arcs[0]}`);
  const subs = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const s of subs) {
    const groups: number[] = [Number(s & 0x7fn)];
    for (let v = s >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...groups);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** UTF8String: the profile's preferred DirectoryString (RFC 5280 §4.1.2.6). */
export function utf8String(s: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
}

/** PrintableString: A–Z a–z 0–9 space ' ( ) + , - . / : = ? only (X.680 §41.4). */
export function printableString(s: string): Buffer {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) throw new DerError(`"${s}" has characters a PrintableString cannot hold`);
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

/** IA5String: 7-bit ASCII (X.680 §41.2), e.g. a dNSName. */
export function ia5String(s: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(s)) throw new DerError(`"${s}" is not ASCII, which an IA5String requires`);
  return tlv(TAG.IA5_STRING, Buffer.from(s, 'latin1'));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG.OCTET_STRING, bytes);
}

/** BIT STRING (X.690 §8.6): an initial octet with the number of unused bits in the last octet, then the bits. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new DerError(`invalid BIT STRING unused-bit count ${unusedBits}`);
  }
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/** UTCTime YYMMDDHHMMSSZ, for years 1950–2049 (RFC 5280 §4.1.2.5.1). */
export function utcTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 1950 || y > 2049) throw new DerError(`UTCTime cannot hold year ${y}`);
  return tlv(TAG.UTC_TIME, Buffer.from(timeDigits(d).slice(2) + 'Z', 'latin1'));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.2). */
export function generalizedTime(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new DerError(`GeneralizedTime cannot hold year ${y}`);
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(timeDigits(d) + 'Z', 'latin1'));
}

/** A validity time as RFC 5280 §4.1.2.5 wants it: UTCTime through 2049, GeneralizedTime from 2050. */
export function certTime(d: Date): Buffer {
  return d.getUTCFullYear() < 2050 ? utcTime(d) : generalizedTime(d);
}

function timeDigits(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    p(d.getUTCFullYear(), 4) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) + p(d.getUTCHours()) + p(d.getUTCMinutes()) + p(d.getUTCSeconds())
  );
}

/** [n] EXPLICIT: a constructed context tag around the whole inner encoding (X.690 §8.14.2). */
export function explicit(n: number, inner: Uint8Array): Buffer {
  return tlv(contextTag(n, true), inner);
}

/**
 * [n] IMPLICIT: the inner encoding with its identifier replaced by the
 * context tag, keeping the constructed bit (X.690 §8.14.3); e.g.
 * `implicit(2, ia5String(name))` is a GeneralName dNSName.
 */
export function implicit(n: number, inner: Uint8Array): Buffer {
  const t = readDer(inner);
  return Buffer.concat([Buffer.from([contextTag(n, isConstructed(t))]), view(inner).subarray(1)]);
}

/** PEM (RFC 7468 §2): base64 at 64 columns between BEGIN/END lines, ending in a newline. */
export function toPem(der: Uint8Array, label: string): string {
  const lines = view(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
