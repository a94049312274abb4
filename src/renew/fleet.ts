// Fleet certificates in a renewal pass (docs/architecture.md, "Fleet").
// Leadership is per pass: a pass that finds no leader campaigns briefly and,
// elected, leads until it ends (then resigns); otherwise it is a member only.
// The leader plans from the lineage in etcd (not this host's state), orders
// when due and publishes the lineage under its fence; every member, the
// leader included, then deploys the lineage through the normal pipeline and
// reports what it serves. Without etcd nothing is renewed and nothing is
// ordered alone: every member keeps serving what it has.
import { X509Certificate } from 'node:crypto';
import type { CertificateConfig, Config, FleetConfig, KeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { describeError, MxcertError } from '../errors.js';
import { connectFleetEtcd, type FleetEtcd } from '../fleet/etcd-client.js';
import { EtcdAccessError, EtcdUnavailableError, FleetConflictError, SealError } from '../fleet/errors.js';
import { campaign, type LeaderTerm } from '../fleet/leader.js';
import { memberDeployVerdict } from '../fleet/member-decide.js';
import { loadFleetKey } from '../fleet/secret-files.js';
import { seal, unseal, type FleetKey, type SealSlot } from '../fleet/seal.js';
import { ABSENT, FleetStore, type Lineage, type LineageUnit, type MemberReport as StoredReport } from '../fleet/store.js';
import type { MemberReport } from '../dane/fleet.js';
import { keyTlsa311 } from '../dane/journal.js';
import { checkChain } from '../validate/chain-check.js';
import { planFromState, type Plan } from '../schedule/plan.js';
import type { StoredVersion } from '../store/state-store.js';
import {
  deployAndRecord,
  fingerprintOf,
  liveChecks,
  localPlan,
  obtainChecked,
  recordFailure,
  runFailureHooks,
  stageChecked,
  type RenewDeps,
  type RenewOptions,
  type UnitOutcome,
} from './orchestrator.js';

/** What fleet units report when etcd cannot be used; the message starts with this. */
export const ETCD_DOWN = 'etcd unavailable: keeping what is served';

interface Connected {
  fleet: FleetConfig;
  etcd: FleetEtcd;
  store: FleetStore;
  key: FleetKey;
  /** Set while this pass leads. */
  term?: LeaderTerm;
}

export interface FleetPass {
  renewCertificate(deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]>;
  /** Resign (if leading) and disconnect. */
  close(): Promise<void>;
}

/** Connect, prove quorum, and campaign once; a failure here makes the fleet units fail, never the pass. */
export async function openFleetPass(config: Config, logger: Logger): Promise<FleetPass> {
  const fleet = config.fleet!;
  const log = logger.child({ fleet: fleet.member });
  let c: Connected | undefined;
  let down: string | undefined;
  let etcd: FleetEtcd | undefined;
  try {
    const key = await loadFleetKey(fleet.keyEncryption.keyFile);
    etcd = await connectFleetEtcd(fleet);
    await etcd.probe();
    const store = new FleetStore(etcd);
    c = { fleet, etcd, store, key, term: await lead(etcd, store, fleet, log) };
  } catch (err) {
    etcd?.close();
    const unavailable = err instanceof EtcdUnavailableError || err instanceof EtcdAccessError;
    down = unavailable ? `${ETCD_DOWN} (${describeError(err)})` : `the fleet cannot be used: ${describeError(err)}; keeping what is served`;
    log.error({ err: describeError(err) }, down);
  }
  return {
    renewCertificate: (deps, cert, opts) => (c ? fleetCertificate(c, deps, cert, opts) : unavailableUnits(deps, cert, down!)),
    async close() {
      if (!c) return;
      await c.term?.resign().catch(() => undefined);
      c.etcd.close();
    },
  };
}

/** Lead this pass if nobody leads: one short campaign; a leader elsewhere (or a slow election) makes this pass a member only. */
async function lead(etcd: FleetEtcd, store: FleetStore, fleet: FleetConfig, log: Logger): Promise<LeaderTerm | undefined> {
  const holder = await store.leader();
  if (holder) {
    log.info({ leader: holder.member }, `fleet: ${holder.member} leads; acting as a member`);
    return undefined;
  }
  try {
    const term = await campaign(etcd, { member: fleet.member, ttlSeconds: fleet.leaseTtl / 1000, signal: AbortSignal.timeout(etcd.dialTimeoutMs) });
    log.info('fleet: leading this pass');
    return term;
  } catch (err) {
    log.info({ err: describeError(err) }, 'fleet: not elected; acting as a member');
    return undefined;
  }
}

/**
 * etcd cannot be used: nothing changes on disk. Failure hooks run once the
 * certificate served here is in its last third, when waiting becomes a risk.
 */
async function unavailableUnits(deps: RenewDeps, cert: CertificateConfig, error: string): Promise<UnitOutcome[]> {
  const out: UnitOutcome[] = [];
  for (const keyType of cert.keys) {
    const log = deps.logger.child({ cert: cert.name, keyType });
    const state = await deps.store.readState(cert.name, keyType);
    const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
    if (current && inLastThird(current, deps.clock.now())) await runFailureHooks(cert, keyType, error, log);
    out.push({ cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code: 'etcd-unavailable' });
  }
  return out;
}

function inLastThird(v: StoredVersion, now: Date): boolean {
  const from = Date.parse(v.meta.notBefore);
  const to = Date.parse(v.meta.notAfter);
  return now.getTime() >= from + ((to - from) * 2) / 3;
}

async function fleetCertificate(c: Connected, deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]> {
  if (cert.dane?.enabled) {
    const error = 'DANE on a fleet certificate is not supported by this version; keeping what is served';
    return Promise.all(cert.keys.map(async (keyType): Promise<UnitOutcome> => ({ cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code: 'fleet' })));
  }
  // Key types one after the other: they share one lineage value in etcd.
  const out: UnitOutcome[] = [];
  for (const keyType of cert.keys) {
    if (opts.signal?.aborted) break;
    const log = deps.logger.child({ cert: cert.name, keyType });
    try {
      const led = c.term ? await leadUnit(c, deps, cert, keyType, opts, log) : undefined;
      const member = await memberUnit(c, deps, cert, keyType, log);
      out.push(led?.status === 'failed' ? led : member);
    } catch (err) {
      const unavailable = err instanceof EtcdUnavailableError;
      const error = unavailable ? `${ETCD_DOWN} (${describeError(err)})` : describeError(err);
      log.error({ err: describeError(err) }, unavailable ? ETCD_DOWN : 'fleet unit failed');
      out.push({ cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code: err instanceof MxcertError ? err.code : 'error' });
    }
  }
  return out;
}

const slot = (c: Connected, cert: string, keyType: string): SealSlot => ({ prefix: c.fleet.etcd.prefix, cert, keyType, role: 'current' });

/** The lineage unit as a stored version's metadata, for planning. */
function lineageVersion(unit: LineageUnit, keyType: KeyType, keyPem = ''): StoredVersion {
  const pems = unit.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const leaf = new X509Certificate(pems[0] ?? unit.chainPem);
  const names = (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
  return {
    meta: { id: `fleet-${unit.serial}`, serial: unit.serial, notBefore: unit.notBefore, notAfter: unit.notAfter, names, issuer: leaf.issuer, spkiSha256: '', keyType, issuedAt: unit.notBefore },
    keyPem,
    leafPem: pems[0] ?? '',
    intermediatesPem: pems.slice(1),
  };
}

/** Leader: plan from the lineage; when due, order once and publish the lineage under the fence. */
async function leadUnit(c: Connected, deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, opts: RenewOptions, log: Logger): Promise<UnitOutcome | undefined> {
  const got = await c.store.getLineage(cert.name);
  const unit = got?.value.units[keyType];
  // Failures and backoff are this host's; revocation and ARI belong to local versions, not the lineage.
  const state = { ...(await deps.store.readState(cert.name, keyType)), revoked: undefined, ari: undefined };
  const current = unit ? lineageVersion(unit, keyType, cert.reuseKey ? unseal(c.key, unit.key, slot(c, cert.name, keyType)).toString('utf8') : '') : undefined;
  const plan = planFromState(cert, keyType, state, current, opts.force, deps.clock.now(), fingerprintOf(deps, cert, keyType));
  if (!plan.due) return undefined;
  log.info({ reason: plan.reason }, 'fleet leader: renewing the lineage');
  try {
    c.term!.assertLeader('order a certificate');
    const got2 = await obtainChecked(deps, cert, keyType, { state, current, log }, {});
    const now = deps.clock.now().toISOString();
    const chain = got2.chain;
    const next: Lineage = {
      v: 1,
      generation: (got?.value.generation ?? 0) + 1,
      units: {
        ...got?.value.units,
        [keyType]: { chainPem: chain.leafPem + chain.intermediatesPem.join(''), serial: chain.serial, notBefore: chain.notBefore.toISOString(), notAfter: chain.notAfter.toISOString(), key: seal(c.key, got2.keyPem, slot(c, cert.name, keyType)) },
      },
      updatedBy: c.fleet.member,
      updatedAt: now,
    };
    await c.store.putLineage(cert.name, next, got?.revision ?? ABSENT, c.term!.fence);
    log.info({ serial: chain.serial, generation: next.generation }, 'fleet leader: lineage published');
    return undefined;
  } catch (err) {
    const f = await recordFailure(deps, cert, keyType, { state, current: undefined, log }, err);
    return { cert: cert.name, keyType, status: 'failed', plan, ...f };
  }
}

/** Member: deploy the lineage if this host does not serve it yet, and report. */
async function memberUnit(c: Connected, deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, log: Logger): Promise<UnitOutcome> {
  const state = await deps.store.readState(cert.name, keyType);
  const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
  const got = await c.store.getLineage(cert.name);
  const unit = got?.value.units[keyType];
  if (!unit) {
    const error = `the fleet has no lineage for ${cert.name} (${keyType}) yet: its leader orders it; keeping what is served`;
    log.warn(error);
    return { cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code: 'fleet-waiting' };
  }
  const plan = planFromState(cert, keyType, state, lineageVersion(unit, keyType), false, deps.clock.now(), fingerprintOf(deps, cert, keyType));
  const fail = async (step: string, err: unknown): Promise<UnitOutcome> => {
    const error = describeError(err);
    log.error({ step, err: error }, 'fleet: refusing the lineage; keeping what is served');
    await report(c, cert.name, keyType, { error: `${step}: ${error}` }, deps.clock.now()).catch((e: unknown) => log.warn({ err: describeError(e) }, 'fleet: report not written'));
    return { cert: cert.name, keyType, status: 'failed', plan, step, error, code: err instanceof MxcertError ? err.code : 'error' };
  };
  let keyPem: string;
  try {
    keyPem = unseal(c.key, unit.key, slot(c, cert.name, keyType)).toString('utf8');
  } catch (err) {
    if (err instanceof SealError) return fail('fleet', err);
    throw err;
  }
  const tlsa = keyTlsa311(keyPem);
  const own = await c.store.getReport(c.fleet.member, cert.name);
  const verdict = memberDeployVerdict(
    {
      dane: false,
      lineage: { tlsa, serial: unit.serial },
      deployed: current && { tlsa: keyTlsa311(current.keyPem), serial: current.meta.serial },
      report: ownReport(c.fleet.member, own?.value, keyType),
      dns: [],
    },
    deps.clock.now(),
  );
  log.info({ verdict: verdict.kind, why: verdict.why, generation: got!.value.generation }, `fleet member: ${verdict.kind}`);
  const served = { spkiSha256: tlsa, serial: unit.serial };
  if (verdict.kind === 'skip') return { cert: cert.name, keyType, status: 'not-due', plan };
  if (verdict.kind === 'refuse') return fail('fleet', new MxcertError('fleet-refused', verdict.why));
  let checked;
  try {
    // The leader validated it; a member checks again before serving it (trust anchors, names, key match).
    checked = await checkChain({ keyPem, chainPem: unit.chainPem, domains: cert.domains, now: deps.clock.now(), trustedRootsPem: deps.trustedRootsPem });
  } catch (err) {
    return fail('validate', err);
  }
  if (verdict.kind === 'verify') {
    try {
      await liveChecks(deps, cert, keyType, { keyPem, chain: checked, versionId: '' }, log);
    } catch (err) {
      return fail('verify', err);
    }
    await report(c, cert.name, keyType, { served, generation: got!.value.generation, verified: true }, deps.clock.now());
    return { cert: cert.name, keyType, status: 'not-due', plan };
  }
  // No claim while the files change: a member killed mid-deploy leaves none the leader could count.
  await report(c, cert.name, keyType, { served: null }, deps.clock.now());
  const staged = await stageChecked(deps, cert, keyType, keyPem, checked);
  try {
    await deployAndRecord(deps, cert, keyType, { state, current, log }, staged);
  } catch (err) {
    const f = await recordFailure(deps, cert, keyType, { state, current, log }, err);
    const previous = current ? { spkiSha256: keyTlsa311(current.keyPem), serial: current.meta.serial } : null;
    await report(c, cert.name, keyType, { served: previous, error: f.error }, deps.clock.now()).catch((e: unknown) => log.warn({ err: describeError(e) }, 'fleet: report not written'));
    return { cert: cert.name, keyType, status: 'failed', plan, ...f };
  }
  await report(c, cert.name, keyType, { served, generation: got!.value.generation, verified: true }, deps.clock.now());
  return { cert: cert.name, keyType, status: 'renewed', plan, serial: checked.serial, notAfter: checked.notAfter.toISOString() };
}

/** This member's stored report as the member verdict reads it, for one key type. */
function ownReport(member: string, r: StoredReport | undefined, keyType: string): MemberReport | undefined {
  if (!r) return undefined;
  const u = r.units[keyType];
  return { member, ...(u ? { servedTlsa: u.spkiSha256, serial: u.serial } : {}), verifiedAt: r.verifiedAt, ...(r.error ? { error: r.error.message } : {}) };
}

interface ReportChange {
  /** What this key type serves now; null: withdraw the claim; absent: unchanged. */
  served?: { spkiSha256: string; serial: string } | null;
  generation?: number;
  /** Verified live just now. */
  verified?: boolean;
  /** The last deploy or check failed; a report without it clears the error. */
  error?: string;
}

/** Update this member's report for `cert` (compare-and-swap, re-read on a conflict). */
async function report(c: Connected, cert: string, keyType: string, change: ReportChange, now: Date): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const got = await c.store.getReport(c.fleet.member, cert);
    const units = { ...got?.value.units };
    if (change.served === null) delete units[keyType];
    else if (change.served) units[keyType] = change.served;
    const generation = change.generation ?? got?.value.generation;
    const value: StoredReport = {
      v: 1,
      member: c.fleet.member,
      cert,
      units,
      ...(generation !== undefined ? { generation } : {}),
      verifiedAt: change.verified || !got ? now.toISOString() : got.value.verifiedAt,
      ...(change.error ? { error: { message: change.error, at: now.toISOString() } } : {}),
    };
    try {
      await c.store.putReport(value, got?.revision ?? ABSENT);
      return;
    } catch (err) {
      if (!(err instanceof FleetConflictError) || attempt >= 2) throw err;
    }
  }
}
