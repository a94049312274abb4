// A fleet member's side of a renewal pass (docs/architecture.md, "Fleet"):
// deploy the lineage the leader published, if this host does not serve it
// yet, through the normal pipeline (atomic files, hooks, live STARTTLS
// check of its own endpoints), then report what it serves. The report is
// withdrawn before the files change and written again once the live check
// passed, so the leader never counts a member that is mid-deploy.
import { X509Certificate } from 'node:crypto';
import type { CertificateConfig, FleetConfig, KeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import { describeError, MxcertError } from '../errors.js';
import type { FleetEtcd } from '../fleet/etcd-client.js';
import { FleetConflictError, SealError } from '../fleet/errors.js';
import type { LeaderTerm } from '../fleet/leader.js';
import { memberDeployVerdict } from '../fleet/member-decide.js';
import { unseal, type FleetKey, type SealSlot } from '../fleet/seal.js';
import { ABSENT, FleetStore, type LineageUnit, type MemberReport as StoredReport } from '../fleet/store.js';
import type { MemberReport } from '../dane/fleet.js';
import type { OwnerObservation } from '../dane/decide.js';
import { keyTlsa311, type DaneJournal } from '../dane/journal.js';
import { checkChain } from '../validate/chain-check.js';
import { planFromState, type Plan } from '../schedule/plan.js';
import type { CertState, StoredVersion } from '../store/state-store.js';
import { deployAndRecord, fingerprintOf, liveChecks, localPlan, recordFailure, stageChecked, type RenewDeps, type UnitOutcome } from './orchestrator.js';

/** DANE on a fleet certificate: what the member's verdict and live check need. */
export interface DaneMemberContext {
  journal?: DaneJournal;
  /** This member's own look at every authoritative server, at every owner. */
  dns: OwnerObservation[];
  /** The live check after a deploy: the served key is `tlsa` and every server publishes it. */
  extraVerify(tlsa: string): (leafDer: Buffer) => Promise<void>;
}

export interface Connected {
  fleet: FleetConfig;
  etcd: FleetEtcd;
  store: FleetStore;
  key: FleetKey;
  /** Set while this pass leads. */
  term?: LeaderTerm;
}

export const slot = (c: Connected, cert: string, keyType: string): SealSlot => ({ prefix: c.fleet.etcd.prefix, cert, keyType, role: 'current' });

/** The lineage unit as a stored version's metadata, for planning. */
export function lineageVersion(unit: LineageUnit, keyType: KeyType, keyPem = ''): StoredVersion {
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

/**
 * How the leader plans a fleet unit: from the lineage's certificate
 * (`current`, from lineageVersion), with this host's failures and backoff
 * but not its revocation or ARI choice, which belong to local versions, not
 * to the lineage.
 */
export function lineagePlan(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, state: CertState, current: StoredVersion | undefined, force: boolean): Plan {
  return planFromState(cert, keyType, leaderState(state), current, force, deps.clock.now(), fingerprintOf(deps, cert, keyType));
}

/** This host's state as the leader uses it for a fleet unit: without revocation and ARI (see lineagePlan). */
export function leaderState(state: CertState): CertState {
  return { ...state, revoked: undefined, ari: undefined };
}

/** Member: deploy the lineage if this host does not serve it yet, and report. */
export async function memberUnit(c: Connected, deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, log: Logger, dane?: DaneMemberContext): Promise<UnitOutcome> {
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
      dane: Boolean(dane),
      ...(dane?.journal ? { journal: dane.journal } : {}),
      lineage: { tlsa, serial: unit.serial },
      deployed: current && { tlsa: keyTlsa311(current.keyPem), serial: current.meta.serial },
      report: ownReport(c.fleet.member, own?.value, keyType),
      dns: dane?.dns ?? [],
    },
    deps.clock.now(),
  );
  log.info({ verdict: verdict.kind, why: verdict.why, generation: got!.value.generation }, `fleet member: ${verdict.kind}`);
  const served = { spkiSha256: tlsa, serial: unit.serial };
  if (verdict.kind === 'skip') return { cert: cert.name, keyType, status: 'not-due', plan };
  if (verdict.kind === 'refuse') {
    // Under DANE a refusal is mostly a wait (the hold, the records not yet
    // everywhere): this host keeps serving what it has and looks again next pass.
    if (dane) return { cert: cert.name, keyType, status: 'not-due', plan, dane: { phase: dane.journal?.phase ?? 'PUBLISH', acted: [], waiting: `this member keeps its key: ${verdict.why}` } };
    return fail('fleet', new MxcertError('fleet-refused', verdict.why));
  }
  const extraVerify = dane?.extraVerify(tlsa);
  let checked;
  try {
    // The leader validated it; a member checks again before serving it (trust anchors, names, key match).
    checked = await checkChain({ keyPem, chainPem: unit.chainPem, domains: cert.domains, now: deps.clock.now(), trustedRootsPem: deps.trustedRootsPem });
  } catch (err) {
    return fail('validate', err);
  }
  if (verdict.kind === 'verify') {
    try {
      await liveChecks(deps, cert, keyType, { keyPem, chain: checked, versionId: '' }, log, extraVerify);
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
    await deployAndRecord(deps, cert, keyType, { state, current, log }, staged, extraVerify);
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
