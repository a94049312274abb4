// DANE key rollover, "3 1 1 current + 3 1 1 next" (docs/architecture.md,
// "DANE rollover"; RFC 7671 §8.1). One machine per (certificate, key type):
// this file connects the pure decision (src/dane/decide.ts) and its executor
// (src/dane/execute.ts) to the real world: the journal and keys on disk, the
// publisher, the authoritative servers, the validating resolver, the
// orchestrator's issue-and-deploy and the live check.
import { X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { CertificateConfig, DanePublisherConfig, KeyType } from '../config/schema.js';
import { ConfigError, DaneRetireRefusedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DnsServer } from '../dns/types.js';
import type { StateStore } from '../store/state-store.js';
import type { DecidePolicy, SiblingState } from './decide.js';
import type { FleetObservations } from './fleet.js';
import { runDane, type DaneOutcome, type DaneWorld } from './execute.js';
import { fileStorage, keyTlsa311, readJournal, writeJournal, type DaneJournal, type DaneStorage } from './journal.js';
import { liveCheck, observeOwners, resolverVerdict, type LiveCheckTarget } from './observe.js';
import { createPublisher, type TlsaChange, type TlsaPublisher } from './publisher.js';
import { decideRetire, retireStart, retireView, runRetire, type RetireObservations, type RetireOutcome } from './retire.js';
import { parseTlsa } from './tlsa.js';
import { endpointOwners } from './zone-lines.js';

export { ADOPTION_WAIT } from './decide.js';
export type { DaneOutcome } from './execute.js';

export interface DanePolicy {
  keyLifetimeMs: number;
  minHoldMs: number;
  strictSignatures: boolean;
  ttl: number;
  /** dane.validatingResolver: must return the records with AD before a swap. */
  validatingResolver?: DnsServer;
}

export interface DaneEffects {
  store: StateStore;
  logger: Logger;
  now(): Date;
  /** Issue for `keyPem`, deploy, reload, verify (incl. `extraVerify`); record it as the current version. Throws on failure (files rolled back). */
  issueAndDeploy(keyPem: string, extraVerify: (leafDer: Buffer) => Promise<void>): Promise<{ serial: string }>;
  /** The key of the certificate currently deployed (state's current version, reconciled with the files), if any. */
  deployedKeyPem(): Promise<string | undefined>;
  /** Whether a same-key renewal is due by the normal timing rules. */
  renewalDue(): Promise<boolean>;
  /** Set while a failure backoff holds the next attempt back: a swap waits too. */
  backoffUntil?(): Date | undefined;
  publisher?: TlsaPublisher;
  /**
   * The other key types of this certificate: their journals and the key each
   * one serves now. Adoption publishes nothing until every key type serves
   * its current key, then publishes all of them in one update per owner.
   */
  siblings?(): Promise<SiblingState[]>;
  /** Where the journal and keys live (default: this host's state directory; a fleet keeps them in etcd). */
  storage?: DaneStorage;
  /** Fleet mode: the members' reports for this key type (DaneObservations.fleet). */
  fleet?(): Promise<FleetObservations>;
  /**
   * The endpoints the live check after a deploy connects to (default: every
   * dane.endpoint). A fleet leader checks only its own MTA: the other
   * members deploy the lineage later, each checking its own.
   */
  liveEndpoints?: Array<{ host: string; port: number }>;
}

/**
 * One pass of the rollover machine: advance through as many steps as can be
 * done now, persisting the journal after every step, and stop at the first
 * wait (visibility, hold, TTL) or error.
 */
export async function advanceDane(cert: CertificateConfig, keyType: KeyType, fx: DaneEffects, policy: DanePolicy): Promise<DaneOutcome> {
  const owners = endpointOwners(cert);
  const pub = fx.publisher ?? (await createPublisher(cert.dane?.publisher, { logger: fx.logger }));
  const clock: Clock = { now: () => fx.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
  const target: LiveCheckTarget = {
    endpoints: fx.liveEndpoints ?? cert.dane?.endpoints ?? [],
    owners,
    servers: () => pub.servers(),
    keyType,
    timeoutMs: cert.verify.timeout,
    logger: fx.logger,
  };
  const world: DaneWorld = {
    storage: fx.storage ?? fileStorage(fx.store, cert.name, keyType),
    clock,
    logger: fx.logger,
    owners,
    observe: async (j, withResolver) => {
      const [dns, deployed, siblings, fleet] = await Promise.all([observeOwners(await pub.servers(), owners, clock), fx.deployedKeyPem(), fx.siblings?.(), fx.fleet?.()]);
      const resolver = withResolver && policy.validatingResolver ? await resolverVerdict(policy.validatingResolver, owners, [j.current.tlsa, j.next.tlsa]) : undefined;
      const backoffUntil = fx.backoffUntil?.();
      return {
        dns,
        renewalDue: await fx.renewalDue(),
        ...(deployed ? { deployedTlsa: keyTlsa311(deployed) } : {}),
        ...(siblings ? { siblings } : {}),
        ...(resolver ? { resolver } : {}),
        ...(backoffUntil ? { backoffUntil } : {}),
        ...(fleet ? { fleet } : {}),
      };
    },
    deployedKeyPem: () => fx.deployedKeyPem(),
    publish: (owner, change, ttl) => pub.change(owner, change, ttl),
    deploy: (keyPem, liveTlsa) => fx.issueAndDeploy(keyPem, liveTlsa ? liveCheck(target, liveTlsa) : async () => {}),
  };
  return runDane(world, decidePolicy(cert, policy));
}

export function decidePolicy(cert: CertificateConfig, policy: DanePolicy): DecidePolicy {
  return {
    keyLifetimeMs: policy.keyLifetimeMs,
    minHoldMs: policy.minHoldMs,
    strictSignatures: policy.strictSignatures,
    ttl: policy.ttl,
    resolver: Boolean(policy.validatingResolver),
    extras: (cert.dane?.extraRecords ?? []).map((t) => parseTlsa(t)),
    ...(cert.dane?.publisher ? { publishedWith: { owners: endpointOwners(cert), ttl: policy.ttl, minHoldMs: policy.minHoldMs, publisher: cert.dane.publisher } } : {}),
  };
}

/** `mxcert rollover`: ask for a rotation on the next pass. */
export async function requestRollover(store: StateStore, name: string, keyType: string, emergency: boolean, now: Date): Promise<boolean> {
  const j: DaneJournal | undefined = await readJournal(store, name, keyType);
  if (!j) return false;
  j.rollover = { requestedAt: now.toISOString(), emergency };
  await writeJournal(store, name, keyType, j, now);
  return true;
}

export interface RetireArgs {
  store: StateStore;
  name: string;
  keyTypes: readonly string[];
  /** The certificate's config entry, if it is still configured. */
  cert?: CertificateConfig;
  logger: Logger;
  clock: Clock;
  /** How long this call may wait for DNS and caches before leaving the rest to a later pass. */
  budgetMs: number;
  /** Start a retirement if none is under way (`mxcert dane retire`, `mxcert delete`); otherwise only continue one. */
  start: boolean;
}

/**
 * Withdraw mxcert's records for a certificate and free its keys once no
 * server serves them and caches have expired (src/dane/retire.ts).
 * Undefined when there is nothing to do (no DANE state, or none under way
 * and `start` not asked).
 */
export async function retireDane(a: RetireArgs): Promise<RetireOutcome | undefined> {
  const storages: DaneStorage[] = a.keyTypes.map((k) => fileStorage(a.store, a.name, k as KeyType));
  return retireWith({ ...a, storages, chains: () => servedChains(a.store, a.name, a.keyTypes) });
}

/**
 * A retirement over any storage (this host's files, or the fleet's journal
 * in etcd) with the chains whose safety it must keep: every chain served
 * under the records, on this host or on every member of a fleet.
 */
export async function retireWith(
  a: Omit<RetireArgs, 'store' | 'keyTypes'> & {
    storages: DaneStorage[];
    chains: () => Promise<RetireObservations['chains']>;
    /** Throws when this process may no longer change records (a fleet leader whose term ended). */
    beforePublish?: () => void;
  },
): Promise<RetireOutcome | undefined> {
  const storages = a.storages;
  const journals = (await Promise.all(storages.map((s) => s.readJournal()))).filter((j): j is DaneJournal => Boolean(j));
  if (!journals.length || (!a.start && !retireView(journals))) return undefined;
  const settings = retireSettings(a.name, a.cert, journals);
  const policy = { ttl: settings.ttl, minHoldMs: settings.minHoldMs };
  const pub = await createPublisher(settings.publisher, { logger: a.logger });
  const world = {
    storages,
    clock: a.clock,
    logger: a.logger,
    observe: async (owners: string[]) => ({ dns: await observeOwners(await pub.servers(), owners, a.clock), chains: await a.chains() }),
    publish: (owner: string, change: TlsaChange, ttl: number) => {
      a.beforePublish?.();
      return pub.change(owner, change, ttl);
    },
  };
  if (!retireView(journals)) {
    const retire = retireStart(journals, settings.owners, a.clock.now());
    // A retirement that would be refused changes nothing on disk.
    const obs = await world.observe(retire.owners);
    let first = decideRetire({ phase: 'WITHDRAW', retire }, obs, policy, a.clock.now());
    // The first answer may only remember the TTLs seen; the safety check comes right after it.
    if (first.kind === 'save' && first.view.phase === 'WITHDRAW') first = decideRetire(first.view, obs, policy, a.clock.now());
    if (first.kind === 'refuse') throw new DaneRetireRefusedError(first.why);
    for (const s of storages) {
      const j = await s.readJournal();
      if (j) await s.writeJournal({ ...j, phase: 'WITHDRAW', retire, awaiting: undefined, rollover: undefined }, a.clock.now());
    }
  }
  return runRetire(world, policy, a.budgetMs);
}

/**
 * How to reach the records: the config's `dane:` block if it is still there
 * (with `enabled: false`), else what the journal kept when DANE was on. The
 * journal keeps no secret, only where the config said to find it.
 */
function retireSettings(name: string, cert: CertificateConfig | undefined, journals: DaneJournal[]): { publisher: DanePublisherConfig; owners: string[]; ttl: number; minHoldMs: number } {
  const kept = journals.find((j) => j.publishedWith)?.publishedWith;
  const publisher = cert?.dane?.publisher ?? kept?.publisher;
  if (!publisher) {
    throw new ConfigError([
      {
        path: `certificates[${name}].dane.publisher`,
        message:
          `mxcert does not know how to change the TLSA records of ${name} (its DANE state predates remembering it): ` +
          'put the dane: block back with enabled: false, its endpoints and its publisher (provider, server, zone, tsig, ...), then run this again',
      },
    ]);
  }
  const owners = [...new Set([...(kept?.owners ?? []), ...(cert?.dane ? endpointOwners(cert) : [])])];
  return {
    publisher,
    owners,
    ttl: cert?.dane?.publisher?.ttl ?? kept?.ttl ?? 3600,
    minHoldMs: cert?.dane ? cert.dane.minHold : (kept?.minHoldMs ?? 0),
  };
}

/** The chain each key type serves now (leaf first), from the recorded current version. */
async function servedChains(store: StateStore, name: string, keyTypes: readonly string[]): Promise<Array<{ keyType: string; chainDer: Buffer[] }>> {
  const out: Array<{ keyType: string; chainDer: Buffer[] }> = [];
  for (const keyType of keyTypes) {
    const v = await store.currentVersion(name, keyType);
    if (v) out.push({ keyType, chainDer: [v.leafPem, ...v.intermediatesPem].map((pem) => new X509Certificate(pem).raw) });
  }
  return out;
}
