// The "nobody renewed this" warning: Let's Encrypt no longer
// mails expiry notices, so mxcert does. Renewal normally happens with a third
// (or half) of the lifetime left; a certificate still current in its last
// fifth means every attempt since has failed (each of which already ran the
// failure hooks) or nothing has run at all. That gets one more, distinct
// message: the failure hooks once more with MXCERT_EVENT=warning, once per
// certificate version (remembered in stateDir, so restarts do not repeat it).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CertificateConfig, Config } from '../config/schema.js';
import { writeFileAtomic } from '../deploy/atomic-write.js';
import { describeError } from '../errors.js';
import { hookEnvironment } from '../hooks/environment.js';
import { runHook } from '../hooks/run-hook.js';
import type { Logger } from '../log.js';
import { outputPaths } from '../renew/orchestrator.js';
import type { StateStore } from '../store/state-store.js';
import { displayTime } from '../util/display-time.js';

/** The warning fires once this fraction of the lifetime is left. */
export const WARN_REMAINING_FRACTION = 1 / 5;
const MARKER = 'expiry-warning.json';

interface Marker {
  version: string;
  at: string;
}

/** When a certificate valid from notBefore to notAfter enters its last fifth. */
export function warningInstant(notBefore: Date, notAfter: Date): Date {
  const life = notAfter.getTime() - notBefore.getTime();
  return new Date(notAfter.getTime() - life * WARN_REMAINING_FRACTION);
}

/**
 * Check every configured (certificate, key type); warn for each whose current
 * version has entered its last fifth and has not been warned about. Never
 * throws: a problem here must not fail the pass.
 */
export async function warnAboutAgingCertificates(config: Config, store: StateStore, now: Date, logger: Logger): Promise<void> {
  for (const cert of config.certificates) {
    for (const keyType of cert.keys) {
      const log = logger.child({ cert: cert.name, keyType });
      try {
        await checkUnit(cert, keyType, store, now, log);
      } catch (err) {
        log.error({ err: describeError(err) }, 'expiry warning check failed');
      }
    }
  }
}

async function checkUnit(cert: CertificateConfig, keyType: string, store: StateStore, now: Date, log: Logger): Promise<void> {
  const state = await store.readState(cert.name, keyType);
  if (!state.current) return;
  // The metadata alone: this runs for every unit after every pass, and the
  // warning needs dates and a serial, not the key and certificate files.
  const meta = await store.loadMeta(cert.name, keyType, state.current);
  if (!meta) return;
  const current = { meta };
  const notBefore = new Date(current.meta.notBefore);
  const notAfter = new Date(current.meta.notAfter);
  if (now.getTime() < warningInstant(notBefore, notAfter).getTime()) return;

  const markerFile = path.join(store.certDir(cert.name, keyType), MARKER);
  const marker = await readFile(markerFile, 'utf8').then((t) => JSON.parse(t) as Marker, () => undefined);
  if (marker?.version === state.current) return;

  const left = notAfter.getTime() - now.getTime();
  const expiry = left > 0 ? `expires at ${displayTime(notAfter)} (in ${humanDuration(left)})` : `expired at ${displayTime(notAfter)}`;
  const lastError = state.last?.result === 'failure' ? state.last.error : undefined;
  const message =
    `certificate ${cert.name} (${keyType}, serial ${current.meta.serial}) ${expiry} and has not been renewed: ` +
    `it is in the last fifth of its lifetime` +
    (state.consecutiveFailures > 0 ? `; ${state.consecutiveFailures} failed attempt${state.consecutiveFailures === 1 ? '' : 's'} since the last success` : '') +
    (lastError ? `; last error: ${lastError}` : '');
  log.warn({ notAfter: notAfter.toISOString(), consecutiveFailures: state.consecutiveFailures, lastError }, message);

  if (cert.hooks.failure.length) {
    const env = { ...hookEnvironment({ event: 'failure', certName: cert.name, domains: cert.domains, keyType, outputs: outputPaths(cert, keyType), error: message }), MXCERT_EVENT: 'warning' };
    for (const h of cert.hooks.failure) {
      await runHook(typeof h === 'string' ? [h] : h, { env, configEnv: cert.hooks.env, timeoutMs: cert.hooks.timeout, logger: log }).catch((err: unknown) =>
        log.error({ err: describeError(err) }, 'failure hook failed (warning)'),
      );
    }
  }
  await writeFileAtomic(markerFile, JSON.stringify({ version: state.current, at: now.toISOString() } satisfies Marker, null, 2) + '\n', { mode: 0o600 });
}

function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 2 * 3600) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86_400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}
