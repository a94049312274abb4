// DANE key rollover, "3 1 1 current + 3 1 1 next" (docs/architecture.md,
// "DANE rollover"; RFC 7671 §8.1). One machine per (certificate, key type):
// this file connects the pure decision (src/dane/decide.ts) and its executor
// (src/dane/execute.ts) to the real world: the journal and keys on disk, the
// publisher, the authoritative servers, the validating resolver, the
// orchestrator's issue-and-deploy and the live check.
import type { Clock } from '../clock.js';
import type { CertificateConfig, KeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { DnsServer } from '../dns/types.js';
import type { StateStore } from '../store/state-store.js';
import type { DecidePolicy, SiblingState } from './decide.js';
import { runDane, type DaneOutcome, type DaneWorld } from './execute.js';
import { fileStorage, keyTlsa311, readJournal, writeJournal, type DaneJournal } from './journal.js';
import { liveCheck, observeOwners, resolverVerdict, type LiveCheckTarget } from './observe.js';
import { createPublisher, type TlsaPublisher } from './publisher.js';
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
    endpoints: cert.dane?.endpoints ?? [],
    owners,
    servers: () => pub.servers(),
    keyType,
    timeoutMs: cert.verify.timeout,
    logger: fx.logger,
  };
  const world: DaneWorld = {
    storage: fileStorage(fx.store, cert.name, keyType),
    clock,
    logger: fx.logger,
    owners,
    observe: async (j, withResolver) => {
      const [dns, deployed, siblings] = await Promise.all([observeOwners(await pub.servers(), owners, clock), fx.deployedKeyPem(), fx.siblings?.()]);
      const resolver = withResolver && policy.validatingResolver ? await resolverVerdict(policy.validatingResolver, owners, [j.current.tlsa, j.next.tlsa]) : undefined;
      const backoffUntil = fx.backoffUntil?.();
      return {
        dns,
        renewalDue: await fx.renewalDue(),
        ...(deployed ? { deployedTlsa: keyTlsa311(deployed) } : {}),
        ...(siblings ? { siblings } : {}),
        ...(resolver ? { resolver } : {}),
        ...(backoffUntil ? { backoffUntil } : {}),
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
