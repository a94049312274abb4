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

/**
 * Why an UPDATE answer was not accepted: `malformed` (does not parse as a DNS
 * message), `mismatch` (not the answer to our request: id, opcode, key),
 * `unsigned` (a success answer without a usable TSIG), `signature` (the MAC
 * does not verify), `time` (Time Signed outside ±fudge of our clock, BADTIME
 * of RFC 8945 §5.2.3).
 */
export type AnswerProblem = 'malformed' | 'mismatch' | 'unsigned' | 'signature' | 'time';

/** The server's answer to an UPDATE cannot be accepted; `problem` says why. */
export class DnsAnswerError extends DnsError {
  readonly problem: AnswerProblem;
  constructor(problem: AnswerProblem, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.problem = problem;
  }
}

function malformed(buf: Buffer, what: string): DnsAnswerError {
  return new DnsAnswerError('malformed', `malformed DNS answer (${buf.length} octets): ${what}`);
}

/** Every read of the answer goes through here: nothing past the end, nothing past the record it belongs to. */
function need(buf: Buffer, off: number, n: number, what: string, recordEnd?: number): void {
  if (off + n > (recordEnd ?? buf.length)) throw malformed(buf, `${what} at offset ${off} runs past the end of the ${recordEnd === undefined ? 'message' : 'record'}`);
}

function u16At(buf: Buffer, off: number, what: string, limit?: number): number {
  need(buf, off, 2, what, limit);
  return buf.readUInt16BE(off);
}

/**
 * Read the (possibly compressed, RFC 1035 §4.1.4) name at `off`: its text in
 * lower case without the final dot, and the offset just past it in place.
 * Pointers must point backwards and are followed at most 127 times, and a
 * name is at most 255 octets (RFC 1035 §2.3.4), so the work is bounded
 * whatever the input; label types 01 and 10 are not defined
 * for this use (RFC 6891 §5) and count as malformed.
 */
function readName(buf: Buffer, off: number, what: string, recordEnd?: number): { name: string; end: number } {
  const labels: string[] = [];
  let octets = 1;
  let end = -1;
  let pos = off;
  let hops = 0;
  for (;;) {
    need(buf, pos, 1, what, end < 0 ? recordEnd : undefined);
    const len = buf[pos]!;
    if ((len & 0xc0) === 0xc0) {
      const target = u16At(buf, pos, what, end < 0 ? recordEnd : undefined) & 0x3fff;
      if (target >= pos) throw malformed(buf, `${what} at offset ${off} has a compression pointer that does not point backwards`);
      // A name has at most 127 labels; more pointers than that is a loop through labels, not a name.
      if (++hops > 127) throw malformed(buf, `${what} at offset ${off} follows more than 127 compression pointers`);
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if (len & 0xc0) throw malformed(buf, `${what} at offset ${off} uses the undefined label type ${len >> 6}`);
    if (len === 0) return { name: labels.join('.'), end: end < 0 ? pos + 1 : end };
    octets += len + 1;
    if (octets > 255) throw malformed(buf, `${what} at offset ${off} is longer than 255 octets`);
    need(buf, pos + 1, len, what, end < 0 ? recordEnd : undefined);
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len).toLowerCase());
    pos += 1 + len;
  }
}

export interface UpdateAnswer {
  rcode: string;
  /** TSIG error of the answer, e.g. BADSIG, if any. */
  tsigError?: string;
}

interface Tsig {
  /** Offset of the TSIG record in the answer: the MAC covers everything before it. */
  start: number;
  owner: string;
  algorithm: string;
  time: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

interface Sections {
  rcode: string;
  counts: [number, number, number, number];
  tsig?: Tsig;
}

/**
 * Walk the whole answer (RFC 1035 §4.1, RFC 2136 §2): header, zone section,
 * then every record with its bounds checked. A TSIG record is only valid as
 * the very last record of the additional section (RFC 8945 §5.4 via §5.2),
 * and nothing may follow the last record: bytes outside the records would not
 * be covered by the MAC.
 */
function readSections(buf: Buffer, id: number): Sections {
  if (buf.length < 12) throw malformed(buf, 'shorter than the 12-octet DNS header');
  if (buf.readUInt16BE(0) !== id) throw new DnsAnswerError('mismatch', `DNS answer with message id ${buf.readUInt16BE(0)}, not ${id}: not the answer to this update`);
  const flags = buf.readUInt16BE(2);
  if (!(flags & 0x8000)) throw new DnsAnswerError('mismatch', 'the DNS message received is a request, not a response');
  if (((flags >> 11) & 0xf) !== OPCODE_UPDATE) throw new DnsAnswerError('mismatch', `DNS answer with opcode ${(flags >> 11) & 0xf}, not UPDATE (${OPCODE_UPDATE})`);
  const rcodeNum = flags & 0xf;
  const rcode = RCODES[rcodeNum] ?? `RCODE${rcodeNum}`;
  const counts: Sections['counts'] = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  let off = 12;
  for (let i = 0; i < counts[0]; i++) {
    off = readName(buf, off, `zone name ${i + 1}`).end;
    need(buf, off, 4, `type and class of zone ${i + 1}`);
    off += 4;
  }
  let tsig: Tsig | undefined;
  const rrTotal = counts[1] + counts[2] + counts[3];
  for (let i = 0; i < rrTotal; i++) {
    const start = off;
    const owner = readName(buf, off, `owner name of record ${i + 1}`);
    off = owner.end;
    need(buf, off, 10, `type, class, TTL and length of record ${i + 1}`);
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    need(buf, off + 10, rdlen, `data of record ${i + 1} (${rdlen} octets)`);
    if (type === T_TSIG) {
      if (i !== rrTotal - 1 || counts[3] === 0) throw malformed(buf, `TSIG record ${i + 1} of ${rrTotal} is not the last record of the additional section`);
      if (buf.readUInt16BE(off + 2) !== C_ANY || buf.readUInt32BE(off + 4) !== 0) throw malformed(buf, 'TSIG record class is not ANY or its TTL is not 0 (RFC 8945 §4.2)');
      tsig = readTsigRdata(buf, start, owner.name, off + 10, off + 10 + rdlen);
    }
    off += 10 + rdlen;
  }
  if (off !== buf.length) throw malformed(buf, `${buf.length - off} octets after the last record`);
  return { rcode, counts, ...(tsig ? { tsig } : {}) };
}

/** TSIG RDATA (RFC 8945 §4.2), which must fill exactly [from, to). */
function readTsigRdata(buf: Buffer, start: number, owner: string, from: number, to: number): Tsig {
  const alg = readName(buf, from, 'TSIG algorithm name', to);
  let p = alg.end;
  need(buf, p, 10, 'TSIG time, fudge and MAC size', to);
  const time = buf.readUIntBE(p, 6);
  const fudge = buf.readUInt16BE(p + 6);
  const macLen = buf.readUInt16BE(p + 8);
  p += 10;
  need(buf, p, macLen, `TSIG MAC (${macLen} octets)`, to);
  const mac = buf.subarray(p, p + macLen);
  p += macLen;
  need(buf, p, 6, 'TSIG original id, error and other length', to);
  const originalId = buf.readUInt16BE(p);
  const error = buf.readUInt16BE(p + 2);
  const otherLen = buf.readUInt16BE(p + 4);
  p += 6;
  need(buf, p, otherLen, `TSIG other data (${otherLen} octets)`, to);
  const other = buf.subarray(p, p + otherLen);
  if (p + otherLen !== to) throw malformed(buf, `${to - p - otherLen} octets after the TSIG fields inside the TSIG record`);
  return { start, owner, algorithm: alg.name, time, fudge, mac, originalId, error, other };
}

/**
 * Parse and verify the server's answer to our UPDATE (RFC 8945 §5.4): a
 * NOERROR answer must carry a TSIG with our key and algorithm whose MAC
 * covers our request MAC and the answer, and whose Time Signed is within its
 * fudge of `nowMs` (§5.2.3); error answers about the key itself (BADSIG,
 * BADKEY) come unsigned. Anything malformed is a DnsAnswerError naming what,
 * never an exception of another kind.
 */
export function parseUpdateAnswer(buf: Buffer, id: number, requestMac: Buffer, key: TsigKey, nowMs = Date.now()): UpdateAnswer {
  const alg = ALGORITHMS[key.algorithm.toLowerCase()];
  if (!alg) throw new DnsError(`unsupported TSIG algorithm ${JSON.stringify(key.algorithm)}`);
  const { rcode, counts, tsig } = readSections(buf, id);
  if (!tsig) {
    // Unsigned: acceptable only as a refusal (the server could not or would not sign).
    if (rcode === 'NOERROR') throw new DnsAnswerError('unsigned', 'the server answered the update without a TSIG signature');
    return { rcode };
  }
  const keyName = key.name.replace(/\.$/, '').toLowerCase();
  if (tsig.owner !== keyName) throw new DnsAnswerError('mismatch', `the answer is signed with key "${tsig.owner}", not "${keyName}"`);
  if (tsig.algorithm !== alg.wire.replace(/\.$/, '')) throw new DnsAnswerError('mismatch', `the answer is signed with algorithm ${tsig.algorithm}, not ${alg.wire.replace(/\.$/, '')}`);
  const tsigError = tsig.error ? (TSIG_ERRORS[tsig.error] ?? `TSIG${tsig.error}`) : undefined;
  if (tsig.mac.length === 0) {
    if (rcode === 'NOERROR' && !tsigError) throw new DnsAnswerError('unsigned', 'the server answered the update with an empty TSIG signature');
    return { rcode, tsigError };
  }
  const unsigned = Buffer.from(buf.subarray(0, tsig.start));
  unsigned.writeUInt16BE(tsig.originalId, 0);
  unsigned.writeUInt16BE(counts[3] - 1, 10);
  const expect = createHmac(alg.hash, Buffer.from(key.secret, 'base64'))
    .update(u16(requestMac.length))
    .update(requestMac)
    .update(unsigned)
    .update(tsigVariables(key, nameWire(alg.wire), tsig.time, tsig.fudge, tsig.error, tsig.other))
    .digest();
  if (expect.length !== tsig.mac.length || !timingSafeEqual(expect, tsig.mac)) {
    throw new DnsAnswerError('signature', 'the TSIG signature of the answer does not verify');
  }
  checkTime(tsig, nowMs);
  return { rcode, tsigError };
}

/**
 * RFC 8945 §5.2.3, which §5.4 applies to answers: Time Signed must be within
 * ±fudge of local time. The fudge is the answer's own, covered by the MAC
 * just verified (BIND's dns_tsig_verify does the same).
 */
function checkTime(tsig: Tsig, nowMs: number): void {
  const now = Math.floor(nowMs / 1000);
  if (Math.abs(now - tsig.time) <= tsig.fudge) return;
  const at = (s: number): string => new Date(s * 1000).toISOString();
  throw new DnsAnswerError(
    'time',
    `TSIG time of answer ${at(tsig.time)} is outside ±${tsig.fudge} s of local time ${at(now)} (BADTIME, RFC 8945 §5.2.3): clocks out of sync, or a replayed answer`,
  );
}
