// Watching the fleet's lineages (docs/architecture.md, "Fleet"): every
// member deploys what the leader stores, so it must see each change, also
// across lost connections, restarts of etcd members and compactions. A
// watch starts right after a snapshot read (no change in between is
// missed); etcd3 resumes a broken stream from the last revision it saw; and
// each reconnect also re-reads the snapshot, so a gap in the stream (or a
// compaction that cancels the watch) costs a read, never an update. Each
// certificate's change is delivered once, in revision order: a revision not
// newer than the last one delivered for that certificate is dropped.
import type { IKeyValue, Watcher } from 'etcd3';
import type { FleetDataError } from './errors.js';
import { lineageCert, type FleetStore, type LineageEntry } from './store.js';

export type LineageChange = LineageEntry;

export interface LineageWatchOptions {
  /** Only these certificates (default: all). */
  certs?: readonly string[];
  onChange: (change: LineageChange) => void;
  /** `disconnected` with the reason when etcd cannot be read or the stream broke; `connected` when it works again. */
  onState?: (state: 'connected' | 'disconnected', err?: unknown) => void;
  /** Pause before another attempt after a failure (default 1 s). */
  retryMs?: number;
}

export interface LineageWatch {
  /** Resolves once the first snapshot was delivered and the watch is set up. */
  readonly ready: Promise<void>;
  close(): void;
}

export function watchLineages(store: FleetStore, opts: LineageWatchOptions): LineageWatch {
  const w = new LineageWatcher(store, opts);
  void w.run();
  return { ready: w.ready, close: () => w.close() };
}

class LineageWatcher {
  private readonly seen = new Map<string, bigint>();
  private closed = false;
  private wakeUp: (() => void) | undefined;
  private markReady!: () => void;
  readonly ready = new Promise<void>((r) => (this.markReady = r));
  private state: 'connected' | 'disconnected' | undefined;

  constructor(
    private readonly store: FleetStore,
    private readonly opts: LineageWatchOptions,
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

  /** Read every lineage and deliver what is newer than what was delivered; returns the revision read at. */
  private async sync(): Promise<string> {
    const snap = await this.store.lineages();
    const present = new Set<string>();
    for (const e of snap.lineages) {
      present.add(e.cert);
      this.deliver(e);
    }
    for (const cert of this.seen.keys()) {
      if (!present.has(cert)) this.deliver({ cert, revision: snap.revision, lineage: undefined });
    }
    return snap.revision;
  }

  /** Follow the stream from after `revision` until etcd cancels the watch or we close. */
  private async follow(revision: string): Promise<void> {
    const watcher: Watcher = this.store.etcd.watch((b) => b.prefix('certs/').startRevision(String(BigInt(revision) + 1n)));
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
          this.sync().then(() => this.setState('connected'), (err: unknown) => this.setState('disconnected', err));
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

  private onEvent(kv: IKeyValue, deleted: boolean): void {
    const cert = lineageCert(this.store.relative(kv.key));
    if (cert === undefined) return;
    this.deliver({ cert, revision: kv.mod_revision, lineage: deleted ? undefined : this.store.decodeLineage(kv) });
  }

  private deliver(e: { cert: string; revision: string; lineage: LineageEntry['lineage'] | FleetDataError }): void {
    if (this.opts.certs && !this.opts.certs.includes(e.cert)) return;
    const rev = BigInt(e.revision);
    const last = this.seen.get(e.cert);
    if (last !== undefined && rev <= last) return;
    if (last === undefined && e.lineage === undefined) return;
    this.seen.set(e.cert, rev);
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
