import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { buildRenewDeps } from '../renew/deps.js';
import { warnAboutAgingCertificates } from '../notify/expiry-warning.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock } from '../store/lock.js';
import { systemClock } from '../clock.js';
import { renewAll, runPassFailureHooks, type UnitOutcome } from '../renew/orchestrator.js';
import type { Logger } from '../log.js';
import type { CommandContext } from './main.js';

export async function renewCommand(
  ctx: CommandContext,
  o: { force: boolean; cert: string[]; dryRun: boolean; wait: number },
): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const unknown = o.cert.filter((n) => !config.certificates.some((c) => c.name === n));
  if (unknown.length) {
    process.stderr.write(`mxcert: no certificate named ${unknown.join(', ')} in ${config.source}\n`);
    return 2;
  }
  const logger = ctx.logger;
  const store = new StateStore(config.stateDir);
  if (o.dryRun) {
    // A dry run reads state but writes nothing, not even the lock.
    const results = await runPass(config, store, logger, o);
    return report(results);
  }
  await store.ensure();
  const lock = await acquireLock(config.stateDir, { command: 'renew', waitMs: o.wait * 1000 });
  try {
    return report(await runPass(config, store, logger, o));
  } catch (err) {
    // On a timer (mxcert-renew.timer) nobody reads the exit status: the
    // failure hooks are how a pass that failed as a whole gets noticed.
    await runPassFailureHooks(config, err, logger, o.cert);
    throw err;
  } finally {
    await lock.release();
  }
}

async function runPass(config: Config, store: StateStore, logger: Logger, o: { force: boolean; cert: string[]; dryRun: boolean }) {
  const { deps, close } = await buildRenewDeps(config, logger, systemClock, { readOnly: o.dryRun });
  try {
    // A profile the CA does not offer is a config error (exit 2), not a
    // per-certificate failure; checked once, before any order.
    if (!o.dryRun) await deps.acme.checkProfile?.(config.acme.profile);
    const results = await renewAll({ ...deps, store }, { force: o.force, dryRun: o.dryRun, only: o.cert });
    // Hosts on the timer instead of the daemon get the expiry warning too.
    if (!o.dryRun) await warnAboutAgingCertificates(config, store, systemClock.now(), logger);
    return results;
  } finally {
    await close();
  }
}

function report(results: UnitOutcome[]): number {
  const tty = Boolean(process.stdout.isTTY);
  for (const r of results) {
    if (!tty) {
      process.stdout.write(JSON.stringify({ ...r, plan: { ...r.plan, at: r.plan.at.toISOString() } }) + '\n');
      continue;
    }
    const head = `${r.cert} (${r.keyType})`;
    if (r.dane) {
      for (const a of r.dane.acted) process.stdout.write(`${head}: DANE: ${a}\n`);
      if (r.dane.notice) process.stdout.write(`${head}: DANE: ${r.dane.notice}\n`);
      if (r.dane.waiting) process.stdout.write(`${head}: DANE ${r.dane.phase}: waiting: ${r.dane.waiting}\n`);
    }
    switch (r.status) {
      case 'not-due':
        process.stdout.write(`${head}: not due; renews at ${r.plan.at.toISOString()} (${r.plan.reason})\n`);
        break;
      case 'dane-progress':
        process.stdout.write(`${head}: DANE moved on (now ${r.dane?.phase ?? '?'}); no certificate due, renews at ${r.plan.at.toISOString()} (${r.plan.reason})\n`);
        break;
      case 'planned':
        process.stdout.write(`${head}: would renew now (${r.plan.reason})\n`);
        break;
      case 'renewed':
        process.stdout.write(`${head}: renewed, serial ${r.serial}, valid until ${r.notAfter}\n`);
        break;
      case 'failed':
        process.stdout.write(`${head}: FAILED at ${r.step}: ${r.error}\n`);
        break;
    }
  }
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}
