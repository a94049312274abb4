// TLSA publishing by RFC 2136 UPDATE, signed with TSIG, as compare-and-swap.
//
// Several writers share a TLSA RRset: each MX host's own mxcert edits only
// its owner names, but an operator may add records by hand, and two agents (or
// a retry of our own timed-out request) can race on one name. A plain
// "delete X, add Y" is safe for foreign records, yet a *retry* of a stale
// decision could undo someone else's newer change (re-adding a record they
// just retired, or deleting one they just re-published). So every update is
// conditional on the RRset being exactly what we read (RFC 2136 §2.4.2,
// "RRset exists (value dependent)"; §2.4.3 "RRset does not exist" when it was
// empty). The server checks prerequisites and applies the update atomically
// (§3.2, §3.4), so either our view was current and our change lands whole,
// or nothing happens, we get NXRRSET/YXRRSET, re-read and decide again.
import { systemClock, type Clock } from '../clock.js';
import type { DaneRfc2136PublisherConfig } from '../config/schema.js';
import { readSecret } from '../config/load.js';
import { findAuthoritativeServers, parseHostPort } from '../dns/authoritative.js';
import { describeResponse, formatServer, queryDns, sameName, soaSerial, stripDot } from '../dns/query.js';
import { DnsUpdateError, Rfc2136Updater, type Prerequisite, type TsigKey } from '../dns/rfc2136.js';
import type { DnsServer } from '../dns/types.js';
import { DnsError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { checkChange, retryDelayMs, type PublisherDeps, type TlsaChange, type TlsaPublisher } from './publish-common.js';
import { applyTlsaChange, formatTlsa, fromDnsPacket, hasTlsa, sameTlsaSet, shortTlsa, type TlsaRecord } from './tlsa.js';
import { serialOnceServed } from './visibility.js';

export interface Rfc2136PublisherOptions {
  /** The primary: receives UPDATEs, and is read for the current RRset. */
  server: DnsServer;
  zone: string;
  tsig: TsigKey;
  /** Explicit authoritative servers instead of the zone's NS set. */
  nameservers?: DnsServer[];
  logger?: Logger;
  clock?: Clock;
  /** Attempts before giving up when the RRset keeps changing under us. Default 8. */
  maxAttempts?: number;
  /** How long to wait for the primary to serve our change before returning without a serial. Default 10 s. */
  settleTimeoutMs?: number;
  /** Per query / per update. Default 10 s. */
  timeoutMs?: number;
  random?: () => number;
  nsupdatePath?: string;
  resolver?: (name: string) => Promise<string[]>;
}

export class Rfc2136TlsaPublisher implements TlsaPublisher {
  readonly name = 'rfc2136';
  private readonly updater: Rfc2136Updater;
  private readonly zone: string;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(private readonly opts: Rfc2136PublisherOptions) {
    this.zone = `${stripDot(opts.zone)}.`;
    this.log = (opts.logger ?? silentLogger).child({ publisher: 'rfc2136', zone: this.zone });
    this.clock = opts.clock ?? systemClock;
    this.updater = new Rfc2136Updater({
      server: opts.server,
      zone: opts.zone,
      tsig: opts.tsig,
      logger: this.log,
      timeoutMs: opts.timeoutMs ?? 10_000,
      ...(opts.nsupdatePath ? { nsupdatePath: opts.nsupdatePath } : {}),
    });
  }

  async servers(): Promise<DnsServer[]> {
    return findAuthoritativeServers(this.zone, {
      primary: this.opts.server,
      ...(this.opts.nameservers ? { explicit: this.opts.nameservers } : {}),
      ...(this.opts.resolver ? { resolver: this.opts.resolver } : {}),
    });
  }

  /**
   * The RRset as the primary serves it, over TCP (no truncation). With
   * inline signing this is the signed copy, which can trail the unsigned one
   * the prerequisites are checked against by a few ms; a stale read only
   * costs a failed prerequisite and a retry, never a wrong change.
   */
  async read(owner: string): Promise<TlsaRecord[]> {
    this.checkOwner(owner);
    const where = formatServer(this.opts.server);
    const resp = await queryDns(this.opts.server, owner, 'TLSA', { tcp: true, recursion: false, timeoutMs: this.opts.timeoutMs ?? 10_000 });
    if (!resp.authoritative || (resp.rcode !== 'NOERROR' && resp.rcode !== 'NXDOMAIN')) {
      throw new DnsError(`${where} did not answer authoritatively for TLSA ${stripDot(owner)}.: ${describeResponse(resp)}`);
    }
    // RFC 2136 §3.4.2.2 silently ignores an add at a name that holds a CNAME:
    // the update would "succeed" and never be visible. Say so instead.
    if (resp.answers.some((r) => r.type === 'CNAME' && sameName(r.name, owner))) {
      throw new DnsError(`${stripDot(owner)}. is a CNAME at ${where}; TLSA records cannot be published there`);
    }
    return resp.answers.filter((r) => r.type === 'TLSA' && sameName(r.name, owner)).map((r) => fromDnsPacket(r.data));
  }

  async change(owner: string, change: TlsaChange, ttl: number): Promise<{ serial?: number }> {
    checkChange(change, ttl);
    this.checkOwner(owner);
    const log = this.log.child({ owner });
    const maxAttempts = this.opts.maxAttempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(owner);
      const desired = applyTlsaChange(current, change);
      if (sameTlsaSet(desired, current)) {
        // Idempotent: nothing to send, so no serial bump and no re-signing.
        log.debug({ records: current.map(shortTlsa) }, 'TLSA RRset already as wanted');
        return withSerial(await this.primarySerial());
      }
      const deletes = current.filter((r) => !hasTlsa(desired, r));
      const adds = desired.filter((r) => !hasTlsa(current, r));
      // The exact RRset we decided on. TTLs are not compared (§2.4.2 sends 0).
      const prerequisites: Prerequisite[] =
        current.length === 0
          ? [{ kind: 'nxrrset', name: owner, type: 'TLSA' }]
          : current.map((r) => ({ kind: 'yxrrset', name: owner, type: 'TLSA', data: formatTlsa(r) }));
      try {
        await this.updater.update({
          prerequisites,
          // §2.5.4: delete one RR from an RRset; everything else stays.
          deletes: deletes.map((r) => ({ name: owner, type: 'TLSA', data: formatTlsa(r) })),
          adds: adds.map((r) => ({ name: owner, type: 'TLSA', ttl, data: formatTlsa(r) })),
        });
      } catch (err) {
        if (err instanceof DnsUpdateError && err.prerequisiteFailed && attempt < maxAttempts) {
          const pause = retryDelayMs(attempt, this.opts.random);
          log.info({ attempt, rcode: err.rcode, pauseMs: pause }, 'TLSA RRset changed since we read it; re-reading');
          await this.clock.sleep(pause);
          continue;
        }
        if (err instanceof DnsUpdateError && err.prerequisiteFailed) {
          throw new DnsError(`TLSA ${stripDot(owner)}.: gave up after ${attempt} attempts, the RRset kept changing under us (${err.rcode})`, { cause: err });
        }
        throw err;
      }
      log.info({ added: adds.map(shortTlsa), removed: deletes.map(shortTlsa), attempt }, 'TLSA RRset updated');
      const serial = await serialOnceServed(this.opts.server, owner, { present: adds, absent: deletes }, {
        timeoutMs: this.opts.settleTimeoutMs ?? 10_000,
        zone: this.zone,
        clock: this.clock,
      });
      if (serial === undefined) log.warn('primary accepted the update but does not serve it yet; no serial to wait for');
      return withSerial(serial);
    }
  }

  private async primarySerial(): Promise<number | undefined> {
    try {
      return soaSerial(await queryDns(this.opts.server, this.zone, 'SOA', { tcp: true, recursion: false, timeoutMs: this.opts.timeoutMs ?? 10_000 }));
    } catch {
      return undefined;
    }
  }

  private checkOwner(owner: string): void {
    const n = stripDot(owner).toLowerCase();
    const z = stripDot(this.zone).toLowerCase();
    if (n !== z && !n.endsWith(`.${z}`)) throw new DnsError(`${stripDot(owner)}. is not in zone ${this.zone}`);
  }
}

function withSerial(serial: number | undefined): { serial?: number } {
  return serial === undefined ? {} : { serial };
}

export async function createRfc2136Publisher(cfg: DaneRfc2136PublisherConfig, deps: PublisherDeps): Promise<Rfc2136TlsaPublisher> {
  const secret = await readSecret(cfg.tsig, deps.env);
  return new Rfc2136TlsaPublisher({
    server: { host: cfg.server, port: cfg.port },
    zone: cfg.zone,
    tsig: { name: cfg.tsig.name, algorithm: cfg.tsig.algorithm, secret },
    ...(cfg.nameservers ? { nameservers: cfg.nameservers.map((s) => parseHostPort(s)) } : {}),
    logger: deps.logger,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.resolver ? { resolver: deps.resolver } : {}),
  });
}
