// One daemon pass in a child process (issue 6: idle RSS ≤ 60 MiB). The
// daemon between passes holds only its schedule, config and timers; the ACME
// client, X.509 parsing and a pass's garbage live here and are returned to
// the system when this process exits.
//
// Protocol (IPC, advanced serialization so Dates survive):
//   parent → child: { type: 'pass', config, level, lockWaitMs } then, maybe, { type: 'abort' }
//   child → parent: { type: 'done', outcomes } | { type: 'error', error }
// The child takes the agent lock itself, under its own pid: if the daemon
// dies (kill -9), the lock still names a live process until this pass ends,
// and the lost IPC channel makes the pass stop after its current unit.
import type { Config } from '../config/schema.js';
import { describeError } from '../errors.js';
import { createLogger } from '../log.js';
import { systemClock } from '../clock.js';
import { acquireLock } from '../store/lock.js';
import { renewAll, runPassFailureHooks, type UnitOutcome } from '../renew/orchestrator.js';
import { buildRenewDeps } from '../renew/deps.js';
import { warnAboutAgingCertificates } from '../notify/expiry-warning.js';

export interface PassRequest {
  type: 'pass';
  config: Config;
  level: string;
  lockWaitMs: number;
}
export type PassReply = { type: 'done'; outcomes: UnitOutcome[] } | { type: 'error'; error: string };

const abort = new AbortController();
const stop = () => abort.abort();
// SIGTERM reaches the whole service (systemd's control group): finish the current step, like the daemon.
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);

async function runPass(req: PassRequest): Promise<PassReply> {
  const log = createLogger({ level: req.level });
  const { config } = req;
  let lock;
  try {
    lock = await acquireLock(config.stateDir, { command: 'run', waitMs: req.lockWaitMs });
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

process.once('message', (msg: PassRequest) => {
  void runPass(msg).then(
    (reply) => {
      if (process.connected) process.send?.(reply, () => process.exit(0));
      else process.exit(0);
    },
    () => process.exit(1),
  );
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'abort') stop();
  });
});
