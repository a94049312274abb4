// When the daemon must next run a pass on its own, between cron ticks: the
// earliest due instant over every (certificate, key type). Computed by the
// pass child at the end of its pass (the state it just wrote is at hand
// there), so the idle daemon needs neither the store nor the planning code.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CertificateConfig, Config } from '../config/schema.js';
import type { DaneJournal } from '../dane/journal.js';
import { phaseName } from '../dane/phases.js';
import { planFromState } from '../schedule/plan.js';
import type { StateStore } from '../store/state-store.js';

/** A DANE machine waiting on something without a deadline (visibility, a backoff) is looked at again after this. */
const DANE_RETRY_MS = 10_000;
/** Wake a little after a DANE deadline, so the pass does not find it a hair early. */
const DANE_MARGIN_MS = 20;

/**
 * When a certificate's DANE rollover can next move on its own (DESIGN §6):
 * the end of the hold once a rotation is due, RETIRE's one TTL after the
 * swap, the key's rotation time. Without this the daemon would only notice
 * on the next cron tick, stretching a 2 × TTL hold to up to an hour.
 */
export async function daneWakeAt(store: StateStore, cert: CertificateConfig, keyType: string, now: Date): Promise<number | undefined> {
  if (!cert.dane?.enabled) return undefined;
  // Read directly: a cheap look at the journal, without the rollover machinery.
  const j = await readFile(path.join(store.certDir(cert.name, keyType), 'dane', 'journal.json'), 'utf8')
    .then((t) => JSON.parse(t) as DaneJournal)
    .catch(() => undefined);
  if (!j) return undefined;
  const t = now.getTime();
  const hold = j.holdUntil ? new Date(j.holdUntil).getTime() : undefined;
  let at: number;
  switch (phaseName(j.phase)) {
    case 'RETIRE_OLD':
      at = j.retireAfter ? new Date(j.retireAfter).getTime() : new Date(j.swappedAt ?? now).getTime() + (cert.dane.publisher?.ttl ?? 3600) * 1000;
      break;
    case 'STEADY': {
      const rotateAt = j.rollover ? t : new Date(j.current.createdAt).getTime() + cert.dane.keyLifetime;
      at = Math.max(rotateAt, hold ?? rotateAt);
      break;
    }
    default:
      // Waiting for visibility (each pass polls a while itself), or resuming an interrupted swap.
      at = hold ?? t;
  }
  // Due already, yet the last pass left it: something without a deadline holds it back.
  return at <= t ? t + DANE_RETRY_MS : at + DANE_MARGIN_MS;
}

/** The earliest instant (ms) at which a renewal, an ARI poll or a DANE step is due; undefined if none ever is. */
export async function nextWakeAt(config: Config, store: StateStore, now: Date): Promise<number | undefined> {
  let earliest = Infinity;
  for (const cert of config.certificates) {
    for (const keyType of cert.keys) {
      const state = await store.readState(cert.name, keyType);
      // Metadata only: the plan needs no key or certificate.
      const meta = state.current ? await store.loadMeta(cert.name, keyType, state.current) : undefined;
      const plan = planFromState(cert, keyType, state, meta && { meta }, false, now);
      earliest = Math.min(earliest, plan.at.getTime());
      if (state.ari) earliest = Math.min(earliest, new Date(state.ari.nextCheck).getTime());
      const dane = await daneWakeAt(store, cert, keyType, now);
      if (dane !== undefined) earliest = Math.min(earliest, dane);
    }
  }
  return Number.isFinite(earliest) ? earliest : undefined;
}
