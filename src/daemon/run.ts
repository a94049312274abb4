// `mxcert run` (DESIGN §1, issue 3): a long-running agent.
// - a node-cron schedule (default hourly at a minute derived from the host
//   name, so a fleet does not hit the CA in the same second), plus a precise
//   timer for the next due instant when it falls between ticks;
// - passes never overlap: a tick that fires during a pass is folded into one
//   more pass afterwards;
// - the agent lock is taken per pass, so CLI commands run between passes; a
//   separate daemon lock keeps a second daemon from starting;
// - SIGHUP reloads the config (an invalid one is rejected with its errors and
//   the old one keeps running); SIGTERM/SIGINT finish the current step,
//   release the locks and exit 0;
// - each pass runs in a child process (pass-child.ts: lock, ACME, deploy,
//   expiry warning, failure hooks), so the idle daemon keeps only config,
//   schedule and timers in memory; after each pass, when configured, the
//   metrics refresh (src/metrics, loaded only then).
import os from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import { loadConfig } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { ConfigError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from '../clock.js';
import { StateStore } from '../store/state-store.js';
import { fork } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock, type AgentLock } from '../store/lock.js';
// Light imports only: the pass itself (ACME, X.509, DNS, hooks) runs in pass-child.
import { planFromState } from '../schedule/plan.js';
import type { UnitOutcome } from '../renew/orchestrator.js';
import type { DaneJournal } from '../dane/rollover.js';
import type { PassReply, PassRequest } from './pass-child.js';
import type { MetricsEndpoint } from '../metrics/server.js';

/** Hourly, at a minute derived from the host name. */
export function defaultSchedule(hostname = os.hostname()): string {
  let h = 0;
  for (const c of hostname) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${h % 60} * * * *`;
}

/** setTimeout cannot wait longer than 2^31-1 ms (~24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A DANE machine waiting on something without a deadline (visibility, a backoff) is looked at again after this. */
const DANE_RETRY_MS = 10_000;
/** Wake a little after a DANE deadline, so the pass does not find it a hair early. */
const DANE_MARGIN_MS = 20;

/**
 * When a certificate's DANE rollover can next move on its own (DESIGN §6):
 * the end of the hold once a rotation is due, RETIRE's one TTL after the
 * swap, the key's rotation time. Without this the daemon would only notice
 * on the next cron tick, stretching a 2 × TTL hold to up to an hour.
 */
export async function daneWakeAt(store: StateStore, cert: CertificateConfig, keyType: string, now: Date): Promise<number | undefined> {
  if (!cert.dane?.enabled) return undefined;
  // Read directly: the rollover module (DNS, X.509) stays out of the idle daemon.
  const j = await readFile(path.join(store.certDir(cert.name, keyType), 'dane', 'journal.json'), 'utf8')
    .then((t) => JSON.parse(t) as DaneJournal)
    .catch(() => undefined);
  if (!j) return undefined;
  const t = now.getTime();
  const hold = j.holdUntil ? new Date(j.holdUntil).getTime() : undefined;
  let at: number;
  switch (j.phase) {
    case 'RETIRE':
      at = new Date(j.swappedAt ?? now).getTime() + (cert.dane.publisher?.ttl ?? 3600) * 1000;
      break;
    case 'STEADY': {
      const rotateAt = j.rollover ? t : new Date(j.current.createdAt).getTime() + cert.dane.keyLifetime;
      at = Math.max(rotateAt, hold ?? rotateAt);
      break;
    }
    default:
      // Waiting for visibility (each pass polls a while itself), or resuming an interrupted swap.
      at = hold ?? t;
  }
  // Due already, yet the last pass left it: something without a deadline holds it back.
  return at <= t ? t + DANE_RETRY_MS : at + DANE_MARGIN_MS;
}

export interface DaemonOptions {
  configPath: string;
  logger: Logger;
  clock?: Clock;
  /** How long a pass waits for the agent lock held by a CLI command. */
  lockWaitMs?: number;
}

export class Daemon {
  private config!: Config;
  private task: ScheduledTask | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  private passErrors = 0;
  private stopping = false;
  private abort = new AbortController();
  private daemonLock: AgentLock | undefined;
  private metrics: MetricsEndpoint | undefined;
  private readonly clock: Clock;
  private resolveStopped!: () => void;
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  constructor(private readonly opts: DaemonOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  async start(): Promise<void> {
    this.config = await loadConfig(this.opts.configPath);
    const store = new StateStore(this.config.stateDir);
    await store.ensure();
    this.daemonLock = await acquireLock(this.config.stateDir, { command: 'run', file: 'daemon.lock' });
    if (this.config.metrics) {
      try {
        // prom-client is loaded only when metrics are configured: a small idle daemon otherwise.
        const { startMetricsServer } = await import('../metrics/server.js');
        this.metrics = await startMetricsServer(this.config, this.log, this.clock.now());
      } catch (err) {
        await this.daemonLock.release();
        throw err;
      }
    }
    this.schedule();
    this.log.info({ config: this.config.source, schedule: this.scheduleExpr(), certificates: this.config.certificates.length }, 'mxcert daemon started');
    this.trigger('start');
  }

  private scheduleExpr(): string {
    return this.config.schedule ?? defaultSchedule();
  }

  private schedule(): void {
    void this.task?.destroy();
    const expr = this.scheduleExpr();
    this.task = cron.schedule(expr, () => this.trigger('schedule'), { name: 'mxcert', noOverlap: false });
  }

  /** Start a pass now, or fold the request into one more pass after the current one. */
  trigger(why: string): void {
    if (this.stopping) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = this.pass(why).finally(() => {
      this.running = undefined;
      if (this.rerun && !this.stopping) {
        this.rerun = false;
        this.trigger('rerun');
      }
    });
  }

  private async pass(why: string): Promise<void> {
    const started = this.clock.now();
    let outcomes: UnitOutcome[] | undefined;
    try {
      const reply = await this.passInChild();
      if (reply.type === 'error') throw new Error(reply.error);
      outcomes = reply.outcomes;
      const summary = { renewed: 0, failed: 0, notDue: 0 };
      for (const r of outcomes) {
        if (r.status === 'renewed') summary.renewed++;
        else if (r.status === 'failed') summary.failed++;
        else summary.notDue++;
      }
      this.log.info({ why, ...summary, ms: this.clock.now().getTime() - started.getTime() }, 'pass finished');
      this.passErrors = 0;
    } catch (err) {
      // Failed before (or outside) the per-certificate work: a missing CA
      // bundle, an unreadable secret, the lock held too long (the child has
      // run the failure hooks). Back off so the daemon does not retry every
      // second (see armTimer).
      this.passErrors++;
      this.log.error({ why, err: describeError(err), retryInMs: this.passBackoffMs() }, 'pass failed');
    }
    await this.metrics?.afterPass(this.config, outcomes, this.clock.now());
    if (!this.stopping) await this.armTimer();
  }

  /**
   * Runs the pass in a child process (src/daemon/pass-child.ts), so what a
   * pass loads and allocates is given back when it ends: the idle daemon
   * stays small (issue 6). SIGTERM to the daemon is passed on as 'abort'.
   */
  private passInChild(): Promise<PassReply> {
    return new Promise((resolve, reject) => {
      const child = fork(fileURLToPath(new URL('./pass-child.js', import.meta.url)), [], {
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        execArgv: process.execArgv,
      });
      let reply: PassReply | undefined;
      const onAbort = () => child.connected && child.send({ type: 'abort' });
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      child.on('message', (m: PassReply) => (reply = m));
      child.once('error', (err) => {
        this.abort.signal.removeEventListener('abort', onAbort);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        this.abort.signal.removeEventListener('abort', onAbort);
        if (reply) resolve(reply);
        else reject(new Error(`the pass process ended without a result (${signal ?? `exit ${code}`})`));
      });
      const req: PassRequest = { type: 'pass', config: this.config, level: this.log.level, lockWaitMs: this.opts.lockWaitMs ?? 60_000 };
      child.send(req);
      if (this.abort.signal.aborted) onAbort();
    });
  }

  /** 1 min, 2 min, 4 min … capped at 1 h after consecutive failed passes; 1 s otherwise. */
  private passBackoffMs(): number {
    return this.passErrors === 0 ? 1000 : Math.min(60_000 * 2 ** (this.passErrors - 1), 3_600_000);
  }

  /** A precise timer for the earliest due instant, so renewals need not wait for the next cron tick. */
  private async armTimer(): Promise<void> {
    clearTimeout(this.timer);
    const store = new StateStore(this.config.stateDir);
    const now = this.clock.now();
    let earliest = Infinity;
    for (const cert of this.config.certificates) {
      for (const keyType of cert.keys) {
        const state = await store.readState(cert.name, keyType);
        // Metadata only: the plan needs no key or certificate.
        const meta = state.current ? await store.loadMeta(cert.name, keyType, state.current) : undefined;
        const plan = planFromState(cert, keyType, state, meta && { meta }, false, now);
        earliest = Math.min(earliest, plan.at.getTime());
        if (state.ari) earliest = Math.min(earliest, new Date(state.ari.nextCheck).getTime());
        const dane = await daneWakeAt(store, cert, keyType, now);
        if (dane !== undefined) earliest = Math.min(earliest, dane);
      }
    }
    if (!Number.isFinite(earliest)) return;
    // Never spin: at least a second between passes even if something is due
    // now, more after passes that failed as a whole.
    const delay = Math.min(Math.max(earliest - now.getTime(), this.passBackoffMs()), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.trigger('due'), delay);
    this.log.debug({ nextAt: new Date(now.getTime() + delay).toISOString() }, 'next wake-up');
  }

  /** SIGHUP: validate the new config fully before swapping it in. */
  async reload(): Promise<void> {
    try {
      const next = await loadConfig(this.opts.configPath);
      if (next.stateDir !== this.config.stateDir) {
        this.log.error({ old: this.config.stateDir, new: next.stateDir }, 'config reload rejected: stateDir cannot change while running; restart instead');
        return;
      }
      if (JSON.stringify(next.metrics) !== JSON.stringify(this.config.metrics)) {
        this.log.warn({ old: this.config.metrics ?? null, new: next.metrics ?? null }, 'metrics settings changed; they take effect when the daemon restarts');
      }
      this.config = next;
      this.schedule();
      this.log.info({ schedule: this.scheduleExpr(), certificates: next.certificates.length }, 'config reloaded');
      this.trigger('reload');
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map((p) => `${p.path || '(config)'}: ${p.message}`) : [describeError(err)];
      this.log.error({ problems }, 'config reload rejected; keeping the running config');
    }
  }

  /** SIGTERM/SIGINT: no new work; let the current step finish; release locks. */
  async stop(signal: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info({ signal }, 'stopping after the current step');
    this.abort.abort();
    clearTimeout(this.timer);
    await this.task?.destroy();
    await this.running;
    await this.metrics?.stop();
    await this.daemonLock?.release();
    this.log.info('mxcert daemon stopped');
    this.resolveStopped();
  }
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const d = new Daemon(opts);
  await d.start();
  const onTerm = (sig: NodeJS.Signals) => void d.stop(sig);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);
  process.on('SIGHUP', () => void d.reload());
  // SIGUSR1: the state changed behind our back (`mxcert rollover`): a pass now re-plans and re-arms the timers.
  process.on('SIGUSR1', () => d.trigger('signal'));
  await d.stopped;
  return 0;
}
