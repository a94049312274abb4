// dns-01 (RFC 8555 §8.4): publish base64url(SHA-256(keyAuthorization)) as a
// TXT record at _acme-challenge.<identifier> through a TSIG-signed RFC 2136
// update, and return only once every authoritative server serves it — the CA
// may ask any of them, and BIND's inline signing and zone transfers lag the
// update's acknowledgement.
import { systemClock, type Clock } from '../clock.js';
import type { Rfc2136Config } from '../config/schema.js';
import { ChallengeError } from '../errors.js';
import type { Logger } from '../log.js';
import { findAuthoritativeServers, parseHostPort, resolveServer, systemResolve, waitUntilServedEverywhere } from '../dns/authoritative.js';
import { formatServer, queryDns, stripDot, txtValues } from '../dns/query.js';
import { Rfc2136Updater } from '../dns/rfc2136.js';
import type { DnsServer } from '../dns/types.js';
import type { ChallengeInput, ChallengeSolver, CleanupJournal } from './solver.js';

export interface Dns01Deps {
  /** Base64 TSIG secret, already read from secretFile/secretEnv by the config loader. */
  tsigSecret: string;
  logger: Logger;
  clock?: Clock;
  /** Host name → addresses; default the system resolver. For tests. */
  resolver?: (name: string) => Promise<string[]>;
  /** Told of each TXT record the server accepted and of each one removed (pending cleanups). */
  journal?: CleanupJournal;
}

/** One query per server during a cleanup: an absent record is confirmed or not, no waiting. */
const ABSENCE_QUERY_TIMEOUT_MS = 3000;

export function createDns01Solver(cfg: Rfc2136Config, deps: Dns01Deps): ChallengeSolver {
  const clock = deps.clock ?? systemClock;
  const resolver = deps.resolver ?? systemResolve;
  const zone = stripDot(cfg.zone).toLowerCase();
  const log = deps.logger.child({ challenge: 'dns-01', zone });

  // Resolved once per solver (one run): the server to update and the set to
  // check. A failure is not cached, so the next present() tries again.
  let setup: Promise<{ updater: Rfc2136Updater; servers: DnsServer[] }> | undefined;
  const getSetup = (): Promise<{ updater: Rfc2136Updater; servers: DnsServer[] }> => {
    setup ??= (async () => {
      const [primary] = await resolveServer({ host: cfg.server, port: cfg.port }, resolver);
      const updater = new Rfc2136Updater({
        server: primary!,
        zone,
        tsig: { name: cfg.tsig.name, algorithm: cfg.tsig.algorithm, secret: deps.tsigSecret },
        logger: log,
      });
      const explicit = cfg.nameservers?.map((s) => parseHostPort(s));
      const servers = await findAuthoritativeServers(zone, { primary: primary!, explicit, resolver });
      log.debug({ primary: formatServer(primary!), nameservers: servers.map(formatServer) }, 'dns-01 servers');
      return { updater, servers };
    })();
    setup.catch(() => {
      setup = undefined;
    });
    return setup;
  };

  const ownerOf = (ch: ChallengeInput): string => {
    const id = stripDot(ch.identifier).toLowerCase().replace(/^\*\./, '');
    const owner = `_acme-challenge.${id}`;
    if (owner !== zone && !owner.endsWith(`.${zone}`)) {
      // A CNAME-delegated _acme-challenge (into another zone) is not followed.
      throw new ChallengeError(`dns-01 for ${id}: ${owner}. is not in the configured zone ${zone}.`);
    }
    return `${owner}.`;
  };

  /** Every authoritative server answers, authoritatively, without the value. */
  const confirmedAbsent = async (owner: string, value: string): Promise<boolean> => {
    try {
      const { servers } = await getSetup();
      if (servers.length === 0) return false;
      const answers = await Promise.all(
        servers.map((s) => queryDns(s, owner, 'TXT', { tcp: true, recursion: false, timeoutMs: ABSENCE_QUERY_TIMEOUT_MS })),
      );
      return answers.every((r) => r.authoritative && (r.rcode === 'NOERROR' || r.rcode === 'NXDOMAIN') && !txtValues(r, owner).includes(value));
    } catch {
      return false;
    }
  };

  return {
    type: 'dns-01',

    async present(ch) {
      const owner = ownerOf(ch);
      const { updater, servers } = await getSetup();
      // Add only: another order (or the wildcard and base name of this one)
      // may have its own value at the same owner. Adding a duplicate RR is a
      // no-op (RFC 2136 §3.4.2.2), so a retried present() is harmless.
      await updater.update({ adds: [{ name: owner, type: 'TXT', ttl: cfg.ttl, data: ch.value }] });
      // Recorded as soon as the server accepted it, before the wait: a run
      // that fails or dies from here on leaves a record to remove later.
      await deps.journal?.added(ch, owner);
      log.info({ owner, nameservers: servers.length }, 'dns-01 TXT added; waiting until every authoritative server serves it');
      await waitUntilServedEverywhere(servers, owner, 'TXT', (resp) => txtValues(resp, owner).includes(ch.value), {
        timeoutMs: cfg.propagationTimeout,
        clock,
        logger: log,
      });
      log.info({ owner }, 'dns-01 TXT served everywhere');
    },

    async cleanup(ch) {
      let owner: string;
      try {
        owner = ownerOf(ch);
      } catch {
        // present() refuses such a name before any update: nothing was added.
        await deps.journal?.removed(ch);
        return;
      }
      try {
        const { updater } = await getSetup();
        // Deleting an RR that is not there is a successful no-op (RFC 2136 §3.4.2.4),
        // which makes cleanup idempotent and safe after a failed present().
        await updater.update({ deletes: [{ name: owner, type: 'TXT', data: ch.value }] });
        log.debug({ owner }, 'dns-01 TXT removed');
      } catch (err) {
        // Gone all the same (removed by hand, or never added): nothing is left to do.
        if (!(await confirmedAbsent(owner, ch.value))) throw err;
        log.info({ owner, err: (err as Error).message }, 'dns-01 TXT could not be deleted, but no authoritative server serves it');
      }
      await deps.journal?.removed(ch);
    },

    async close() {
      setup = undefined;
    },
  };
}
