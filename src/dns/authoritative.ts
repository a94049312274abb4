// Which servers must serve a record before we may tell the CA to look, and
// the wait until they all do. A CA (or a DANE client) may ask any one of the
// zone's authoritative servers, so "the primary has it" is not enough: a
// lagging secondary would fail the challenge or, for TLSA, break mail.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { systemClock, type Clock } from '../clock.js';
import { DnsError } from '../errors.js';
import type { Logger } from '../log.js';
import { DnsQueryError, describeResponse, formatServer, queryDns, sameName, stripDot, type DnsRecord, type DnsResponse } from './query.js';
import type { DnsServer } from './types.js';

/** Parse `127.0.0.1:5353`, `[::1]:53`, `ns1.example.com:53`; a bare host gets `defaultPort`. */
export function parseHostPort(s: string, defaultPort = 53): DnsServer {
  const text = s.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host: string;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (isIP(text) === 6) {
    // An unbracketed IPv6 address cannot carry a port: every colon is the address's.
    host = text;
  } else {
    const m = /^([^:\s]+)(?::(\d+))?$/.exec(text);
    if (!m) throw new DnsError(`not host:port: ${JSON.stringify(s)} (IPv6 in brackets: "[::1]:53")`);
    host = m[1]!;
    portText = m[2];
  }
  if (bracketed && isIP(host) !== 6) throw new DnsError(`not an IPv6 address in brackets: ${JSON.stringify(s)}`);
  const port = portText === undefined ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DnsError(`bad port in ${JSON.stringify(s)}`);
  return { host, port };
}

/** The system resolver (getaddrinfo: /etc/hosts, then DNS), every address of both families. */
export async function systemResolve(name: string): Promise<string[]> {
  const results = await lookup(stripDot(name), { all: true, verbatim: true });
  return results.map((r) => r.address);
}

/**
 * Turn `server` into IP addresses: an IP literal is returned as is, a host
 * name is resolved (every address, same port).
 */
export async function resolveServer(server: DnsServer, resolver: (name: string) => Promise<string[]> = systemResolve): Promise<DnsServer[]> {
  if (isIP(server.host)) return [server];
  let addresses: string[];
  try {
    addresses = await resolver(server.host);
  } catch (err) {
    throw new DnsError(`cannot resolve DNS server ${server.host}: ${(err as Error).message}`, { cause: err });
  }
  if (addresses.length === 0) throw new DnsError(`DNS server ${server.host} has no addresses`);
  return dedupe(addresses.map((host) => ({ host, port: server.port })));
}

/**
 * Every address of every authoritative server of `zone`.
 *
 * With `explicit`, exactly those (host names resolved). Otherwise the zone's
 * NS RRset as the primary serves it; each NS name's A and AAAA come from the
 * primary when the name is inside the zone (in-zone data/glue, which no
 * outside resolver could give us before the zone is delegated), else from
 * `resolver` (default: the system resolver).
 *
 * NS records cannot express a port, so every discovered address is given the
 * primary's port: right for production (all on 53), and for a test setup whose
 * servers all share one port. Servers on different ports (a secondary on
 * 127.0.0.1:5354) must be listed explicitly (`nameservers` in the config).
 */
export async function findAuthoritativeServers(
  zone: string,
  opts: { primary: DnsServer; explicit?: DnsServer[]; resolver?: (name: string) => Promise<string[]> },
): Promise<DnsServer[]> {
  const resolver = opts.resolver ?? systemResolve;
  if (opts.explicit && opts.explicit.length > 0) {
    const all = await Promise.all(opts.explicit.map((s) => resolveServer(s, resolver)));
    return dedupe(all.flat());
  }

  const { primary } = opts;
  const nsResp = await queryDns(primary, zone, 'NS', { tcp: true, recursion: false });
  if (nsResp.rcode !== 'NOERROR' || !nsResp.authoritative) {
    throw new DnsError(`${formatServer(primary)} is not authoritative for ${stripDot(zone)}. (NS query: ${describeResponse(nsResp)})`);
  }
  const nsNames = nsResp.answers.filter((r) => r.type === 'NS' && sameName(r.name, zone)).map((r) => String(r.data));
  if (nsNames.length === 0) throw new DnsError(`zone ${stripDot(zone)}. has no NS records at ${formatServer(primary)}`);

  const servers: DnsServer[] = [];
  for (const ns of nsNames) {
    let addresses: string[];
    if (isInZone(ns, zone)) {
      addresses = addressesFrom(nsResp.additionals, ns);
      if (addresses.length === 0) addresses = await inZoneAddresses(primary, ns);
    } else {
      try {
        addresses = await resolver(ns);
      } catch (err) {
        throw new DnsError(`cannot resolve nameserver ${ns} of ${stripDot(zone)}.: ${(err as Error).message} (list the servers in "nameservers" to skip discovery)`, { cause: err });
      }
    }
    // An NS we cannot reach is one the CA may still ask: refuse rather than silently skip it.
    if (addresses.length === 0) {
      throw new DnsError(`nameserver ${ns} of ${stripDot(zone)}. has no addresses (list the servers in "nameservers" to skip discovery)`);
    }
    for (const host of addresses) servers.push({ host, port: primary.port });
  }
  return dedupe(servers);
}

function isInZone(name: string, zone: string): boolean {
  const n = stripDot(name).toLowerCase();
  const z = stripDot(zone).toLowerCase();
  return n === z || n.endsWith(`.${z}`);
}

function addressesFrom(records: DnsRecord[], name: string): string[] {
  return records.filter((r) => (r.type === 'A' || r.type === 'AAAA') && sameName(r.name, name)).map((r) => String(r.data));
}

async function inZoneAddresses(primary: DnsServer, name: string): Promise<string[]> {
  const [a, aaaa] = await Promise.all([
    queryDns(primary, name, 'A', { tcp: true, recursion: false }),
    queryDns(primary, name, 'AAAA', { tcp: true, recursion: false }),
  ]);
  return [...addressesFrom(a.answers, name), ...addressesFrom(aaaa.answers, name)];
}

function dedupe(servers: DnsServer[]): DnsServer[] {
  const seen = new Map<string, DnsServer>();
  for (const s of servers) {
    const k = `${s.host.toLowerCase()}#${s.port}`;
    if (!seen.has(k)) seen.set(k, s);
  }
  return [...seen.values()];
}

const FIRST_INTERVAL_MS = 20;
const MAX_INTERVAL_MS = 500;
const MAX_QUERY_TIMEOUT_MS = 2000;

/**
 * Resolve once every server in `servers`, asked directly (TCP, no recursion,
 * DO set), answers authoritatively and `predicate` accepts its answer.
 * Servers are polled concurrently with a short, growing interval: BIND's
 * inline signing serves an update a few ms after acknowledging it, while a
 * secondary follows after NOTIFY + IXFR. Throws DnsError at the deadline
 * naming each server still lacking the record and what it last answered.
 */
export async function waitUntilServedEverywhere(
  servers: DnsServer[],
  name: string,
  type: 'TXT' | 'TLSA',
  predicate: (resp: DnsResponse) => boolean,
  opts: { timeoutMs: number; clock?: Clock; logger?: Logger },
): Promise<void> {
  if (servers.length === 0) throw new DnsError(`no authoritative servers to check for ${type} ${stripDot(name)}.`);
  const clock = opts.clock ?? systemClock;
  const started = clock.now().getTime();
  const deadline = started + opts.timeoutMs;

  const pollOne = async (server: DnsServer): Promise<string | undefined> => {
    let interval = FIRST_INTERVAL_MS;
    let last = 'no answer yet';
    for (let attempt = 1; ; attempt++) {
      const remaining = deadline - clock.now().getTime();
      try {
        const resp = await queryDns(server, name, type, {
          tcp: true,
          dnssec: true,
          recursion: false,
          timeoutMs: Math.max(100, Math.min(MAX_QUERY_TIMEOUT_MS, remaining)),
        });
        if (resp.authoritative && predicate(resp)) {
          opts.logger?.debug({ server: formatServer(server), name, type, attempts: attempt, ms: clock.now().getTime() - started }, 'record served');
          return undefined;
        }
        last = describeResponse(resp);
      } catch (err) {
        last = `no answer (${err instanceof DnsQueryError ? err.reason : (err as Error).message})`;
      }
      const left = deadline - clock.now().getTime();
      if (left <= 0) return last;
      await clock.sleep(Math.min(interval, left));
      interval = Math.min(interval * 2, MAX_INTERVAL_MS);
    }
  };

  const results = await Promise.all(servers.map(async (s) => ({ server: s, lacking: await pollOne(s) })));
  const failures = results.filter((r) => r.lacking !== undefined);
  if (failures.length > 0) {
    const detail = failures.map((f) => `${formatServer(f.server)} answered ${f.lacking}`).join('; ');
    throw new DnsError(
      `${type} ${stripDot(name)}. not served by ${failures.map((f) => formatServer(f.server)).join(', ')} after ${opts.timeoutMs} ms: ${detail}`,
    );
  }
}
