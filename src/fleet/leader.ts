// Leader election (docs/architecture.md, "Fleet", "Leader"): the leader is
// whoever created the `leader` key under the fleet prefix, attached to its
// lease (create-if-absent in one transaction). The key goes when the lease
// does (the holder died or was cut off for a TTL), and a campaigning member
// then takes it. A term ends, and its AbortSignal fires, as soon as:
// - the lease cannot be renewed in time (src/fleet/lease.ts: the holder stops
//   acting before the server can expire it),
// - etcd says the lease is gone,
// - the leader key is deleted or replaced by someone else,
// - the holder resigns.
// Writes that only the leader may make carry the term's fence (the key's
// creation revision and lease, src/fleet/store.ts), so a deposed leader's
// late write is refused by etcd itself, whatever the deposed process thinks.
import { EventEmitter } from 'node:events';
import type { IKeyValue } from 'etcd3';
import { EtcdAccessError, EtcdUnavailableError, LeadershipLostError, NotLeaderError } from './errors.js';
import type { FleetEtcd } from './etcd-client.js';
import { KeptLease } from './lease.js';
import { LEADER_KEY, leaderInfo, type LeaderFence } from './store.js';

export interface CampaignOptions {
  /** This member's name (fleet.member). */
  member: string;
  /** Lease TTL in seconds (fleet.leaseTtl). */
  ttlSeconds: number;
  /** Ends the campaign (it then rejects with LeadershipLostError `aborted`). */
  signal?: AbortSignal;
  /** Called when a campaign step fails and is retried (etcd unavailable). */
  onRetry?: (err: unknown) => void;
  now?: () => Date;
}

/** One leadership term, from election to loss or resignation. */
export class LeaderTerm extends EventEmitter {
  private readonly controller = new AbortController();
  readonly fence: LeaderFence;
  private cancelWatch: (() => void) | undefined;

  constructor(
    private readonly etcd: FleetEtcd,
    private readonly lease: KeptLease,
    readonly member: string,
    readonly createRevision: string,
  ) {
    super();
    this.fence = { member, createRevision, leaseId: lease.id };
    lease.once('lost', (err: LeadershipLostError) => this.end(err));
    const already = lease.lost();
    if (already) queueMicrotask(() => this.end(already));
    this.cancelWatch = watchLeaderKey(etcd, createRevision, (why) =>
      this.end(new LeadershipLostError('key-changed', `the leader key was ${why}; ${member} is no longer the leader`)),
    );
  }

  /** Aborted (with a LeadershipLostError as reason) when the term ends. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True while the lease is surely alive and nothing ended the term. */
  isLeader(): boolean {
    return !this.controller.signal.aborted && this.lease.alive();
  }

  /** Throws NotLeaderError unless isLeader(): call it before anything only the leader may do outside etcd (ACME, DNS). */
  assertLeader(what: string): void {
    if (!this.isLeader()) {
      const reason = this.controller.signal.reason as LeadershipLostError | undefined;
      throw new NotLeaderError(`${this.member} may not ${what}: it is no longer the fleet leader${reason ? ` (${reason.message})` : ''}`, { cause: reason });
    }
  }

  /** Give up leadership: delete the leader key if it is still ours, revoke the lease. */
  async resign(): Promise<void> {
    if (!this.controller.signal.aborted) this.end(new LeadershipLostError('resigned', `${this.member} resigned`), false);
    const ns = this.etcd.ns;
    await this.etcd
      .call('delete the leader key', (o) => ns.if(LEADER_KEY, 'Create', '==', this.createRevision).then(ns.delete().key(LEADER_KEY)).options(o).commit())
      .catch(() => undefined);
    await this.lease.revoke();
  }

  override on(event: 'lost', listener: (err: LeadershipLostError) => void): this {
    return super.on(event, listener);
  }

  private end(err: LeadershipLostError, emit = true): void {
    if (this.controller.signal.aborted) return;
    this.cancelWatch?.();
    this.cancelWatch = undefined;
    this.controller.abort(err);
    // A term that ended for any reason but a resignation lets its lease go
    // quickly: the key goes with it and another member can lead sooner.
    if (err.reason !== 'resigned') void this.lease.revoke();
    if (emit) this.emit('lost', err);
  }
}

/** Calls `changed` once when the leader key created at `createRevision` is deleted or replaced. Returns a canceller. */
function watchLeaderKey(etcd: FleetEtcd, createRevision: string, changed: (why: string) => void): () => void {
  const watcher = etcd.watch((b) => b.key(LEADER_KEY).startRevision(String(BigInt(createRevision) + 1n)));
  let done = false;
  const fire = (why: string) => {
    if (done) return;
    done = true;
    changed(why);
  };
  watcher.on('delete', () => fire('deleted'));
  watcher.on('put', (kv: IKeyValue) => {
    if (kv.create_revision !== createRevision) fire(`taken over by ${leaderInfo(kv).member}`);
  });
  // A watch that etcd cancels (compaction) cannot tell us any more: the lease keeper still guards the term.
  watcher.on('error', () => undefined);
  return () => {
    done = true;
    // Not awaited: cancelling waits for etcd, which may be the thing that is gone.
    void watcher.cancel().catch(() => undefined);
  };
}

/**
 * Campaign until this member leads, and return its term. Retries while etcd
 * is unavailable (a member without quorum never leads); access errors end
 * the campaign (wrong credentials do not fix themselves).
 */
export async function campaign(etcd: FleetEtcd, opts: CampaignOptions): Promise<LeaderTerm> {
  const ttlMs = opts.ttlSeconds * 1000;
  const retryMs = Math.min(1000, Math.floor(ttlMs / 4));
  let lease: KeptLease | undefined;
  try {
    for (;;) {
      checkAborted(opts.signal);
      try {
        if (!lease?.alive()) {
          if (lease) void lease.revoke();
          lease = undefined;
          lease = await KeptLease.grant(etcd, opts.ttlSeconds);
        }
        const r = await tryCreate(etcd, lease, opts.member, (opts.now ?? (() => new Date()))());
        if (r.elected) {
          const term = new LeaderTerm(etcd, lease, opts.member, r.revision);
          lease = undefined;
          return term;
        }
        await waitVacant(etcd, r.revision, ttlMs, lease, opts.signal);
      } catch (err) {
        if (err instanceof LeadershipLostError || err instanceof EtcdAccessError || !(err instanceof EtcdUnavailableError)) throw err;
        opts.onRetry?.(err);
        await pause(retryMs, opts.signal);
      }
    }
  } finally {
    if (lease) void lease.revoke();
  }
}

async function tryCreate(etcd: FleetEtcd, lease: KeptLease, member: string, now: Date): Promise<{ elected: boolean; revision: string }> {
  const ns = etcd.ns;
  const value = JSON.stringify({ member, since: now.toISOString() });
  const res = await etcd.call('campaign for the leader key', (o) =>
    ns.if(LEADER_KEY, 'Create', '==', 0).then(ns.put(LEADER_KEY).value(value).lease(lease.id)).else(ns.get(LEADER_KEY)).options(o).commit(),
  );
  return { elected: res.succeeded, revision: res.header.revision };
}

/** Resolves when the leader key may be vacant: deleted after `revision`, our lease lost, or a re-check is due. */
async function waitVacant(etcd: FleetEtcd, revision: string, recheckMs: number, lease: KeptLease, signal?: AbortSignal): Promise<void> {
  const watcher = etcd.watch((b) => b.key(LEADER_KEY).startRevision(String(BigInt(revision) + 1n)).only('delete'));
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  try {
    await new Promise<void>((resolve) => {
      wake = resolve;
      watcher.on('delete', wake);
      watcher.on('error', wake);
      lease.once('lost', wake);
      timer = setTimeout(wake, recheckMs);
      signal?.addEventListener('abort', wake, { once: true });
    });
  } finally {
    clearTimeout(timer);
    if (wake) {
      lease.off('lost', wake);
      signal?.removeEventListener('abort', wake);
    }
    void watcher.cancel().catch(() => undefined);
  }
}

function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new LeadershipLostError('aborted', 'the campaign was aborted', { cause: signal.reason });
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
