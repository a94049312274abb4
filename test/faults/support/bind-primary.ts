// Stop the sandbox's BIND primary and start it again on the same port with
// the same config and zone files (its journal keeps every dynamic update, as
// after a real restart). test/env/bind.ts only restarts the secondary.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { NAMED_BIN, querySoa, type BindEnv } from '../../env/bind.js';
import { logTail, pidAlive, pollUntil, startDaemon, stopPid, type Daemon } from '../../env/proc.js';

export interface PrimaryControl {
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops a primary this helper started (the sandbox stops the original one). */
  dispose(): Promise<void>;
}

/** The parent PID of a process, from /proc (undefined if it is gone). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

export async function primaryControl(bind: BindEnv): Promise<PrimaryControl> {
  const dir = path.join(bind.dir, 'primary');
  const conf = path.join(dir, 'named.conf');
  const pidFile = path.join(dir, 'named.pid');
  const logPath = path.join(dir, 'named.log');
  let restarted: Daemon | undefined;

  return {
    async stop() {
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      // Only a named this test process started (directly or through test/env/bind.ts).
      if (parentOf(pid) !== process.pid) throw new Error(`named.pid ${pid} is not a child of this test process`);
      await stopPid(pid);
      await pollUntil(async () => (pidAlive(pid) ? undefined : true), { deadlineMs: 10_000, what: `named ${pid} to exit` });
    },
    async start() {
      const d = startDaemon({ name: 'named-primary (restarted)', command: NAMED_BIN, args: ['-g', '-c', conf], cwd: dir, logPath });
      restarted = d;
      await pollUntil(
        async () => {
          if (d.hasExited()) throw new Error('named exited');
          const soa = await querySoa(bind.primary, bind.zone);
          return soa.authoritative && soa.signed ? true : undefined;
        },
        { deadlineMs: 20_000, what: 'the restarted BIND primary to serve the zone', detail: () => logTail(logPath) },
      );
    },
    async dispose() {
      if (restarted && !restarted.hasExited()) await stopPid(restarted.pid);
    },
  };
}
