// DANE on a fleet certificate (docs/architecture.md, "DANE across a
// fleet"). The leader runs the ordinary rollover machine (src/dane/
// rollover.ts) with three differences: its journal and keys live in etcd
// (sealed, written under the leader fence), its observations include every
// member's report, and "deploy key X" means: order for X (or keep the
// lineage's certificate if it already has X and is not due), publish the
// lineage, and apply it as this host's own member, checking only its own
// MTA. If this host does not end up serving it, the previous lineage goes
// back and the step fails, so the machine never moves on a key nobody serves.
import { randomBytes } from 'node:crypto';
import type { CertificateConfig, FleetConfig, KeyType } from '../config/schema.js';
import { connectFleetEtcd } from '../fleet/etcd-client.js';
import type { Logger } from '../log.js';
import { describeError, MxcertError } from '../errors.js';
import { advanceDane } from '../dane/rollover.js';
import { keyTlsa311, upgradeJournal, type DaneStorage, type KeyRef } from '../dane/journal.js';
import type { FleetObservations, MemberReport } from '../dane/fleet.js';
import { liveCheck, observeOwners, type LiveCheckTarget } from '../dane/observe.js';
import { createPublisher, type TlsaPublisher } from '../dane/publisher.js';
import { endpointOwners } from '../dane/zone-lines.js';
import type { OwnerObservation } from '../dane/decide.js';
import { generateKeyPem } from '../keys/keygen.js';
import { EtcdUnavailableError, FleetConflictError, FleetDataError } from '../fleet/errors.js';
import { seal, unseal, type SealSlot } from '../fleet/seal.js';
import { ABSENT, FleetStore, fleetKeys, type DaneRecord, type Lineage } from '../fleet/store.js';
import { obtainChecked, type RenewDeps, type UnitOutcome } from './orchestrator.js';
import { leaderState, lineagePlan, lineageVersion, memberUnit, slot, type Connected, type DaneMemberContext } from './fleet-member.js';

/** A key in the DANE record is bound to its key type and id: a sealed key moved to another id does not open. */
const keySlot = (c: Connected, cert: string, keyType: string, id: string): SealSlot => ({ prefix: c.fleet.etcd.prefix, cert, keyType: `${keyType}/${id}`, role: 'next' });

/** The DANE record's journals, per key type (the store keeps the `journal` field opaque). */
type Journals = Record<string, unknown>;

/** One key type's DANE journal and keys in etcd; every write compares the record's revision and the leader fence. */
export function etcdDaneStorage(c: Connected, cert: string, keyType: KeyType): DaneStorage {
  const read = async () => c.store.getDane(cert);
  const write = async (change: (r: DaneRecord) => DaneRecord, now: Date) => {
    const got = await read();
    const base: DaneRecord = got?.value ?? { v: 1, journal: {}, next: {}, updatedBy: c.fleet.member, updatedAt: now.toISOString() };
    const next = { ...change({ ...base, journal: { ...(base.journal as Journals) }, next: { ...base.next } }), updatedBy: c.fleet.member, updatedAt: now.toISOString() };
    if (!c.term) throw new MxcertError('fleet-not-leader', 'only the fleet leader writes the DANE journal');
    await c.store.putDane(cert, next, got?.revision ?? ABSENT, c.term.fence);
  };
  return {
    async readJournal() {
      const raw = ((await read())?.value.journal as Journals | undefined)?.[keyType];
      return raw ? upgradeJournal(raw, `the fleet's DANE journal of ${cert}/${keyType}`) : undefined;
    },
    async writeJournal(j, now) {
      j.updatedAt = now.toISOString();
      await write((r) => ({ ...r, journal: { ...(r.journal as Journals), [keyType]: j } }), now);
    },
    async createKey(now, pem) {
      const keyPem = pem ?? (await generateKeyPem(keyType));
      const id = `${now.toISOString().replace(/[:.]/g, '')}-${randomBytes(4).toString('hex')}`;
      await write((r) => ({ ...r, next: { ...r.next, [`${keyType}/${id}`]: seal(c.key, keyPem, keySlot(c, cert, keyType, id)) } }), now);
      return { id, tlsa: keyTlsa311(keyPem), createdAt: now.toISOString() } satisfies KeyRef;
    },
    async readKey(id) {
      const sealed = (await read())?.value.next[`${keyType}/${id}`];
      if (!sealed) throw new FleetDataError(`certs/${cert}/dane`, `no key ${id} for ${keyType}`);
      return unseal(c.key, sealed, keySlot(c, cert, keyType, id)).toString('utf8');
    },
    async deleteKey(id) {
      await write((r) => {
        const { [`${keyType}/${id}`]: _gone, ...rest } = r.next;
        return { ...r, next: rest };
      }, new Date());
    },
    async removeAll() {
      await write((r) => {
        const { [keyType]: _j, ...journals } = r.journal as Journals;
        return { ...r, journal: journals, next: Object.fromEntries(Object.entries(r.next).filter(([k]) => !k.startsWith(`${keyType}/`))) };
      }, new Date());
    },
  };
}

/** The members' reports for one key type, one entry per expected member (fleet.members minus those removed for good). */
export async function fleetReports(c: Connected, cert: string, keyType: string): Promise<FleetObservations> {
  const removed = new Set((await c.store.listRemoved()).flatMap((r) => (r instanceof Error ? [] : [r.value.member])));
  const members: MemberReport[] = [];
  for (const member of c.fleet.members.filter((m) => !removed.has(m))) {
    const r = await c.store.getReport(member, cert).catch(() => undefined);
    const u = r?.value.units[keyType];
    members.push({
      member,
      ...(u ? { servedTlsa: u.spkiSha256, serial: u.serial } : {}),
      ...(r ? { verifiedAt: r.value.verifiedAt } : {}),
      ...(r?.value.error ? { error: r.value.error.message, reportedAt: r.value.error.at } : {}),
    });
  }
  return { members };
}

/** What a member needs for its DANE checks: the fleet's journal and its own look at every authoritative server. */
export async function daneMemberContext(c: Connected, cert: CertificateConfig, keyType: KeyType, pub: TlsaPublisher, log: Logger): Promise<DaneMemberContext> {
  const owners = endpointOwners(cert);
  const journal = await etcdDaneStorage(c, cert.name, keyType).readJournal();
  const dns: OwnerObservation[] = await observeOwners(await pub.servers(), owners);
  const target: LiveCheckTarget = { endpoints: [], owners, servers: () => pub.servers(), keyType, timeoutMs: cert.verify.timeout, logger: log };
  // Before the first publish no record exists (RFC 7672 §2.2: no TLSA, no
  // DANE): nothing to check in DNS yet; the leader publishes once every member serves the key.
  const noop = async () => undefined;
  return { journal, dns, extraVerify: (tlsa) => (journal?.publishedAt ? liveCheck(target, tlsa) : noop) };
}

/** Leader and member, one key type of a DANE fleet certificate. */
export async function fleetDaneUnit(c: Connected, deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, force: boolean, log: Logger): Promise<UnitOutcome> {
  const dane = cert.dane!;
  const pub = await createPublisher(dane.publisher, { logger: log });
  let led: UnitOutcome | undefined;
  if (c.term) led = await leadDane(c, deps, cert, keyType, force, pub, log);
  const own = await memberUnit(c, deps, cert, keyType, log, await daneMemberContext(c, cert, keyType, pub, log));
  if (!led) return own;
  if (led.status === 'failed') return led;
  // The leader's report says what the machine did; the member's says what this host serves.
  return own.status === 'failed' || own.status === 'renewed' ? { ...own, dane: led.dane } : led;
}

async function leadDane(c: Connected, deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, force: boolean, pub: TlsaPublisher, log: Logger): Promise<UnitOutcome> {
  const dane = cert.dane!;
  const planNow = async () => {
    const unit = (await c.store.getLineage(cert.name))?.value.units[keyType];
    return lineagePlan(deps, cert, keyType, await deps.store.readState(cert.name, keyType), unit ? lineageVersion(unit, keyType) : undefined, force);
  };
  const plan = await planNow();
  let renewed: { serial: string; notAfter: string } | undefined;
  try {
    const out = await advanceDane(
      cert,
      keyType,
      {
        store: deps.store,
        logger: log,
        now: () => deps.clock.now(),
        storage: etcdDaneStorage(c, cert.name, keyType),
        publisher: pub,
        liveEndpoints: [],
        fleet: () => fleetReports(c, cert.name, keyType),
        issueAndDeploy: async (keyPem, extraVerify) => {
          renewed = await publishAndApply(c, deps, cert, keyType, keyPem, extraVerify, pub, log, force && !renewed);
          return renewed;
        },
        deployedKeyPem: async () => {
          const unit = (await c.store.getLineage(cert.name))?.value.units[keyType];
          return unit ? unseal(c.key, unit.key, slot(c, cert.name, keyType)).toString('utf8') : undefined;
        },
        renewalDue: async () => !renewed && (await planNow()).due,
        siblings: () =>
          Promise.all(
            cert.keys
              .filter((k) => k !== keyType)
              .map(async (k) => {
                const unit = (await c.store.getLineage(cert.name))?.value.units[k];
                const deployed = unit ? keyTlsa311(unseal(c.key, unit.key, slot(c, cert.name, k)).toString('utf8')) : undefined;
                return { keyType: k, journal: await etcdDaneStorage(c, cert.name, k).readJournal(), deployedTlsa: deployed, fleet: await fleetReports(c, cert.name, k) };
              }),
          ),
      },
      { keyLifetimeMs: dane.keyLifetime, minHoldMs: dane.minHold, strictSignatures: dane.strictSignatures, ttl: dane.publisher?.ttl ?? 3600 },
    );
    if (out.waiting) log.info({ phase: out.phase, waiting: out.waiting }, 'DANE (fleet leader): waiting');
    const report = { phase: out.phase, acted: out.acted, ...(out.waiting ? { waiting: out.waiting } : {}) };
    if (renewed) return { cert: cert.name, keyType, status: 'renewed', plan, serial: renewed.serial, notAfter: renewed.notAfter, dane: report };
    return { cert: cert.name, keyType, status: out.changed ? 'dane-progress' : 'not-due', plan, dane: report };
  } catch (err) {
    // etcd went away mid-step: every step is idempotent and re-read next pass; the caller applies the etcd rule.
    if (err instanceof EtcdUnavailableError) throw err;
    log.error({ err: describeError(err) }, 'DANE (fleet leader) failed');
    return { cert: cert.name, keyType, status: 'failed', plan, step: 'dane', error: describeError(err), code: err instanceof MxcertError ? err.code : 'error' };
  }
}

/**
 * "Deploy key X" for the fleet: a certificate for X (the lineage's, when it
 * has X and is not due; else one order), published as the lineage, then
 * applied here. If this host does not serve it, the previous lineage is
 * put back and this throws.
 */
async function publishAndApply(
  c: Connected,
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  keyPem: string,
  extraVerify: (leafDer: Buffer) => Promise<void>,
  pub: TlsaPublisher,
  log: Logger,
  force: boolean,
): Promise<{ serial: string; notAfter: string }> {
  const tlsa = keyTlsa311(keyPem);
  const prev = await c.store.getLineage(cert.name);
  const unit = prev?.value.units[keyType];
  const sameKey = unit !== undefined && keyTlsa311(unseal(c.key, unit.key, slot(c, cert.name, keyType)).toString('utf8')) === tlsa;
  const state = leaderState(await deps.store.readState(cert.name, keyType));
  const current = unit ? lineageVersion(unit, keyType) : undefined;
  const due = !current || lineagePlan(deps, cert, keyType, state, current, force).due;
  let rev = prev?.revision ?? ABSENT;
  let published: Lineage | undefined;
  if (!sameKey || due) {
    c.term!.assertLeader('order a certificate');
    const got = await obtainChecked(deps, cert, keyType, { state, current, log }, { keyPem });
    const ch = got.chain;
    published = {
      v: 1,
      generation: (prev?.value.generation ?? 0) + 1,
      units: { ...prev?.value.units, [keyType]: { chainPem: ch.leafPem + ch.intermediatesPem.join(''), serial: ch.serial, notBefore: ch.notBefore.toISOString(), notAfter: ch.notAfter.toISOString(), key: seal(c.key, keyPem, slot(c, cert.name, keyType)) } },
      updatedBy: c.fleet.member,
      updatedAt: deps.clock.now().toISOString(),
    };
    rev = await c.store.putLineage(cert.name, published, rev, c.term!.fence);
    log.info({ serial: ch.serial, generation: published.generation }, 'fleet leader: lineage published');
  }
  const ctx = await daneMemberContext(c, cert, keyType, pub, log);
  const own = await memberUnit(c, deps, cert, keyType, log, { ...ctx, extraVerify: () => extraVerify });
  const st = await deps.store.readState(cert.name, keyType);
  const served = st.current ? await deps.store.loadVersion(cert.name, keyType, st.current) : undefined;
  if (own.status !== 'failed' && served && keyTlsa311(served.keyPem) === tlsa) {
    return { serial: served.meta.serial, notAfter: served.meta.notAfter };
  }
  const why = own.status === 'failed' ? own.error : (own.dane?.waiting ?? 'this member did not deploy it');
  if (published && prev) {
    // Members must not follow a lineage its own leader could not serve.
    await c.store.putLineage(cert.name, { ...prev.value, generation: published.generation + 1, updatedBy: c.fleet.member, updatedAt: deps.clock.now().toISOString() }, rev, c.term!.fence);
    log.warn({ generation: published.generation + 1 }, 'fleet leader: previous lineage put back');
  }
  throw new MxcertError('fleet-deploy', `the leader did not serve key ${tlsa.slice(0, 12)}… itself: ${why}`);
}

/**
 * `mxcert rollover` on a fleet certificate: the request goes into the
 * fleet's journal in etcd (any member may ask; the leader's next pass acts
 * on it). Returns the key types without a journal yet.
 */
export async function requestFleetRollover(fleet: FleetConfig, cert: string, keyTypes: readonly string[], emergency: boolean, now: Date): Promise<string[]> {
  const etcd = await connectFleetEtcd(fleet);
  try {
    const store = new FleetStore(etcd);
    for (let attempt = 0; ; attempt++) {
      const got = await store.getDane(cert);
      const journals = { ...((got?.value.journal as Journals | undefined) ?? {}) };
      const missing = keyTypes.filter((k) => !journals[k]);
      if (!got || missing.length) return missing.length ? missing : [...keyTypes];
      for (const k of keyTypes) journals[k] = { ...(journals[k] as object), rollover: { requestedAt: now.toISOString(), emergency } };
      try {
        await store.casPut(fleetKeys.dane(cert), { ...got.value, journal: journals, updatedBy: fleet.member, updatedAt: now.toISOString() }, got.revision);
        return [];
      } catch (err) {
        if (!(err instanceof FleetConflictError) || attempt >= 4) throw err;
      }
    }
  } finally {
    etcd.close();
  }
}
