// What `mxcert fleet status` prints (docs/architecture.md, "Fleet"): a pure
// function of what was read from etcd and the config, so the command module
// only reads and prints. Members are the configured ones plus any that
// reported or were removed, so a host missing from one member's config still
// shows up. Values in etcd that are not what mxcert writes are listed under
// `problems`, never dropped silently.
import type { FleetConfig } from '../config/schema.js';
import { FleetDataError } from './errors.js';
import type { LeaderInfo, LineageEntry, MemberReport, RemovedMember, Versioned } from './store.js';

export interface FleetStatusInput {
  config: FleetConfig;
  /** This host's fleet key id, or why it cannot be read. */
  keyId: { id: string } | { error: string };
  leader: LeaderInfo | undefined;
  reports: Array<Versioned<MemberReport> | FleetDataError>;
  removed: Array<Versioned<RemovedMember> | FleetDataError>;
  lineages: LineageEntry[];
}

export interface FleetMemberView {
  name: string;
  /** In this host's fleet.members. */
  configured: boolean;
  leader: boolean;
  removed: { at: string; by: string } | null;
  reports: Array<Omit<MemberReport, 'v' | 'member'>>;
}

export interface FleetStatusView {
  prefix: string;
  self: { member: string; keyId: string | null; keyError?: string };
  leader: { member: string; since: string | null } | null;
  members: FleetMemberView[];
  certificates: Array<{
    name: string;
    generation: number;
    updatedBy: string;
    updatedAt: string;
    /** Per key type; `sealedWith`: the id of the fleet key that sealed its private key. */
    units: Record<string, { serial: string; notAfter: string; sealedWith: string }>;
  }>;
  problems: string[];
}

export function fleetStatusView(i: FleetStatusInput): FleetStatusView {
  const problems: string[] = [];
  const ok = <T>(xs: Array<T | FleetDataError>): T[] =>
    xs.flatMap((x) => {
      if (x instanceof FleetDataError) {
        problems.push(x.message);
        return [];
      }
      return [x];
    });
  const reports = ok(i.reports).map((r) => r.value);
  const removed = ok(i.removed).map((r) => r.value);
  const names = new Set([...i.config.members, ...reports.map((r) => r.member), ...removed.map((r) => r.member)]);
  if (i.leader) names.add(i.leader.member);
  const members = [...names].sort().map((name): FleetMemberView => {
    const gone = removed.find((r) => r.member === name);
    return {
      name,
      configured: i.config.members.includes(name),
      leader: i.leader?.member === name,
      removed: gone ? { at: gone.removedAt, by: gone.removedBy } : null,
      reports: reports
        .filter((r) => r.member === name)
        .map(({ v: _v, member: _m, ...rest }) => rest)
        .sort((a, b) => a.cert.localeCompare(b.cert)),
    };
  });
  return {
    prefix: i.config.etcd.prefix,
    self: 'id' in i.keyId ? { member: i.config.member, keyId: i.keyId.id } : { member: i.config.member, keyId: null, keyError: i.keyId.error },
    leader: i.leader ? { member: i.leader.member, since: i.leader.since ?? null } : null,
    members,
    certificates: certificates(i.lineages, problems),
    problems,
  };
}

function certificates(entries: LineageEntry[], problems: string[]): FleetStatusView['certificates'] {
  const out: FleetStatusView['certificates'] = [];
  for (const e of [...entries].sort((a, b) => a.cert.localeCompare(b.cert))) {
    if (!e.lineage) continue;
    if (e.lineage instanceof FleetDataError) {
      problems.push(e.lineage.message);
      continue;
    }
    const l = e.lineage.value;
    const units: FleetStatusView['certificates'][number]['units'] = {};
    for (const [keyType, u] of Object.entries(l.units)) units[keyType] = { serial: u.serial, notAfter: u.notAfter, sealedWith: u.key.kid };
    out.push({ name: e.cert, generation: l.generation, updatedBy: l.updatedBy, updatedAt: l.updatedAt, units });
  }
  return out;
}
