// Wires the effects (ACME account, challenge solvers, store) for one pass.
// Shared by `mxcert renew` and the daemon so both behave the same.
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { readSecret } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { AcmeService } from '../acme/client.js';
import { StateStore } from '../store/state-store.js';
import { CleanupLedger } from '../store/cleanup-ledger.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { ChallengeInput, ChallengeSolver, CleanupJournal } from '../obtain/solver.js';
import { createHttp01Solver } from '../obtain/http01.js';
import { createDns01Solver } from '../obtain/dns01.js';
import type { RenewDeps } from './orchestrator.js';
import { SniTables } from '../deploy/sni.js';

function solverKey(c: CertificateConfig): string {
  return JSON.stringify(c.challenge);
}

/** What a cleanup needs: where the record was put (not how visibility is checked). */
function cleanupKey(c: CertificateConfig): string {
  if (c.challenge.type === 'http-01') return JSON.stringify({ type: 'http-01', ...c.challenge.http });
  const d = c.challenge.dns;
  return JSON.stringify({ type: 'dns-01', server: d.server, port: d.port, zone: d.zone.toLowerCase(), tsig: d.tsig.name });
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
  // listener share it (two listeners on one port would collide). Responses
  // put out are entered in the cleanup ledger until removed (a dry run
  // writes nothing, not even there).
  const ledger = new CleanupLedger(config.stateDir, () => clock.now());
  const solvers = new Map<string, ChallengeSolver>();
  const byCleanupKey = new Map<string, ChallengeSolver>();
  for (const c of config.certificates) {
    const key = solverKey(c);
    if (solvers.has(key)) continue;
    const journal = opts.readOnly ? undefined : ledger.journal(cleanupKey(c), c.challenge.type);
    let solver: ChallengeSolver;
    if (c.challenge.type === 'http-01') {
      const inner = createHttp01Solver(c.challenge.http, logger);
      // Only a webroot leaves something behind (a file); the listener's tokens die with the process.
      solver = c.challenge.http.webroot && journal ? journalled(inner, journal, (ch) => `${ch.identifier}/.well-known/acme-challenge/${ch.token}`) : inner;
    } else {
      const tsigSecret = await readSecret(c.challenge.dns.tsig);
      solver = createDns01Solver(c.challenge.dns, { tsigSecret, logger, clock, journal });
    }
    solvers.set(key, solver);
    byCleanupKey.set(cleanupKey(c), solver);
  }
  if (!opts.readOnly) await ledger.retry((key) => byCleanupKey.get(key)?.cleanup, logger);
  // docs/architecture.md, "Files on disk": the chain must verify up to a trust anchor, or a
  // self-consistent chain from any made-up CA would pass.
  const trustedRootsPem = config.acme.trustAnchors ? [await readFile(config.acme.trustAnchors, 'utf8')] : [...tls.rootCertificates];
  // Fleet certificates: connect and campaign once for the pass. Loaded only
  // then, so hosts without a fleet never load the etcd client.
  // A dry run (readOnly) reads etcd and never writes to it: no campaign, no report.
  const fleetCerts = config.fleet !== undefined && config.certificates.some((c) => c.fleet);
  const fleet = !fleetCerts ? undefined : opts.readOnly ? (await import('./fleet-dry-run.js')).dryRunFleetPass() : await (await import('./fleet.js')).openFleetPass(config, logger);
  return {
    deps: {
      config,
      store,
      acme,
      solverFor: (c) => solvers.get(solverKey(c))!,
      clock,
      logger,
      trustedRootsPem,
      ...(config.sni && !opts.readOnly ? { sni: new SniTables(config.sni, config.certificates, logger) } : {}),
      ...(fleet ? { fleet } : {}),
    },
    async close() {
      await fleet?.close();
      await Promise.all([...solvers.values()].map((s) => s.close()));
      acme.close();
    },
  };
}

/** An http-01 webroot solver whose files are entered in the ledger once written, and leave once removed. */
function journalled(inner: ChallengeSolver, journal: CleanupJournal, owner: (ch: ChallengeInput) => string): ChallengeSolver {
  return {
    type: inner.type,
    async present(ch) {
      await inner.present(ch);
      await journal.added(ch, owner(ch));
    },
    async cleanup(ch) {
      await inner.cleanup(ch);
      await journal.removed(ch);
    },
    close: () => inner.close(),
  };
}
