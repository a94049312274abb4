// Walks each (certificate, key type) through
//   plan → obtain → validate → stage → deploy → hooks → verify → record
// logging each step. Decisions (plan, validation, bundle layout) are pure
// functions; this file only sequences effects and owns the rollback rule:
// if anything after deploy fails, the previous files go back and the deploy
// hooks run again, so the MTA keeps serving the old certificate (docs/architecture.md, "Files on disk", §4).
import { X509Certificate } from 'node:crypto';
import type { Config, CertificateConfig, KeyType } from '../config/schema.js';
import { expandOutputPath } from '../deploy/output-paths.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import { describeError, MxcertError, ValidationError } from '../errors.js';
import type { IssueRequest, IssueResult } from '../acme/client.js';
import { createCsr } from '../keys/csr.js';
import type { ChallengeSolver } from '../obtain/solver.js';
import { generateKeyPem } from '../keys/keygen.js';
import { checkChain, type CheckedChain } from '../validate/chain-check.js';
import { warnOnMissingUsage } from '../validate/usage.js';
import { checkMtaStsAfterRenewal } from '../mtasts/fetch.js';
import { buildBundle } from '../stage/bundle.js';
import { deployOutputs, type DeployResult } from '../deploy/outputs.js';
import { readDeployed, resolveOwner } from '../deploy/atomic-write.js';
import { writeLineage } from '../deploy/lineage.js';
import { hookEnvironment } from '../hooks/environment.js';
import { runHook } from '../hooks/run-hook.js';
import { verifyServed } from '../verify/starttls.js';
import { chooseAriInstant, jitterFor, retryAfterInstant } from '../schedule/renewal-time.js';
import { nextFailureCount, planFromState, type Plan } from '../schedule/plan.js';
import { configFingerprint } from '../schedule/config-fingerprint.js';
import { stagedVerdict } from '../schedule/staged.js';
import { ariCertId, nextAriCheck, type RenewalInfo } from '../acme/ari.js';
import { AcmeProblemError } from '../errors.js';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { ADOPTION_WAIT, advanceDane, retireDane } from '../dane/rollover.js';
import { daneDir, keyTlsa311, readDaneKey, readJournal } from '../dane/journal.js';
import { VISIBILITY_POLL_MS } from '../dane/execute.js';
import { keptKey, keptKeyNotice, type RetireOutcome } from '../dane/retire.js';
import { parseListen } from '../util/host-port.js';
import { publicKeySpkiDer } from '../keys/keygen.js';
import { displayTime } from '../util/display-time.js';
import type { CertState, StateStore, StoredVersion } from '../store/state-store.js';
import type { FleetDryRun } from '../fleet/dry-run-view.js';

export type OutputKind = 'combined' | 'key' | 'cert' | 'chain' | 'fullchain';
const KEY_KINDS: ReadonlySet<OutputKind> = new Set(['combined', 'key']);

/** The part of the ACME seam the orchestrator needs (AcmeService implements it). */
export interface CertificateIssuer {
  issue(req: IssueRequest): Promise<IssueResult>;
  /** Throws ConfigError when `acme.profile` is not offered by the CA. */
  checkProfile?(profile: string | undefined): Promise<void>;
  /** ARI window for a CertID; undefined when the CA offers no ARI. */
  renewalInfo?(certId: string): Promise<RenewalInfo | undefined>;
}

export type { Plan } from '../schedule/plan.js';
export { planFromState } from '../schedule/plan.js';

export interface RenewDeps {
  config: Config;
  store: StateStore;
  acme: CertificateIssuer;
  /** Solver for a certificate's challenge config; shared between certificates using the same one. */
  solverFor(cert: CertificateConfig): ChallengeSolver;
  clock: Clock;
  logger: Logger;
  /** Extra roots the issued chain must verify against (tests: Pebble's root). */
  trustedRootsPem?: string[];
  /** Random source for the ARI instant; injected so tests are deterministic. */
  random?: () => number;
  /** The MTAs' SNI tables (src/deploy/sni.ts), when the config has `sni`. */
  sni?: { afterDeploy(cert: CertificateConfig, log: Logger): Promise<void>; afterPass(log: Logger): Promise<boolean> };
  /**
   * This pass's part in the fleet (src/renew/fleet.ts), when the config has
   * certificates with `fleet: true`: those go through it, never the
   * single-host path (docs/architecture.md, "Fleet").
   */
  fleet?: { renewCertificate(deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]> };
}

export interface RenewOptions {
  force: boolean;
  dryRun: boolean;
  only?: string[];
  concurrency?: number;
  /** Stop starting new units once aborted (SIGTERM: finish the current step, then exit). */
  signal?: AbortSignal;
}

/** What the DANE machine did in this pass (docs/architecture.md, "DANE rollover"). */
export interface DaneReport {
  phase: string;
  acted: string[];
  waiting?: string;
  /** Something the operator must know: the key is kept because mxcert's records may still be published. */
  notice?: string;
}

export type UnitOutcome = (
  | { cert: string; keyType: KeyType; status: 'not-due'; plan: Plan }
  /** DANE: no certificate deployed, but the rollover moved (records published, a key retired, a phase changed). */
  | { cert: string; keyType: KeyType; status: 'dane-progress'; plan: Plan }
  | { cert: string; keyType: KeyType; status: 'planned'; plan: Plan }
  | { cert: string; keyType: KeyType; status: 'renewed'; plan: Plan; serial: string; notAfter: string }
  | { cert: string; keyType: KeyType; status: 'failed'; plan: Plan; step: string; error: string; code: string }
) & { dane?: DaneReport; fleet?: FleetDryRun };

/**
 * A failure at a named step; `rolledBack` says whether the old files were put
 * back. The message does not name the step: what reports it does, once
 * (recordFailure's `step: message`, the CLI's `FAILED at step: message`).
 */
class StepError extends MxcertError {
  constructor(readonly step: string, readonly inner: unknown, readonly rolledBack = false) {
    super(inner instanceof MxcertError ? inner.code : 'error', `${describeError(inner)}${rolledBack ? ' (previous files restored)' : ''}`, { cause: inner });
  }
}

export function outputPaths(cert: CertificateConfig, keyType: string): Partial<Record<OutputKind, string>> {
  const out: Partial<Record<OutputKind, string>> = {};
  for (const kind of ['combined', 'key', 'cert', 'chain', 'fullchain'] as const) {
    const tpl = cert.output[kind];
    if (tpl) out[kind] = expandOutputPath(tpl, { keytype: keyType, name: cert.name });
  }
  return out;
}

export async function renewAll(deps: RenewDeps, opts: RenewOptions): Promise<UnitOutcome[]> {
  // A unit of work is one (certificate, key type); a DANE certificate's key
  // types form one unit run in order, because adoption is certificate-level
  // (every key type deployed before the first record is published).
  const units: Array<() => Promise<UnitOutcome[]>> = [];
  for (const cert of deps.config.certificates) {
    if (opts.only?.length && !opts.only.includes(cert.name)) continue;
    // A dry run too: it plans from the fleet's lineage, read-only (src/renew/fleet-dry-run.ts).
    if (cert.fleet) {
      units.push(() => (deps.fleet ? deps.fleet.renewCertificate(deps, cert, opts) : noFleet(deps, cert)));
      continue;
    }
    // DANE state outlives `dane.enabled`: while mxcert's records may be
    // published, the certificate stays on the DANE path (it keeps its key).
    if (!opts.dryRun && (cert.dane?.enabled || (await hasDaneState(deps.store, cert)))) units.push(() => renewDaneCertificate(deps, cert, opts));
    else for (const keyType of cert.keys) units.push(async () => [await renewUnit(deps, cert, keyType, opts)]);
  }
  const results: UnitOutcome[][] = new Array(units.length);
  let next = 0;
  // Bounded concurrency: fast for a hundred certificates, gentle on the CA.
  const workers = Array.from({ length: Math.min(opts.concurrency ?? 8, units.length) }, async () => {
    while (next < units.length && !opts.signal?.aborted) {
      const i = next++;
      results[i] = await units[i]!();
    }
  });
  await Promise.all(workers);
  return results.filter(Boolean).flat();
}

/** A fleet certificate without the fleet wired in: never ordered alone (docs/architecture.md, "Fleet"). */
async function noFleet(deps: RenewDeps, cert: CertificateConfig): Promise<UnitOutcome[]> {
  const error = 'a fleet certificate (fleet: true) is renewed only through the fleet, which this pass is not connected to; keeping what is served';
  deps.logger.error({ cert: cert.name }, error);
  return Promise.all(cert.keys.map(async (keyType): Promise<UnitOutcome> => ({ cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code: 'fleet' })));
}

/** The plan this host's own state gives (what `status` shows), for a unit that did not get to plan. */
export async function localPlan(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType): Promise<Plan> {
  const state = await deps.store.readState(cert.name, keyType);
  const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
  return planFromState(cert, keyType, state, current, false, deps.clock.now(), fingerprintOf(deps, cert, keyType));
}

async function hasDaneState(store: StateStore, cert: CertificateConfig): Promise<boolean> {
  const found = await Promise.all(cert.keys.map((k) => access(path.join(daneDir(store, cert.name, k), 'journal.json')).then(() => true, () => false)));
  return found.includes(true);
}

/**
 * A certificate with DANE on, or with DANE state left: a retirement under
 * way moves first; while any journal remains and DANE is off (or still
 * retiring), renewals keep the key mxcert's records name.
 */
async function renewDaneCertificate(deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]> {
  let retire: RetireOutcome | undefined;
  let retireError: string | undefined;
  try {
    retire = await retireDane({ store: deps.store, name: cert.name, keyTypes: cert.keys, cert, logger: deps.logger.child({ cert: cert.name }), clock: deps.clock, budgetMs: VISIBILITY_POLL_MS, start: false });
  } catch (err) {
    // Renewals must go on (keeping the key): the error is reported, and
    // `mxcert dane retire` says the same with exit 1.
    retireError = `the retirement of mxcert's TLSA records failed: ${describeError(err)}`;
    deps.logger.error({ cert: cert.name, err: retireError }, 'DANE: retirement failed');
  }
  const retiring = retireError !== undefined || (retire !== undefined && retire.phase !== 'DONE');
  if (!cert.dane?.enabled || retiring) {
    const out: UnitOutcome[] = [];
    for (const keyType of cert.keys) {
      if (opts.signal?.aborted) break;
      out.push(await keepDaneKey(deps, cert, keyType, opts, retire, retireError));
    }
    return out;
  }
  return renewDaneKeyTypes(deps, cert, opts);
}

/**
 * One key type while mxcert's records may still be published (DANE off in
 * the config, or retiring): renew when due like any certificate, but with
 * the key those records name, never a fresh one.
 */
async function keepDaneKey(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, opts: RenewOptions, retire: RetireOutcome | undefined, retireError?: string): Promise<UnitOutcome> {
  const log = deps.logger.child({ cert: cert.name, keyType });
  let keep: KeptKey;
  try {
    const j = await readJournal(deps.store, cert.name, keyType);
    if (!j) return renewUnit(deps, cert, keyType, opts);
    const deployed = await deployedKeyPem(deps, cert, keyType, log);
    const key = keptKey(j, deployed ? keyTlsa311(deployed) : undefined);
    const notice = keptKeyNotice(cert.name, j, Boolean(cert.dane?.enabled));
    log.warn({ phase: j.phase }, `DANE: ${notice}`);
    const waiting = retireError ?? retire?.waiting;
    const report: DaneReport = { phase: j.phase, acted: retire?.acted ?? [], notice, ...(waiting ? { waiting } : {}) };
    keep = { keyPem: await readDaneKey(deps.store, cert.name, keyType, key.id), report, changed: Boolean(retire?.changed) };
  } catch (err) {
    // An unreadable journal or key: no renewal with a key the records may lack; report it.
    const state = await deps.store.readState(cert.name, keyType);
    const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
    const f = await recordFailure(deps, cert, keyType, { state, current, log }, err);
    return { cert: cert.name, keyType, status: 'failed', plan: planFromState(cert, keyType, state, current, opts.force, deps.clock.now()), ...f };
  }
  return renewUnit(deps, cert, keyType, opts, keep);
}

/**
 * The key types of one DANE certificate, one after the other. A key type
 * that waited for its siblings during adoption runs once more at the end,
 * so a fresh dual-key certificate is published in the same pass.
 */
async function renewDaneKeyTypes(deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]> {
  const out: UnitOutcome[] = [];
  for (const keyType of cert.keys) {
    if (opts.signal?.aborted) break;
    out.push(await renewUnit(deps, cert, keyType, opts));
  }
  for (let i = 0; i < out.length; i++) {
    const o = out[i]!;
    if (o.dane?.waiting?.startsWith(ADOPTION_WAIT) && !opts.signal?.aborted) {
      const again = await renewUnit(deps, cert, o.keyType, opts);
      // Keep the first run's "renewed" (the certificate it deployed is still
      // the one served) or its progress, unless the second run did more.
      const keepFirst = (o.status === 'renewed' || o.status === 'dane-progress') && (again.status === 'not-due' || (again.status === 'dane-progress' && o.status === 'renewed'));
      out[i] = keepFirst ? { ...o, dane: again.dane } : again;
    }
  }
  return out;
}

/** A renewal that must use a given key (DANE records may still name it), with what to report about it. */
export interface KeptKey {
  keyPem: string;
  report: DaneReport;
  /** The DANE state moved in this pass (a retirement step). */
  changed: boolean;
}

export async function renewUnit(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, opts: RenewOptions, keep?: KeptKey): Promise<UnitOutcome> {
  const log = deps.logger.child({ cert: cert.name, keyType });
  const now = deps.clock.now();
  let state = await deps.store.readState(cert.name, keyType);
  const ariBefore = state.ari;
  const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
  if (deps.config.acme.ari && current && deps.acme.renewalInfo && !opts.force) {
    const updated = await refreshAri(deps, state, current, now, log);
    if (updated !== state && !opts.dryRun) await deps.store.writeState(cert.name, keyType, updated);
    state = updated;
  }
  const plan = planFromState(cert, keyType, state, current, opts.force, now, fingerprintOf(deps, cert, keyType));
  if (ariBefore !== state.ari && state.ari && state.ari.chosen !== ariBefore?.chosen) logAriWindow(state.ari, plan, log);
  if (cert.dane?.enabled && !opts.dryRun && !keep) return daneUnit(deps, cert, keyType, plan, log);
  const dane = keep ? { dane: keep.report } : {};
  if (!plan.due) {
    log.info({ renewAt: plan.at.toISOString(), reason: plan.reason }, 'not due');
    return { cert: cert.name, keyType, status: keep?.changed ? 'dane-progress' : 'not-due', plan, ...dane };
  }
  log.info({ reason: plan.reason }, opts.dryRun ? 'would renew (dry run)' : 'renewing');
  if (opts.dryRun) return { cert: cert.name, keyType, status: 'planned', plan };

  try {
    const checked = await issueAndDeploy(deps, cert, keyType, { state, current, log }, keep ? { keyPem: keep.keyPem } : {});
    return { cert: cert.name, keyType, status: 'renewed', plan, serial: checked.chain.serial, notAfter: checked.chain.notAfter.toISOString(), ...dane };
  } catch (err) {
    const f = await recordFailure(deps, cert, keyType, { state, current, log }, err);
    return { cert: cert.name, keyType, status: 'failed', plan, ...f, ...dane };
  }
}

/**
 * A DANE certificate: the rollover machine decides what happens (publish,
 * wait, rotate, retire); same-key renewals still follow the normal timing.
 */
async function daneUnit(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, plan: Plan, log: Logger): Promise<UnitOutcome> {
  const dane = cert.dane!;
  const fresh = async (): Promise<UnitContext> => {
    const state = await deps.store.readState(cert.name, keyType);
    const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
    return { state, current, log };
  };
  let renewed: Obtained | undefined;
  try {
    const out = await advanceDane(
      cert,
      keyType,
      {
        store: deps.store,
        logger: log,
        now: () => deps.clock.now(),
        issueAndDeploy: async (keyPem, extraVerify) => {
          renewed = await issueAndDeploy(deps, cert, keyType, await fresh(), { keyPem, extraVerify });
          return { serial: renewed.chain.serial };
        },
        deployedKeyPem: () => deployedKeyPem(deps, cert, keyType, log),
        // `plan` was made before this pass; a certificate deployed during
        // it (adoption deploys the current key) makes a renewal not due.
        renewalDue: async () => !renewed && plan.due,
        backoffUntil: () => (plan.reason === 'backoff' && !plan.due ? plan.at : undefined),
        siblings: () =>
          Promise.all(
            cert.keys
              .filter((k) => k !== keyType)
              .map(async (k) => {
                const deployed = await deployedKeyPem(deps, cert, k, log);
                return { keyType: k, journal: await readJournal(deps.store, cert.name, k), deployedTlsa: deployed ? keyTlsa311(deployed) : undefined };
              }),
          ),
      },
      {
        keyLifetimeMs: dane.keyLifetime,
        minHoldMs: dane.minHold,
        strictSignatures: dane.strictSignatures,
        ttl: dane.publisher?.ttl ?? 3600,
        ...(dane.validatingResolver ? { validatingResolver: parseListen(dane.validatingResolver) } : {}),
      },
    );
    const report: DaneReport = { phase: out.phase, acted: out.acted, waiting: out.waiting };
    if (out.waiting) log.info({ phase: out.phase, waiting: out.waiting }, 'DANE: waiting');
    if (renewed) {
      return { cert: cert.name, keyType, status: 'renewed', plan, serial: renewed.chain.serial, notAfter: renewed.chain.notAfter.toISOString(), dane: report };
    }
    // A pass that published or moved the journal did something: not "not due".
    return { cert: cert.name, keyType, status: out.changed ? 'dane-progress' : 'not-due', plan, dane: report };
  } catch (err) {
    const f = await recordFailure(deps, cert, keyType, await fresh(), err);
    return { cert: cert.name, keyType, status: 'failed', plan, ...f };
  }
}

/** The fingerprint of the effective config a failure is recorded under (src/schedule/config-fingerprint.ts). */
export function fingerprintOf(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType): string {
  return configFingerprint(deps.config.acme, cert, keyType);
}

export interface UnitContext {
  state: CertState;
  current: StoredVersion | undefined;
  log: Logger;
}

/**
 * obtain → validate → stage → deploy → hooks → verify → record, for one
 * (certificate, key type). `keyPem` forces the key (DANE: the published
 * one); `extraVerify` adds live checks after the MTA reload (DANE endpoints)
 * whose failure rolls back like any other. Throws StepError.
 *
 * A certificate staged by an earlier attempt whose deploy failed is
 * deployed instead of ordering again, while it is fresh (src/schedule/
 * staged.ts); it stays staged until a deploy succeeds.
 */
export async function issueAndDeploy(
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  ctx: UnitContext,
  opts: { keyPem?: string; extraVerify?: (leafDer: Buffer) => Promise<void> },
): Promise<Obtained> {
  const checked = await obtainChecked(deps, cert, keyType, ctx, opts);
  await deployAndRecord(deps, cert, keyType, ctx, checked, opts.extraVerify);
  return checked;
}

/**
 * obtain → validate → stage: the staged certificate of an earlier attempt
 * if still fit, else a new order. Throws StepError. A fleet leader calls it
 * alone (it publishes the result to the fleet before deploying it).
 */
export async function obtainChecked(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, ctx: UnitContext, opts: { keyPem?: string }): Promise<Obtained> {
  const { state, current, log } = ctx;
  const replaces = deps.config.acme.ari && current ? await safeCertId(current.leafPem) : undefined;
  // A key revoked for keyCompromise is not used again, whatever reuseKey says
  // (DANE passes its own key and rolls over instead: mxcert revoke asks for that).
  const compromised = state.revoked?.version === state.current && state.revoked?.reason === 'keyCompromise';
  return (
    (await stagedToDeploy(deps, cert, keyType, current, log, { forcedKeyPem: opts.keyPem, compromisedKeyPem: compromised ? current?.keyPem : undefined })) ??
    (await obtainAndValidate(deps, cert, keyType, compromised ? undefined : current, replaces, log, opts.keyPem))
  );
}

/** deploy → hooks → verify → record, for a staged, validated certificate. Throws StepError. */
export async function deployAndRecord(
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  ctx: UnitContext,
  checked: Obtained,
  extraVerify?: (leafDer: Buffer) => Promise<void>,
): Promise<void> {
  const { state, current, log } = ctx;
  await deployAndVerify(deps, cert, keyType, checked, current, log, extraVerify);
  await deps.store.promoteStaged(cert.name, keyType, checked.versionId);
  // A new certificate has a new CertID: the old ARI state no longer applies.
  await deps.store.writeState(cert.name, keyType, {
    current: checked.versionId,
    previous: state.current,
    consecutiveFailures: 0,
    last: { at: deps.clock.now().toISOString(), result: 'success' },
  });
  await deps.store.prune(cert.name, keyType).catch((err: unknown) => log.warn({ err }, 'pruning old versions failed'));
  log.info({ serial: checked.chain.serial, notAfter: checked.chain.notAfter.toISOString() }, 'renewed and verified');
  // MTA-STS consistency: warnings only, never a failed renewal.
  await checkMtaStsAfterRenewal(cert, checked.chain.names, log).catch((err: unknown) => log.warn({ err: describeError(err) }, 'MTA-STS check failed'));
}

/** Persist a failure (backoff, Retry-After) and run the failure hooks. */
export async function recordFailure(
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  ctx: UnitContext,
  err: unknown,
): Promise<{ step: string; error: string; code: string }> {
  const { state, current, log } = ctx;
  const step = err instanceof StepError ? err.step : 'renew';
  const detail = describeError(err);
  // Stored and handed to hooks prefixed with the step (status.schema.json: lastError).
  const message = err instanceof StepError ? `${step}: ${detail}` : detail;
  const code = err instanceof MxcertError ? err.code : 'error';
  const inner = err instanceof StepError ? err.inner : err;
  const retryAfter = inner instanceof AcmeProblemError ? inner.retryAfter : undefined;
  const failedAt = deps.clock.now();
  const fingerprint = fingerprintOf(deps, cert, keyType);
  const next: CertState = {
    ...state,
    consecutiveFailures: nextFailureCount(state, fingerprint),
    retryAfterUntil: retryAfter !== undefined ? retryAfterInstant(failedAt, retryAfter).toISOString() : undefined,
    last: { at: failedAt.toISOString(), result: 'failure', error: message, code, step, configFingerprint: fingerprint },
  };
  await deps.store.writeState(cert.name, keyType, next);
  const again = planFromState(cert, keyType, next, current, false, failedAt, fingerprint);
  log.error({ step, err: detail, retryAt: again.at.toISOString(), retryReason: again.reason }, 'renewal failed');
  await runFailureHooks(cert, keyType, message, log);
  return { step, error: message, code };
}

export interface Obtained {
  keyPem: string;
  chain: CheckedChain;
  versionId: string;
}

async function safeCertId(leafPem: string): Promise<string | undefined> {
  try {
    return await ariCertId(leafPem);
  } catch {
    return undefined;
  }
}

/** Whether two private keys are the same key; an unreadable one is no match. */
function sameKey(a: string, b: string): boolean {
  try {
    return publicKeySpkiDer(a).equals(publicKeySpkiDer(b));
  } catch {
    return false;
  }
}

/**
 * The staged certificate, re-validated, if it may be deployed instead of a
 * new order; otherwise it is dropped (and the caller orders anew).
 */
async function stagedToDeploy(
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  current: StoredVersion | undefined,
  log: Logger,
  /** DANE's key for this attempt; a key revoked for keyCompromise (never deployed again). */
  keys: { forcedKeyPem?: string; compromisedKeyPem?: string },
): Promise<Obtained | undefined> {
  const { forcedKeyPem, compromisedKeyPem } = keys;
  const staged = await deps.store.loadStaged(cert.name, keyType).catch((err: unknown) => {
    log.warn({ err: describeError(err) }, 'cannot read the staged certificate; ordering a new one');
    return undefined;
  });
  if (!staged) return undefined;
  const now = deps.clock.now();
  const validity = (m: { notBefore: string; notAfter: string }) => ({ notBefore: new Date(m.notBefore), notAfter: new Date(m.notAfter) });
  const verdict = stagedVerdict({
    staged: { ...validity(staged.meta), names: staged.meta.names },
    current: current && validity(current.meta),
    wantedNames: cert.domains,
    keyMatches: (!forcedKeyPem || sameKey(forcedKeyPem, staged.keyPem)) && !(compromisedKeyPem && sameKey(compromisedKeyPem, staged.keyPem)),
    jitter: jitterFor(`${cert.name}/${keyType}`),
    now,
  });
  let why = verdict.use ? undefined : verdict.why;
  if (verdict.use) {
    try {
      // Validation is never skipped: the trust anchors may have changed since.
      const chain = await checkChain({ keyPem: staged.keyPem, chainPem: staged.leafPem + staged.intermediatesPem.join(''), domains: cert.domains, now, trustedRootsPem: deps.trustedRootsPem });
      log.info({ serial: chain.serial, notAfter: chain.notAfter.toISOString() }, 'deploying the certificate staged by an earlier attempt; no new order');
      return { keyPem: staged.keyPem, chain, versionId: staged.meta.id };
    } catch (err) {
      why = `it fails the chain check: ${describeError(err)}`;
    }
  }
  log.info({ serial: staged.meta.serial, why }, 'dropping the staged certificate; ordering a new one');
  await deps.store.dropStaged(cert.name, keyType);
  return undefined;
}

/**
 * A new ARI window (or a new pick in it): the window with both ends, the
 * instant picked in it, and when the renewal will actually happen, which is
 * what `mxcert status` shows (the pick clamped into the certificate's
 * validity, or a backoff; see schedule/renewal-time.ts).
 */
function logAriWindow(ari: NonNullable<CertState['ari']>, plan: Plan, log: Logger): void {
  log.info(
    { windowStart: ari.windowStart, windowEnd: ari.windowEnd, chosen: ari.chosen, renewAt: plan.at.toISOString(), reason: plan.reason, explanationURL: ari.explanationURL },
    `ARI window ${displayTime(ari.windowStart)} .. ${displayTime(ari.windowEnd)}; renews at ${displayTime(plan.at)} (${plan.reason})`,
  );
}

/**
 * Ask the CA for its renewal window when the last answer's Retry-After has
 * passed (or the certificate changed). An ARI failure never blocks a due
 * renewal: it is logged and the fallback timing applies.
 */
async function refreshAri(deps: RenewDeps, state: CertState, current: StoredVersion, now: Date, log: Logger): Promise<CertState> {
  const certId = current.meta.certId ?? (await safeCertId(current.leafPem));
  if (!certId) return state;
  const prev = state.ari?.certId === certId ? state.ari : undefined;
  if (prev && now.getTime() < new Date(prev.nextCheck).getTime()) return state;
  try {
    const info = await deps.acme.renewalInfo!(certId);
    if (!info) return prev ? { ...state, ari: undefined } : state;
    const choice = chooseAriInstant(
      info.window,
      prev && { window: { start: new Date(prev.windowStart), end: new Date(prev.windowEnd) }, at: new Date(prev.chosen) },
      deps.random ?? Math.random,
    );
    return {
      ...state,
      ari: {
        certId,
        windowStart: info.window.start.toISOString(),
        windowEnd: info.window.end.toISOString(),
        chosen: choice.at.toISOString(),
        explanationURL: info.explanationURL,
        fetchedAt: now.toISOString(),
        nextCheck: nextAriCheck(now, info.retryAfter).toISOString(),
      },
    };
  } catch (err) {
    log.warn({ err: describeError(err) }, 'ARI lookup failed; using the fallback timing');
    const retry = nextAriCheck(now, 60 * 60).toISOString();
    return prev ? { ...state, ari: { ...prev, nextCheck: retry, lastError: describeError(err) } } : state;
  }
}

async function obtainAndValidate(
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  current: StoredVersion | undefined,
  replaces: string | undefined,
  log: Logger,
  forcedKeyPem?: string,
): Promise<Obtained> {
  // DANE passes the published key; reuseKey keeps the current one.
  const reuse = cert.reuseKey && current;
  const keyPem = forcedKeyPem ?? (reuse ? current.keyPem : await generateKeyPem(keyType));
  log.debug({ reuseKey: Boolean(reuse), forcedKey: Boolean(forcedKeyPem) }, 'key ready');

  let chainPem: string;
  let orderUrl: string;
  try {
    const csrPem = await createCsr(cert.domains, keyPem);
    const res = await deps.acme.issue({
      domains: cert.domains,
      csrPem,
      solver: deps.solverFor(cert),
      profile: deps.config.acme.profile,
      replaces,
      logger: log,
    });
    chainPem = res.chainPem;
    orderUrl = res.orderUrl;
    log.info({ orderUrl, reusedAuthorizations: res.reusedAuthorizations }, 'certificate issued');
  } catch (err) {
    throw new StepError('obtain', err);
  }

  let chain: CheckedChain;
  try {
    chain = await checkChain({ keyPem, chainPem, domains: cert.domains, now: deps.clock.now(), trustedRootsPem: deps.trustedRootsPem });
  } catch (err) {
    const kept = await deps.store.saveFailed(cert.name, keyType, chainPem, describeError(err), deps.clock.now());
    log.error({ kept }, 'issued chain failed validation; kept for inspection, not deployed');
    throw new StepError('validate', err instanceof ValidationError ? err : new ValidationError('parse', describeError(err), { cause: err }));
  }
  warnOnMissingUsage(cert, chain.leafPem, log);

  // Staged first: if the deploy fails, the next attempt deploys this one
  // instead of ordering again; a successful deploy makes it a version.
  return stageChecked(deps, cert, keyType, keyPem, chain, orderUrl);
}

/** Save a validated certificate and its key as this unit's staged version. */
export async function stageChecked(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, keyPem: string, chain: CheckedChain, orderUrl?: string): Promise<Obtained> {
  const versionId = await deps.store.saveStaged(cert.name, keyType, {
    keyPem,
    leafPem: chain.leafPem,
    intermediatesPem: chain.intermediatesPem,
    meta: {
      serial: chain.serial,
      notBefore: chain.notBefore.toISOString(),
      notAfter: chain.notAfter.toISOString(),
      names: chain.names,
      issuer: chain.issuer,
      spkiSha256: chain.spkiSha256,
      certId: await safeCertId(chain.leafPem),
      keyType,
      issuedAt: deps.clock.now().toISOString(),
      ...(orderUrl ? { orderUrl } : {}),
    },
  });
  return { keyPem, chain, versionId };
}

async function deployAndVerify(
  deps: RenewDeps,
  cert: CertificateConfig,
  keyType: KeyType,
  got: Obtained,
  current: StoredVersion | undefined,
  log: Logger,
  extraVerify?: (leafDer: Buffer) => Promise<void>,
): Promise<void> {
  const bundle = buildBundle({ keyPem: got.keyPem, leafPem: got.chain.leafPem, intermediatesPem: got.chain.intermediatesPem });
  const paths = outputPaths(cert, keyType);
  let deployed: DeployResult;
  try {
    deployed = await deployOutputs(await outputFiles(cert, paths, bundle));
  } catch (err) {
    throw new StepError('deploy', err);
  }
  log.info({ files: deployed.written }, 'files deployed');

  const lineage = await deps.store.lineageDir(cert.name, keyType);
  const env = hookEnvironment({
    event: 'deploy',
    certName: cert.name,
    domains: cert.domains,
    keyType,
    outputs: paths,
    lineageDir: lineage,
  });

  const rollback = async (step: string, err: unknown): Promise<never> => {
    // The error itself is reported once, by recordFailure ('renewal failed').
    log.warn({ step }, `${step} failed; rolling back to the previous files`);
    try {
      await deployed.restore();
      // The SNI tables may hold the new files' contents (docs/architecture.md, "SNI tables").
      await deps.sni?.afterDeploy(cert, log).catch((e: unknown) => log.error({ err: describeError(e) }, 'SNI tables not rebuilt after the rollback; they may serve the new certificate until a rebuild succeeds'));
      if (current) {
        const old = buildBundle({ keyPem: current.keyPem, leafPem: current.leafPem, intermediatesPem: current.intermediatesPem });
        await writeLineage(lineage, old);
      }
      // The MTA may already have loaded the new files: reload it onto the old ones.
      // Its own message only: the full error of the first run is reported by recordFailure.
      await runDeployHooks(deps, cert, env, log).catch((e: unknown) => log.error({ err: e instanceof Error ? e.message : String(e) }, 'deploy hook failed again after rollback'));
    } catch (restoreErr) {
      log.error({ err: describeError(restoreErr) }, 'rollback failed: check the output files by hand');
      throw new StepError(step, err, false);
    }
    throw new StepError(step, err, true);
  };

  // The Postfix SNI map holds the files' contents, so it is rebuilt before
  // the MTA reloads and before verify asks for this name (docs/architecture.md, "SNI tables").
  try {
    await deps.sni?.afterDeploy(cert, log);
  } catch (err) {
    return rollback('deploy', err);
  }

  try {
    await writeLineage(lineage, bundle);
    await runDeployHooks(deps, cert, env, log);
  } catch (err) {
    return rollback('hooks', err);
  }

  try {
    await liveChecks(deps, cert, keyType, got, log, extraVerify);
  } catch (err) {
    return rollback('verify', err);
  }
}

/** The files of `paths`, with their content from `bundle`, modes and owner (docs/architecture.md, "Files on disk"). */
async function outputFiles(cert: CertificateConfig, paths: Partial<Record<OutputKind, string>>, bundle: ReturnType<typeof buildBundle>) {
  const keyMode = parseInt(cert.output.mode, 8);
  const publicMode = cert.output.publicMode ? parseInt(cert.output.publicMode, 8) : keyMode;
  const owner = await resolveOwner(cert.output.owner, cert.output.group);
  return (Object.entries(paths) as Array<[OutputKind, string]>).map(([kind, path]) => ({
    kind,
    path,
    content: bundle[kind],
    mode: KEY_KINDS.has(kind) ? keyMode : publicMode,
    ...owner,
  }));
}

/** STARTTLS to `verify.smtp`, then the caller's own check (DANE: the served key is in every RRset). */
export async function liveChecks(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, got: Obtained, log: Logger, extraVerify?: (leafDer: Buffer) => Promise<void>): Promise<void> {
  if (!cert.verify.smtp.length && !extraVerify) return;
  const leafDer = new X509Certificate(got.chain.leafPem).raw;
  if (cert.verify.smtp.length) {
    await verifyServed(cert.verify.smtp, leafDer, {
      serverName: cert.verify.serverName ?? cert.domains[0],
      timeoutMs: cert.verify.timeout,
      keyType,
      clock: deps.clock,
      logger: log,
    });
  }
  if (extraVerify) await extraVerify(leafDer);
}

function hookArgv(h: string | string[]): string[] {
  return typeof h === 'string' ? [h] : h;
}

async function runDeployHooks(deps: RenewDeps, cert: CertificateConfig, env: Record<string, string>, log: Logger): Promise<void> {
  for (const h of cert.hooks.deploy) {
    await runHook(hookArgv(h), { env, configEnv: cert.hooks.env, timeoutMs: cert.hooks.timeout, logger: log });
  }
}

/**
 * The key the MTA is given: what the output files hold, not only what the
 * store recorded. After a crash between writing the files and recording the
 * version they differ (docs/architecture.md, "DANE rollover": reconcile against the files on disk before
 * acting). Before mxcert's first deployment the files hold someone else's
 * placeholder, which adoption must not take for the current key.
 */
async function deployedKeyPem(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, log: Logger): Promise<string | undefined> {
  const st = await deps.store.readState(cert.name, keyType);
  const recorded = st.current ? (await deps.store.loadVersion(cert.name, keyType, st.current))?.keyPem : undefined;
  if (!recorded) return undefined;
  const onDisk = await readDeployedKeyPem(cert, keyType, log);
  if (!onDisk || keyTlsa311(onDisk) === keyTlsa311(recorded)) return recorded;
  log.warn({ keyType }, 'DANE: the key in the output files is not the one last recorded; reconciling from the files');
  return onDisk;
}

/**
 * The private key in the output files (the key file, else the combined
 * file), if readable. Read only from a trusted directory and through an
 * O_NOFOLLOW descriptor (readDeployed): a key planted there, or a symlink to
 * some other key, would otherwise become the key DANE publishes for.
 */
export async function readDeployedKeyPem(cert: CertificateConfig, keyType: KeyType, log: Logger): Promise<string | undefined> {
  const paths = outputPaths(cert, keyType);
  const file = paths.key ?? paths.combined;
  if (!file) return undefined;
  const text = await readDeployed(file).then(
    (b) => b?.toString('utf8'),
    (err: unknown) => {
      log.warn({ file, err: describeError(err) }, 'DANE: not reading the deployed key; using the recorded one');
      return undefined;
    },
  );
  const m = text && /-----BEGIN ((?:EC |RSA )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/.exec(text);
  if (!m) return undefined;
  try {
    publicKeySpkiDer(m[0]); // a torn or foreign file is no evidence: fall back to the record
    return `${m[0]}\n`;
  } catch {
    return undefined;
  }
}

/**
 * A pass that failed as a whole (the CA bundle unreadable, the ACME
 * directory unreachable, the agent lock held too long) failed every
 * certificate's attempt: each certificate's failure hooks hear about it
 * ("hooks.failure runs on every failed attempt"), once per key type.
 */
export async function runPassFailureHooks(config: Config, err: unknown, log: Logger, only?: string[]): Promise<void> {
  const error = `renewal pass failed: ${describeError(err)}`;
  for (const cert of config.certificates) {
    if (only?.length && !only.includes(cert.name)) continue;
    for (const keyType of cert.keys) await runFailureHooks(cert, keyType, error, log.child({ cert: cert.name, keyType }));
  }
}

export async function runFailureHooks(cert: CertificateConfig, keyType: string, error: string, log: Logger): Promise<void> {
  if (!cert.hooks.failure.length) return;
  const env = hookEnvironment({ event: 'failure', certName: cert.name, domains: cert.domains, keyType, outputs: outputPaths(cert, keyType), error });
  for (const h of cert.hooks.failure) {
    await runHook(hookArgv(h), { env, configEnv: cert.hooks.env, timeoutMs: cert.hooks.timeout, logger: log }).catch((err: unknown) =>
      log.error({ err: describeError(err) }, 'failure hook failed'),
    );
  }
}
