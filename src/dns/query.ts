// Direct DNS queries to one server, without the system resolver: visibility
// checks (dns-01, DANE) must ask each authoritative server itself, see the AA
// bit and the RRSIGs, and not be fooled by any cache in between.
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { Socket, isIPv6 } from 'node:net';
import dnsPacket from 'dns-packet';
import { DnsError } from '../errors.js';
import type { DnsServer } from './types.js';

export interface DnsRecord {
  /** Owner name as sent, without the trailing dot (`.` for the root). */
  name: string;
  type: string;
  ttl: number;
  /** dns-packet's decoded RDATA: a string (A, AAAA, NS…), an object (SOA, TLSA, RRSIG…), Buffer[] for TXT. */
  data: unknown;
}

export interface DnsResponse {
  rcode: string;
  /** The AA bit: the server answered from a zone it is authoritative for. */
  authoritative: boolean;
  truncated: boolean;
  /** The AD bit (only meaningful from a validating resolver). */
  authenticData: boolean;
  answers: DnsRecord[];
  authorities: DnsRecord[];
  /** Additional section without the OPT pseudo-record. */
  additionals: DnsRecord[];
}

export interface QueryOptions {
  /** Default true: TCP avoids truncation and is what we use for authoritative checks. */
  tcp?: boolean;
  /** Set the EDNS0 DO bit (RFC 3225) so the server includes RRSIGs. */
  dnssec?: boolean;
  /** Default false: we talk to authoritative servers, which must answer from their own data. */
  recursion?: boolean;
  /** Whole-query deadline, connect included. Default 5000 ms. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
// Large enough for a signed TXT/TLSA RRset over UDP; TCP has no such limit.
const EDNS_UDP_SIZE = 4096;

/** Build the query packet. Exported for tests. */
export function buildQuery(name: string, type: string, opts: { dnssec?: boolean; recursion?: boolean; id?: number } = {}): dnsPacket.Packet {
  // Always send EDNS0 (RFC 6891): it lifts the 512-byte UDP limit and carries DO.
  const opt = {
    type: 'OPT',
    name: '.',
    udpPayloadSize: EDNS_UDP_SIZE,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: opts.dnssec ? dnsPacket.DNSSEC_OK : 0,
    flag_do: Boolean(opts.dnssec),
    options: [],
  } as unknown as dnsPacket.Answer;
  return {
    type: 'query',
    id: opts.id ?? randomInt(0, 0x10000),
    flags: opts.recursion ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ type: type.toUpperCase() as dnsPacket.RecordType, name: stripDot(name), class: 'IN' }],
    additionals: [opt],
  };
}

/** Turn a decoded packet into the shape the rest of mxcert uses. Exported for tests. */
export function toDnsResponse(pkt: dnsPacket.Packet): DnsResponse {
  const decoded = pkt as Partial<dnsPacket.DecodedPacket> & { rcode?: string };
  const opt = (pkt.additionals ?? []).find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined;
  let rcode = decoded.rcode ?? 'NOERROR';
  // RFC 6891 §6.1.3: the OPT record carries the upper 8 bits of a 12-bit RCODE.
  if (opt?.extendedRcode) {
    const full = (opt.extendedRcode << 4) | ((pkt.flags ?? 0) & 0xf);
    rcode = full === 16 ? 'BADVERS' : `RCODE_${full}`;
  }
  const flags = pkt.flags ?? 0;
  return {
    rcode,
    authoritative: decoded.flag_aa ?? (flags & dnsPacket.AUTHORITATIVE_ANSWER) !== 0,
    truncated: decoded.flag_tc ?? (flags & dnsPacket.TRUNCATED_RESPONSE) !== 0,
    authenticData: decoded.flag_ad ?? (flags & dnsPacket.AUTHENTIC_DATA) !== 0,
    answers: (pkt.answers ?? []).map(toRecord),
    authorities: (pkt.authorities ?? []).map(toRecord),
    additionals: (pkt.additionals ?? []).filter((a) => a.type !== 'OPT').map(toRecord),
  };
}

function toRecord(a: dnsPacket.Answer): DnsRecord {
  const r = a as { name: string; type: string; ttl?: number; data?: unknown };
  return { name: r.name, type: r.type, ttl: r.ttl ?? 0, data: r.data };
}

/**
 * Ask `server` one question. Resolves with whatever the server answered
 * (any rcode); rejects with DnsError only when there is no usable answer
 * (timeout, connection failure, malformed or mismatched reply).
 */
export async function queryDns(server: DnsServer, name: string, type: string, opts: QueryOptions = {}): Promise<DnsResponse> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const query = buildQuery(name, type, opts);
  const where = formatServer(server);
  const what = `${type.toUpperCase()} ${stripDot(name)}.`;
  try {
    let pkt: dnsPacket.Packet;
    if (opts.tcp === false) {
      pkt = await exchangeUdp(server, dnsPacket.encode(query), timeoutMs);
      // RFC 7766 §5: a truncated UDP answer is incomplete; retry the same question over TCP.
      if (toDnsResponse(pkt).truncated) {
        pkt = await exchangeTcp(server, dnsPacket.encode(query), timeoutMs);
      }
    } else {
      pkt = await exchangeTcp(server, dnsPacket.encode(query), timeoutMs);
    }
    checkMatches(query, pkt);
    return toDnsResponse(pkt);
  } catch (err) {
    const reason = (err as Error).message;
    throw new DnsQueryError(`query ${what} to ${where}: ${reason}`, reason, { cause: err instanceof DnsError ? err.cause : err });
  }
}

/** No usable answer from one server; `reason` is the message without the query/server prefix. */
export class DnsQueryError extends DnsError {
  readonly reason: string;
  constructor(message: string, reason: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

/** A reply must echo our ID and question, or it belongs to someone else (RFC 5452 §9.1). */
function checkMatches(query: dnsPacket.Packet, reply: dnsPacket.Packet): void {
  if (reply.id !== query.id) throw new DnsError(`reply ID ${reply.id} does not match query ID ${query.id}`);
  if (reply.type !== 'response') throw new DnsError('reply is not a response');
  const q = query.questions?.[0];
  const r = reply.questions?.[0];
  // A server may legitimately omit the question only with some errors (e.g. FORMERR); accept that.
  if (q && r && (r.type !== q.type || !sameName(r.name, q.name))) {
    throw new DnsError(`reply is for ${r.type} ${r.name}, not ${q.type} ${q.name}`);
  }
}

/**
 * Decode a reply. dns-packet checks its reads against the buffer and
 * throws plain Errors (or RangeErrors) on malformed input; every one of them
 * becomes a DnsError here, so a hostile or broken server yields a DNS error
 * naming the problem, never another kind of exception. Exported for tests.
 */
export function decodeReply(raw: Buffer): dnsPacket.Packet {
  try {
    return dnsPacket.decode(raw);
  } catch (err) {
    throw new DnsError(`malformed reply (${raw.length} octets): ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function exchangeTcp(server: DnsServer, message: Buffer, timeoutMs: number): Promise<dnsPacket.Packet> {
  return decodeReply(await exchangeTcpRaw(server, message, timeoutMs));
}

/**
 * One DNS message over TCP, RFC 1035 §4.2.2 framing: `message` is sent with
 * its two-byte length prefix; resolves with the first reply, unframed (it may
 * arrive in pieces). Shared by queries and RFC 2136 UPDATEs. A timeout is a
 * DnsError with `timedOut: true`.
 */
export function exchangeTcpRaw(server: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    // Chunks are kept as they come and joined once: concatenating on every
    // chunk would copy O(n²) octets for a reply sent one octet at a time.
    const chunks: Buffer[] = [];
    let received = 0;
    let expected: number | undefined;
    let settled = false;
    const finish = (err: Error | undefined, reply?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(Object.assign(new DnsError(`no answer over TCP within ${timeoutMs} ms`), { timedOut: true })), timeoutMs);
    socket.on('error', (err) => finish(new DnsError(`TCP: ${err.message}`, { cause: err })));
    socket.on('close', () => finish(new DnsError('TCP connection closed before a complete reply')));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < 2) return;
      expected ??= Buffer.concat(chunks).readUInt16BE(0) + 2;
      if (received >= expected) finish(undefined, Buffer.concat(chunks, received).subarray(2, expected));
    });
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(message.length);
    socket.connect({ host: server.host, port: server.port }, () => {
      socket.write(Buffer.concat([prefix, message]));
    });
  });
}

function exchangeUdp(server: DnsServer, message: Buffer, timeoutMs: number): Promise<dnsPacket.Packet> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4');
    const expectedId = message.readUInt16BE(0);
    let settled = false;
    const finish = (err: Error | undefined, pkt?: dnsPacket.Packet): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(pkt!);
    };
    const timer = setTimeout(() => finish(new DnsError(`no answer over UDP within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => finish(new DnsError(`UDP: ${err.message}`, { cause: err })));
    socket.on('message', (msg, rinfo) => {
      // Ignore stray datagrams rather than failing: only the server's reply with our ID counts.
      if (rinfo.port !== server.port || msg.length < 12 || msg.readUInt16BE(0) !== expectedId) return;
      try {
        finish(undefined, decodeReply(msg));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.connect(server.port, server.host, () => {
      socket.send(message, (err) => {
        if (err) finish(new DnsError(`UDP send: ${err.message}`, { cause: err }));
      });
    });
  });
}

/** The values of the TXT records at `name`, each record's character-strings joined (RFC 8555 §8.4 values fit one string, but longer ones are split). */
export function txtValues(resp: DnsResponse, name: string): string[] {
  return resp.answers
    .filter((r) => r.type === 'TXT' && sameName(r.name, name))
    .map((r) => joinTxt(r.data));
}

function joinTxt(data: unknown): string {
  const chunks = Array.isArray(data) ? data : [data];
  return chunks.map((c) => (Buffer.isBuffer(c) ? c.toString('utf8') : String(c))).join('');
}

/** The zone serial from an SOA in the answer (SOA query) or authority section (negative answers, RFC 2308 §3). */
export function soaSerial(resp: DnsResponse): number | undefined {
  const soa = [...resp.answers, ...resp.authorities].find((r) => r.type === 'SOA');
  const serial = (soa?.data as { serial?: number } | undefined)?.serial;
  return typeof serial === 'number' ? serial : undefined;
}

/** DNS names compare case-insensitively (RFC 4343), with or without the trailing dot. */
export function sameName(a: string, b: string): boolean {
  return stripDot(a).toLowerCase() === stripDot(b).toLowerCase();
}

export function stripDot(name: string): string {
  return name.length > 1 && name.endsWith('.') ? name.slice(0, -1) : name;
}

/** `127.0.0.1:53`, `[::1]:53` */
export function formatServer(s: DnsServer): string {
  return isIPv6(s.host) ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** A compact, log-safe description of an answer, for error messages. */
export function describeResponse(resp: DnsResponse): string {
  const flags = resp.authoritative ? ' aa' : ' (not authoritative)';
  const records = resp.answers.map((r) => `${r.type} ${describeData(r)}`);
  return `${resp.rcode}${flags}${records.length ? `: ${records.join(', ')}` : ', no records'}`;
}

function describeData(r: DnsRecord): string {
  if (r.type === 'TXT') return JSON.stringify(joinTxt(r.data));
  if (r.type === 'RRSIG') return `(${(r.data as { typeCovered?: string } | undefined)?.typeCovered ?? '?'})`;
  if (r.type === 'TLSA') {
    const d = r.data as { usage: number; selector: number; matchingType: number; certificate: Buffer };
    return `${d.usage} ${d.selector} ${d.matchingType} ${d.certificate.toString('hex')}`;
  }
  return typeof r.data === 'string' ? r.data : JSON.stringify(r.data);
}
