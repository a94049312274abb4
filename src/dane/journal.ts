// The DANE machine's memory (docs/architecture.md, "DANE rollover"): the
// journal and the keys, under stateDir/certs/NAME/KEYTYPE/dane/. The journal
// is rewritten atomically after every step, so a crash at any point leaves
// either the state before the step or the state after it; the keys are
// written 0600 from their first byte, before any record names them.
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DanePublisherConfig, KeyType } from '../config/schema.js';
import { MxcertError } from '../errors.js';
import { writeFileAtomic } from '../deploy/atomic-write.js';
import { generateKeyPem, publicKeySpkiDer } from '../keys/keygen.js';
import type { StateStore } from '../store/state-store.js';
import { phaseName, type Phase } from './phases.js';
import { tlsa311 } from './tlsa.js';

export { PHASES, type Phase } from './phases.js';

export interface KeyRef {
  id: string;
  /** 3 1 1 data: hex SHA-256 of the SubjectPublicKeyInfo. */
  tlsa: string;
  createdAt: string;
}

/** What AWAIT_VISIBLE waits for, and where it goes next. */
export interface Awaiting {
  present: string[];
  absent: string[];
  /** The primary's serial after the update: every server must be at least there (RFC 1982). */
  minSerial?: number;
  then: 'STEADY' | 'DEPLOY_CURRENT';
  /**
   * Largest TTL of the RRsets served just before the update. BIND and Knot
   * rewrite the whole RRset's TTL to that of the record just added, yet a
   * resolver may hold the older set for its older TTL.
   */
  ttlBefore?: number;
}

/**
 * What `mxcert dane retire` needs once the `dane:` block is gone from the
 * config: where the records are and how to change them. The publisher
 * settings name their secrets (a file, a variable), never hold them.
 */
export interface PublishedWith {
  /** Every owner name mxcert has published at for this certificate. */
  owners: string[];
  ttl: number;
  minHoldMs: number;
  publisher: DanePublisherConfig;
}

export interface TtlSeen {
  /** The largest TTL served now (at the last look), over every server and owner. */
  live?: number;
  /** A larger TTL no longer served: caches may hold it until `until` + its TTL (kept for 2 × TTL). */
  gone?: { ttl: number; until: string };
}

/** A retirement in progress (phases WITHDRAW, AWAIT_GONE, RELEASE); the same in every key type's journal. */
export interface RetireState {
  startedAt: string;
  owners: string[];
  /** Every record of mxcert's for the certificate, all key types (3 1 1 data). */
  records: string[];
  minSerial?: number;
  /** Largest TTL of the RRsets that held the records. */
  ttlBefore?: number;
  /** When the last authoritative server was seen without them. */
  goneAt?: string;
  /** goneAt + the hold: when the keys are freed. */
  releaseAt?: string;
}

export interface DaneJournal {
  version: 2;
  phase: Phase;
  current: KeyRef;
  next: KeyRef;
  /** The key served before the last swap; its record goes in RETIRE_OLD. */
  old?: KeyRef;
  awaiting?: Awaiting;
  /** First publish of this journal: from then on an empty RRset means records were removed, not that DANE is off. */
  publishedAt?: string;
  /** t_visible: when every authoritative server was seen serving {current, next}; reset if one falls back. */
  nextVisibleAt?: string;
  /** t_visible + max(2 × TTL, minHold) [, strict: ≥ last RRSIG expiry of an RRset without it]. */
  holdUntil?: string;
  /** The TTL the hold was computed from (the largest of before the update, after it, and remembered). */
  holdTtl?: number;
  /**
   * TTLs of the RRsets served at these owners, remembered across passes:
   * mxcert's own update lowers the TTL (BIND and Knot rewrite it), and an
   * RRset lacking the next key may sit in caches for its old TTL.
   */
  ttlSeen?: TtlSeen;
  /** Latest RRSIG expiration seen over an RRset that lacked H(next) (strictSignatures). */
  unsignedNextUntil?: string;
  swappedAt?: string;
  /** RETIRE_OLD sends its update no earlier than this. */
  retireAfter?: string;
  rollover?: { requestedAt: string; emergency: boolean };
  lastError?: string;
  publishedWith?: PublishedWith;
  retire?: RetireState;
  updatedAt: string;
}

/** 3 1 1 data (hex SHA-256 of the SubjectPublicKeyInfo) of a private key. */
export function keyTlsa311(keyPem: string): string {
  return tlsa311(publicKeySpkiDer(keyPem)).data;
}

/**
 * A journal as read from disk, in today's shape: phases written by earlier
 * versions get today's names (src/dane/phases.ts). Throws on a journal that
 * is not one (a phase nobody ever wrote, keys missing).
 */
export function upgradeJournal(raw: unknown, where: string): DaneJournal {
  const r = raw as Partial<DaneJournal> & { phase?: unknown; version?: unknown };
  const phase = phaseName(r?.phase);
  if (!r || typeof r !== 'object' || !phase || !r.current?.tlsa || !r.next?.tlsa) {
    throw new MxcertError('state', `${where}: not a DANE journal mxcert understands (phase ${JSON.stringify(r?.phase)})`);
  }
  const j: DaneJournal = { ...(r as DaneJournal), version: 2, phase };
  // Earlier versions did not record the first publish; any journal past it
  // (another phase, or a hold once started) has published.
  if (!j.publishedAt && (phase !== 'PUBLISH' || j.nextVisibleAt || j.holdUntil)) j.publishedAt = j.updatedAt;
  return j;
}

/** Where one key type's DANE state lives. */
export function daneDir(store: StateStore, name: string, keyType: string): string {
  return path.join(store.certDir(name, keyType), 'dane');
}

/** One key type's journal and keys, as the executor sees them. */
export interface DaneStorage {
  readJournal(): Promise<DaneJournal | undefined>;
  writeJournal(j: DaneJournal, now: Date): Promise<void>;
  /** Store `pem` (or a fresh key) 0600; returns its reference. */
  createKey(now: Date, pem?: string): Promise<KeyRef>;
  readKey(id: string): Promise<string>;
  deleteKey(id: string): Promise<void>;
  /** The journal and every key: a retirement is complete. */
  removeAll(): Promise<void>;
}

export function fileStorage(store: StateStore, name: string, keyType: KeyType): DaneStorage {
  const dir = daneDir(store, name, keyType);
  const file = path.join(dir, 'journal.json');
  return {
    readJournal: () => readJournalFile(file, `${name}/${keyType}`),
    async writeJournal(j, now) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      j.updatedAt = now.toISOString();
      await writeFileAtomic(file, JSON.stringify(j, null, 2) + '\n', { mode: 0o600 });
    },
    async createKey(now, pem) {
      const keyPem = pem ?? (await generateKeyPem(keyType));
      const id = `${now.toISOString().replace(/[:.]/g, '')}-${randomBytes(4).toString('hex')}`;
      await mkdir(path.join(dir, 'keys'), { recursive: true, mode: 0o700 });
      await writeFileAtomic(path.join(dir, 'keys', `${id}.pem`), keyPem, { mode: 0o600 });
      return { id, tlsa: keyTlsa311(keyPem), createdAt: now.toISOString() };
    },
    readKey: (id) => readFile(path.join(dir, 'keys', `${id}.pem`), 'utf8'),
    deleteKey: (id) => rm(path.join(dir, 'keys', `${id}.pem`), { force: true }),
    removeAll: () => rm(dir, { recursive: true, force: true }),
  };
}

async function readJournalFile(file: string, what: string): Promise<DaneJournal | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MxcertError('state', `cannot read the DANE journal of ${what}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return upgradeJournal(JSON.parse(text), `the DANE journal of ${what} (${file})`);
  } catch (err) {
    if (err instanceof MxcertError) throw err;
    throw new MxcertError('state', `cannot read the DANE journal of ${what}: ${(err as Error).message}`, { cause: err });
  }
}

export function readJournal(store: StateStore, name: string, keyType: string): Promise<DaneJournal | undefined> {
  return fileStorage(store, name, keyType as KeyType).readJournal();
}

export function writeJournal(store: StateStore, name: string, keyType: string, j: DaneJournal, now: Date): Promise<void> {
  return fileStorage(store, name, keyType as KeyType).writeJournal(j, now);
}

export function readDaneKey(store: StateStore, name: string, keyType: string, id: string): Promise<string> {
  return fileStorage(store, name, keyType as KeyType).readKey(id);
}
