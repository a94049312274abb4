// The fleet's state in etcd (docs/architecture.md, "Fleet"), under the
// fleet prefix:
//
//   leader                      the elected leader (src/fleet/leader.ts), on its lease
//   certs/NAME/lineage          chain, serial, validity and sealed current key per key type
//   certs/NAME/dane             the DANE journal (opaque here) and the sealed next keys
//   members/MEMBER/NAME         what MEMBER serves for NAME, and when it verified it
//   removed/MEMBER              MEMBER was taken out of the fleet (`mxcert fleet remove`)
//
// Every write is one transaction that compares the mod revision the writer
// read (compare-and-swap): a writer that lost a race gets a
// FleetConflictError and nothing is written. Writes only the leader may make
// also compare that the leader key still holds the writer's lease and
// creation revision (the fence), so a deposed leader's late write is
// refused with NotLeaderError. Values are JSON; what is read is checked
// against its schema (FleetDataError), never trusted blindly.
import { z } from 'zod';
import type { IKeyValue, IRangeResponse } from 'etcd3';
import { FLEET_MEMBER_RE } from '../config/schema.js';
import { FleetConflictError, FleetDataError, NotLeaderError } from './errors.js';
import type { FleetEtcd } from './etcd-client.js';
import type { SealedKey } from './seal.js';

/** An etcd mod revision, in decimal; "0" means the key is absent. */
export type Revision = string;
export const ABSENT: Revision = '0';

export interface Versioned<T> {
  value: T;
  /** The key's mod revision: pass it back to a write to compare against. */
  revision: Revision;
}

/**
 * What a leader-only write compares: the leader key still exists with the
 * creation revision and lease of this leader's term (src/fleet/leader.ts).
 */
export interface LeaderFence {
  createRevision: string;
  leaseId: string;
  member: string;
}

export const LEADER_KEY = 'leader';

const sealedKey = z
  .object({
    v: z.literal(1),
    alg: z.literal('A256GCM'),
    kid: z.string(),
    slot: z.object({ prefix: z.string(), cert: z.string(), keyType: z.string(), role: z.enum(['current', 'next']) }),
    iv: z.string(),
    ct: z.string(),
    tag: z.string(),
  })
  .passthrough() as unknown as z.ZodType<SealedKey>;

const isoTime = z.string().datetime({ offset: true });
const memberName = z.string().regex(FLEET_MEMBER_RE);

const lineageUnit = z.object({
  /** Leaf first, then the intermediates (PEM). */
  chainPem: z.string().min(1),
  /** The leaf's serial number, hex. */
  serial: z.string().min(1),
  notBefore: isoTime,
  notAfter: isoTime,
  /** The private key, sealed for role `current` (src/fleet/seal.ts). */
  key: sealedKey,
});

const lineageSchema = z.object({
  v: z.literal(1),
  /** Counts the lineage's changes; members report the generation they deployed. */
  generation: z.number().int().min(0),
  /** Per key type (ecdsa-p256, rsa-2048, …). */
  units: z.record(lineageUnit),
  updatedBy: memberName,
  updatedAt: isoTime,
});

const daneSchema = z.object({
  v: z.literal(1),
  /** The DANE journal, as the DANE machine writes it; opaque to the store. */
  journal: z.unknown(),
  /** Sealed next keys per key type (role `next`). */
  next: z.record(sealedKey),
  updatedBy: memberName,
  updatedAt: isoTime,
});

const reportSchema = z.object({
  v: z.literal(1),
  member: memberName,
  cert: z.string().min(1),
  /** Per key type: what this member's MTA serves. */
  units: z.record(z.object({ spkiSha256: z.string().regex(/^[0-9a-f]{64}$/), serial: z.string().min(1) })),
  /** The lineage generation deployed, when it came from the fleet. */
  generation: z.number().int().min(0).optional(),
  /** When the served certificate was last verified live (STARTTLS). */
  verifiedAt: isoTime,
  error: z.object({ message: z.string(), code: z.string().optional(), at: isoTime }).optional(),
});

const removedSchema = z.object({
  v: z.literal(1),
  member: memberName,
  removedAt: isoTime,
  removedBy: z.string().min(1),
});

export type LineageUnit = z.output<typeof lineageUnit>;
export type Lineage = z.output<typeof lineageSchema>;
export type DaneRecord = z.output<typeof daneSchema>;
export type MemberReport = z.output<typeof reportSchema>;
export type RemovedMember = z.output<typeof removedSchema>;

export const fleetKeys = {
  lineage: (cert: string) => `certs/${cert}/lineage`,
  dane: (cert: string) => `certs/${cert}/dane`,
  report: (member: string, cert: string) => `members/${member}/${cert}`,
  removed: (member: string) => `removed/${member}`,
};

/** One certificate's lineage at a mod revision; unreadable values stay visible as errors. */
export interface LineageEntry {
  cert: string;
  revision: Revision;
  lineage: Versioned<Lineage> | FleetDataError | undefined;
}

/** The leader key's current holder, as stored by src/fleet/leader.ts. */
export interface LeaderInfo {
  member: string;
  leaseId: string;
  createRevision: string;
  since?: string;
}

export class FleetStore {
  constructor(readonly etcd: FleetEtcd) {}

  getLineage(cert: string): Promise<Versioned<Lineage> | undefined> {
    return this.getJson(fleetKeys.lineage(cert), lineageSchema);
  }

  /** Leader only: replace the lineage if it is still at `expected`. Returns the new revision. */
  putLineage(cert: string, value: Lineage, expected: Revision, fence: LeaderFence): Promise<Revision> {
    return this.casPut(fleetKeys.lineage(cert), lineageSchema.parse(value), expected, fence);
  }

  getDane(cert: string): Promise<Versioned<DaneRecord> | undefined> {
    return this.getJson(fleetKeys.dane(cert), daneSchema);
  }

  putDane(cert: string, value: DaneRecord, expected: Revision, fence: LeaderFence): Promise<Revision> {
    return this.casPut(fleetKeys.dane(cert), daneSchema.parse(value), expected, fence);
  }

  getReport(member: string, cert: string): Promise<Versioned<MemberReport> | undefined> {
    return this.getJson(fleetKeys.report(member, cert), reportSchema);
  }

  /** A member writes only its own reports; no leader fence, still compare-and-swap. */
  putReport(report: MemberReport, expected: Revision): Promise<Revision> {
    return this.casPut(fleetKeys.report(report.member, report.cert), reportSchema.parse(report), expected);
  }

  /** Every member's reports; a report that fails its schema is returned as an error, not dropped. */
  async listReports(): Promise<Array<Versioned<MemberReport> | FleetDataError>> {
    const res = await this.range('members/', 'list member reports');
    return res.kvs.map((kv) => this.decode(kv, reportSchema));
  }

  /** Take `member` out of the fleet for good. Idempotent: a member already removed keeps its first record. */
  async markRemoved(member: string, by: string, now: Date): Promise<Versioned<RemovedMember>> {
    const value = removedSchema.parse({ v: 1, member, removedAt: now.toISOString(), removedBy: by });
    try {
      return { value, revision: await this.casPut(fleetKeys.removed(member), value, ABSENT) };
    } catch (err) {
      if (!(err instanceof FleetConflictError)) throw err;
      const existing = await this.getJson(fleetKeys.removed(member), removedSchema);
      if (!existing) throw err;
      return existing;
    }
  }

  async listRemoved(): Promise<Array<Versioned<RemovedMember> | FleetDataError>> {
    const res = await this.range('removed/', 'list removed members');
    return res.kvs.map((kv) => this.decode(kv, removedSchema));
  }

  /** Every lineage under the prefix, and the store revision they were read at (to start a watch after it). */
  async lineages(): Promise<{ revision: string; lineages: LineageEntry[] }> {
    const res = await this.range('certs/', 'list lineages');
    const lineages: LineageEntry[] = [];
    for (const kv of res.kvs) {
      const cert = lineageCert(this.relative(kv.key));
      if (cert !== undefined) lineages.push({ cert, revision: kv.mod_revision, lineage: this.decode(kv, lineageSchema) });
    }
    return { revision: res.header.revision, lineages };
  }

  /** A lineage as a watch sees it: `undefined` once deleted. */
  decodeLineage(kv: IKeyValue): Versioned<Lineage> | FleetDataError {
    return this.decode(kv, lineageSchema);
  }

  /** Who holds the leader key now, if anyone. */
  async leader(): Promise<LeaderInfo | undefined> {
    const res = await this.etcd.call('read the leader key', (o) => this.etcd.ns.get(LEADER_KEY).options(o).exec());
    const kv = res.kvs[0];
    if (!kv) return undefined;
    return leaderInfo(kv);
  }

  /** The key relative to the prefix (range responses carry full keys). */
  relative(key: Buffer | string): string {
    const k = key.toString();
    return k.startsWith(this.etcd.prefix) ? k.slice(this.etcd.prefix.length) : k;
  }

  private async range(prefix: string, what: string): Promise<IRangeResponse> {
    return this.etcd.call(what, (o) => this.etcd.ns.getAll().prefix(prefix).options(o).exec());
  }

  private async getJson<T>(key: string, schema: z.ZodType<T>): Promise<Versioned<T> | undefined> {
    const res = await this.etcd.call(`read ${key}`, (o) => this.etcd.ns.get(key).options(o).exec());
    const kv = res.kvs[0];
    if (!kv) return undefined;
    const v = this.decode(kv, schema, key);
    if (v instanceof FleetDataError) throw v;
    return v;
  }

  decode<T>(kv: IKeyValue, schema: z.ZodType<T>, key = this.relative(kv.key)): Versioned<T> | FleetDataError {
    let json: unknown;
    try {
      json = JSON.parse(kv.value.toString('utf8'));
    } catch (err) {
      return new FleetDataError(key, 'not JSON', { cause: err });
    }
    const r = schema.safeParse(json);
    if (!r.success) {
      const first = r.error.issues[0]!;
      return new FleetDataError(key, `not what mxcert stores there (${first.path.join('.') || 'value'}: ${first.message})`);
    }
    return { value: r.data, revision: kv.mod_revision };
  }

  /**
   * Write `value` at `key` if the key's mod revision is still `expected`
   * (ABSENT: it must not exist) and, with a fence, the leader key is still
   * the fence's. On failure the transaction reads both back, atomically,
   * to say which compare failed.
   */
  async casPut(key: string, value: unknown, expected: Revision, fence?: LeaderFence): Promise<Revision> {
    const ns = this.etcd.ns;
    const res = await this.etcd.call(`write ${key}`, (o) => {
      let txn = ns.if(key, 'Mod', '==', expected);
      if (fence) txn = txn.and(LEADER_KEY, 'Create', '==', fence.createRevision).and(LEADER_KEY, 'Lease', '==', fence.leaseId);
      return txn
        .then(ns.put(key).value(JSON.stringify(value)))
        .else(ns.get(key), ns.get(LEADER_KEY))
        .options(o)
        .commit();
    });
    if (res.succeeded) return res.header.revision;
    const found = res.responses[0]?.response_range?.kvs[0];
    const leader = res.responses[1]?.response_range?.kvs[0];
    if (fence && (!leader || leader.create_revision !== fence.createRevision || leader.lease !== fence.leaseId)) {
      const now = leader ? `the leader key now belongs to ${leaderInfo(leader).member}` : 'no member holds the leader key';
      throw new NotLeaderError(`refused to write ${key}: ${fence.member} is no longer the fleet leader (${now})`);
    }
    throw new FleetConflictError(key, expected, found?.mod_revision ?? ABSENT);
  }
}

export function lineageCert(relKey: string): string | undefined {
  const m = /^certs\/([^/]+)\/lineage$/.exec(relKey);
  return m?.[1];
}

/** The leader key's value is JSON `{ member, since }` (src/fleet/leader.ts); its lease and creation revision come from etcd. */
export function leaderInfo(kv: IKeyValue): LeaderInfo {
  let member = kv.value.toString('utf8');
  let since: string | undefined;
  try {
    const v = JSON.parse(member) as { member?: unknown; since?: unknown };
    if (typeof v.member === 'string') member = v.member;
    if (typeof v.since === 'string') since = v.since;
  } catch {
    // A bare name is fine too.
  }
  return { member, leaseId: kv.lease, createRevision: kv.create_revision, since };
}

