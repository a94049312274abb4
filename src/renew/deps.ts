// Wires the effects (ACME account, challenge solvers, store) for one pass.
// Shared by `mxcert renew` and the daemon so both behave the same.
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { readSecret } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { AcmeService } from '../acme/client.js';
import { StateStore } from '../store/state-store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { ChallengeSolver } from '../obtain/solver.js';
import { createHttp01Solver } from '../obtain/http01.js';
import { createDns01Solver } from '../obtain/dns01.js';
import type { RenewDeps } from './orchestrator.js';

function solverKey(c: CertificateConfig): string {
  return JSON.stringify(c.challenge);
}

export async function buildRenewDeps(config: Config, logger: Logger, clock: Clock): Promise<{ deps: RenewDeps; close(): Promise<void> }> {
  const store = new StateStore(config.stateDir);
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
  // One solver per distinct challenge config: certificates sharing an http-01
  // listener share it (two listeners on one port would collide).
  const solvers = new Map<string, ChallengeSolver>();
  for (const c of config.certificates) {
    const key = solverKey(c);
    if (solvers.has(key)) continue;
    if (c.challenge.type === 'http-01') {
      solvers.set(key, createHttp01Solver(c.challenge.http, logger));
    } else {
      const tsigSecret = await readSecret(c.challenge.dns.tsig);
      solvers.set(key, createDns01Solver(c.challenge.dns, { tsigSecret, logger, clock }));
    }
  }
  // DESIGN §3: the chain must verify up to a trust anchor, or a
  // self-consistent chain from any made-up CA would pass.
  const trustedRootsPem = config.acme.trustAnchors ? [await readFile(config.acme.trustAnchors, 'utf8')] : [...tls.rootCertificates];
  return {
    deps: { config, store, acme, solverFor: (c) => solvers.get(solverKey(c))!, clock, logger, trustedRootsPem },
    async close() {
      await Promise.all([...solvers.values()].map((s) => s.close()));
    },
  };
}
