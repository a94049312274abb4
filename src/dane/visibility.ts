// The visibility gate's eyes (docs/architecture.md, "DANE rollover" step 3): what each authoritative
// server serves at a TLSA owner name right now, and a pure verdict on whether
// all of them serve what we need. A sending MTA's resolver may ask any of the
// zone's servers, so "the primary has it" proves nothing (internet.nl's DANE
// how-to: check every secondary directly before a key swap).
import { systemClock, type Clock } from '../clock.js';
import { DnsQueryError, formatServer, queryDns, sameName, soaSerial, type DnsResponse } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import { formatTlsa, fromDnsPacket, hasTlsa, shortTlsa, type TlsaRecord } from './tlsa.js';

export interface Observation {
  server: DnsServer;
  /** The server answered both questions (NOERROR or NXDOMAIN). */
  ok: boolean;
  error?: string;
  /** AA bit on both answers: served from the zone itself, not a cache or a referral. */
  authoritative: boolean;
  /** SOA serial from the same server, asked before the TLSA question (see observeOne). */
  serial?: number;
  records: TlsaRecord[];
  /** TTL of the TLSA RRset (absent when there is none). */
  ttl?: number;
  /** Latest expiration of the RRSIGs over the TLSA RRset, if the zone is signed. */
  rrsigExpiration?: Date;
  /** Response code of the TLSA query. */
  rcode?: string;
  /** When the TLSA answer arrived. */
  at?: Date;
}

export interface ObserveOptions {
  /**
   * Zone apex to read the serial from. Default: the SOA an authoritative
   * server returns in the authority section for an SOA question at the
   * owner name itself (RFC 2308 §2.2 NODATA / §2.1 NXDOMAIN), so the caller
   * does not need to know where the zone cut is.
   */
  zone?: string;
  /** Per query. Default 3000 ms. */
  timeoutMs?: number;
  clock?: Clock;
}

/**
 * Ask every server, concurrently and directly (TCP, recursion off, DO set so
 * RRSIGs come along), for the SOA and the TLSA RRset at `owner`. Never
 * throws for a server that fails: that server's observation says why.
 */
export async function observeTlsa(servers: DnsServer[], owner: string, opts: ObserveOptions = {}): Promise<Observation[]> {
  return Promise.all(servers.map((s) => observeOne(s, owner, opts)));
}

async function observeOne(server: DnsServer, owner: string, opts: ObserveOptions): Promise<Observation> {
  const clock = opts.clock ?? systemClock;
  const q = { tcp: true, dnssec: true, recursion: false, timeoutMs: opts.timeoutMs ?? 3000 };
  const base: Observation = { server, ok: false, authoritative: false, records: [] };
  try {
    // SOA first, TLSA second: a server's zone only moves forward, so the
    // TLSA answer comes from a version at least as new as the serial we
    // report. "serial ≥ N and record present" then cannot be satisfied by a
    // serial read after an answer from an older version.
    const soa = await queryDns(server, opts.zone ?? owner, 'SOA', q);
    const tlsa = await queryDns(server, owner, 'TLSA', q);
    const at = clock.now();
    const problem = rcodeProblem(soa, 'SOA') ?? rcodeProblem(tlsa, 'TLSA');
    const serial = soaSerial(soa);
    const obs: Observation = {
      ...base,
      ok: problem === undefined,
      authoritative: soa.authoritative && tlsa.authoritative,
      records: [],
      rcode: tlsa.rcode,
      at,
    };
    if (serial !== undefined) obs.serial = serial;
    if (problem) obs.error = problem;

    const rrs = tlsa.answers.filter((r) => r.type === 'TLSA' && sameName(r.name, owner));
    const records: TlsaRecord[] = [];
    for (const r of rrs) {
      try {
        records.push(fromDnsPacket(r.data));
      } catch (err) {
        obs.ok = false;
        obs.error = (err as Error).message;
      }
    }
    obs.records = records;
    // One RRset has one TTL (RFC 2181 §5.2); take the largest in case a
    // server disagrees with itself, since holds are computed from it.
    if (rrs.length > 0) obs.ttl = Math.max(...rrs.map((r) => r.ttl));

    const sigs = tlsa.answers.filter(
      (r) => r.type === 'RRSIG' && sameName(r.name, owner) && (r.data as { typeCovered?: string } | undefined)?.typeCovered === 'TLSA',
    );
    // Several RRSIGs during a ZSK or algorithm rollover: a validator may have
    // cached the RRset under any of them, so the latest expiration counts.
    const expirations = sigs
      .map((r) => (r.data as { expiration?: unknown }).expiration)
      .filter((e): e is number => typeof e === 'number')
      .map((e) => rrsigTimeToDate(e, at));
    if (expirations.length > 0) obs.rrsigExpiration = new Date(Math.max(...expirations.map((d) => d.getTime())));
    return obs;
  } catch (err) {
    return { ...base, error: err instanceof DnsQueryError ? err.reason : (err as Error).message, at: clock.now() };
  }
}

function rcodeProblem(resp: DnsResponse, what: string): string | undefined {
  // NXDOMAIN is a real answer for TLSA ("no such owner": the record is absent).
  if (resp.rcode === 'NOERROR' || resp.rcode === 'NXDOMAIN') return undefined;
  return `${what} query answered ${resp.rcode}`;
}

/**
 * RRSIG times are 32-bit seconds since the epoch compared with serial
 * arithmetic (RFC 4034 §3.1.5, RFC 1982), so they wrap in 2106; resolve the
 * value to the instant nearest `now`.
 */
export function rrsigTimeToDate(value: number, now: Date): Date {
  const nowSec = Math.floor(now.getTime() / 1000);
  const diff = ((value - nowSec) % 2 ** 32 + 2 ** 32 + 2 ** 31) % 2 ** 32 - 2 ** 31;
  return new Date((nowSec + diff) * 1000);
}

/**
 * RFC 1982 serial number arithmetic for SERIAL_BITS = 32: `a` is at least
 * `b` if equal or if `a` is ahead of `b` by less than 2^31 going forward
 * (mod 2^32). Zone serials wrap (a YYYYMMDDnn serial bumped past 2^32 − 1,
 * or an operator deliberately wrapping it), and a plain `>=` would then call
 * a brand-new zone old. A distance of exactly 2^31 is undefined in RFC 1982
 * and treated as "not at least", which only errs towards waiting.
 */
export function serialAtLeast(a: number, b: number): boolean {
  const x = a >>> 0;
  const y = b >>> 0;
  if (x === y) return true;
  const forward = (x - y + 2 ** 32) % 2 ** 32;
  return forward > 0 && forward < 2 ** 31;
}

export interface VisibilityWant {
  /** Every server must serve each of these. */
  present: TlsaRecord[];
  /** No server may serve any of these. */
  absent: TlsaRecord[];
  /** Every server's serial must be at least this (RFC 1982), e.g. the primary's serial after our update. */
  minSerial?: number;
}

export interface VisibilityVerdict {
  /** Every observed server is authoritative, current enough and serves exactly what `want` asks. */
  allAgree: boolean;
  /** One human-readable reason per shortcoming, prefixed with the server. */
  lagging: string[];
  /** Largest TLSA TTL seen: what hold times are computed from (docs/architecture.md, "DANE rollover", RFC 7671 §8.1). */
  maxTtl?: number;
  /** Latest RRSIG expiration over the TLSA RRset seen on any server. */
  maxRrsigExpiration?: Date;
}

/** Pure verdict over one round of observations (docs/architecture.md, "DANE rollover" step 3). */
export function assessVisibility(obs: Observation[], want: VisibilityWant): VisibilityVerdict {
  const lagging: string[] = [];
  let maxTtl: number | undefined;
  let maxSig: number | undefined;
  if (obs.length === 0) lagging.push('no authoritative servers observed');

  for (const o of obs) {
    const who = formatServer(o.server);
    if (o.ttl !== undefined) maxTtl = Math.max(maxTtl ?? 0, o.ttl);
    if (o.rrsigExpiration) maxSig = Math.max(maxSig ?? -Infinity, o.rrsigExpiration.getTime());
    if (!o.ok) {
      lagging.push(`${who}: no usable answer (${o.error ?? 'unknown error'})`);
      continue;
    }
    // A non-authoritative answer comes from somewhere else (a cache, a
    // server that lost the zone and recurses, a referral): it says nothing
    // about what this server would tell a resolver.
    if (!o.authoritative) lagging.push(`${who}: answer not authoritative (AA bit clear)`);
    if (want.minSerial !== undefined) {
      if (o.serial === undefined) lagging.push(`${who}: no SOA serial in its answer`);
      else if (!serialAtLeast(o.serial, want.minSerial)) lagging.push(`${who}: serial ${o.serial} is behind ${want.minSerial >>> 0}`);
    }
    for (const r of want.present) {
      if (!hasTlsa(o.records, r)) lagging.push(`${who}: lacks TLSA ${shortTlsa(r)}`);
    }
    for (const r of want.absent) {
      if (hasTlsa(o.records, r)) lagging.push(`${who}: still serves TLSA ${shortTlsa(r)}`);
    }
  }

  const verdict: VisibilityVerdict = { allAgree: lagging.length === 0, lagging };
  if (maxTtl !== undefined) verdict.maxTtl = maxTtl;
  if (maxSig !== undefined) verdict.maxRrsigExpiration = new Date(maxSig);
  return verdict;
}

/** One line per server, for logs and `mxcert check`. */
export function describeObservation(o: Observation): string {
  const who = formatServer(o.server);
  if (!o.ok) return `${who}: ${o.error ?? 'no answer'}`;
  const recs = o.records.length ? o.records.map(formatTlsa).join(', ') : 'no TLSA';
  return `${who}: ${o.authoritative ? 'aa' : 'not authoritative'}, serial ${o.serial ?? '?'}, ${recs}`;
}

/**
 * Poll one server (normally the primary) until it serves every `present`
 * record and none of the `absent` ones, then return its SOA serial, read
 * after the TLSA answer so the serial is one at which the change is served.
 * BIND with inline signing acknowledges an UPDATE before the signed zone it
 * serves has it (a few ms later, TEST-ENV-NOTES), so the serial right after
 * the reply may still be the old one. Returns undefined at the deadline
 * instead of throwing: the update itself succeeded, and the caller's
 * visibility gate keeps watching.
 */
export async function serialOnceServed(
  server: DnsServer,
  owner: string,
  want: { present: TlsaRecord[]; absent: TlsaRecord[] },
  /** `zone`: the apex, or any name in the zone (an SOA question there gets the SOA in the authority section, RFC 2308). */
  opts: { timeoutMs: number; zone: string; clock?: Clock },
): Promise<number | undefined> {
  const clock = opts.clock ?? systemClock;
  const deadline = clock.now().getTime() + opts.timeoutMs;
  const q = { tcp: true, recursion: false, timeoutMs: 2000 };
  let interval = 5;
  for (;;) {
    try {
      const tlsa = await queryDns(server, owner, 'TLSA', q);
      const records = tlsa.answers.filter((r) => r.type === 'TLSA' && sameName(r.name, owner)).map((r) => fromDnsPacket(r.data));
      if (tlsa.authoritative && want.present.every((r) => hasTlsa(records, r)) && !want.absent.some((r) => hasTlsa(records, r))) {
        const serial = soaSerial(await queryDns(server, opts.zone, 'SOA', q));
        if (serial !== undefined) return serial;
      }
    } catch {
      // Not yet; the deadline decides.
    }
    if (clock.now().getTime() >= deadline) return undefined;
    await clock.sleep(interval);
    interval = Math.min(interval * 2, 250);
  }
}
