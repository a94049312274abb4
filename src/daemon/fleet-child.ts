// The daemon's fleet watcher, a long-lived child process (docs/architecture.md,
// "The daemon and its children"): it alone loads etcd3 and gRPC, so the
// daemon stays as small as on a host without a fleet. It watches the whole
// fleet prefix (lineages, DANE records, members' reports, removals) and
// tells the daemon to run a pass when a change calls for one
// (fleet-nudge.ts), or when a fleet DANE journal's next step comes due by
// time (the journal lives in etcd, where the pass child's wake-up does not
// look). Nudges within DEBOUNCE_MS are sent as one.
//
// Protocol (IPC, advanced serialization):
//   parent → child: { type: 'watch', config, level, restarts }, later maybe { type: 'stop' }
// No secret values: the etcd client key, password and the fleet key are
// files the child reads itself under the secret-file rules
// (src/fleet/secret-files.ts), and it runs no hook; its environment lacks
// the `*Env` secrets like every child's (child-env.ts).
//   child → parent: { type: 'nudge', certs, why } | { type: 'state', state }
// etcd lost: the watch retries every second and logs once per change of
// state. The child exits on 'stop', SIGTERM/SIGINT or a lost IPC channel;
// the daemon restarts it if it dies otherwise.
import type { CertificateConfig, Config } from '../config/schema.js';
import { describeError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { connectFleetEtcd, type FleetEtcd } from '../fleet/etcd-client.js';
import { FleetStore } from '../fleet/store.js';
import { watchFleet, type FleetKeyChange, type LineageWatch } from '../fleet/watch.js';
import { dueMargin, dueRetryMs, fleetDaneDue, nudgeFor, type Nudge, type NudgeContext } from './fleet-nudge.js';

export interface WatchRequest {
  type: 'watch';
  config: Config;
  level: string;
  /** Restarts in a row before this one: a failure to connect is logged as an error the first time only. */
  restarts: number;
}
export interface NudgeMessage {
  type: 'nudge';
  certs: string[];
  why: string;
}
/** The watch reached etcd (after its snapshot read) or lost it. */
export interface StateMessage {
  type: 'state';
  state: 'connected' | 'disconnected';
}

/** Changes that arrive together (a pass writes a lineage, then a journal, then a report) make one nudge. */
const DEBOUNCE_MS = 300;
/** setTimeout cannot wait longer than 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

class FleetWatcher {
  /** Last seen values of the keys whose previous value matters (reports, DANE records). */
  private readonly values = new Map<string, unknown>();
  private readonly dane = new Map<string, unknown>();
  private readonly certs: Map<string, CertificateConfig>;
  private readonly ctx: NudgeContext;
  private readonly dueTimers = new Map<string, NodeJS.Timeout>();
  private readonly retries = new Map<string, number>();
  private pending: { certs: Set<string>; why: string[] } | undefined;
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    config: Config,
    private readonly log: Logger,
    private readonly send: (m: NudgeMessage) => void,
  ) {
    this.certs = new Map(config.certificates.filter((c) => c.fleet).map((c) => [c.name, c]));
    this.ctx = { member: config.fleet!.member, certs: [...this.certs.keys()], dane: this.dane };
  }

  onChange(c: FleetKeyChange): void {
    const after = c.kv ? parse(c.kv.value) : undefined;
    const before = this.values.get(c.key);
    if (c.key.startsWith('members/') || c.key.endsWith('/dane')) {
      if (after === undefined) this.values.delete(c.key);
      else this.values.set(c.key, after);
    }
    const dane = /^certs\/([^/]+)\/dane$/.exec(c.key)?.[1];
    if (dane !== undefined && this.certs.has(dane)) {
      if (after === undefined) this.dane.delete(dane);
      else this.dane.set(dane, after);
      this.retries.delete(dane);
      this.armDue(dane);
    }
    // The first snapshot is what the daemon's start-up pass sees anyway.
    if (c.initial) return;
    const n = nudgeFor(c.key, before, after, this.ctx);
    if (n) this.queue(n);
  }

  /** A timer for when the certificate's fleet DANE journal can next move by time alone. */
  private armDue(cert: string): void {
    clearTimeout(this.dueTimers.get(cert));
    this.dueTimers.delete(cert);
    const now = Date.now();
    const due = fleetDaneDue(this.dane.get(cert), this.certs.get(cert)!, new Date(now));
    if (!due) return;
    const attempt = this.retries.get(cert) ?? 0;
    const delay = due.due ? dueRetryMs(attempt) : due.at - now + dueMargin(this.dane.get(cert), this.ctx.member);
    const fire = () => {
      if (delay > MAX_TIMER_MS) return this.armDue(cert);
      if (due.due) this.retries.set(cert, attempt + 1);
      this.queue({ certs: [cert], why: due.due ? `the DANE rollover of ${cert} waits; looking again` : `a DANE step of ${cert} is due` });
      // A deadline is no burst of changes: no debounce on the rollover's critical path.
      clearTimeout(this.debounce);
      this.flush();
      this.armDue(cert);
    };
    this.dueTimers.set(cert, setTimeout(fire, Math.min(delay, MAX_TIMER_MS)).unref());
  }

  private queue(n: Nudge): void {
    this.pending ??= { certs: new Set(), why: [] };
    for (const c of n.certs) this.pending.certs.add(c);
    if (!this.pending.why.includes(n.why)) this.pending.why.push(n.why);
    this.debounce ??= setTimeout(() => this.flush(), DEBOUNCE_MS);
  }

  private flush(): void {
    this.debounce = undefined;
    const p = this.pending;
    this.pending = undefined;
    if (!p) return;
    const m: NudgeMessage = { type: 'nudge', certs: [...p.certs], why: p.why.join('; ') };
    this.log.debug(m, 'fleet watcher: nudging the daemon');
    this.send(m);
  }

  close(): void {
    clearTimeout(this.debounce);
    for (const t of this.dueTimers.values()) clearTimeout(t);
  }
}

/** A value as JSON, or a marker for one that is not (a change all the same). */
function parse(value: Buffer): unknown {
  try {
    return JSON.parse(value.toString('utf8'));
  } catch {
    return { unreadable: true };
  }
}

let stopping: (() => void) | undefined;
const stop = () => (stopping ? stopping() : process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);

async function start(req: WatchRequest): Promise<void> {
  const log = createLogger({ level: req.level }).child({ fleet: req.config.fleet!.member, component: 'fleet-watcher' });
  let etcd: FleetEtcd;
  try {
    etcd = await connectFleetEtcd(req.config.fleet!);
  } catch (err) {
    log[req.restarts === 0 ? 'error' : 'debug']({ err: describeError(err) }, 'fleet watcher: cannot connect to etcd');
    process.exit(1);
  }
  const watcher = new FleetWatcher(req.config, log, (m) => process.connected && process.send?.(m));
  const state = (s: 'connected' | 'disconnected', err?: unknown) => {
    if (process.connected) process.send?.({ type: 'state', state: s } satisfies StateMessage);
    if (s === 'connected') log.info({ endpoints: etcd.endpoints }, 'fleet watcher: watching etcd');
    else log.warn({ err: describeError(err) }, 'fleet watcher: etcd unavailable; retrying quietly');
  };
  const watch: LineageWatch = watchFleet(new FleetStore(etcd), { prefix: '', onChange: (c) => watcher.onChange(c), onState: state, retryMs: 1000 });
  stopping = () => {
    watch.close();
    watcher.close();
    etcd.close();
    process.exit(0);
  };
}

process.once('message', (msg: WatchRequest) => {
  void start(msg).catch((err: unknown) => {
    process.stderr.write(`fleet watcher: ${describeError(err)}\n`);
    process.exit(1);
  });
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') stop();
  });
});
