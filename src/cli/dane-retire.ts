// `mxcert dane retire --cert NAME` and `mxcert delete --cert NAME`
// (docs/architecture.md, "Turning DANE off"): take mxcert's TLSA records
// down without ever serving a key a published RRset of its own lacks, and
// take a certificate out of service.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock } from '../store/lock.js';
import { systemClock } from '../clock.js';
import type { Logger } from '../log.js';
import { retireDane } from '../dane/rollover.js';
import type { RetireOutcome } from '../dane/retire.js';
import { outputPaths } from '../renew/orchestrator.js';

/** What one command may wait for DNS and caches before leaving the rest to a pass (or to running it again). */
const RETIRE_BUDGET_MS = 120_000;

export interface CliContext {
  config?: string;
  logger: Logger;
}

interface Target {
  config: Config;
  store: StateStore;
  name: string;
  /** The config entry, if the certificate is still configured. */
  cert?: CertificateConfig;
  /** Key types with state (and those the config names). */
  keyTypes: string[];
  stateDir: string;
}

async function target(ctx: CliContext, name: string): Promise<Target | string> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const cert = config.certificates.find((c) => c.name === name);
  const stateDir = path.join(config.stateDir, 'certs', name);
  const onDisk = await readdir(stateDir).catch(() => [] as string[]);
  const keyTypes = [...new Set([...(cert?.keys ?? []), ...onDisk])];
  if (!cert && onDisk.length === 0) return `no certificate named ${name} in ${config.source}, and no state for it in ${config.stateDir}`;
  return { config, store: new StateStore(config.stateDir), name, ...(cert ? { cert } : {}), keyTypes, stateDir };
}

function retire(t: Target, ctx: CliContext): Promise<RetireOutcome | undefined> {
  return retireDane({ store: t.store, name: t.name, keyTypes: t.keyTypes, ...(t.cert ? { cert: t.cert } : {}), logger: ctx.logger.child({ cert: t.name }), clock: systemClock, budgetMs: RETIRE_BUDGET_MS, start: true });
}

/** One line for how far a retirement got. */
function progress(name: string, out: RetireOutcome, configured: boolean): string {
  const later = configured ? 'the next pass (mxcert run, the renew timer) carries on, or run this again' : 'run this again to carry on';
  switch (out.phase) {
    case 'DONE':
      return `${name}: retired: no authoritative server serves mxcert's TLSA records and caches have expired; the DANE keys are freed, later renewals may use new keys`;
    case 'RELEASE':
      return `${name}: mxcert's TLSA records are gone from every authoritative server; the key stays until ${out.releaseAt} (resolvers may still hold them); ${later}`;
    default:
      return `${name}: not finished: ${out.waiting ?? out.phase}; ${later}`;
  }
}

export async function daneRetireCommand(ctx: CliContext, o: { cert: string; wait: number }): Promise<number> {
  const t = await target(ctx, o.cert);
  if (typeof t === 'string') return fail(t, 2);
  if (t.cert?.dane?.enabled) {
    return fail(`${t.name}: DANE is still enabled in ${t.config.source}: set dane.enabled: false (keep its publisher) or remove the dane: block first, or the next pass publishes the records again`, 2);
  }
  if (t.cert?.fleet && t.config.fleet) return fleetDaneRetire(t.config, t.cert, ctx);
  await t.store.ensure();
  const lock = await acquireLock(t.config.stateDir, { command: 'dane retire', waitMs: o.wait * 1000 });
  try {
    const out = await retire(t, ctx);
    if (!out) {
      process.stdout.write(`${t.name}: no DANE state; nothing to retire\n`);
      return 0;
    }
    for (const a of out.acted) process.stdout.write(`${t.name}: ${a}\n`);
    process.stdout.write(progress(t.name, out, Boolean(t.cert)) + '\n');
    return 0;
  } finally {
    await lock.release();
  }
}

/**
 * A fleet certificate: its journal is in etcd and only the leader changes
 * TLSA records, so this command leads for its duration (src/renew/fleet-retire.ts);
 * the fleet's leader passes carry the retirement on.
 */
async function fleetDaneRetire(config: Config, cert: CertificateConfig, ctx: CliContext): Promise<number> {
  const { fleetRetireCommand } = await import('../renew/fleet-retire.js');
  const out = await fleetRetireCommand(config, cert, ctx.logger.child({ cert: cert.name }), systemClock, RETIRE_BUDGET_MS);
  if (!out) {
    process.stdout.write(`${cert.name}: the fleet has no DANE state for it; nothing to retire\n`);
    return 0;
  }
  for (const a of out.acted) process.stdout.write(`${cert.name}: ${a}\n`);
  process.stdout.write(progress(cert.name, out, true).replace('the next pass', "the fleet leader's next pass") + '\n');
  return 0;
}

/**
 * Take a certificate out of service: retire its TLSA records (if any),
 * remove its state, and its output files only when asked. A certificate
 * still in the config keeps its DANE keys until caches have forgotten its
 * records: the next pass issues it again, and must not serve a new key
 * before then.
 */
export async function deleteCommand(ctx: CliContext, o: { cert: string; removeOutputs: boolean; wait: number }): Promise<number> {
  const t = await target(ctx, o.cert);
  if (typeof t === 'string') return fail(t, 2);
  if (o.removeOutputs && !t.cert) return fail(`${t.name} is not in ${t.config.source}, so mxcert does not know its output files: remove them by hand, or put it back to use --remove-outputs`, 2);
  await t.store.ensure();
  const lock = await acquireLock(t.config.stateDir, { command: 'delete', waitMs: o.wait * 1000 });
  try {
    const out = await retire(t, ctx);
    for (const a of out?.acted ?? []) process.stdout.write(`${t.name}: ${a}\n`);
    if (out && out.phase !== 'DONE' && out.phase !== 'RELEASE') {
      process.stdout.write(`${t.name}: not deleted: ${out.waiting ?? out.phase}; its state is kept, run mxcert delete --cert ${t.name} again\n`);
      return 1;
    }
    const keepDane = out?.phase === 'RELEASE' && Boolean(t.cert);
    await removeState(t, keepDane);
    if (o.removeOutputs && t.cert) await removeOutputs(t.cert);
    process.stdout.write(`${t.name}: deleted its state${keepDane ? ' (but its DANE keys: see below)' : ''}${o.removeOutputs ? ' and its output files' : '; its output files are left in place'}\n`);
    if (out?.phase === 'RELEASE') {
      process.stdout.write(
        keepDane
          ? `${t.name}: resolvers may still hold mxcert's TLSA records until ${out.releaseAt}: the DANE keys stay until then, so a renewal keeps serving the current key\n`
          : `${t.name}: resolvers may still hold mxcert's TLSA records until ${out.releaseAt}: do not serve another key at those names before then\n`,
      );
    }
    if (t.cert) process.stderr.write(`mxcert: warning: ${t.name} is still in ${t.config.source}: the next pass (mxcert run, the renew timer) issues it again; remove it from the config to keep it out of service\n`);
    return 0;
  } finally {
    await lock.release();
  }
}

/** stateDir/certs/NAME, or everything in it but each key type's dane/ directory. */
async function removeState(t: Target, keepDane: boolean): Promise<void> {
  if (!keepDane) return rm(t.stateDir, { recursive: true, force: true });
  for (const keyType of await readdir(t.stateDir).catch(() => [] as string[])) {
    const dir = path.join(t.stateDir, keyType);
    if (!(await stat(dir)).isDirectory()) {
      await rm(dir, { force: true });
      continue;
    }
    for (const entry of await readdir(dir)) if (entry !== 'dane') await rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

async function removeOutputs(cert: CertificateConfig): Promise<void> {
  for (const keyType of cert.keys) {
    for (const file of Object.values(outputPaths(cert, keyType))) await rm(file, { force: true });
  }
}

function fail(msg: string, code: number): number {
  process.stderr.write(`mxcert: ${msg}\n`);
  return code;
}
