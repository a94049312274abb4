// TLSA publishing through an operator's script, for DNS setups mxcert does
// not speak natively (a provider's API, a zone file in git, a hidden primary
// behind a bastion). The hook gets the records in its environment
// (docs/architecture.md, "The pipeline"):
//
//   MXCERT_EVENT        tlsa-publish (records to add) or tlsa-retire (records to remove)
//   MXCERT_TLSA         those records as zone-file lines, one per line
//   MXCERT_TLSA_OWNER   the owner name, e.g. _25._tcp.mx1.example.com.
//   MXCERT_TLSA_ADD     records to add, "3 1 1 <hex>" one per line (empty for tlsa-retire)
//   MXCERT_TLSA_REMOVE  records to remove, same form (empty for tlsa-publish)
//   MXCERT_TLSA_TTL     TTL for added records, seconds
//
// A change that both adds and removes (the RETIRE step: old key out, new
// next key in) runs the hook twice, tlsa-publish first: a hook written only
// against MXCERT_EVENT + MXCERT_TLSA then still does the whole job, and the
// state between the two runs is a superset of both ends, which is the safe
// direction (RFC 7671 §8.1: publish before you retire). Hooks must be
// idempotent: after a crash the same change may be requested again.
import { systemClock, type Clock } from '../clock.js';
import type { DaneHookPublisherConfig } from '../config/schema.js';
import { parseHostPort, resolveServer } from '../dns/authoritative.js';
import { describeResponse, formatServer, queryDns, sameName, soaSerial, stripDot } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import { DnsError } from '../errors.js';
import { runHook } from '../hooks/run-hook.js';
import { silentLogger, type Logger } from '../log.js';
import { checkChange, type PublisherDeps, type TlsaChange, type TlsaPublisher } from './publish-common.js';
import { applyTlsaChange, formatTlsa, fromDnsPacket, hasTlsa, sameTlsaSet, shortTlsa, uniqueTlsa, zoneLine, type TlsaRecord } from './tlsa.js';
import { serialOnceServed } from './visibility.js';

export interface HookPublisherOptions {
  argv: string[];
  /** Every authoritative server; the first one is read for the current RRset. */
  nameservers: DnsServer[];
  timeoutMs: number;
  /** Static extra environment from the config (e.g. NSUPDATE_SERVER). */
  env?: Record<string, string>;
  /** Context from the caller (e.g. MXCERT_CERT_NAME). */
  contextEnv?: Record<string, string>;
  logger?: Logger;
  clock?: Clock;
  /** How long to wait for the first nameserver to serve the change. Default 10 s. */
  settleTimeoutMs?: number;
  resolver?: (name: string) => Promise<string[]>;
}

/** Set on every run. The hook gets these, the context above and its `env` in a clean environment (src/hooks/environment.ts). */
export const TLSA_HOOK_VARIABLES = ['MXCERT_EVENT', 'MXCERT_TLSA', 'MXCERT_TLSA_OWNER', 'MXCERT_TLSA_ADD', 'MXCERT_TLSA_REMOVE', 'MXCERT_TLSA_TTL'] as const;

export class HookTlsaPublisher implements TlsaPublisher {
  readonly name = 'hook';
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(private readonly opts: HookPublisherOptions) {
    if (opts.argv.length === 0 || !opts.argv[0]) throw new DnsError('TLSA hook command is empty');
    if (opts.nameservers.length === 0) throw new DnsError('the hook publisher needs at least one nameserver to read from');
    this.log = (opts.logger ?? silentLogger).child({ publisher: 'hook', hook: opts.argv[0] });
    this.clock = opts.clock ?? systemClock;
  }

  private get first(): DnsServer {
    return this.opts.nameservers[0]!;
  }

  async servers(): Promise<DnsServer[]> {
    // Only the listed servers: without a zone and a primary there is nothing
    // to discover from, so the list must name every authoritative server.
    const all = await Promise.all(this.opts.nameservers.map((s) => resolveServer(s, this.opts.resolver)));
    return all.flat();
  }

  async read(owner: string): Promise<TlsaRecord[]> {
    const server = (await this.servers())[0] ?? this.first;
    const resp = await queryDns(server, owner, 'TLSA', { tcp: true, recursion: false });
    if (!resp.authoritative || (resp.rcode !== 'NOERROR' && resp.rcode !== 'NXDOMAIN')) {
      throw new DnsError(`${formatServer(server)} did not answer authoritatively for TLSA ${stripDot(owner)}.: ${describeResponse(resp)}`);
    }
    return resp.answers.filter((r) => r.type === 'TLSA' && sameName(r.name, owner)).map((r) => fromDnsPacket(r.data));
  }

  async change(owner: string, change: TlsaChange, ttl: number): Promise<{ serial?: number }> {
    checkChange(change, ttl);
    const name = `${stripDot(owner).toLowerCase()}.`;
    const log = this.log.child({ owner: name });
    const current = await this.read(name);
    const desired = applyTlsaChange(current, change);
    if (sameTlsaSet(desired, current)) {
      log.debug({ records: current.map(shortTlsa) }, 'TLSA RRset already as wanted; hook not run');
      return this.serialNow(name);
    }
    // The whole requested change, not only what the read says is missing:
    // the first nameserver may be a lagging secondary, and hooks are
    // idempotent anyway.
    const add = uniqueTlsa(change.add);
    const remove = uniqueTlsa(change.remove).filter((r) => !hasTlsa(add, r));
    if (add.length > 0) await this.run('tlsa-publish', name, ttl, add, []);
    if (remove.length > 0) await this.run('tlsa-retire', name, ttl, [], remove);

    const server = (await this.servers())[0] ?? this.first;
    const serial = await serialOnceServed(server, name, { present: add, absent: remove }, {
      timeoutMs: this.opts.settleTimeoutMs ?? 10_000,
      zone: name,
      clock: this.clock,
    });
    if (serial === undefined) log.warn({ server: formatServer(server) }, 'hook succeeded but the change is not served yet; no serial to wait for');
    return serial === undefined ? {} : { serial };
  }

  private async run(event: 'tlsa-publish' | 'tlsa-retire', owner: string, ttl: number, add: TlsaRecord[], remove: TlsaRecord[]): Promise<void> {
    const records = event === 'tlsa-publish' ? add : remove;
    const env: Record<string, string> = {
      ...this.opts.contextEnv,
      MXCERT_EVENT: event,
      MXCERT_TLSA: records.map((r) => zoneLine(owner, ttl, r)).join('\n'),
      MXCERT_TLSA_OWNER: owner,
      MXCERT_TLSA_ADD: add.map(formatTlsa).join('\n'),
      MXCERT_TLSA_REMOVE: remove.map(formatTlsa).join('\n'),
      MXCERT_TLSA_TTL: String(ttl),
    };
    this.log.info({ event, owner, records: records.map(shortTlsa) }, 'running TLSA hook');
    await runHook(this.opts.argv, { env, configEnv: this.opts.env, timeoutMs: this.opts.timeoutMs, logger: this.log });
  }

  private async serialNow(owner: string): Promise<{ serial?: number }> {
    try {
      // SOA at the owner name: the authority section carries the zone's SOA (RFC 2308).
      const serial = soaSerial(await queryDns(this.first, owner, 'SOA', { tcp: true, recursion: false }));
      return serial === undefined ? {} : { serial };
    } catch {
      return {};
    }
  }
}

export async function createHookPublisher(cfg: DaneHookPublisherConfig, deps: PublisherDeps): Promise<HookTlsaPublisher> {
  return new HookTlsaPublisher({
    argv: typeof cfg.command === 'string' ? [cfg.command] : cfg.command,
    nameservers: cfg.nameservers.map((s) => parseHostPort(s)),
    timeoutMs: cfg.timeout,
    env: cfg.env,
    ...(deps.hookEnv ? { contextEnv: deps.hookEnv } : {}),
    logger: deps.logger,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.resolver ? { resolver: deps.resolver } : {}),
  });
}
