// The daemon's side of the fleet watcher (fleet-child.ts): start it when
// the config has a fleet block and a fleet certificate, restart it with a
// backoff if it dies, restart it when a reload changes what it watches,
// stop it when the fleet goes from the config or the daemon stops. Its
// nudges reach the daemon as `onNudge`, which triggers a pass (folded
// into one more pass if one runs). This module loads nothing of etcd: the
// daemon stays small (docs/architecture.md, "The daemon and its children").
import type { ChildProcess } from 'node:child_process';
import { forkSibling } from './fork-child.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { secretEnvNames } from '../hooks/environment.js';
import { childEnv } from './child-env.js';
import type { NudgeMessage, StateMessage, WatchRequest } from './fleet-child.js';

/** After SIGTERM, a watcher that has not exited is killed after this. */
const STOP_GRACE_MS = 5_000;
/** A watcher that ran this long before it died starts its backoff over. */
const HEALTHY_MS = 60_000;

/**
 * Whether the config calls for a watcher, and what it depends on: a
 * running watcher is restarted after a reload only when this changes (the
 * fleet block, the fleet certificates with their key types and DANE
 * settings). undefined: no fleet block, or no certificate with `fleet: true`.
 */
export function watchFingerprint(config: Config): string | undefined {
  const certs = config.certificates.filter((c) => c.fleet).map((c) => ({ name: c.name, keys: c.keys, dane: c.dane ?? null }));
  if (!config.fleet || certs.length === 0) return undefined;
  return JSON.stringify({ fleet: config.fleet, certs });
}

/** The restart backoff after `failures` deaths in a row: 1 s, 2 s, 4 s … at most 60 s. */
export function watcherRestartMs(failures: number): number {
  return Math.min(1000 * 2 ** Math.max(0, failures - 1), 60_000);
}

export class FleetWatch {
  private child: ChildProcess | undefined;
  private config: Config | undefined;
  private fingerprint: string | undefined;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /**
   * A watcher died: changes may have gone unseen until a new one has read
   * the fleet's state again (its first snapshot nudges nothing), so the
   * daemon runs a pass once the new one is connected.
   */
  private gap = false;

  constructor(
    private readonly log: Logger,
    private readonly onNudge: (m: NudgeMessage) => void,
    /** A restarted watcher may have missed changes: once it is connected, the daemon runs a pass. */
    private readonly onRestart: () => void,
  ) {}

  /** Start, restart or stop the watcher as `config` calls for (start-up and every reload). */
  async apply(config: Config): Promise<void> {
    const fp = watchFingerprint(config);
    this.config = config;
    if (fp === this.fingerprint && (this.child || this.restartTimer || !fp)) return;
    const had = this.fingerprint !== undefined;
    this.fingerprint = fp;
    await this.halt();
    this.failures = 0;
    // The reload runs a pass of its own.
    this.gap = false;
    if (!fp) {
      if (had) this.log.info('fleet watcher stopped: no fleet certificate in the config');
      return;
    }
    this.spawn();
  }

  private spawn(): void {
    const config = this.config!;
    // Without the `*Env` secrets: the watcher needs none (fleet-child.ts).
    const secrets = secretEnvNames(config);
    const child = forkSibling('./fleet-child.js', childEnv(process.env, secrets));
    const started = Date.now();
    this.child = child;
    child.on('message', (m: NudgeMessage | StateMessage) => {
      if (m?.type === 'nudge') this.onNudge(m);
      if (m?.type === 'state' && m.state === 'connected' && this.gap && this.child === child) {
        this.gap = false;
        this.onRestart();
      }
    });
    child.once('error', (err) => this.log.error({ err: err.message }, 'fleet watcher: cannot start'));
    child.once('exit', (code, sig) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopped) return;
      this.gap = true;
      this.failures = Date.now() - started >= HEALTHY_MS ? 1 : this.failures + 1;
      const inMs = watcherRestartMs(this.failures);
      // One line per outage, not per attempt.
      const level = this.failures === 1 ? 'warn' : 'debug';
      this.log[level]({ exit: sig ?? code, restartInMs: inMs, failures: this.failures }, 'fleet watcher exited; restarting it');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (this.stopped || !this.fingerprint) return;
        this.spawn();
      }, inMs);
    });
    const req: WatchRequest = { type: 'watch', config, level: this.log.level, restarts: this.failures };
    child.send(req);
  }

  /** End the running watcher (if any) and any pending restart; resolves once it has exited. */
  private async halt(): Promise<void> {
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    if (child.connected) child.send({ type: 'stop' });
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(kill);
  }

  /** SIGTERM of the daemon: stop for good. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.halt();
  }

  /** The watcher's pid, for tests and the bench (RSS). */
  get pid(): number | undefined {
    return this.child?.pid;
  }
}
