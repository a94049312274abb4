// The in-process route for RFC 2136 updates: the UPDATE message is built and
// TSIG-signed here (src/dns/update-wire.ts) and sent over TCP, and the
// answer's TSIG is verified before its rcode is believed (RFC 8945 §5.3).
// Only for the record types update-wire.ts can encode (TXT, TLSA); anything
// else goes through nsupdate (src/dns/rfc2136-nsupdate.ts).
import { DnsError } from '../errors.js';
import type { Logger } from '../log.js';
import { exchangeTcpRaw, queryDns, sameName } from './query.js';
import { ownerName, rrType, unknownPrerequisite, updateRefused, type RouteTarget, type UpdateOps, type UpdateRoute } from './update-ops.js';
import { buildUpdate, CLASS, DnsAnswerError, encodeRdata, parseUpdateAnswer, TYPE_ANY, TYPE_CODES, type UpdateAnswer, type WireRecord } from './update-wire.js';

/** Whether every record type in `ops` can be sent in process. */
export function wireSupports(ops: UpdateOps): boolean {
  const types = [...(ops.prerequisites ?? []).map((p) => p.type), ...(ops.deletes ?? []).map((d) => d.type), ...(ops.adds ?? []).map((a) => a.type)];
  return types.every((t) => t === undefined || rrType(t) in TYPE_CODES);
}

export class WireRoute implements UpdateRoute {
  constructor(
    private readonly opts: RouteTarget & {
      /** Wall-clock milliseconds for TSIG Time Signed and the answer's time check (RFC 8945 §5.2.3). */
      now: () => number;
    },
  ) {}

  async send(ops: UpdateOps, log: Logger): Promise<void> {
    const { server, zone, tsig, where, timeoutMs, now } = this.opts;
    const { message, id, mac } = buildUpdate(zone, this.prerequisites(ops), this.updates(ops), tsig, now());
    let raw: Buffer;
    try {
      raw = await exchangeTcpRaw(server, message, timeoutMs);
    } catch (err) {
      if ((err as { timedOut?: boolean }).timedOut) throw new DnsError(`update to ${where} timed out after ${timeoutMs} ms`);
      const e = err as NodeJS.ErrnoException;
      throw new DnsError(`cannot reach ${where} to update ${zone}: ${e.message}`, { cause: err });
    }
    let answer: UpdateAnswer;
    try {
      answer = parseUpdateAnswer(raw, id, mac, tsig, now());
    } catch (err) {
      if (!(err instanceof DnsAnswerError)) throw err;
      throw new DnsAnswerError(err.problem, `answer from ${where} to the update of ${zone} not accepted: ${err.message}`, { cause: err });
    }
    if (answer.rcode !== 'NOERROR' || answer.tsigError) throw updateRefused(where, zone, answer.rcode, answer.tsigError);
    log.debug('DNS update accepted');
    if (!(await this.confirmServed(ops))) log.debug('the primary does not serve the change yet; going on');
  }

  /** RFC 2136 §2.4: the prerequisite section, one record per condition. */
  private prerequisites(ops: UpdateOps): WireRecord[] {
    const none = Buffer.alloc(0);
    return (ops.prerequisites ?? []).map((p) => {
      const name = ownerName(p.name, this.opts.zone);
      switch (p.kind) {
        case 'yxdomain':
          return { name, type: TYPE_ANY, class: CLASS.ANY, ttl: 0, rdata: none };
        case 'nxdomain':
          return { name, type: TYPE_ANY, class: CLASS.NONE, ttl: 0, rdata: none };
        case 'nxrrset':
          return { name, type: typeCode(p.type), class: CLASS.NONE, ttl: 0, rdata: none };
        case 'yxrrset':
          return p.data === undefined
            ? { name, type: typeCode(p.type), class: CLASS.ANY, ttl: 0, rdata: none }
            : { name, type: typeCode(p.type), class: CLASS.IN, ttl: 0, rdata: encodeRdata(rrType(p.type), p.data) };
        default:
          throw unknownPrerequisite(p);
      }
    });
  }

  /** RFC 2136 §2.5: deletes (a whole RRset, §2.5.2, or one RR, §2.5.4), then adds (§2.5.1). */
  private updates(ops: UpdateOps): WireRecord[] {
    const zone = this.opts.zone;
    const none = Buffer.alloc(0);
    return [
      ...(ops.deletes ?? []).map((d) =>
        d.data === undefined
          ? { name: ownerName(d.name, zone), type: typeCode(d.type), class: CLASS.ANY, ttl: 0, rdata: none }
          : { name: ownerName(d.name, zone), type: typeCode(d.type), class: CLASS.NONE, ttl: 0, rdata: encodeRdata(rrType(d.type), d.data) },
      ),
      ...(ops.adds ?? []).map((a) => ({ name: ownerName(a.name, zone), type: typeCode(a.type), class: CLASS.IN, ttl: a.ttl, rdata: encodeRdata(rrType(a.type), a.data) })),
    ];
  }

  /**
   * BIND acknowledges an update before its inline-signed zone serves it
   * (0–5 ms later; nsupdate's own exit used to hide that). Wait briefly until
   * the primary serves every added record and none of the deleted ones, so
   * whoever looks right after sees the change. False after the deadline:
   * the update was accepted, and callers that need it served everywhere
   * (dns-01, DANE) poll every authoritative server themselves anyway.
   */
  private async confirmServed(ops: UpdateOps, deadlineMs = 2000): Promise<boolean> {
    const zone = this.opts.zone;
    const checks = [
      ...(ops.adds ?? []).map((a) => ({ name: ownerName(a.name, zone), type: rrType(a.type), data: a.data, present: true })),
      ...(ops.deletes ?? [])
        // A whole-RRset delete followed by adds to that RRset: the adds say it all.
        .filter((d) => d.data !== undefined || !(ops.adds ?? []).some((a) => sameName(a.name, d.name) && rrType(a.type) === rrType(d.type)))
        .map((d) => ({ name: ownerName(d.name, zone), type: rrType(d.type), data: d.data, present: false })),
    ];
    if (!checks.length) return true;
    const deadline = Date.now() + deadlineMs;
    for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
      const served = await Promise.all(checks.map((c) => this.servedAsWanted(c)));
      if (served.every(Boolean)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  /** Whether the primary serves `c.data` at `c.name` (or, without data, any record of the type) as `c.present` says. */
  private async servedAsWanted(c: { name: string; type: string; data: string | undefined; present: boolean }): Promise<boolean> {
    try {
      const r = await queryDns(this.opts.server, c.name, c.type, { tcp: false, recursion: false, timeoutMs: 1000 });
      const values = r.answers.filter((a) => a.type === c.type && sameName(a.name, c.name)).map((a) => answerValue(c.type, a.data));
      if (c.data === undefined) return values.length > 0 === c.present;
      return values.includes(c.type === 'TLSA' ? normalizeTlsa(c.data) : c.data) === c.present;
    } catch {
      return false;
    }
  }
}

function typeCode(t: string | undefined): number {
  return TYPE_CODES[rrType(t)]!;
}

/** TXT as the raw value; TLSA as "u s m hex" (lower-case, no spaces). */
function answerValue(type: string, data: unknown): string {
  if (type === 'TXT') return Buffer.concat((Array.isArray(data) ? data : [data]).map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(String(b))))).toString('utf8');
  const d = data as { usage?: number; selector?: number; matchingType?: number; certificate?: Buffer } | undefined;
  return `${d?.usage} ${d?.selector} ${d?.matchingType} ${d?.certificate?.toString('hex') ?? ''}`;
}

function normalizeTlsa(data: string): string {
  const [u, s, m, ...hex] = data.trim().split(/\s+/);
  return `${Number(u)} ${Number(s)} ${Number(m)} ${hex.join('').toLowerCase()}`;
}
