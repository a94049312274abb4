// `mxcert revoke --cert NAME [--key-type T] [--reason R]` (RFC 8555 §7.6).
// The revoked version is marked in its state, so the next pass replaces it
// and `mxcert status` shows why; a keyCompromise on a DANE certificate also
// asks for the emergency rollover, so the compromised key leaves service
// without waiting for the hold.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { CertificateConfig, KeyType } from '../config/schema.js';
import { describeError } from '../errors.js';
import { isRevocationReason, REVOCATION_REASONS, type RevocationReason } from '../acme/revoke.js';
import type { AcmeService } from '../acme/client.js';
import { requestRollover } from '../dane/rollover.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock } from '../store/lock.js';
import { systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import { acmeServiceFor } from './account.js';
import type { CommandContext } from './context.js';

export const REVOCATION_REASON_NAMES = Object.keys(REVOCATION_REASONS);

export async function revokeCommand(ctx: CommandContext, o: { cert: string; keyType?: string; reason: string; wait: number }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const cert = config.certificates.find((c) => c.name === o.cert);
  const usage = (msg: string) => (process.stderr.write(`mxcert: ${msg}\n`), 2);
  if (!cert) return usage(`no certificate named ${o.cert} in ${config.source}`);
  if (!isRevocationReason(o.reason)) return usage(`--reason ${o.reason}: use one of ${REVOCATION_REASON_NAMES.join(', ')}`);
  if (o.keyType && !cert.keys.includes(o.keyType as KeyType)) return usage(`${cert.name} has no key type ${o.keyType} (it has ${cert.keys.join(', ')})`);
  const keyTypes = o.keyType ? [o.keyType as KeyType] : cert.keys;

  const store = new StateStore(config.stateDir);
  await store.ensure();
  const lock = await acquireLock(config.stateDir, { command: 'revoke', waitMs: o.wait * 1000 });
  let acme: AcmeService | undefined;
  try {
    acme = await acmeServiceFor(config, ctx.logger);
    let failed = false;
    for (const keyType of keyTypes) {
      const log = ctx.logger.child({ cert: cert.name, keyType });
      try {
        process.stdout.write(await revokeOne(store, acme, cert, keyType, o.reason, log));
      } catch (err) {
        failed = true;
        process.stdout.write(`${cert.name} (${keyType}): revocation FAILED: ${describeError(err)}\n`);
      }
    }
    return failed ? 1 : 0;
  } finally {
    acme?.close();
    await lock.release();
  }
}

async function revokeOne(store: StateStore, acme: AcmeService, cert: CertificateConfig, keyType: KeyType, reason: RevocationReason, log: Logger): Promise<string> {
  const state = await store.readState(cert.name, keyType);
  const version = state.current ? await store.loadVersion(cert.name, keyType, state.current) : undefined;
  if (!state.current || !version) throw new Error('no certificate has been issued for it yet');
  const head = `${cert.name} (${keyType})`;
  const r = await acme.revoke({ certPem: version.leafPem, certKeyPem: version.keyPem, reason });
  const now = systemClock.now();
  await store.writeState(cert.name, keyType, { ...state, revoked: { version: state.current, serial: version.meta.serial, reason, at: now.toISOString() } });
  log.warn({ serial: version.meta.serial, reason, alreadyRevoked: r.alreadyRevoked }, 'certificate revoked; the next pass replaces it');
  let out = `${head}: serial ${version.meta.serial} ${r.alreadyRevoked ? 'was already revoked' : `revoked (${reason})`}; the next renewal pass replaces it (mxcert renew --cert ${cert.name})\n`;
  if (reason === 'keyCompromise' && cert.dane?.enabled) {
    // The key is in the published TLSA RRset; the emergency rollover swaps
    // to the already-published next key at once (docs/architecture.md, DANE).
    const ok = await requestRollover(store, cert.name, keyType, true, now);
    out += ok
      ? `${head}: emergency DANE rollover requested: the next pass serves the next key without waiting for the hold\n`
      : `${head}: no DANE state yet, so no rollover to request\n`;
    if (ok) log.warn('EMERGENCY DANE rollover requested after a keyCompromise revocation');
  }
  return out;
}
