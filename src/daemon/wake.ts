// When the daemon must next run a pass on its own, between cron ticks: the
// earliest due instant over every (certificate, key type). Computed by the
// pass child at the end of its pass (the state it just wrote is at hand
// there), so the idle daemon needs neither the store nor the planning code.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CertificateConfig, Config } from '../config/schema.js';
import type { DaneJournal } from '../dane/journal.js';
import { isRetirePhase, phaseName } from '../dane/phases.js';
import { planFromState } from '../schedule/plan.js';
import { configFingerprint } from '../schedule/config-fingerprint.js';
import type { StateStore } from '../store/state-store.js';

/** A DANE machine waiting on something without a deadline (visibility, a backoff) is looked at again after this. */
const DANE_RETRY_MS = 10_000;
/** Wake a little after a DANE deadline, so the pass does not find it a hair early. */
const DANE_MARGIN_MS = 20;

/**
 * When a certificate's DANE state can next move on its own
 * (docs/architecture.md, "DANE rollover"): the end of the hold once a
 * rotation is due, RETIRE_OLD's wait after the swap, the key's rotation time,
 * the end of a retirement's wait for caches. Without this the daemon would
 * only notice on the next cron tick, stretching a 2 × TTL hold to up to an hour.
 */
export async function daneWakeAt(store: StateStore, cert: CertificateConfig, keyType: string, now: Date): Promise<number | undefined> {
  // Read directly: a cheap look at the journal, without the rollover machinery.
  const j = await readFile(path.join(store.certDir(cert.name, keyType), 'dane', 'journal.json'), 'utf8')
    .then((t) => JSON.parse(t) as DaneJournal)
    .catch(() => undefined);
  const at = j && daneDeadline(j, cert, now);
  if (at === undefined) return undefined;
  const t = now.getTime();
  // Due already, yet the last pass left it: something without a deadline holds it back.
  return at <= t ? t + DANE_RETRY_MS : at + DANE_MARGIN_MS;
}

/**
 * The instant (ms) a journal's next step is due by the journal alone, which
 * may be now or past (the step waits on something without a deadline:
 * visibility, members' reports, a backoff); undefined when nothing moves on
 * its own. Pure: the fleet watcher (src/daemon/fleet-child.ts) applies it to
 * the journal in etcd, the daemon's wake-up to the one on disk.
 */
export function daneDeadline(j: DaneJournal, cert: CertificateConfig, now: Date): number | undefined {
  const phase = phaseName(j.phase);
  if (!phase) return undefined;
  // With DANE off only a retirement moves on its own; the key is kept by renewals, which the plan times.
  const retiring = isRetirePhase(phase);
  if (!cert.dane?.enabled && !retiring) return undefined;
  const t = now.getTime();
  const hold = j.holdUntil ? new Date(j.holdUntil).getTime() : undefined;
  switch (phase) {
    case 'RETIRE_OLD':
      return j.retireAfter ? new Date(j.retireAfter).getTime() : new Date(j.swappedAt ?? now).getTime() + (cert.dane?.publisher?.ttl ?? 3600) * 1000;
    case 'STEADY': {
      const rotateAt = j.rollover ? t : new Date(j.current.createdAt).getTime() + (cert.dane?.keyLifetime ?? 0);
      return Math.max(rotateAt, hold ?? rotateAt);
    }
    case 'RELEASE':
      return j.retire?.releaseAt ? new Date(j.retire.releaseAt).getTime() : t;
    default:
      // Waiting for DNS (each pass polls a while itself), or resuming an interrupted swap.
      return retiring ? t : (hold ?? t);
  }
}

/** The earliest instant (ms) at which a renewal, an ARI poll or a DANE step is due; undefined if none ever is. */
export async function nextWakeAt(config: Config, store: StateStore, now: Date): Promise<number | undefined> {
  return (await nextWake(config, store, now))?.at;
}

/** nextWakeAt, with what is due then (`mx1 (ecdsa-p256): renewal (ari-window)`), for the daemon's log. */
export async function nextWake(config: Config, store: StateStore, now: Date): Promise<{ at: number; why: string } | undefined> {
  let earliest: { at: number; why: string } | undefined;
  const consider = (at: number, why: () => string) => {
    if (!earliest || at < earliest.at) earliest = { at, why: why() };
  };
  for (const cert of config.certificates) {
    for (const keyType of cert.keys) {
      const unit = `${cert.name} (${keyType})`;
      const state = await store.readState(cert.name, keyType);
      // Metadata only: the plan needs no key or certificate.
      const meta = state.current ? await store.loadMeta(cert.name, keyType, state.current) : undefined;
      const plan = planFromState(cert, keyType, state, meta && { meta }, false, now, configFingerprint(config.acme, cert, keyType));
      consider(plan.at.getTime(), () => `${unit}: renewal (${plan.reason})`);
      if (state.ari) consider(new Date(state.ari.nextCheck).getTime(), () => `${unit}: ARI check`);
      const dane = await daneWakeAt(store, cert, keyType, now);
      if (dane !== undefined) consider(dane, () => `${unit}: DANE rollover step`);
    }
  }
  return earliest;
}
