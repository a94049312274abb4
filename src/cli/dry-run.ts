// The challenge self-test half of `renew --dry-run` (src/obtain/dry-run.ts):
// builds the solvers the renewal would use, runs every selected
// certificate's steps, prints one line per step. Exit 1 when any failed.
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { buildRenewDeps } from '../renew/deps.js';
import { systemClock } from '../clock.js';
import { StateStore } from '../store/state-store.js';
import { dryRunCertificate, type DryRunStep } from '../obtain/dry-run.js';
import { acmeServiceFor } from './account.js';

export async function dryRunChallenges(config: Config, logger: Logger, only: string[]): Promise<number> {
  const { deps, close } = await buildRenewDeps(config, logger, systemClock, { readOnly: true });
  let staging: Awaited<ReturnType<typeof acmeServiceFor>> | undefined;
  const steps: DryRunStep[] = [];
  try {
    if (config.acme.staging) {
      // Its own account (keyed by the staging directory's hash, like every
      // account): the real account and the certificates' state stay untouched.
      await new StateStore(config.stateDir).ensure();
      staging = await acmeServiceFor(config, logger, config.acme.staging);
    }
    const dry = {
      solverFor: deps.solverFor,
      logger,
      now: () => systemClock.now(),
      profile: config.acme.profile,
      ...(staging ? { staging: { directory: config.acme.staging!, issue: staging.issue.bind(staging) } } : {}),
    };
    // One certificate after the other: they may share a listener or a zone.
    for (const cert of config.certificates) {
      if (only.length && !only.includes(cert.name)) continue;
      for (const s of await dryRunCertificate(cert, dry)) {
        steps.push(s);
        print(s);
      }
    }
  } finally {
    staging?.close();
    await close();
  }
  return steps.some((s) => !s.ok) ? 1 : 0;
}

function print(s: DryRunStep): void {
  const message = `dry run: ${s.step}: ${s.ok ? 'ok' : 'FAILED'}: ${s.detail}`;
  process.stdout.write(process.stdout.isTTY ? `${s.cert}: ${message}\n` : JSON.stringify({ dryRun: true, ...s, message }) + '\n');
}
