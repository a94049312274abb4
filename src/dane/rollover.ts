// DANE key rollover, "3 1 1 current + 3 1 1 next" (docs/architecture.md, "DANE rollover",
// RFC 7671 §8.1). One machine per (certificate, key type); its journal is
// persisted atomically in stateDir and every step is idempotent, so after a
// crash the next pass re-reads DNS, the files and the served certificate and
// carries on from the journal's phase.
//
// The rule every step serves: the key the MTA serves is always in every TLSA
// RRset that any authoritative server has returned in the last 2 × TTL. So:
// a key is deployed only after its record has been visible on every
// authoritative server for max(2 × TTL, minHold); the old record is removed
// only after the new key is live and verified.
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { CertificateConfig, KeyType } from '../config/schema.js';
import type { Logger } from '../log.js';
import { describeError, MxcertError } from '../errors.js';
import { writeFileAtomic } from '../deploy/atomic-write.js';
import { generateKeyPem, publicKeySpkiDer } from '../keys/keygen.js';
import { queryDns } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import { verifyServed } from '../verify/starttls.js';
import { createPublisher, type TlsaPublisher } from './publisher.js';
import { formatTlsa, fromDnsPacket, parseTlsa, tlsa311, tlsaOwner, type TlsaRecord } from './tlsa.js';
import { assessVisibility, describeObservation, observeTlsa, type VisibilityVerdict } from './visibility.js';
import type { StateStore } from '../store/state-store.js';

export const PHASES = ['STEADY', 'PUBLISH_NEXT', 'AWAIT_VISIBLE', 'ISSUE', 'SWAP', 'VERIFY_LIVE', 'RETIRE'] as const;
export type Phase = (typeof PHASES)[number];

export interface KeyRef {
  id: string;
  /** 3 1 1 data: hex SHA-256 of the SubjectPublicKeyInfo. */
  tlsa: string;
  createdAt: string;
}

export interface DaneJournal {
  version: 1;
  phase: Phase;
  current: KeyRef;
  next: KeyRef;
  /** The key served before the last swap; its record goes in RETIRE. */
  old?: KeyRef;
  /** What AWAIT_VISIBLE waits for and where it goes next. */
  awaiting?: { present: string[]; absent: string[]; minSerial?: number; then: 'STEADY' | 'DEPLOY_CURRENT' };
  /** First moment every authoritative server served H(next) (t_visible); reset if one falls back. */
  nextVisibleAt?: string;
  /** t_visible + max(2 × TTL, minHold) [, strict: ≥ last RRSIG expiry of an RRset without it]. */
  holdUntil?: string;
  /** Latest RRSIG expiration seen over an RRset that lacked H(next) (strictSignatures). */
  unsignedNextUntil?: string;
  /** Version id issued for the next key, between ISSUE and SWAP. */
  pendingVersion?: string;
  swappedAt?: string;
  rollover?: { requestedAt: string; emergency: boolean };
  lastError?: string;
  updatedAt: string;
}

export interface DanePolicy {
  keyLifetimeMs: number;
  minHoldMs: number;
  strictSignatures: boolean;
  ttl: number;
  /** dane.validatingResolver: must return the records with AD before a swap. */
  validatingResolver?: DnsServer;
}

/** 3 1 1 data (hex SHA-256 of the SubjectPublicKeyInfo) of a private key. */
export function keyTlsa311(keyPem: string): string {
  return tlsa311(publicKeySpkiDer(keyPem)).data;
}

/** Pure: when the hold for the next key ends (docs/architecture.md, "DANE rollover" step 3). */
export function holdUntil(visibleAt: Date, ttlSeconds: number, minHoldMs: number, unsignedUntil?: Date): Date {
  const t = visibleAt.getTime() + Math.max(2 * ttlSeconds * 1000, minHoldMs);
  return new Date(Math.max(t, unsignedUntil?.getTime() ?? 0));
}

/** Pure: is a rotation of the current key due? */
export function rotationDue(j: DaneJournal, now: Date, keyLifetimeMs: number): boolean {
  return Boolean(j.rollover) || now.getTime() >= new Date(j.current.createdAt).getTime() + keyLifetimeMs;
}

/** Pure: may we swap to the next key now? (visible everywhere, and held long enough unless an emergency). */
export function maySwap(j: DaneJournal, now: Date, freshlyVisible: boolean): { ok: boolean; why: string } {
  // An emergency skips the hold, never visibility: serving a key whose
  // record some authoritative server lacks would fail DANE senders at once.
  if (!freshlyVisible) return { ok: false, why: 'the next key is not visible on every authoritative server' };
  if (j.rollover?.emergency) return { ok: true, why: 'emergency rollover requested' };
  if (!j.holdUntil) return { ok: false, why: 'hold not started' };
  if (now.getTime() < new Date(j.holdUntil).getTime()) return { ok: false, why: `holding until ${j.holdUntil}` };
  return { ok: true, why: 'hold passed' };
}

// --------------------------------------------------------------------------
// Store: keys and journal under stateDir/certs/NAME/KEYTYPE/dane/

function daneDir(store: StateStore, name: string, keyType: string): string {
  return path.join(store.certDir(name, keyType), 'dane');
}

export async function readJournal(store: StateStore, name: string, keyType: string): Promise<DaneJournal | undefined> {
  try {
    return JSON.parse(await readFile(path.join(daneDir(store, name, keyType), 'journal.json'), 'utf8')) as DaneJournal;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MxcertError('state', `cannot read the DANE journal of ${name}/${keyType}: ${(err as Error).message}`, { cause: err });
  }
}

async function writeJournal(store: StateStore, name: string, keyType: string, j: DaneJournal, now: Date): Promise<void> {
  const d = daneDir(store, name, keyType);
  await mkdir(d, { recursive: true, mode: 0o700 });
  j.updatedAt = now.toISOString();
  await writeFileAtomic(path.join(d, 'journal.json'), JSON.stringify(j, null, 2) + '\n', { mode: 0o600 });
}

export async function readDaneKey(store: StateStore, name: string, keyType: string, id: string): Promise<string> {
  return readFile(path.join(daneDir(store, name, keyType), 'keys', `${id}.pem`), 'utf8');
}

/** Generated and stored 0600 before its record is ever published. */
async function newKey(store: StateStore, name: string, keyType: KeyType, now: Date, pem?: string): Promise<KeyRef> {
  const keyPem = pem ?? (await generateKeyPem(keyType));
  const id = `${now.toISOString().replace(/[:.]/g, '')}-${randomBytes(4).toString('hex')}`;
  const d = path.join(daneDir(store, name, keyType), 'keys');
  await mkdir(d, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(d, `${id}.pem`), keyPem, { mode: 0o600 });
  return { id, tlsa: keyTlsa311(keyPem), createdAt: now.toISOString() };
}

async function deleteKey(store: StateStore, name: string, keyType: string, id: string): Promise<void> {
  await rm(path.join(daneDir(store, name, keyType), 'keys', `${id}.pem`), { force: true });
}

/** How long one pass waits for a change to reach every authoritative server. */
const VISIBILITY_POLL_MS = 15_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const rec = (hex: string): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: hex });

// --------------------------------------------------------------------------
// The runner

export interface DaneEffects {
  store: StateStore;
  logger: Logger;
  now(): Date;
  /** Issue for `keyPem`, deploy, reload, verify (incl. `extraVerify`); record it as the current version. Throws on failure (files rolled back). */
  issueAndDeploy(keyPem: string, extraVerify: (leafDer: Buffer) => Promise<void>): Promise<{ serial: string }>;
  /** The key of the certificate currently deployed (state's current version), if any. */
  deployedKeyPem(): Promise<string | undefined>;
  /** Whether a same-key renewal is due by the normal timing rules. */
  renewalDue(): Promise<boolean>;
  /** Set while a failure backoff holds the next attempt back (docs/architecture.md, "When to renew"): a swap waits too. */
  backoffUntil?(): Date | undefined;
  publisher?: TlsaPublisher;
  /**
   * The other key types of this certificate: their journals and the key each
   * one serves now. Adoption publishes nothing until every key type serves
   * its current key, then publishes all of them in one update per owner.
   */
  siblings?(): Promise<Array<{ keyType: string; journal?: DaneJournal; deployedTlsa?: string }>>;
}

/** Prefix of the `waiting` text of a key type that waits for its siblings during adoption. */
export const ADOPTION_WAIT = 'adoption:';

export interface DaneOutcome {
  phase: Phase;
  acted: string[];
  waiting?: string;
  renewed?: { serial: string };
}

/** The owner names and records for a certificate (mxcert tlsa). */
export function endpointOwners(cert: CertificateConfig): string[] {
  return (cert.dane?.endpoints ?? []).map((e) => tlsaOwner(e.host, e.port));
}

/**
 * Addresses of an endpoint host as the authoritative servers publish them
 * (A and AAAA), so the live check connects where a DANE sender would.
 */
async function endpointAddresses(servers: DnsServer[], host: string): Promise<string[]> {
  const out = new Set<string>();
  for (const type of ['A', 'AAAA'] as const) {
    for (const s of servers) {
      try {
        const r = await queryDns(s, host, type, { tcp: true, recursion: false, timeoutMs: 3000 });
        for (const a of r.answers) if (a.type === type && typeof a.data === 'string') out.add(a.data);
        break;
      } catch {
        /* try the next server */
      }
    }
  }
  return [...out];
}

/**
 * docs/architecture.md, "DANE rollover" step 3 (optional): ask a validating resolver, with DO and RD
 * set, for each owner's TLSA RRset. It must answer with the AD bit (the
 * records validated up to its trust anchor) and hold every `present` record.
 * Anything else (no AD, a record missing, SERVFAIL from a bad signature, no
 * answer) holds the swap back.
 */
export async function resolverVerdict(resolver: DnsServer, owners: string[], present: string[]): Promise<{ ok: boolean; why: string }> {
  const at = `validating resolver ${resolver.host}:${resolver.port}`;
  for (const owner of owners) {
    let r;
    try {
      r = await queryDns(resolver, owner, 'TLSA', { tcp: true, recursion: true, dnssec: true, timeoutMs: 5000 });
    } catch (err) {
      return { ok: false, why: `${at}: no answer for ${owner} TLSA: ${(err as Error).message}` };
    }
    if (r.rcode !== 'NOERROR') return { ok: false, why: `${at}: ${r.rcode} for ${owner} TLSA` };
    if (!r.authenticData) return { ok: false, why: `${at}: ${owner} TLSA not validated (no AD bit)` };
    const have = new Set<string>();
    for (const a of r.answers) {
      if (a.type !== 'TLSA') continue;
      try {
        const t = fromDnsPacket(a.data);
        if (t.usage === 3 && t.selector === 1 && t.matchingType === 1) have.add(t.data);
      } catch {
        /* not one of ours */
      }
    }
    const missing = present.filter((h) => !have.has(h));
    if (missing.length) return { ok: false, why: `${at}: ${owner} lacks TLSA 3 1 1 ${missing.map((h) => `${h.slice(0, 16)}…`).join(', ')}` };
  }
  return { ok: true, why: `${at}: validated (AD)` };
}

async function observeAll(pub: TlsaPublisher, owners: string[]): Promise<{ verdict: (want: { present: string[]; absent: string[]; minSerial?: number }) => VisibilityVerdict; lines: string[]; empty: boolean; }> {
  const servers = await pub.servers();
  const perOwner = await Promise.all(owners.map(async (o) => ({ owner: o, obs: await observeTlsa(servers, o) })));
  return {
    verdict: (want) => {
      const vs = perOwner.map(({ obs }) => assessVisibility(obs, { present: want.present.map(rec), absent: want.absent.map(rec), minSerial: want.minSerial }));
      return {
        allAgree: vs.every((v) => v.allAgree),
        lagging: vs.flatMap((v, i) => v.lagging.map((l) => `${perOwner[i]!.owner} ${l}`)),
        maxTtl: Math.max(0, ...vs.map((v) => v.maxTtl ?? 0)),
        maxRrsigExpiration: vs.map((v) => v.maxRrsigExpiration).filter((d): d is Date => Boolean(d)).sort((a, b) => b.getTime() - a.getTime())[0],
      };
    },
    lines: perOwner.flatMap(({ owner, obs }) => obs.map((o) => `${owner} ${describeObservation(o)}`)),
    empty: perOwner.every(({ obs }) => obs.every((o) => o.records.length === 0)),
  };
}

/**
 * One pass of the rollover machine: advance through as many phases as can be
 * done now, persisting the journal after every step, and stop at the first
 * wait (visibility, hold, TTL) or error.
 */
export async function advanceDane(cert: CertificateConfig, keyType: KeyType, fx: DaneEffects, policy: DanePolicy): Promise<DaneOutcome> {
  const { store, logger: log } = fx;
  const name = cert.name;
  const owners = endpointOwners(cert);
  const extras = (cert.dane?.extraRecords ?? []).map((t) => parseTlsa(t));
  const pub = fx.publisher ?? (await createPublisher(cert.dane?.publisher, { logger: log }));
  const acted: string[] = [];
  const save = (j: DaneJournal) => writeJournal(store, name, keyType, j, fx.now());

  let j = await readJournal(store, name, keyType);
  if (!j) {
    // Adoption: the key about to be served becomes "current" (the deployed
    // one if there is one), and a next key is made right away.
    const deployed = await fx.deployedKeyPem();
    const now = fx.now();
    const current = await newKey(store, name, keyType, now, deployed);
    const next = await newKey(store, name, keyType, now);
    j = { version: 1, phase: 'PUBLISH_NEXT', current, next, updatedAt: now.toISOString() };
    await save(j);
    acted.push('adopted: generated the next key');
    log.info({ current: current.tlsa, next: next.tlsa }, 'DANE: adopting; keys ready');
  }

  const liveCheck = (expectTlsa: string) => async (leafDer: Buffer) => {
    const { X509Certificate } = await import('node:crypto');
    const served = tlsa311(new X509Certificate(leafDer).publicKey.export({ type: 'spki', format: 'der' })).data;
    if (served !== expectTlsa) throw new MxcertError('verify', `the new certificate's key ${served.slice(0, 16)}… is not the expected ${expectTlsa.slice(0, 16)}…`);
    const servers = await pub.servers();
    // Every endpoint address must serve it, and it must match the RRset on every authoritative server.
    for (const e of cert.dane?.endpoints ?? []) {
      const addrs = await endpointAddresses(servers, e.host);
      if (!addrs.length) throw new MxcertError('verify', `${e.host} has no A/AAAA records on its authoritative servers`);
      await verifyServed(addrs.map((a) => (a.includes(':') ? `[${a}]:${e.port}` : `${a}:${e.port}`)), leafDer, {
        serverName: e.host,
        timeoutMs: cert.verify.timeout,
        keyType,
        logger: log,
      });
    }
    const seen = await observeAll(pub, owners);
    const v = seen.verdict({ present: [served], absent: [] });
    if (!v.allAgree) throw new MxcertError('verify', `served key not in every published TLSA RRset: ${v.lagging.join('; ')}`);
  };

  // Set when STEADY's fresh check (step 3 + hold) cleared the swap in this pass.
  let swapCleared = false;
  for (let guard = 0; guard < 12; guard++) {
    const now = fx.now();
    switch (j.phase) {
      case 'PUBLISH_NEXT': {
        const deployed = await fx.deployedKeyPem();
        const deployedTlsa = deployed ? keyTlsa311(deployed) : undefined;
        const seen = await observeAll(pub, owners);
        if (deployedTlsa !== j.current.tlsa && seen.empty) {
          // No TLSA anywhere: DANE is not in force yet, so serve the current
          // key first and publish after (publishing first would make senders
          // reject whatever is served now).
          const r = await fx.issueAndDeploy(await readDaneKey(store, name, keyType, j.current.id), async () => {});
          acted.push(`deployed a certificate for the current key (serial ${r.serial}) before publishing`);
          continue;
        }
        // Adoption of a certificate with several key types (docs/architecture.md, "DANE rollover"): the
        // first record published puts DANE in force for every key served at
        // these endpoints, so all key types must serve their current key by
        // then, and all their records go out in the same update.
        const siblingRecords: TlsaRecord[] = [];
        if (seen.empty && fx.siblings) {
          const sibs = await fx.siblings();
          const notReady = sibs.filter((s) => !s.journal || s.deployedTlsa !== s.journal.current.tlsa).map((s) => s.keyType);
          if (notReady.length) {
            return { phase: j.phase, acted, waiting: `${ADOPTION_WAIT} publishing once ${notReady.join(', ')} also serves its current key` };
          }
          for (const s of sibs) siblingRecords.push(rec(s.journal!.current.tlsa), rec(s.journal!.next.tlsa));
        }
        const unsigned = seen.verdict({ present: [], absent: [] }).maxRrsigExpiration;
        let serial: number | undefined;
        for (const owner of owners) {
          const r = await pub.change(owner, { add: [rec(j.current.tlsa), rec(j.next.tlsa), ...siblingRecords, ...extras], remove: [] }, policy.ttl);
          if (r.serial !== undefined) serial = r.serial;
        }
        j.awaiting = { present: [j.current.tlsa, j.next.tlsa], absent: [], minSerial: serial, then: deployedTlsa === j.current.tlsa ? 'STEADY' : 'DEPLOY_CURRENT' };
        if (policy.strictSignatures && unsigned) j.unsignedNextUntil = unsigned.toISOString();
        j.phase = 'AWAIT_VISIBLE';
        await save(j);
        acted.push(`published 3 1 1 current + next at ${owners.join(', ')}`);
        log.info({ owners, serial }, 'DANE: published current + next');
        continue;
      }
      case 'AWAIT_VISIBLE': {
        const want = j.awaiting ?? { present: [j.current.tlsa, j.next.tlsa], absent: [], then: 'STEADY' as const };
        // Secondaries usually catch up within a second of the NOTIFY: poll a
        // little (with a deadline) before leaving it to the next pass.
        let v = (await observeAll(pub, owners)).verdict(want);
        for (let delay = 50, waited = 0; !v.allAgree && waited < VISIBILITY_POLL_MS; waited += delay, delay = Math.min(delay * 2, 1000)) {
          await sleep(delay);
          v = (await observeAll(pub, owners)).verdict(want);
        }
        if (!v.allAgree) {
          if (j.nextVisibleAt) {
            // One server fell back: t_visible starts over (docs/architecture.md, "DANE rollover" step 3).
            j.nextVisibleAt = undefined;
            j.holdUntil = undefined;
            await save(j);
          }
          return { phase: j.phase, acted, waiting: `not yet visible everywhere: ${v.lagging.join('; ')}` };
        }
        j.nextVisibleAt ??= now.toISOString();
        j.holdUntil = holdUntil(
          new Date(j.nextVisibleAt),
          Math.max(v.maxTtl ?? 0, policy.ttl),
          policy.minHoldMs,
          j.unsignedNextUntil ? new Date(j.unsignedNextUntil) : undefined,
        ).toISOString();
        j.phase = 'STEADY';
        const deployCurrent = want.then === 'DEPLOY_CURRENT';
        j.awaiting = undefined;
        if (j.old) {
          // RETIRE's update is visible everywhere: the old key is gone from DNS.
          await deleteKey(store, name, keyType, j.old.id);
          acted.push(`old key ${j.old.tlsa.slice(0, 16)}… retired and deleted`);
          j.old = undefined;
        }
        await save(j);
        acted.push('visible on every authoritative server');
        log.info({ holdUntil: j.holdUntil }, 'DANE: records visible on every authoritative server');
        if (deployCurrent) {
          // Adoption over a foreign RRset: the current key was published
          // first; it may be served once the hold has passed.
          if (now.getTime() < new Date(j.holdUntil).getTime()) {
            j.phase = 'AWAIT_VISIBLE';
            j.awaiting = { ...want };
            await save(j);
            return { phase: j.phase, acted, waiting: `holding until ${j.holdUntil} before serving the current key` };
          }
          const r = await fx.issueAndDeploy(await readDaneKey(store, name, keyType, j.current.id), liveCheck(j.current.tlsa));
          acted.push(`deployed the current key after the hold (serial ${r.serial})`);
        }
        continue;
      }
      case 'STEADY': {
        // Someone removed our records? Put them back and wait again.
        const seen = await observeAll(pub, owners);
        const v = seen.verdict({ present: [j.current.tlsa, j.next.tlsa], absent: [] });
        if (!v.allAgree) {
          // A record of ours is missing somewhere (removed by hand, a zone
          // reload, a lagging server): publish again and wait. If it is the
          // next key's record, its hold starts over once it is back.
          const nextSeen = seen.verdict({ present: [j.next.tlsa], absent: [] });
          if (!nextSeen.allAgree) {
            j.nextVisibleAt = undefined;
            j.holdUntil = undefined;
          }
          log.warn({ lagging: v.lagging }, 'DANE: our records are not served everywhere; publishing again');
          j.phase = 'PUBLISH_NEXT';
          await save(j);
          continue;
        }
        if (rotationDue(j, now, policy.keyLifetimeMs)) {
          // A swap that just failed (say the reload hook is broken) must not
          // order a certificate on every pass: it honours the failure backoff.
          const backoff = fx.backoffUntil?.();
          if (backoff && backoff.getTime() > now.getTime() && !j.rollover?.emergency) {
            return { phase: j.phase, acted, waiting: `rotation due, backing off after a failure until ${backoff.toISOString()}` };
          }
          const ok = maySwap(j, now, v.allAgree);
          if (!ok.ok) return { phase: j.phase, acted, waiting: `rotation due, ${ok.why}` };
          if (policy.validatingResolver) {
            const ad = await resolverVerdict(policy.validatingResolver, owners, [j.current.tlsa, j.next.tlsa]);
            if (!ad.ok) return { phase: j.phase, acted, waiting: `rotation due, ${ad.why}` };
          }
          if (j.rollover?.emergency) log.warn({ next: j.next.tlsa }, 'DANE: EMERGENCY rollover: swapping without waiting for the hold');
          j.phase = 'ISSUE';
          swapCleared = true;
          await save(j);
          continue;
        }
        const deployed = await fx.deployedKeyPem();
        const deployedTlsa = deployed ? keyTlsa311(deployed) : undefined;
        if (deployedTlsa !== j.current.tlsa || (await fx.renewalDue())) {
          // Same-key renewal: the TLSA RRset does not change.
          const r = await fx.issueAndDeploy(await readDaneKey(store, name, keyType, j.current.id), liveCheck(j.current.tlsa));
          return { phase: j.phase, acted: [...acted, `renewed with the current key (serial ${r.serial})`], renewed: r };
        }
        return { phase: j.phase, acted };
      }
      case 'ISSUE':
      case 'SWAP':
      case 'VERIFY_LIVE': {
        if (!swapCleared) {
          // Resumed from the journal after a crash: DNS may have changed while
          // we were down (a record removed, a server fallen back), so check
          // step 3 and the hold again before the next key is served.
          const v = (await observeAll(pub, owners)).verdict({ present: [j.current.tlsa, j.next.tlsa], absent: [] });
          let ok = maySwap(j, now, v.allAgree);
          if (ok.ok && policy.validatingResolver) ok = await resolverVerdict(policy.validatingResolver, owners, [j.current.tlsa, j.next.tlsa]);
          if (!ok.ok) {
            log.warn({ lagging: v.lagging, why: ok.why }, 'DANE: not resuming the interrupted swap; back to STEADY');
            j.phase = 'STEADY';
            await save(j);
            continue;
          }
        }
        // issueAndDeploy does issue → validate → deploy → reload → verify in
        // one go and rolls the files back on failure; re-running it after a
        // crash in any of these phases is safe once the check above passed
        // (the old record is still published, the next one is visible and
        // has been for the whole hold).
        j.phase = 'SWAP';
        await save(j);
        let r: { serial: string };
        try {
          r = await fx.issueAndDeploy(await readDaneKey(store, name, keyType, j.next.id), liveCheck(j.next.tlsa));
        } catch (err) {
          j.phase = 'STEADY';
          j.lastError = describeError(err);
          await save(j);
          throw err;
        }
        j.old = j.current;
        j.current = j.next;
        j.next = await newKey(store, name, keyType, fx.now());
        j.nextVisibleAt = undefined;
        j.holdUntil = undefined;
        j.unsignedNextUntil = undefined;
        j.rollover = undefined;
        j.lastError = undefined;
        j.swappedAt = fx.now().toISOString();
        j.phase = 'RETIRE';
        await save(j);
        acted.push(`swapped to the next key (serial ${r.serial}); new next key generated`);
        log.info({ current: j.current.tlsa, next: j.next.tlsa }, 'DANE: swapped and verified');
        continue;
      }
      case 'RETIRE': {
        // At least one TTL after the swap (RFC 7671 §8.1: remove the old
        // record once the new chain works), in one update: −H(old) +H(new next).
        const after = new Date(j.swappedAt ?? now.toISOString()).getTime() + policy.ttl * 1000;
        if (now.getTime() < after) return { phase: j.phase, acted, waiting: `retiring the old record after ${new Date(after).toISOString()}` };
        const seen = await observeAll(pub, owners);
        const unsigned = seen.verdict({ present: [], absent: [] }).maxRrsigExpiration;
        let serial: number | undefined;
        for (const owner of owners) {
          const r = await pub.change(owner, { add: [rec(j.current.tlsa), rec(j.next.tlsa), ...extras], remove: j.old ? [rec(j.old.tlsa)] : [] }, policy.ttl);
          if (r.serial !== undefined) serial = r.serial;
        }
        j.awaiting = { present: [j.current.tlsa, j.next.tlsa], absent: j.old ? [j.old.tlsa] : [], minSerial: serial, then: 'STEADY' };
        if (policy.strictSignatures && unsigned) j.unsignedNextUntil = unsigned.toISOString();
        j.phase = 'AWAIT_VISIBLE';
        await save(j);
        acted.push('retired the old record and published the new next key');
        continue;
      }
    }
  }
  return { phase: j.phase, acted };
}

/** `mxcert rollover`: ask for a rotation on the next pass. */
export async function requestRollover(store: StateStore, name: string, keyType: string, emergency: boolean, now: Date): Promise<boolean> {
  const j = await readJournal(store, name, keyType);
  if (!j) return false;
  j.rollover = { requestedAt: now.toISOString(), emergency };
  await writeJournal(store, name, keyType, j, now);
  return true;
}

/** Records mxcert wants published, in zone-file syntax (mxcert tlsa). */
export function wantedRecords(cert: CertificateConfig, journals: Array<{ keyType: string; journal?: DaneJournal }>, ttl: number): string[] {
  const lines: string[] = [];
  for (const owner of endpointOwners(cert)) {
    for (const { keyType, journal } of journals) {
      if (!journal) {
        lines.push(`; ${owner} ${keyType}: no keys yet (run mxcert renew first)`);
        continue;
      }
      lines.push(`${owner} ${ttl} IN TLSA ${formatTlsa(rec(journal.current.tlsa))} ; ${keyType} current`);
      lines.push(`${owner} ${ttl} IN TLSA ${formatTlsa(rec(journal.next.tlsa))} ; ${keyType} next`);
    }
    for (const x of cert.dane?.extraRecords ?? []) lines.push(`${owner} ${ttl} IN TLSA ${formatTlsa(parseTlsa(x))} ; extra`);
  }
  return lines;
}
