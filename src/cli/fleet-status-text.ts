// The fleet part of `mxcert status` on a fleet member (docs/architecture.md,
// "Fleet"): the leader, and every member's served serial and SPKI with its
// last report, from the same view as `mxcert fleet status`. Loaded only
// when the config has a fleet block, so other hosts never load the etcd
// client. etcd being unreachable is shown, not an error: the rest of status
// is this host's own state and stays useful.
import type { FleetConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import { connectFleetEtcd } from '../fleet/etcd-client.js';
import { loadFleetKey } from '../fleet/secret-files.js';
import { fleetStatusView, type FleetStatusView } from '../fleet/status.js';
import { FleetStore } from '../fleet/store.js';
import { displayTime } from '../util/display-time.js';
import { fleetWhy, type MemberReport } from '../dane/fleet.js';
import { upgradeJournal, type DaneJournal } from '../dane/journal.js';

export async function fleetStatusText(fleet: FleetConfig): Promise<string> {
  const head = `fleet (this host: ${fleet.member}, prefix ${fleet.etcd.prefix})`;
  let view: FleetStatusView;
  const journals: Record<string, Record<string, unknown>> = {};
  try {
    const keyId = await loadFleetKey(fleet.keyEncryption.keyFile).then(
      (k) => ({ id: k.id }),
      (err: unknown) => ({ error: describeError(err) }),
    );
    const etcd = await connectFleetEtcd(fleet);
    try {
      await etcd.probe();
      const store = new FleetStore(etcd);
      const [leader, reports, removed, lineages] = await Promise.all([store.leader(), store.listReports(), store.listRemoved(), store.lineages()]);
      view = fleetStatusView({ config: fleet, keyId, leader, reports, removed, lineages: lineages.lineages });
      for (const c of view.certificates) journals[c.name] = ((await store.getDane(c.name).catch(() => undefined))?.value.journal ?? {}) as Record<string, unknown>;
    } finally {
      etcd.close();
    }
  } catch (err) {
    return `\n${head}: etcd unavailable, only this host's own state is shown above: ${describeError(err)}\n`;
  }
  return `\n${renderFleet(head, view)}${retireWaitLines(view, journals).join('')}`;
}

/**
 * Per certificate and key type in RETIRE_OLD: the expected members the
 * retire of the old key waits for, what each last reported and when
 * (docs/architecture.md, "DANE across a fleet"). Unreadable journals are skipped here.
 */
export function retireWaitLines(v: FleetStatusView, journals: Record<string, Record<string, unknown>>): string[] {
  const lines: string[] = [];
  const expected = v.members.filter((m) => m.configured && !m.removed);
  for (const [cert, byKey] of Object.entries(journals)) {
    for (const [keyType, raw] of Object.entries(byKey)) {
      let j: DaneJournal;
      try {
        j = upgradeJournal(raw, `the fleet's DANE journal of ${cert}/${keyType}`);
      } catch {
        continue;
      }
      if (j.phase !== 'RETIRE_OLD') continue;
      const members: MemberReport[] = expected.map((m) => {
        const r = m.reports.find((x) => x.cert === cert);
        const u = r?.units[keyType];
        return { member: m.name, ...(u ? { servedTlsa: u.spkiSha256, serial: u.serial } : {}), ...(r ? { verifiedAt: r.verifiedAt } : {}), ...(r?.error ? { error: r.error.message, reportedAt: r.error.at } : {}) };
      });
      lines.push(`  ${cert} (${keyType}): DANE RETIRE_OLD since the swap at ${j.swappedAt ? displayTime(j.swappedAt) : '?'}: ${fleetWhy(j, members)}\n`);
    }
  }
  return lines;
}

/** Text for a person: one line for the leader, then per member one line per certificate it reported. */
export function renderFleet(head: string, v: FleetStatusView): string {
  const lines = [`${head}:`, `  leader: ${v.leader ? `${v.leader.member}${v.leader.since ? ` since ${displayTime(v.leader.since)}` : ''}` : 'none (no pass is running)'}`];
  for (const c of v.certificates) {
    const units = Object.entries(c.units).map(([k, u]) => `${k} serial ${u.serial} until ${displayTime(u.notAfter)}`).join(', ');
    lines.push(`  lineage ${c.name} (generation ${c.generation}, by ${c.updatedBy} ${displayTime(c.updatedAt)}): ${units}`);
  }
  for (const m of v.members) {
    const tags = [m.leader ? 'leader' : '', m.configured ? '' : 'not in fleet.members', m.removed ? `removed ${displayTime(m.removed.at)} by ${m.removed.by}` : ''].filter(Boolean);
    const name = `  ${m.name}${tags.length ? ` (${tags.join(', ')})` : ''}`;
    if (!m.reports.length) {
      lines.push(`${name}: no report`);
      continue;
    }
    for (const r of m.reports) {
      const units = Object.entries(r.units).map(([k, u]) => `${k} serial ${u.serial}, SPKI ${u.spkiSha256.slice(0, 16)}…`);
      const served = units.length ? units.join('; ') : 'no served key reported';
      lines.push(`${name}: ${r.cert}: ${served}; verified ${displayTime(r.verifiedAt)}${r.generation !== undefined ? `, generation ${r.generation}` : ''}${r.error ? `; last error ${displayTime(r.error.at)}: ${r.error.message}` : ''}`);
    }
  }
  for (const p of v.problems) lines.push(`  problem: ${p}`);
  return `${lines.join('\n')}\n`;
}
