// Reads what the fleet metrics need from etcd (src/metrics/fleet-samples.ts):
// per fleet certificate and key type, the DANE journal and every expected
// member's report. Read-only; loaded only when the config has a fleet.
import type { Config } from '../config/schema.js';
import type { MemberReport } from '../dane/fleet.js';
import { upgradeJournal } from '../dane/journal.js';
import { connectFleetEtcd } from '../fleet/etcd-client.js';
import { FleetStore } from '../fleet/store.js';
import type { FleetUnitView } from './fleet-samples.js';

export async function readFleetUnits(config: Config): Promise<FleetUnitView[]> {
  const fleet = config.fleet!;
  const etcd = await connectFleetEtcd(fleet);
  try {
    await etcd.probe();
    const store = new FleetStore(etcd);
    const removed = new Set((await store.listRemoved()).flatMap((r) => (r instanceof Error ? [] : [r.value.member])));
    const expected = fleet.members.filter((m) => !removed.has(m));
    const out: FleetUnitView[] = [];
    for (const cert of config.certificates.filter((c) => c.fleet)) {
      const dane = await store.getDane(cert.name);
      const reports = await Promise.all(expected.map(async (m) => [m, await store.getReport(m, cert.name).catch(() => undefined)] as const));
      for (const keyType of cert.keys) {
        const raw = (dane?.value.journal as Record<string, unknown> | undefined)?.[keyType];
        const members: MemberReport[] = reports.map(([member, r]) => {
          const u = r?.value.units[keyType];
          return { member, ...(u ? { servedTlsa: u.spkiSha256, serial: u.serial } : {}), ...(r ? { verifiedAt: r.value.verifiedAt } : {}) };
        });
        out.push({ cert: cert.name, keyType, ...(raw ? { journal: upgradeJournal(raw, `the fleet's DANE journal of ${cert.name}/${keyType}`) } : {}), members });
      }
    }
    return out;
  } finally {
    etcd.close();
  }
}
