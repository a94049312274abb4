import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { buildRenewDeps } from '../renew/deps.js';
import { warnAboutAgingCertificates } from '../notify/expiry-warning.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock } from '../store/lock.js';
import { systemClock } from '../clock.js';
import { renewAll, runPassFailureHooks, type UnitOutcome } from '../renew/orchestrator.js';
import { createLogger, defaultFormat, HeldLog, stderrSink, type Logger, type OutputFormat } from '../log.js';
import { displayTime, displayTimesIn } from '../util/display-time.js';
import { announceWait } from '../util/announce-wait.js';
import { lockHolder } from '../store/lock-holder.js';
import { notDueText } from '../schedule/plan.js';
import type { CommandContext } from './context.js';
import { oneLine, withoutStep } from './text.js';

export interface RenewCliOptions {
  force: boolean;
  cert: string[];
  dryRun: boolean;
  wait: number;
  quiet?: boolean;
}

export async function renewCommand(ctx: CommandContext, o: RenewCliOptions): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const unknown = o.cert.filter((n) => !config.certificates.some((c) => c.name === n));
  if (unknown.length) {
    process.stderr.write(`mxcert: no certificate named ${unknown.join(', ')} in ${config.source}\n`);
    return 2;
  }
  // --quiet: the log lines are held back and printed only if the pass turns
  // out worth a cron mail (see worthReporting).
  const held = o.quiet ? new HeldLog() : undefined;
  const logger = held ? createLogger({ level: ctx.logLevel, format: ctx.format, sink: held }) : ctx.logger;
  const release = () => held?.release(stderrSink(ctx.format ?? defaultFormat(process.stderr.isTTY)));
  let results: UnitOutcome[];
  let sniFailed: boolean;
  try {
    ({ results, sniFailed } = await renewWithLock(config, logger, o));
  } catch (err) {
    release();
    throw err;
  }
  if (!held || worthReporting(results, held.worst)) release();
  const code = Math.max(report(results, ctx.format ?? defaultFormat(process.stdout.isTTY), Boolean(o.quiet)), sniFailed ? 1 : 0);
  if (!o.dryRun) return code;
  // The dry run also exercises each challenge path and deploys nothing (src/cli/dry-run.ts).
  const { dryRunChallenges } = await import('./dry-run.js');
  return Math.max(code, await dryRunChallenges(config, logger, o.cert));
}

async function renewWithLock(config: Config, logger: Logger, o: RenewCliOptions): Promise<PassResult> {
  const store = new StateStore(config.stateDir);
  // A dry run reads state but writes nothing, not even the lock.
  if (o.dryRun) return runPass(config, store, logger, o);
  await store.ensure();
  const waitMs = o.wait * 1000;
  const stopAnnouncing = announceWait(logger, () => `the state lock (${lockHolder(config.stateDir)})`, Date.now() + waitMs);
  const lock = await acquireLock(config.stateDir, { command: 'renew', waitMs }).finally(stopAnnouncing);
  try {
    return await runPass(config, store, logger, o);
  } catch (err) {
    // On a timer (mxcert-renew.timer) nobody reads the exit status: the
    // failure hooks are how a pass that failed as a whole gets noticed.
    await runPassFailureHooks(config, err, logger, o.cert);
    throw err;
  } finally {
    await lock.release();
  }
}

/** What a pass did: each unit's outcome, and whether the SNI tables could not be brought up to date. */
interface PassResult {
  results: UnitOutcome[];
  sniFailed: boolean;
}

async function runPass(config: Config, store: StateStore, logger: Logger, o: { force: boolean; cert: string[]; dryRun: boolean }): Promise<PassResult> {
  const { deps, close } = await buildRenewDeps(config, logger, systemClock, { readOnly: o.dryRun });
  try {
    // A profile the CA does not offer is a config error (exit 2), not a
    // per-certificate failure; checked once, before any order.
    if (!o.dryRun) await deps.acme.checkProfile?.(config.acme.profile);
    const results = await renewAll({ ...deps, store }, { force: o.force, dryRun: o.dryRun, only: o.cert });
    // The SNI tables, if the config changed since they were written (src/deploy/sni.ts); a failure fails the command.
    const sniFailed = deps.sni ? !(await deps.sni.afterPass(logger)) : false;
    // Hosts on the timer instead of the daemon get the expiry warning too.
    if (!o.dryRun) await warnAboutAgingCertificates(config, store, systemClock.now(), logger);
    return { results, sniFailed };
  } finally {
    await close();
  }
}

/** Something a cron user wants mailed: a failure, a change (renewed, DANE records published or swapped), or a warning. */
export function changed(r: UnitOutcome): boolean {
  return r.status === 'failed' || r.status === 'renewed' || Boolean(r.dane?.acted.length);
}

function worthReporting(results: UnitOutcome[], worstLevel: number): boolean {
  return results.some(changed) || worstLevel >= 40;
}

/** One line per unit on stdout: JSON, or text for a person; with `quiet`, only the units that failed or changed. */
function report(results: UnitOutcome[], format: OutputFormat, quiet: boolean): number {
  for (const r of results) {
    if (quiet && !changed(r)) continue;
    if (format === 'json') process.stdout.write(JSON.stringify({ ...r, plan: { ...r.plan, at: r.plan.at.toISOString() } }) + '\n');
    else process.stdout.write(displayTimesIn(resultText(r)));
  }
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

/** The text result of one unit: what happened, once, with times shown as displayTime. */
export function resultText(r: UnitOutcome): string {
  const head = `${r.cert} (${r.keyType})`;
  let out = '';
  if (r.dane) {
    for (const a of r.dane.acted) out += `${head}: DANE: ${a}\n`;
    if (r.dane.notice) out += `${head}: DANE: ${r.dane.notice}\n`;
    if (r.dane.waiting) out += `${head}: DANE ${r.dane.phase}: waiting: ${r.dane.waiting}\n`;
  }
  // A fleet certificate's dry run: who leads, who orders, what this host would deploy.
  for (const line of r.fleet?.lines ?? []) out += `${head}: fleet: ${line}\n`;
  switch (r.status) {
    case 'not-due':
      return `${out}${head}: ${notDueText(r.plan)}\n`;
    case 'dane-progress':
      return `${out}${head}: DANE moved on (now ${r.dane?.phase ?? '?'}); no certificate due; ${notDueText(r.plan)}\n`;
    case 'planned':
      if (r.fleet && !r.fleet.wouldOrder) return `${out}${head}: the fleet's lineage is due (${r.plan.reason}); this member would not order it\n`;
      return `${out}${head}: would renew now (${r.plan.reason})\n`;
    case 'renewed':
      return `${out}${head}: renewed, serial ${r.serial}, valid until ${displayTime(r.notAfter)}\n`;
    case 'failed':
      return `${out}${head}: FAILED at ${r.step}: ${oneLine(withoutStep(r.error, r.step))}\n`;
  }
}
