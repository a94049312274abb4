// A DER (X.690) writer for tests: builds certificates, Names and extensions
// with anything in them (odd string types, malformed times, look-alike OIDs)
// that no generator library will write, for src/ to read. Test-only: src/
// reads and writes X.509 with @peculiar/x509.

class DerError extends Error {}

function view(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
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
  return Buffer.concat([Buffer.from([contextTag(n, (inner[0]! & CONSTRUCTED) !== 0)]), view(inner).subarray(1)]);
}

/** PEM (RFC 7468 §2): base64 at 64 columns between BEGIN/END lines, ending in a newline. */
export function toPem(der: Uint8Array, label: string): string {
  const lines = view(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
