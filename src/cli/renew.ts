import { readFile } from 'node:fs/promises';
import { loadConfig, readSecret, resolveConfigPath } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { AcmeService } from '../acme/client.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock } from '../store/lock.js';
import { systemClock } from '../clock.js';
import { renewAll, type UnitOutcome } from '../renew/orchestrator.js';
import type { ChallengeSolver } from '../obtain/solver.js';
import { createHttp01Solver } from '../obtain/http01.js';
import { createDns01Solver } from '../obtain/dns01.js';
import type { Logger } from '../log.js';
import type { CommandContext } from './main.js';

export async function renewCommand(
  ctx: CommandContext,
  o: { force: boolean; cert: string[]; dryRun: boolean; wait: string },
): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const unknown = o.cert.filter((n) => !config.certificates.some((c) => c.name === n));
  if (unknown.length) {
    process.stderr.write(`mxcert: no certificate named ${unknown.join(', ')} in ${config.source}\n`);
    return 2;
  }
  const waitSeconds = Number(o.wait);
  if (!Number.isFinite(waitSeconds) || waitSeconds < 0) {
    process.stderr.write(`mxcert: --wait takes a number of seconds, got ${JSON.stringify(o.wait)}\n`);
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
  const lock = await acquireLock(config.stateDir, { command: 'renew', waitMs: waitSeconds * 1000 });
  try {
    return report(await runPass(config, store, logger, o));
  } finally {
    await lock.release();
  }
}

async function runPass(config: Config, store: StateStore, logger: Logger, o: { force: boolean; cert: string[]; dryRun: boolean }) {
  const eab = config.acme.eab
    ? {
        kid: config.acme.eab.kid,
        hmacKey:
          config.acme.eab.hmacKey ??
          (await readSecret({ secretFile: config.acme.eab.hmacKeyFile, secretEnv: config.acme.eab.hmacKeyEnv })),
      }
    : undefined;
  const acme = new AcmeService({
    directoryUrl: config.acme.directory,
    email: config.acme.email,
    eab,
    caBundlePem: config.acme.caBundle ? await readFile(config.acme.caBundle, 'utf8') : undefined,
    termsOfServiceAgreed: config.acme.termsOfServiceAgreed,
    accounts: store.accountStore(config.acme.directory),
    logger,
  });
  const solvers = await buildSolvers(config, logger);
  try {
    return await renewAll(
      { config, store, acme, solverFor: (c) => solvers.get(solverKey(c))!, clock: systemClock, logger },
      { force: o.force, dryRun: o.dryRun, only: o.cert },
    );
  } finally {
    await Promise.all([...solvers.values()].map((s) => s.close()));
  }
}

function solverKey(c: CertificateConfig): string {
  return JSON.stringify(c.challenge);
}

/** One solver per distinct challenge config, so certificates sharing an http-01 listener share it. */
async function buildSolvers(config: Config, logger: Logger): Promise<Map<string, ChallengeSolver>> {
  const out = new Map<string, ChallengeSolver>();
  for (const c of config.certificates) {
    const key = solverKey(c);
    if (out.has(key)) continue;
    if (c.challenge.type === 'http-01') {
      out.set(key, createHttp01Solver(c.challenge.http, logger));
    } else {
      const tsigSecret = await readSecret(c.challenge.dns.tsig);
      out.set(key, createDns01Solver(c.challenge.dns, { tsigSecret, logger }));
    }
  }
  return out;
}

function report(results: UnitOutcome[]): number {
  const tty = Boolean(process.stdout.isTTY);
  for (const r of results) {
    if (!tty) {
      process.stdout.write(JSON.stringify({ ...r, plan: { ...r.plan, at: r.plan.at.toISOString() } }) + '\n');
      continue;
    }
    const head = `${r.cert} (${r.keyType})`;
    switch (r.status) {
      case 'not-due':
        process.stdout.write(`${head}: not due; renews at ${r.plan.at.toISOString()} (${r.plan.reason})\n`);
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
