// RFC 2136 UPDATE messages signed with TSIG (RFC 8945), built and sent in
// process over TCP. The alternative, one nsupdate process per update, costs
// a fork/exec and BIND's library start-up each time: two per dns-01
// challenge, hundreds in a pass over many certificates.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { DnsError } from '../errors.js';

export const TYPE_CODES: Readonly<Record<string, number>> = { TXT: 16, TLSA: 52 };
const T_SOA = 6;
const T_ANY = 255;
const T_TSIG = 250;
const C_IN = 1;
const C_NONE = 254;
const C_ANY = 255;
const OPCODE_UPDATE = 5;
const FUDGE = 300;

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];
const TSIG_ERRORS: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 19: 'BADMODE', 20: 'BADNAME', 21: 'BADALG', 22: 'BADTRUNC' };

const ALGORITHMS: Record<string, { wire: string; hash: string }> = {
  'hmac-md5': { wire: 'hmac-md5.sig-alg.reg.int.', hash: 'md5' },
  'hmac-sha1': { wire: 'hmac-sha1.', hash: 'sha1' },
  'hmac-sha224': { wire: 'hmac-sha224.', hash: 'sha224' },
  'hmac-sha256': { wire: 'hmac-sha256.', hash: 'sha256' },
  'hmac-sha384': { wire: 'hmac-sha384.', hash: 'sha384' },
  'hmac-sha512': { wire: 'hmac-sha512.', hash: 'sha512' },
};

/** One resource record of the prerequisite or update section (RFC 2136 §2.4, §2.5). */
export interface WireRecord {
  name: string;
  /** A type code, or T_ANY for yxdomain/nxdomain. */
  type: number;
  class: number;
  ttl: number;
  rdata: Buffer;
}

export const CLASS = { IN: C_IN, NONE: C_NONE, ANY: C_ANY } as const;
export const TYPE_ANY = T_ANY;

/** Uncompressed wire form of an absolute name, lower-cased (canonical, RFC 4034 §6.2). */
export function nameWire(name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l.toLowerCase(), 'ascii');
    if (b.length > 63) throw new DnsError(`label too long in ${name}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** RDATA for the types mxcert updates: TXT from the raw value, TLSA from "u s m hex". */
export function encodeRdata(type: string, data: string): Buffer {
  if (type === 'TXT') {
    const bytes = Buffer.from(data, 'utf8');
    const parts: Buffer[] = [];
    for (let i = 0; i === 0 || i < bytes.length; i += 255) {
      const chunk = bytes.subarray(i, i + 255);
      parts.push(Buffer.from([chunk.length]), chunk);
    }
    return Buffer.concat(parts);
  }
  if (type === 'TLSA') {
    const m = /^\s*(\d{1,3})\s+(\d{1,3})\s+(\d{1,3})\s+([0-9a-fA-F\s]+)$/.exec(data);
    const hex = m?.[4]!.replace(/\s+/g, '') ?? '';
    if (!m || hex.length % 2 !== 0 || [m[1], m[2], m[3]].some((x) => Number(x) > 255)) throw new DnsError(`invalid TLSA data ${JSON.stringify(data)}`);
    return Buffer.concat([Buffer.from([Number(m[1]), Number(m[2]), Number(m[3])]), Buffer.from(hex, 'hex')]);
  }
  throw new DnsError(`no wire encoding for ${type}`);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

function rr(r: WireRecord): Buffer {
  return Buffer.concat([nameWire(r.name), u16(r.type), u16(r.class), u32(r.ttl), u16(r.rdata.length), r.rdata]);
}

export interface TsigKey {
  name: string;
  algorithm: string;
  /** base64 */
  secret: string;
}

function tsigVariables(key: TsigKey, algWire: Buffer, time: number, fudge: number, error: number, other: Buffer): Buffer {
  return Buffer.concat([nameWire(key.name), u16(C_ANY), u32(0), algWire, u48(time), u16(fudge), u16(error), u16(other.length), other]);
}

/** The signed UPDATE message, and what verifying the answer needs. */
export function buildUpdate(
  zone: string,
  prereqs: WireRecord[],
  updates: WireRecord[],
  key: TsigKey,
  now = Date.now(),
): { message: Buffer; id: number; mac: Buffer } {
  const alg = ALGORITHMS[key.algorithm.toLowerCase()];
  if (!alg) throw new DnsError(`unsupported TSIG algorithm ${JSON.stringify(key.algorithm)}`);
  const id = randomBytes(2).readUInt16BE();
  const header = Buffer.concat([u16(id), u16(OPCODE_UPDATE << 11), u16(1), u16(prereqs.length), u16(updates.length), u16(0)]);
  const body = Buffer.concat([header, nameWire(zone), u16(T_SOA), u16(C_IN), ...prereqs.map(rr), ...updates.map(rr)]);
  const algWire = nameWire(alg.wire);
  const time = Math.floor(now / 1000);
  const mac = createHmac(alg.hash, Buffer.from(key.secret, 'base64'))
    .update(body)
    .update(tsigVariables(key, algWire, time, FUDGE, 0, Buffer.alloc(0)))
    .digest();
  const tsigRdata = Buffer.concat([algWire, u48(time), u16(FUDGE), u16(mac.length), mac, u16(id), u16(0), u16(0)]);
  const message = Buffer.concat([body, rr({ name: key.name, type: T_TSIG, class: C_ANY, ttl: 0, rdata: tsigRdata })]);
  message.writeUInt16BE(1, 10); // ARCOUNT: the TSIG record
  return { message, id, mac };
}

function skipName(buf: Buffer, off: number): number {
  for (;;) {
    if (off >= buf.length) throw new DnsError('truncated name in DNS response');
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2;
    off += 1 + len;
  }
}

export interface UpdateAnswer {
  rcode: string;
  /** TSIG error of the answer, e.g. BADSIG, if any. */
  tsigError?: string;
}

/**
 * Parse and verify the server's answer (RFC 8945 §5.3): a NOERROR answer must
 * carry a TSIG whose MAC covers our request MAC and the answer; error answers
 * about the key itself (BADSIG, BADKEY, BADTIME) come unsigned.
 */
export function parseUpdateAnswer(buf: Buffer, id: number, requestMac: Buffer, key: TsigKey): UpdateAnswer {
  if (buf.length < 12) throw new DnsError('short DNS response');
  if (buf.readUInt16BE(0) !== id) throw new DnsError('DNS response with a different message id');
  const flags = buf.readUInt16BE(2);
  if (!(flags & 0x8000)) throw new DnsError('DNS response is not a response');
  const rcodeNum = flags & 0xf;
  const rcode = RCODES[rcodeNum] ?? `RCODE${rcodeNum}`;
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  let off = 12;
  for (let i = 0; i < counts[0]!; i++) off = skipName(buf, off) + 4;
  let tsigStart = -1;
  let tsigRdata = -1;
  const rrTotal = counts[1]! + counts[2]! + counts[3]!;
  for (let i = 0; i < rrTotal; i++) {
    const start = off;
    off = skipName(buf, off);
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    if (type === T_TSIG && i === rrTotal - 1) {
      tsigStart = start;
      tsigRdata = off + 10;
    }
    off += 10 + rdlen;
    if (off > buf.length) throw new DnsError('truncated DNS response');
  }
  if (tsigStart < 0) {
    // Unsigned: acceptable only as a refusal (the server could not or would not sign).
    if (rcode === 'NOERROR') throw new DnsError('the server answered the update without a TSIG signature');
    return { rcode };
  }
  let p = skipName(buf, tsigRdata);
  const time = buf.readUIntBE(p, 6);
  const fudge = buf.readUInt16BE(p + 6);
  const macLen = buf.readUInt16BE(p + 8);
  const mac = buf.subarray(p + 10, p + 10 + macLen);
  p += 10 + macLen;
  const origId = buf.readUInt16BE(p);
  const error = buf.readUInt16BE(p + 2);
  const otherLen = buf.readUInt16BE(p + 4);
  const other = buf.subarray(p + 6, p + 6 + otherLen);
  const tsigError = error ? (TSIG_ERRORS[error] ?? `TSIG${error}`) : undefined;
  if (macLen === 0) {
    if (rcode === 'NOERROR' && !tsigError) throw new DnsError('the server answered the update with an empty TSIG signature');
    return { rcode, tsigError };
  }
  const alg = ALGORITHMS[key.algorithm.toLowerCase()]!;
  const unsigned = Buffer.from(buf.subarray(0, tsigStart));
  unsigned.writeUInt16BE(origId, 0);
  unsigned.writeUInt16BE(counts[3]! - 1, 10);
  const expect = createHmac(alg.hash, Buffer.from(key.secret, 'base64'))
    .update(u16(requestMac.length))
    .update(requestMac)
    .update(unsigned)
    .update(tsigVariables(key, nameWire(alg.wire), time, fudge, error, other))
    .digest();
  if (expect.length !== mac.length || !timingSafeEqual(expect, mac)) throw new DnsError('the TSIG signature of the answer does not verify');
  return { rcode, tsigError };
}

