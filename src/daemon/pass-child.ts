// One daemon pass in a child process (idle memory: docs/architecture.md, "The daemon and its children"). The
// daemon between passes holds only its schedule, config and timers; the ACME
// client, X.509 parsing and a pass's garbage live here and are returned to
// the system when this process exits.
//
// Protocol (IPC, advanced serialization so Dates survive):
//   parent → child: { type: 'pass', config, level, lockWaitMs, secrets }
//                   then, maybe, { type: 'abort' } or { type: 'deadline' }
//   child → parent: { type: 'done', outcomes, …next } | { type: 'error', error, …next }
// or, for a pass the parent had to stop (passTimeout) or that died:
//   parent → child: { type: 'failure', config, level, error, secrets }
//   child → parent: { type: 'notified' }   (after running every failure hook)
// where `next` tells the daemon when to wake: the earliest due instant
// (wakeAt) and the next cron tick (nextTickAt), both computed here after the
// pass, so the idle daemon holds neither the store and planning code nor
// node-cron. `secrets` holds the values of the variables the config's `*Env`
// settings name; this process's environment does not (child-env.ts). On
// 'deadline' the pass stops after its current step and every running hook is
// ended (passTimeout, docs/architecture.md "Security model").
// The child takes the agent lock itself, under its own pid: if the daemon
// dies (kill -9), the lock still names a live process until this pass ends,
// and the lost IPC channel makes the pass stop after its current unit.
import type { Config } from '../config/schema.js';
import { readSecretsFrom } from '../config/load.js';
import { describeError } from '../errors.js';
import { secretEnvNames, withholdFromHooks } from '../hooks/environment.js';
import { stopHooks } from '../hooks/run-hook.js';
import { createLogger, type Logger } from '../log.js';
import { systemClock } from '../clock.js';
import { acquireLock } from '../store/lock.js';
import { renewAll, runPassFailureHooks, type UnitOutcome } from '../renew/orchestrator.js';
import { buildRenewDeps } from '../renew/deps.js';
import { warnAboutAgingCertificates } from '../notify/expiry-warning.js';
import { StateStore } from '../store/state-store.js';
import { nextTick, scheduleOf } from '../schedule/cron-tick.js';
import { nextWake as nextDue } from './wake.js';
import { announceWait } from '../util/announce-wait.js';
import { lockHolder } from '../store/lock-holder.js';

export interface PassRequest {
  type: 'pass';
  config: Config;
  level: string;
  lockWaitMs: number;
  /** Values of the variables that `*Env` settings name. */
  secrets: Record<string, string>;
}
export interface FailureRequest {
  type: 'failure';
  config: Config;
  level: string;
  /** Why the pass failed, for MXCERT_ERROR. */
  error: string;
  secrets: Record<string, string>;
}
export interface FailureReply {
  type: 'notified';
}
/** When the daemon should wake next (ms since the epoch); absent if it could not be worked out. */
export interface NextWake {
  /** Earliest instant a renewal, ARI poll or DANE step is due; null if nothing ever is. */
  wakeAt?: number | null;
  /** What is due at wakeAt, for the daemon's log (`mx1 (ecdsa-p256): renewal (ari-window)`). */
  wakeWhy?: string;
  /** The next tick of the config's cron schedule. */
  nextTickAt?: number;
}
export type PassReply = ({ type: 'done'; outcomes: UnitOutcome[] } | { type: 'error'; error: string }) & NextWake;

const abort = new AbortController();
const stop = () => abort.abort();
// SIGTERM reaches the whole service (systemd's control group): finish the current step, like the daemon.
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);

async function runPass(req: PassRequest): Promise<PassReply> {
  const log = createLogger({ level: req.level });
  const reply = await pass(req, log);
  return { ...reply, ...(await nextWake(req.config, log)) };
}

async function nextWake(config: Config, log: Logger): Promise<NextWake> {
  const next: NextWake = {};
  try {
    next.nextTickAt = nextTick(scheduleOf(config)).getTime();
    const due = await nextDue(config, new StateStore(config.stateDir), systemClock.now());
    next.wakeAt = due?.at ?? null;
    if (due) next.wakeWhy = due.why;
  } catch (err) {
    // The daemon falls back to its backoff timer; the next pass tries again.
    log.error({ err: describeError(err) }, 'cannot work out the next wake-up');
  }
  return next;
}

async function pass(req: PassRequest, log: Logger): Promise<PassReply> {
  const { config } = req;
  let lock;
  try {
    const stopAnnouncing = announceWait(log, () => `the state lock (${lockHolder(config.stateDir)})`, Date.now() + req.lockWaitMs);
    lock = await acquireLock(config.stateDir, { command: 'run', waitMs: req.lockWaitMs }).finally(stopAnnouncing);
    const { deps, close } = await buildRenewDeps(config, log, systemClock);
    let outcomes: UnitOutcome[];
    try {
      outcomes = await renewAll(deps, { force: false, dryRun: false, signal: abort.signal });
    } finally {
      await close();
    }
    if (!abort.signal.aborted) await warnAboutAgingCertificates(config, deps.store, systemClock.now(), log);
    return { type: 'done', outcomes };
  } catch (err) {
    // Tell the postmaster (failure hooks): every certificate's attempt failed.
    if (!abort.signal.aborted) await runPassFailureHooks(config, err, log);
    return { type: 'error', error: describeError(err) };
  } finally {
    await lock?.release();
  }
}

async function notify(req: FailureRequest): Promise<FailureReply> {
  await runPassFailureHooks(req.config, new Error(req.error), createLogger({ level: req.level }));
  return { type: 'notified' };
}

process.once('message', (msg: PassRequest | FailureRequest) => {
  readSecretsFrom(msg.secrets);
  withholdFromHooks([...secretEnvNames(msg.config), ...Object.keys(msg.secrets)]);
  const work: Promise<PassReply | FailureReply> = msg.type === 'failure' ? notify(msg) : runPass(msg);
  void work.then(
    (reply) => {
      if (process.connected) process.send?.(reply, () => process.exit(0));
      else process.exit(0);
    },
    () => process.exit(1),
  );
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'abort') stop();
    if (m?.type === 'deadline') {
      stop();
      stopHooks();
    }
  });
});
