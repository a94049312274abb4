// The DANE machine's eyes (docs/architecture.md, "DANE rollover"): every
// authoritative server at every owner name, the validating resolver, and
// what each endpoint serves. Each function looks and reports; the
// decisions are in src/dane/decide.ts.
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import { MxcertError } from '../errors.js';
import type { Logger } from '../log.js';
import { queryDns } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import { verifyServed } from '../verify/starttls.js';
import { servedEverywhere, verdictAt, type OwnerObservation } from './decide.js';
import { fromDnsPacket, tlsa311 } from './tlsa.js';
import { observeTlsa } from './visibility.js';

/** One round: every server, every owner, concurrently. */
export async function observeOwners(servers: DnsServer[], owners: string[], clock?: Clock): Promise<OwnerObservation[]> {
  return Promise.all(owners.map(async (owner) => ({ owner, servers: await observeTlsa(servers, owner, clock ? { clock } : {}) })));
}

/**
 * Ask a validating resolver, with DO and RD set, for each owner's TLSA
 * RRset. It must answer with the AD bit (the records validated up to its
 * trust anchor) and hold every `present` record. Anything else (no AD, a
 * record missing, SERVFAIL from a bad signature, no answer) holds back.
 */
export async function resolverVerdict(resolver: DnsServer, owners: string[], present: string[]): Promise<{ ok: boolean; why: string }> {
  const at = `validating resolver ${resolver.host}:${resolver.port}`;
  for (const owner of owners) {
    let r;
    try {
      r = await queryDns(resolver, owner, 'TLSA', { tcp: true, recursion: true, dnssec: true, timeoutMs: 5000 });
    } catch (err) {
      return { ok: false, why: `${at}: no answer for ${owner} TLSA: ${(err as Error).message}` };
    }
    if (r.rcode !== 'NOERROR') return { ok: false, why: `${at}: ${r.rcode} for ${owner} TLSA` };
    if (!r.authenticData) return { ok: false, why: `${at}: ${owner} TLSA not validated (no AD bit)` };
    const have = new Set<string>();
    for (const a of r.answers) {
      if (a.type !== 'TLSA') continue;
      try {
        const t = fromDnsPacket(a.data);
        if (t.usage === 3 && t.selector === 1 && t.matchingType === 1) have.add(t.data);
      } catch {
        /* not one of ours */
      }
    }
    const missing = present.filter((h) => !have.has(h));
    if (missing.length) return { ok: false, why: `${at}: ${owner} lacks TLSA 3 1 1 ${missing.map((h) => `${h.slice(0, 16)}…`).join(', ')}` };
  }
  return { ok: true, why: `${at}: validated (AD)` };
}

/**
 * Addresses of an endpoint host as the authoritative servers publish them
 * (A and AAAA), so the live check connects where a DANE sender would.
 */
export async function endpointAddresses(servers: DnsServer[], host: string): Promise<string[]> {
  const out = new Set<string>();
  for (const type of ['A', 'AAAA'] as const) {
    for (const s of servers) {
      try {
        const r = await queryDns(s, host, type, { tcp: true, recursion: false, timeoutMs: 3000 });
        for (const a of r.answers) if (a.type === type && typeof a.data === 'string') out.add(a.data);
        break;
      } catch {
        /* try the next server */
      }
    }
  }
  return [...out];
}

export interface LiveCheckTarget {
  endpoints: Array<{ host: string; port: number }>;
  owners: string[];
  servers(): Promise<DnsServer[]>;
  keyType: string;
  timeoutMs: number;
  logger: Logger;
}

/**
 * After the MTA reload: the new leaf's key must be `expectTlsa`, every
 * endpoint address must serve that leaf, and every authoritative server
 * must publish its record at every owner. Throws VerifyError-coded errors,
 * so the orchestrator rolls the files back.
 */
export function liveCheck(t: LiveCheckTarget, expectTlsa: string): (leafDer: Buffer) => Promise<void> {
  return async (leafDer) => {
    const served = tlsa311(new X509Certificate(leafDer).publicKey.export({ type: 'spki', format: 'der' })).data;
    if (served !== expectTlsa) throw new MxcertError('verify', `the new certificate's key ${served.slice(0, 16)}… is not the expected ${expectTlsa.slice(0, 16)}…`);
    const servers = await t.servers();
    for (const e of t.endpoints) {
      const addrs = await endpointAddresses(servers, e.host);
      if (!addrs.length) throw new MxcertError('verify', `${e.host} has no A/AAAA records on its authoritative servers`);
      await verifyServed(addrs.map((a) => (a.includes(':') ? `[${a}]:${e.port}` : `${a}:${e.port}`)), leafDer, {
        serverName: e.host,
        timeoutMs: t.timeoutMs,
        keyType: t.keyType,
        logger: t.logger,
      });
    }
    const dns = await observeOwners(servers, t.owners);
    if (!servedEverywhere(dns, [served])) {
      throw new MxcertError('verify', `served key not in every published TLSA RRset: ${verdictAt(dns, { present: [served], absent: [] }).lagging.join('; ')}`);
    }
  };
}
