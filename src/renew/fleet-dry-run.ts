// `mxcert renew --dry-run` for a fleet certificate (docs/architecture.md,
// "Fleet"): plan from the fleet's lineage in etcd, as the real pass does,
// and say who leads, whether this pass would order and what it would
// deploy. Reads only: no campaign, no lease, no report; etcd's revision is
// the same afterwards. etcd unavailable fails the unit the way a real pass
// does (ETCD_DOWN), without the failure hooks: a dry run changes nothing.
import type { CertificateConfig, KeyType } from '../config/schema.js';
import { describeError, MxcertError } from '../errors.js';
import { connectFleetEtcd, type FleetEtcd } from '../fleet/etcd-client.js';
import { EtcdAccessError, EtcdUnavailableError } from '../fleet/errors.js';
import { fleetDryRunView } from '../fleet/dry-run-view.js';
import { loadFleetKey } from '../fleet/secret-files.js';
import { unseal, type FleetKey } from '../fleet/seal.js';
import { FleetStore, type DaneRecord, type LeaderInfo, type Lineage, type Versioned } from '../fleet/store.js';
import { localPlan, type RenewDeps, type RenewOptions, type UnitOutcome } from './orchestrator.js';
import { lineagePlan, lineageVersion } from './fleet-member.js';
import { ETCD_DOWN } from './fleet.js';

/** The fleet part of a dry-run pass: nothing to open or close, each certificate reads etcd once. */
export function dryRunFleetPass(): { renewCertificate: typeof fleetDryRunUnits; close(): Promise<void> } {
  return { renewCertificate: fleetDryRunUnits, close: async () => undefined };
}

interface Read {
  key: FleetKey | Error;
  leader: LeaderInfo | undefined;
  lineage: Versioned<Lineage> | undefined;
  dane: Versioned<DaneRecord> | undefined;
}

export async function fleetDryRunUnits(deps: RenewDeps, cert: CertificateConfig, opts: RenewOptions): Promise<UnitOutcome[]> {
  const fleet = deps.config.fleet;
  const log = deps.logger.child({ cert: cert.name });
  let read: Read;
  let etcd: FleetEtcd | undefined;
  try {
    if (!fleet) throw new MxcertError('fleet', 'a fleet certificate (fleet: true) but the config has no fleet block');
    const key = await loadFleetKey(fleet.keyEncryption.keyFile).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    etcd = await connectFleetEtcd(fleet);
    await etcd.probe();
    const store = new FleetStore(etcd);
    const [leader, lineage, dane] = await Promise.all([store.leader(), store.getLineage(cert.name), store.getDane(cert.name)]);
    read = { key, leader, lineage, dane };
  } catch (err) {
    const unavailable = err instanceof EtcdUnavailableError || err instanceof EtcdAccessError;
    const error = unavailable ? `${ETCD_DOWN} (${describeError(err)}); the dry run cannot plan from the fleet's lineage` : `the fleet cannot be used: ${describeError(err)}`;
    log.error({ err: describeError(err) }, 'dry run: fleet unavailable');
    const code = err instanceof MxcertError ? err.code : 'error';
    return Promise.all(cert.keys.map(async (keyType): Promise<UnitOutcome> => ({ cert: cert.name, keyType, status: 'failed', plan: await localPlan(deps, cert, keyType), step: 'fleet', error, code })));
  } finally {
    etcd?.close();
  }
  const out: UnitOutcome[] = [];
  for (const keyType of cert.keys) out.push(await dryRunUnit(deps, cert, keyType, opts, read));
  return out;
}

async function dryRunUnit(deps: RenewDeps, cert: CertificateConfig, keyType: KeyType, opts: RenewOptions, read: Read): Promise<UnitOutcome> {
  const fleet = deps.config.fleet!;
  const unit = read.lineage?.value.units[keyType];
  const state = await deps.store.readState(cert.name, keyType);
  const deployed = state.current ? await deps.store.loadVersion(cert.name, keyType, state.current) : undefined;
  let keyPem = '';
  let sealError: string | undefined;
  if (unit) {
    try {
      if (read.key instanceof Error) throw read.key;
      keyPem = unseal(read.key, unit.key, { prefix: fleet.etcd.prefix, cert: cert.name, keyType, role: 'current' }).toString('utf8');
    } catch (err) {
      sealError = describeError(err);
    }
  }
  // As the leader plans (src/renew/fleet.ts).
  const plan = lineagePlan(deps, cert, keyType, state, unit ? lineageVersion(unit, keyType, cert.reuseKey ? keyPem : '') : undefined, opts.force);
  const journal = (read.dane?.value.journal as Record<string, { phase?: unknown }> | undefined)?.[keyType];
  const danePhase = typeof journal?.phase === 'string' ? journal.phase : undefined;
  const view = fleetDryRunView({
    member: fleet.member,
    ...(read.leader ? { leader: read.leader.member } : {}),
    ...(unit ? { lineage: { serial: unit.serial, generation: read.lineage!.value.generation, notAfter: unit.notAfter } } : {}),
    ...(sealError ? { sealError } : {}),
    ...(deployed ? { deployedSerial: deployed.meta.serial } : {}),
    dane: Boolean(cert.dane?.enabled) || danePhase !== undefined,
    ...(danePhase ? { danePhase } : {}),
    plan,
  });
  deps.logger.info({ cert: cert.name, keyType, fleet: view }, 'dry run (fleet)');
  return { cert: cert.name, keyType, status: plan.due ? 'planned' : 'not-due', plan, fleet: view };
}
