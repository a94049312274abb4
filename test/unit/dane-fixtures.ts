// Plain-data fixtures for the pure DANE decisions (src/dane/decide.ts,
// src/dane/fleet.ts, src/dane/retire.ts): one clock origin, four key hashes,
// two authoritative servers and the observation builders the unit tests share.
import { decide as decideRaw, type DaneAction, type DaneObservations, type DecidePolicy } from '../../src/dane/decide.js';
import type { DaneJournal } from '../../src/dane/journal.js';
import type { TlsaRecord } from '../../src/dane/tlsa.js';
import type { Observation } from '../../src/dane/visibility.js';

export const T0 = Date.parse('2026-11-01T00:00:00Z');
export const at = (ms: number) => new Date(T0 + ms);
export const iso = (ms: number) => at(ms).toISOString();
export const DAY = 86_400_000;
/** Key hashes (SHA-256 of SPKI, hex): the current key, the next, an old one, a foreign record. */
export const C = 'cc'.repeat(32);
export const N = 'dd'.repeat(32);
export const O = 'ee'.repeat(32);
export const F = 'ab'.repeat(32);
export const rec = (h: string): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: h });
/** The primary and the secondary. */
export const P = { host: '127.0.0.1', port: 5301 };
export const S = { host: '127.0.0.1', port: 5302 };
export const POLICY: DecidePolicy = { keyLifetimeMs: 90 * DAY, minHoldMs: 0, strictSignatures: false, ttl: 60, resolver: false, extras: [] };

/** A STEADY journal with current C and next N, created at T0, changed by `over`. */
export function steadyJournal(over: Partial<DaneJournal> = {}): DaneJournal {
  return {
    version: 2,
    phase: 'STEADY',
    current: { id: 'c', tlsa: C, createdAt: iso(0) },
    next: { id: 'n', tlsa: N, createdAt: iso(0) },
    updatedAt: iso(0),
    ...over,
  };
}

/** What one server answered; authoritative, serial 10, at T0 unless told otherwise. */
export function server(s: typeof P, hashes: readonly string[], over: Partial<Observation> = {}): Observation {
  return { server: s, ok: true, authoritative: true, serial: 10, records: hashes.map(rec), ...(hashes.length ? { ttl: 60 } : {}), at: at(0), ...over };
}

/** Both servers answering the same. */
export const both = (hashes: readonly string[], over: Partial<Observation> = {}) => [server(P, hashes, over), server(S, hashes, over)];

/**
 * decide, as the executor sees it: when the first answer is only to save
 * the TTL memory, the next one (same observations) is the phase's decision.
 */
export function settledDecide(j: DaneJournal | undefined, o: DaneObservations, p: DecidePolicy, now: Date): DaneAction {
  const a = decideRaw(j, o, p, now);
  if (j && a.kind === 'save' && JSON.stringify({ ...a.journal, ttlSeen: undefined }) === JSON.stringify({ ...j, ttlSeen: undefined })) return decideRaw(a.journal, o, p, now);
  return a;
}
