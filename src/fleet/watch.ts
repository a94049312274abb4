// Watching the fleet's keys in etcd (docs/architecture.md, "Fleet"): every
// member deploys what the leader stores, so it must see each change, also
// across lost connections, restarts of etcd members and compactions. A
// watch starts right after a snapshot read (no change in between is
// missed); etcd3 resumes a broken stream from the last revision it saw; and
// each reconnect also re-reads the snapshot, so a gap in the stream (or a
// compaction that cancels the watch) costs a read, never an update. Each
// key's change is delivered once, in revision order: a revision not newer
// than the last one delivered for that key is dropped.
//
// watchFleet delivers every key under a sub-prefix ('' for the whole fleet
// prefix) as raw values; watchLineages is the lineage view on top of it.
import type { IKeyValue, Watcher } from 'etcd3';
import type { FleetDataError } from './errors.js';
import { lineageCert, type FleetStore, type LineageEntry } from './store.js';

export type LineageChange = LineageEntry;

interface WatchCommon {
  /** `disconnected` with the reason when etcd cannot be read or the stream broke; `connected` when it works again. */
  onState?: (state: 'connected' | 'disconnected', err?: unknown) => void;
  /** Pause before another attempt after a failure (default 1 s). */
  retryMs?: number;
}

export interface LineageWatchOptions extends WatchCommon {
  /** Only these certificates (default: all). */
  certs?: readonly string[];
  onChange: (change: LineageChange) => void;
}

/** One key's change: `kv` absent once deleted. `key` is relative to the fleet prefix. */
export interface FleetKeyChange {
  key: string;
  revision: string;
  kv?: IKeyValue;
  /** Delivered by the first snapshot read (what existed when the watch started). */
  initial: boolean;
}

export interface FleetWatchOptions extends WatchCommon {
  /** Keys under this sub-prefix of the fleet prefix ('' for all). */
  prefix: string;
  onChange: (change: FleetKeyChange) => void;
}

export interface LineageWatch {
  /** Resolves once the first snapshot was delivered and the watch is set up. */
  readonly ready: Promise<void>;
  close(): void;
}

export function watchFleet(store: FleetStore, opts: FleetWatchOptions): LineageWatch {
  const w = new KeyWatcher(store, opts);
  void w.run();
  return { ready: w.ready, close: () => w.close() };
}

export function watchLineages(store: FleetStore, opts: LineageWatchOptions): LineageWatch {
  return watchFleet(store, {
    ...opts,
    prefix: 'certs/',
    onChange: (c) => {
      const cert = lineageCert(c.key);
      if (cert === undefined || (opts.certs && !opts.certs.includes(cert))) return;
      const lineage: LineageEntry['lineage'] | FleetDataError = c.kv ? store.decodeLineage(c.kv) : undefined;
      opts.onChange({ cert, revision: c.revision, lineage });
    },
  });
}

class KeyWatcher {
  private readonly seen = new Map<string, bigint>();
  /** Keys whose last delivered change was their deletion: a later snapshot without them is no news. */
  private readonly gone = new Set<string>();
  private closed = false;
  private synced = false;
  private wakeUp: (() => void) | undefined;
  private markReady!: () => void;
  readonly ready = new Promise<void>((r) => (this.markReady = r));
  private state: 'connected' | 'disconnected' | undefined;
  /** Reconnects of the stream so far (see resync). */
  private resyncs = 0;

  constructor(
    private readonly store: FleetStore,
    private readonly opts: FleetWatchOptions,
  ) {}

  close(): void {
    this.closed = true;
    this.wakeUp?.();
  }

  async run(): Promise<void> {
    while (!this.closed) {
      try {
        const revision = await this.sync();
        this.setState('connected');
        this.markReady();
        await this.follow(revision);
      } catch (err) {
        this.setState('disconnected', err);
      }
      if (!this.closed) await this.pause(this.opts.retryMs ?? 1000);
    }
  }

  /** Read every key and deliver what is newer than what was delivered; returns the revision read at. */
  private async sync(): Promise<string> {
    const ns = this.store.etcd.ns;
    const res = await this.store.etcd.call('read the fleet state', (o) => ns.getAll().prefix(this.opts.prefix).options(o).exec());
    const initial = !this.synced;
    const present = new Set<string>();
    for (const kv of res.kvs) {
      const key = this.store.relative(kv.key);
      present.add(key);
      this.deliver({ key, revision: kv.mod_revision, kv, initial });
    }
    for (const key of this.seen.keys()) {
      if (!present.has(key) && !this.gone.has(key)) this.deliver({ key, revision: res.header.revision, initial });
    }
    this.synced = true;
    return res.header.revision;
  }

  /** Follow the stream from after `revision` until etcd cancels the watch or we close. */
  private async follow(revision: string): Promise<void> {
    const watcher: Watcher = this.store.etcd.watch((b) => b.prefix(this.opts.prefix).startRevision(String(BigInt(revision) + 1n)));
    let first = true;
    try {
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
        watcher.on('put', (kv: IKeyValue) => this.onEvent(kv, false));
        watcher.on('delete', (kv: IKeyValue) => this.onEvent(kv, true));
        watcher.on('disconnected', (err: unknown) => this.setState('disconnected', err));
        watcher.on('connected', () => {
          if (first) {
            first = false;
            return;
          }
          // Whatever happened while the stream was down is read again.
          void this.resync();
        });
        // Cancelled by etcd (e.g. its start revision was compacted): start over from a snapshot.
        watcher.on('error', (err: unknown) => {
          this.setState('disconnected', err);
          resolve();
        });
      });
    } finally {
      this.wakeUp = undefined;
      void watcher.cancel().catch(() => undefined);
    }
  }

  /**
   * After the stream came back: read the snapshot again until that works,
   * then report connected. One failed read (etcd3 may still hold the
   * endpoint in its circuit breaker) must not leave the watch reporting
   * disconnected, nor the gap unread, while the stream runs on. A newer
   * reconnect takes over from an older loop.
   */
  private async resync(): Promise<void> {
    const mine = ++this.resyncs;
    while (!this.closed && mine === this.resyncs) {
      try {
        await this.sync();
        if (mine === this.resyncs) this.setState('connected');
        return;
      } catch (err) {
        this.setState('disconnected', err);
      }
      await new Promise((r) => setTimeout(r, this.opts.retryMs ?? 1000));
    }
  }

  private onEvent(kv: IKeyValue, deleted: boolean): void {
    this.deliver({ key: this.store.relative(kv.key), revision: kv.mod_revision, ...(deleted ? {} : { kv }), initial: false });
  }

  private deliver(e: FleetKeyChange): void {
    const rev = BigInt(e.revision);
    const last = this.seen.get(e.key);
    if (last !== undefined && rev <= last) return;
    if (last === undefined && e.kv === undefined) return;
    this.seen.set(e.key, rev);
    if (e.kv) this.gone.delete(e.key);
    else this.gone.add(e.key);
    this.opts.onChange(e);
  }

  private setState(state: 'connected' | 'disconnected', err?: unknown): void {
    if (this.closed || this.state === state) return;
    this.state = state;
    this.opts.onState?.(state, err);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
