// Wires the effects (ACME account, challenge solvers, store) for one pass.
// Shared by `mxcert renew` and the daemon so both behave the same.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../deploy/atomic-write.js';
import tls from 'node:tls';
import { readSecret } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { AcmeService } from '../acme/client.js';
import { StateStore } from '../store/state-store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { ChallengeInput, ChallengeSolver } from '../obtain/solver.js';
import { createHttp01Solver } from '../obtain/http01.js';
import { createDns01Solver } from '../obtain/dns01.js';
import type { RenewDeps } from './orchestrator.js';

function solverKey(c: CertificateConfig): string {
  return JSON.stringify(c.challenge);
}

/** What a cleanup needs: where the record was put (not how visibility is checked). */
function cleanupKey(c: CertificateConfig): string {
  if (c.challenge.type === 'http-01') return JSON.stringify({ type: 'http-01', ...c.challenge.http });
  const d = c.challenge.dns;
  return JSON.stringify({ type: 'dns-01', server: d.server, port: d.port, zone: d.zone.toLowerCase(), tsig: d.tsig.name });
}

type PendingCleanups = Record<string, ChallengeInput[]>;

/**
 * Challenge responses whose removal failed (the DNS server was down, say)
 * are remembered in stateDir and removed on a later pass, so no stale
 * _acme-challenge record stays in the zone for good.
 */
class CleanupLedger {
  private readonly file: string;
  constructor(stateDir: string, private readonly log: Logger) {
    this.file = path.join(stateDir, 'pending-cleanups.json');
  }
  async read(): Promise<PendingCleanups> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as PendingCleanups;
    } catch {
      return {};
    }
  }
  private async write(p: PendingCleanups): Promise<void> {
    const empty = Object.values(p).every((l) => l.length === 0);
    if (empty) await rm(this.file, { force: true });
    else await writeFileAtomic(this.file, JSON.stringify(p, null, 2) + '\n', { mode: 0o600 });
  }
  async remember(key: string, ch: ChallengeInput): Promise<void> {
    const p = await this.read();
    (p[key] ??= []).push(ch);
    await this.write(p);
  }
  /** Retry every remembered cleanup with the solver for its challenge config. */
  async retry(solvers: Map<string, ChallengeSolver>): Promise<void> {
    const p = await this.read();
    if (Object.keys(p).length === 0) return;
    for (const [key, list] of Object.entries(p)) {
      const solver = solvers.get(key);
      if (!solver) continue; // that challenge config is gone; keep the record for the operator
      const left: ChallengeInput[] = [];
      for (const ch of list) {
        try {
          await solver.cleanup(ch);
          this.log.info({ identifier: ch.identifier }, 'removed a challenge response left by an earlier failed cleanup');
        } catch (err) {
          left.push(ch);
          this.log.warn({ identifier: ch.identifier, err: (err as Error).message }, 'challenge response from an earlier run still cannot be removed');
        }
      }
      p[key] = left;
    }
    await this.write(p);
  }
}

export async function buildRenewDeps(
  config: Config,
  logger: Logger,
  clock: Clock,
  opts: { readOnly?: boolean } = {},
): Promise<{ deps: RenewDeps; close(): Promise<void> }> {
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
    preferredChain: config.acme.preferredChain,
  });
  // One solver per distinct challenge config: certificates sharing an http-01
  // listener share it (two listeners on one port would collide).
  const raw = new Map<string, ChallengeSolver>();
  for (const c of config.certificates) {
    const key = solverKey(c);
    if (raw.has(key)) continue;
    if (c.challenge.type === 'http-01') {
      raw.set(key, createHttp01Solver(c.challenge.http, logger));
    } else {
      const tsigSecret = await readSecret(c.challenge.dns.tsig);
      raw.set(key, createDns01Solver(c.challenge.dns, { tsigSecret, logger, clock }));
    }
  }
  const ledger = new CleanupLedger(config.stateDir, logger);
  const byCleanupKey = new Map<string, ChallengeSolver>();
  const cleanupKeyOf = new Map<string, string>();
  for (const c of config.certificates) {
    byCleanupKey.set(cleanupKey(c), raw.get(solverKey(c))!);
    cleanupKeyOf.set(solverKey(c), cleanupKey(c));
  }
  if (!opts.readOnly) await ledger.retry(byCleanupKey);
  const solvers = new Map<string, ChallengeSolver>();
  for (const [skey, inner] of raw) {
    const key = cleanupKeyOf.get(skey)!;
    solvers.set(skey, {
      type: inner.type,
      present: (ch) => inner.present(ch),
      cleanup: async (ch) => {
        try {
          await inner.cleanup(ch);
        } catch (err) {
          if (!opts.readOnly) await ledger.remember(key, ch);
          throw err;
        }
      },
      close: () => inner.close(),
    });
  }
  // DESIGN §3: the chain must verify up to a trust anchor, or a
  // self-consistent chain from any made-up CA would pass.
  const trustedRootsPem = config.acme.trustAnchors ? [await readFile(config.acme.trustAnchors, 'utf8')] : [...tls.rootCertificates];
  return {
    deps: { config, store, acme, solverFor: (c) => solvers.get(solverKey(c))!, clock, logger, trustedRootsPem },
    async close() {
      await Promise.all([...solvers.values()].map((s) => s.close()));
      acme.close();
    },
  };
}
