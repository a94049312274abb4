// Turning DANE off on a fleet certificate (docs/architecture.md, "Turning
// DANE off" and "Fleet"). The journal and the keys live in etcd and only the
// leader changes TLSA records, so `mxcert dane retire` on a fleet member
// takes the lead for the command (when nobody leads) and runs the same
// retirement as a single host (src/dane/retire.ts) over the fleet's journal,
// each write under the leader fence. The safety check covers every member:
// what would remain at an owner must match the chain EVERY expected member
// reports serving; a member whose chain is not known (no report, or a serial
// that is not the lineage's) counts as not matching. Later leader passes
// carry the retirement on (AWAIT_GONE, RELEASE), and until it is DONE the
// leader renews with the key the records name, as a single host does.
import { X509Certificate } from 'node:crypto';
import type { CertificateConfig, Config, KeyType } from '../config/schema.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { describeError, MxcertError } from '../errors.js';
import { retireWith } from '../dane/rollover.js';
import { keptKey, keptKeyNotice, type RetireObservations, type RetireOutcome } from '../dane/retire.js';
import { keyTlsa311 } from '../dane/journal.js';
import { connectFleetEtcd } from '../fleet/etcd-client.js';
import { campaign } from '../fleet/leader.js';
import { loadFleetKey } from '../fleet/secret-files.js';
import { FleetStore, type LineageUnit, type MemberReport } from '../fleet/store.js';
import { SealError } from '../fleet/errors.js';
import type { DaneReport } from './orchestrator.js';
import type { Connected } from './fleet-member.js';
import { etcdDaneStorage } from './fleet-dane.js';

/**
 * Pure: the chain each expected member serves, per key type, as the
 * retirement's safety check reads it. A member reporting the lineage's serial
 * serves the lineage's chain; any other member's chain is unknown (empty),
 * which no remaining record matches, so the retirement is refused while
 * usable records would remain.
 */
export function memberChains(
  members: readonly string[],
  reports: ReadonlyMap<string, Pick<MemberReport, 'units'>>,
  lineage: Readonly<Record<string, Pick<LineageUnit, 'serial' | 'chainPem'>>>,
  keyTypes: readonly string[],
): RetireObservations['chains'] {
  const out: RetireObservations['chains'] = [];
  for (const member of members) {
    for (const keyType of keyTypes) {
      const served = reports.get(member)?.units[keyType];
      const unit = lineage[keyType];
      if (served && unit && served.serial === unit.serial) {
        const pems = unit.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
        out.push({ keyType: `${keyType} on ${member}`, chainDer: pems.map((p) => new X509Certificate(p).raw) });
      } else {
        const why = !reports.has(member) ? 'no report' : served ? `serial ${served.serial}, not the lineage's` : 'no served key reported';
        out.push({ keyType: `${keyType} on ${member} (${why})`, chainDer: [] });
      }
    }
  }
  return out;
}

async function fleetChains(c: Connected, keyTypes: readonly string[], cert: string): Promise<RetireObservations['chains']> {
  const removed = new Set((await c.store.listRemoved()).flatMap((r) => (r instanceof Error ? [] : [r.value.member])));
  const members = c.fleet.members.filter((m) => !removed.has(m));
  const reports = new Map<string, MemberReport>();
  for (const m of members) {
    const r = await c.store.getReport(m, cert);
    if (r) reports.set(m, r.value);
  }
  return memberChains(members, reports, (await c.store.getLineage(cert))?.value.units ?? {}, keyTypes);
}

/** The fleet's retirement of `cert`'s records; only the leader (c.term) may run it. */
export function fleetRetire(c: Connected, cert: CertificateConfig, logger: Logger, clock: Clock, budgetMs: number, start: boolean): Promise<RetireOutcome | undefined> {
  return retireWith({
    name: cert.name,
    cert,
    storages: cert.keys.map((k) => etcdDaneStorage(c, cert.name, k)),
    chains: () => fleetChains(c, cert.keys, cert.name),
    // docs/architecture.md, "Leader": nothing outside etcd once the term has ended.
    beforePublish: () => {
      if (!c.term) throw new MxcertError('fleet-not-leader', 'only the fleet leader withdraws TLSA records');
      c.term.assertLeader('withdraw TLSA records');
    },
    logger,
    clock,
    budgetMs,
    start,
  });
}

/**
 * The leader, DANE off: the key a renewal must keep while the fleet's
 * journal exists (mxcert's records may still be published), with what to
 * report; undefined when there is no journal (any key may be used).
 */
export async function keptFleetKey(c: Connected, cert: CertificateConfig, keyType: KeyType, lineageKey: () => Promise<string | undefined>): Promise<{ keyPem: string; report: DaneReport } | undefined> {
  const storage = etcdDaneStorage(c, cert.name, keyType);
  const j = await storage.readJournal();
  if (!j) return undefined;
  // A lineage key that does not open here (tampered, another fleet key) is no candidate: the journal's current key is kept.
  const lineageKeyPem = await lineageKey().catch((err: unknown) => {
    if (err instanceof SealError) return undefined;
    throw err;
  });
  const deployed = lineageKeyPem ? keyTlsa311(lineageKeyPem) : undefined;
  const key = keptKey(j, deployed);
  const keyPem = deployed === key.tlsa ? lineageKeyPem! : await storage.readKey(key.id);
  return { keyPem, report: { phase: j.phase, acted: [], notice: keptKeyNotice(cert.name, j, Boolean(cert.dane?.enabled)) } };
}

/**
 * `mxcert dane retire` on a fleet certificate: lead for the command (refused
 * while another member leads a pass), retire, resign. Throws
 * DaneRetireRefusedError when what would remain rejects a member's chain.
 */
export async function fleetRetireCommand(config: Config, cert: CertificateConfig, logger: Logger, clock: Clock, budgetMs: number): Promise<RetireOutcome | undefined> {
  const fleet = config.fleet!;
  const key = await loadFleetKey(fleet.keyEncryption.keyFile);
  const etcd = await connectFleetEtcd(fleet);
  try {
    await etcd.probe();
    const store = new FleetStore(etcd);
    const holder = await store.leader();
    if (holder) {
      throw new MxcertError('fleet-busy', `${holder.member} leads the fleet now (a pass is running); only the leader withdraws TLSA records: nothing changed, run this again when its pass has ended`);
    }
    const term = await campaign(etcd, { member: fleet.member, ttlSeconds: fleet.leaseTtl / 1000, signal: AbortSignal.timeout(etcd.dialTimeoutMs) }).catch((err: unknown) => {
      throw new MxcertError('fleet-busy', `could not take the lead of the fleet: ${describeError(err)}; nothing changed, run this again`, { cause: err });
    });
    try {
      return await fleetRetire({ fleet, etcd, store, key, term }, cert, logger, clock, budgetMs, true);
    } finally {
      await term.resign().catch(() => undefined);
    }
  } finally {
    etcd.close();
  }
}
