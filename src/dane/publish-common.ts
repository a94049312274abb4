// What every TLSA publisher shares (docs/architecture.md, "DANE rollover"):
// the interface the rollover machine talks to and the checks and retry pause
// each provider uses. Kept apart from publisher.ts, which loads the
// providers, so no provider imports the module that imports it.
import type { Clock } from '../clock.js';
import { DnsError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DnsServer } from '../dns/types.js';
import { formatTlsa, parseTlsa, sameTlsa, type TlsaRecord } from './tlsa.js';

export interface TlsaChange {
  add: TlsaRecord[];
  remove: TlsaRecord[];
}

export interface TlsaPublisher {
  readonly name: string;
  /** Authoritative servers to check visibility on (every address of every nameserver). */
  servers(): Promise<DnsServer[]>;
  /** Current RRset at owner as the primary/API sees it. */
  read(owner: string): Promise<TlsaRecord[]>;
  /**
   * Atomically: remove exactly `remove`, add `add`, leave every other record
   * (foreign records survive). Retries safely under concurrency. A change
   * that would not alter the RRset sends nothing. Returns the zone serial
   * after the change if known: a serial at which the primary serves it, so
   * "serial ≥ this" on a secondary means it has the change too.
   */
  change(owner: string, change: TlsaChange, ttl: number): Promise<{ serial?: number }>;
}

export interface PublisherDeps {
  logger: Logger;
  clock?: Clock;
  /** Where secretEnv/apiKeyEnv are looked up. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Extra variables for the hook publisher (e.g. MXCERT_CERT_NAME, MXCERT_KEY_TYPE). */
  hookEnv?: Record<string, string>;
  /** Resolver for nameserver host names. Default: the system resolver. */
  resolver?: (name: string) => Promise<string[]>;
}

/**
 * Pause before retry `attempt` (1-based) after losing a race: exponential
 * with full jitter, so two agents that collided do not collide again in
 * lock step (the classic fix for contending writers).
 */
export function retryDelayMs(attempt: number, random: () => number = Math.random, baseMs = 50, capMs = 2000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Check a change before any of it reaches an UPDATE script, an HTTP body or
 * a hook's environment: a TTL within RFC 2181 §8 (unsigned 31 bits), and
 * records that parse back to themselves (octet fields, even-length hex).
 */
export function checkChange(change: TlsaChange, ttl: number): void {
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) throw new DnsError(`invalid TTL ${ttl}`);
  for (const r of [...change.add, ...change.remove]) {
    let back: TlsaRecord | undefined;
    try {
      back = parseTlsa(formatTlsa(r));
    } catch {
      // reported below
    }
    if (!back || !sameTlsa(back, r)) throw new DnsError(`invalid TLSA record ${JSON.stringify(r)}`);
  }
}
