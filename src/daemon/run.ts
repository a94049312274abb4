// `mxcert run` (docs/architecture.md): a long-running agent.
// - a cron schedule (node-cron syntax; default hourly at a minute derived
//   from the host name, so a fleet does not hit the CA in the same second),
//   plus a precise timer for the next due instant when it falls between ticks;
// - passes never overlap: a tick that fires during a pass is folded into one
//   more pass afterwards;
// - the agent lock is taken per pass, so CLI commands run between passes; a
//   separate daemon lock keeps a second daemon from starting;
// - SIGHUP reloads the config (an invalid one is rejected with its errors and
//   the old one keeps running); SIGTERM/SIGINT finish the current step,
//   release the locks and exit 0.
//
// The daemon itself stays small while idle (docs/architecture.md, "The
// daemon and its children"): what loads or allocates much runs in short-lived children.
// config-child.ts validates the config (YAML, zod) at start and on SIGHUP;
// pass-child.ts runs each pass (lock, ACME, deploy, expiry warning, failure
// hooks) and then works out when the daemon must wake next (the earliest due
// instant, the next cron tick). What stays here is the validated config as
// plain data, two timers, the daemon lock and the signal handling; after each
// pass, when configured, the metrics refresh (src/metrics, loaded only then).
import type { Serializable } from 'node:child_process';
import { forkSibling } from './fork-child.js';
import type { Config } from '../config/schema.js';
import { ConfigError, describeError, MxcertError } from '../errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from '../clock.js';
import { acquireLock, type AgentLock } from '../store/lock.js';
import { ensureStateDir } from '../store/state-dir.js';
import type { UnitOutcome } from '../renew/orchestrator.js';
import type { FailureReply, FailureRequest, NextWake, PassReply, PassRequest } from './pass-child.js';
import { childEnv, secretValues } from './child-env.js';
import { secretEnvNames } from '../hooks/environment.js';
import type { ConfigReply, ConfigRequest } from './config-child.js';
import type { MetricsEndpoint } from '../metrics/server.js';
import { displayTime } from '../util/display-time.js';
import { FleetWatch } from './fleet-watch.js';

/** setTimeout cannot wait longer than 2^31-1 ms (~24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * Timers run on the monotonic clock, cron on the wall clock: a wait for the
 * next tick is checked against the wall clock at least this often, so a
 * suspend or a clock step delays a tick by at most this much.
 */
const TICK_RECHECK_MS = 3_600_000;

type LoadedConfig = Extract<ConfigReply, { type: 'config' }>;

/**
 * How long the due timer waits, from the pass child's answer: never less
 * than the backoff (no spinning when something is due now, more after passes
 * that failed as a whole), the backoff alone when the child could not say
 * (undefined), no timer when nothing is ever due (null).
 */
export function dueDelay(wakeAt: number | null | undefined, now: number, backoffMs: number): number | undefined {
  if (wakeAt === null) return undefined;
  return Math.min(Math.max((wakeAt ?? now) - now, backoffMs), MAX_TIMER_MS);
}

/**
 * When the daemon wakes next and why, for its log: the due timer (a
 * certificate's renewal, ARI check or DANE step, or a retry after failed
 * passes) or the next cron tick, whichever comes first.
 */
export function nextWakeUp(next: NextWake, now: number, dueDelayMs: number | undefined, schedule: string, failedPasses: number): { at: number; why: string } | undefined {
  let due: { at: number; why: string } | undefined;
  if (dueDelayMs !== undefined) {
    const at = now + dueDelayMs;
    const retry = failedPasses > 0 && (next.wakeAt == null || next.wakeAt < at);
    due = { at, why: retry ? `retry after ${failedPasses} failed pass${failedPasses === 1 ? '' : 'es'}` : (next.wakeWhy ?? 'look again') };
  }
  const tick = next.nextTickAt !== undefined ? { at: next.nextTickAt, why: `scheduled check (${schedule})` } : undefined;
  return due && tick ? (due.at <= tick.at ? due : tick) : (due ?? tick);
}

/** How long the tick timer waits before it fires or looks at the wall clock again. */
export function tickDelay(tickAt: number, now: number): number {
  return Math.max(0, Math.min(tickAt - now, TICK_RECHECK_MS));
}

/** After a child's deadline: SIGTERM at once, SIGKILL after this. */
const CHILD_KILL_GRACE_MS = 10_000;

/** A pass (or its failure hooks) outlived passTimeout and was stopped. */
export class PassDeadlineError extends MxcertError {
  constructor(what: string, ms: number) {
    super('deadline', `the ${what} ran longer than passTimeout (${ms / 1000} s) and was stopped`);
  }
}

interface ChildOptions {
  /** The child's whole environment (child-env.ts). */
  env: NodeJS.ProcessEnv;
  /** Passed on to the child as { type: 'abort' }. */
  signal?: AbortSignal;
  /** Stop the child after this long: { type: 'deadline' } and SIGTERM, then SIGKILL. */
  deadlineMs?: number;
  onDeadline?: () => void;
}

/**
 * Runs a sibling module (config-child.js, pass-child.js) in a child process,
 * sends it one request and resolves with its reply once it has exited. An
 * abort is passed on as { type: 'abort' }. Past its deadline the child is
 * told to stop ({ type: 'deadline' }: it ends its hooks) and sent SIGTERM,
 * then SIGKILL; the promise rejects with PassDeadlineError whatever it replied.
 */
function inChild<Reply>(module: string, what: string, request: Serializable, opts: ChildOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const child = forkSibling(module, opts.env);
    let reply: Reply | undefined;
    let expired = false;
    let killTimer: NodeJS.Timeout | undefined;
    const deadline =
      opts.deadlineMs === undefined
        ? undefined
        : setTimeout(() => {
            expired = true;
            opts.onDeadline?.();
            if (child.connected) child.send({ type: 'deadline' });
            child.kill('SIGTERM');
            killTimer = setTimeout(() => child.kill('SIGKILL'), CHILD_KILL_GRACE_MS);
          }, opts.deadlineMs);
    const { signal } = opts;
    const onAbort = () => child.connected && child.send({ type: 'abort' });
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(deadline);
      clearTimeout(killTimer);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('message', (m: Reply) => (reply = m));
    child.once('error', (err) => {
      done();
      reject(err);
    });
    child.once('exit', (code, sig) => {
      done();
      if (expired) reject(new PassDeadlineError(what, opts.deadlineMs!));
      else if (reply) resolve(reply);
      else reject(new Error(`the ${what} process ended without a result (${sig ?? `exit ${code}`})`));
    });
    child.send(request);
    if (signal?.aborted) onAbort();
  });
}

/** The pass child reported a failure (and ran the failure hooks). */
class PassFailedInChild extends Error {}

export interface DaemonOptions {
  configPath: string;
  logger: Logger;
  clock?: Clock;
  /** How long a pass waits for the agent lock held by a CLI command. */
  lockWaitMs?: number;
}

export class Daemon {
  private config!: Config;
  /** The cron expression in effect (the config's, or the default), as the config child reported it. */
  private schedule = '';
  private tickTimer: NodeJS.Timeout | undefined;
  private dueTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private rerun = false;
  private passErrors = 0;
  private stopping = false;
  private abort = new AbortController();
  private daemonLock: AgentLock | undefined;
  private metrics: MetricsEndpoint | undefined;
  /** The fleet watcher child (fleet-child.ts), when the config has fleet certificates. */
  readonly fleetWatch: FleetWatch;
  private readonly clock: Clock;
  private resolveStopped!: () => void;
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));

  constructor(private readonly opts: DaemonOptions) {
    this.clock = opts.clock ?? systemClock;
    this.fleetWatch = new FleetWatch(
      opts.logger,
      (m) => {
        this.log.info({ certs: m.certs, why: m.why }, `fleet: ${m.why}; running a pass`);
        this.trigger('fleet');
      },
      () => this.trigger('fleet watcher restarted'),
    );
  }

  private get log(): Logger {
    return this.opts.logger;
  }

  async start(): Promise<void> {
    const loaded = await this.loadConfig();
    this.config = loaded.config;
    this.schedule = loaded.schedule;
    await ensureStateDir(this.config.stateDir);
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
    this.armTick(loaded.nextTickAt);
    // A change in etcd runs a pass at once rather than at the next tick (docs/architecture.md, "Fleet").
    await this.fleetWatch.apply(this.config);
    this.log.info({ config: this.config.source, schedule: this.schedule, certificates: this.config.certificates.length }, 'mxcert daemon started');
    this.trigger('start');
  }

  /** Validated in a child (config-child.ts); a ConfigError carries every problem with its YAML path. */
  private async loadConfig(): Promise<LoadedConfig> {
    // The config's secrets are not known before it is loaded: the child
    // gets the whole environment to check them in, over IPC (child-env.ts).
    const req: ConfigRequest = { type: 'load', path: this.opts.configPath, env: { ...process.env } };
    const known = this.config ? secretEnvNames(this.config) : new Set<string>();
    const reply = await inChild<ConfigReply>('./config-child.js', 'config', req, { env: childEnv(process.env, known) });
    if (reply.type === 'invalid') throw new ConfigError(reply.problems);
    if (reply.type === 'error') throw new Error(reply.error);
    return reply;
  }

  /**
   * The cron tick, as a plain timer to the instant a child worked out
   * (node-cron stays out of the daemon, see schedule/cron-tick.ts). Once it
   * fires, the pass it starts reports the following tick.
   */
  private armTick(at: number): void {
    clearTimeout(this.tickTimer);
    if (this.stopping) return;
    this.tickTimer = setTimeout(() => {
      if (this.clock.now().getTime() < at) this.armTick(at);
      else this.trigger('schedule');
    }, tickDelay(at, this.clock.now().getTime()));
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
    let next: NextWake = {};
    try {
      const reply = await this.passInChild();
      next = reply;
      if (reply.type === 'error') throw new PassFailedInChild(reply.error);
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
      // second (see armDue).
      this.passErrors++;
      this.log.error({ why, err: describeError(err), retryInMs: this.passBackoffMs() }, 'pass failed');
      // A child that replied has run the failure hooks; one stopped or dead has not.
      if (!(err instanceof PassFailedInChild) && !this.stopping) await this.failureHooksInChild(err);
    }
    await this.metrics?.afterPass(this.config, outcomes, this.clock.now());
    if (this.stopping) return;
    // A pass process that died without a reply leaves the tick timer as it was.
    if (next.nextTickAt !== undefined) this.armTick(next.nextTickAt);
    this.armDue(next);
  }

  /**
   * Runs the pass in a child process (src/daemon/pass-child.ts), so what a
   * pass loads and allocates is given back when it ends: the idle daemon
   * stays small. SIGTERM to the daemon is passed on as 'abort'.
   */
  private passInChild(): Promise<PassReply> {
    const config = this.config;
    const secrets = secretEnvNames(config);
    const req: PassRequest = {
      type: 'pass',
      config,
      level: this.log.level,
      lockWaitMs: this.opts.lockWaitMs ?? 60_000,
      secrets: secretValues(process.env, secrets),
    };
    return inChild<PassReply>('./pass-child.js', 'pass', req, {
      env: childEnv(process.env, secrets),
      signal: this.abort.signal,
      deadlineMs: config.passTimeout,
      onDeadline: () => this.log.error({ passTimeoutMs: config.passTimeout }, 'pass ran longer than passTimeout; stopping it and its hooks'),
    });
  }

  /**
   * The failure hooks of every certificate, for a pass whose child could not
   * run them itself (stopped at its deadline, or dead): in a child of their
   * own, under the same deadline.
   */
  private async failureHooksInChild(err: unknown): Promise<void> {
    const config = this.config;
    const secrets = secretEnvNames(config);
    const req: FailureRequest = { type: 'failure', config, level: this.log.level, error: describeError(err), secrets: secretValues(process.env, secrets) };
    try {
      await inChild<FailureReply>('./pass-child.js', 'failure hooks', req, { env: childEnv(process.env, secrets), deadlineMs: config.passTimeout });
    } catch (e) {
      this.log.error({ err: describeError(e) }, 'running the failure hooks failed');
    }
  }

  /** 1 min, 2 min, 4 min … capped at 1 h after consecutive failed passes; 1 s otherwise. */
  private passBackoffMs(): number {
    return this.passErrors === 0 ? 1000 : Math.min(60_000 * 2 ** (this.passErrors - 1), 3_600_000);
  }

  /**
   * A precise timer for the earliest due instant the pass child reported, so
   * renewals need not wait for the next cron tick. Without one (the child
   * could not say) the pass is retried after the backoff.
   */
  private armDue(next: NextWake): void {
    clearTimeout(this.dueTimer);
    const now = this.clock.now().getTime();
    const delay = dueDelay(next.wakeAt, now, this.passBackoffMs());
    if (delay !== undefined) this.dueTimer = setTimeout(() => this.trigger('due'), delay);
    const wake = nextWakeUp(next, now, delay, this.schedule, this.passErrors);
    if (wake) this.log.info({ nextAt: new Date(wake.at).toISOString(), why: wake.why }, `next wake-up at ${displayTime(wake.at)}: ${wake.why}`);
  }

  /** SIGHUP: validate the new config fully (in a child) before swapping it in. */
  async reload(): Promise<void> {
    try {
      const next = await this.loadConfig();
      if (next.config.stateDir !== this.config.stateDir) {
        this.log.error({ old: this.config.stateDir, new: next.config.stateDir }, 'config reload rejected: stateDir cannot change while running; restart instead');
        return;
      }
      if (JSON.stringify(next.config.metrics) !== JSON.stringify(this.config.metrics)) {
        this.log.warn({ old: this.config.metrics ?? null, new: next.config.metrics ?? null }, 'metrics settings changed; they take effect when the daemon restarts');
      }
      this.config = next.config;
      this.schedule = next.schedule;
      this.armTick(next.nextTickAt);
      await this.fleetWatch.apply(next.config);
      this.log.info({ schedule: this.schedule, certificates: next.config.certificates.length }, 'config reloaded');
      this.trigger('reload');
    } catch (err) {
      if (this.stopping) return; // SIGTERM reached the config child too
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
    clearTimeout(this.tickTimer);
    clearTimeout(this.dueTimer);
    await this.fleetWatch.stop();
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
