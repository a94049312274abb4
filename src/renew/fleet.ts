// Fleet certificates in a renewal pass (docs/architecture.md, "Fleet").
// Leadership is per pass: a pass that finds no leader campaigns briefly and,
// elected, leads until it ends (then resigns); otherwise it is a member only.
// The leader plans from the lineage in etcd (not this host's state), orders
// when due and publishes the lineage under its fence; every member, the
// leader included, then deploys the lineage through the normal pipeline and
// reports what it serves. Without etcd nothing is renewed and nothing is
// ordered alone: every member keeps serving what it has.
import type { CertificateConfig, Config, FleetConfig, KeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import { describeError, MxcertError } from '../errors.js';
import { connectFleetEtcd, type FleetEtcd } from '../fleet/etcd-client.js';
import { EtcdAccessError, EtcdUnavailableError } from '../fleet/errors.js';
import { campaign, type LeaderTerm } from '../fleet/leader.js';
import { loadFleetKey } from '../fleet/secret-files.js';
import { seal, unseal } from '../fleet/seal.js';
import { ABSENT, FleetStore, type Lineage } from '../fleet/store.js';
import type { StoredVersion } from '../store/state-store.js';
import { localPlan, obtainChecked, recordFailure, runFailureHooks, type RenewDeps, type RenewOptions, type UnitOutcome } from './orchestrator.js';
import { leaderState, lineagePlan, lineageVersion, memberUnit, slot, type Connected } from './fleet-member.js';
import { fleetDaneUnit } from './fleet-dane.js';
import { fleetRetire, keptFleetKey } from './fleet-retire.js';
import { VISIBILITY_POLL_MS } from '../dane/execute.js';

/** What fleet units report when etcd cannot be used; the message starts with this. */
export const ETCD_DOWN = 'etcd unavailable: keeping what is served';

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
  for (const keyType of cert.keys) out.push(await etcdDownUnit(deps, cert, keyType, error));
  return out;
}

/**
 * One key type that could not go on because etcd went away, at the start of
 * the pass or in the middle of it: the same outcome and the same failure-hook
 * rule either way. What this host serves stays; no failure is counted
 * against the renewal backoff (the CA was not the problem).
 */
async function etcdDownUnit(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, error: string): Promise<UnitOutcome> {
  const log = deps.logger.child({ cert: cert.name, keyType });
  const state = await deps.store.readState(cert.name, keyType);
  const current = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
  if (current && inLastThird(current, deps.clock.now())) await runFailureHooks(cert, keyType, error, log);
  return { cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code: 'etcd-unavailable' };
}

function inLastThird(v: StoredVersion, now: Date): boolean {
  const from = Date.parse(v.meta.notBefore);
  const to = Date.parse(v.meta.notAfter);
  return now.getTime() >= from + ((to - from) * 2) / 3;
}

async function fleetCertificate(c: Connected, deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]> {
  // Key types one after the other: they share one lineage value in etcd.
  const out: UnitOutcome[] = [];
  const retire = c.term && !cert.dane?.enabled ? await continueRetire(c, deps, cert) : undefined;
  if (retire && 'down' in retire) return unavailableUnits(deps, cert, retire.down);
  for (const keyType of cert.keys) {
    if (opts.signal?.aborted) break;
    const log = deps.logger.child({ cert: cert.name, keyType });
    try {
      if (cert.dane?.enabled) {
        out.push(await fleetDaneUnit(c, deps, cert, keyType, opts.force, log));
        continue;
      }
      // DANE off: while the fleet's journal exists, the leader keeps the key its records name.
      const kept = c.term ? await keptFleetKey(c, cert, keyType, () => lineageKeyPem(c, cert.name, keyType)) : undefined;
      if (kept) log.warn({ phase: kept.report.phase }, `DANE: ${kept.report.notice}`);
      const led = c.term ? await leadUnit(c, deps, cert, keyType, opts, log, kept?.keyPem) : undefined;
      const member = await memberUnit(c, deps, cert, keyType, log);
      const o = led?.status === 'failed' ? led : member;
      out.push(kept ? { ...o, dane: { ...kept.report, acted: retire?.acted ?? [], ...(retire?.waiting ? { waiting: retire.waiting } : {}) } } : o);
    } catch (err) {
      // etcd lost in the middle of the pass (after openFleetPass): the same as at its start.
      if (err instanceof EtcdUnavailableError) {
        log.error({ err: describeError(err) }, ETCD_DOWN);
        out.push(await etcdDownUnit(deps, cert, keyType, `${ETCD_DOWN} (${describeError(err)})`));
        continue;
      }
      log.error({ err: describeError(err) }, 'fleet unit failed');
      out.push({ cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error: describeError(err), code: err instanceof MxcertError ? err.code : 'error' });
    }
  }
  return out;
}

/** The lineage's private key for `keyType`, unsealed (undefined: no lineage for it yet). */
async function lineageKeyPem(c: Connected, cert: string, keyType: KeyType): Promise<string | undefined> {
  const unit = (await c.store.getLineage(cert))?.value.units[keyType];
  return unit ? unseal(c.key, unit.key, slot(c, cert, keyType)).toString('utf8') : undefined;
}

/**
 * The leader carries on a retirement of the fleet's TLSA records that
 * `mxcert dane retire` started (src/renew/fleet-retire.ts), as a single
 * host's pass does; a failure is reported and renewals go on with the kept key.
 */
async function continueRetire(c: Connected, deps: RenewDeps, cert: CertificateConfig): Promise<{ acted: string[]; waiting?: string } | { down: string } | undefined> {
  const log = deps.logger.child({ cert: cert.name });
  try {
    const r = await fleetRetire(c, cert, log, deps.clock, VISIBILITY_POLL_MS, false);
    return r && { acted: r.acted, ...(r.waiting ? { waiting: r.waiting } : {}) };
  } catch (err) {
    if (err instanceof EtcdUnavailableError) return { down: `${ETCD_DOWN} (${describeError(err)})` };
    const waiting = `the retirement of mxcert's TLSA records failed: ${describeError(err)}`;
    log.error({ err: describeError(err) }, 'DANE (fleet leader): retirement failed');
    return { acted: [], waiting };
  }
}

/** Leader: plan from the lineage; when due, order once (with `keepKeyPem` if given) and publish the lineage under the fence. */
async function leadUnit(c: Connected, deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, opts: RenewOptions, log: Logger, keepKeyPem?: string): Promise<UnitOutcome | undefined> {
  const got = await c.store.getLineage(cert.name);
  const unit = got?.value.units[keyType];
  const state = leaderState(await deps.store.readState(cert.name, keyType));
  const current = unit ? lineageVersion(unit, keyType, cert.reuseKey ? unseal(c.key, unit.key, slot(c, cert.name, keyType)).toString('utf8') : '') : undefined;
  const plan = lineagePlan(deps, cert, keyType, state, current, opts.force);
  if (!plan.due) return undefined;
  log.info({ reason: plan.reason }, 'fleet leader: renewing the lineage');
  try {
    c.term!.assertLeader('order a certificate');
    const got2 = await obtainChecked(deps, cert, keyType, { state, current, log }, keepKeyPem ? { keyPem: keepKeyPem } : {});
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
    // etcd went away (the lineage write): not a renewal failure; the caller applies the etcd rule.
    if (err instanceof EtcdUnavailableError) throw err;
    const f = await recordFailure(deps, cert, keyType, { state, current: undefined, log }, err);
    return { cert: cert.name, keyType, status: 'failed', plan, ...f };
  }
}

