// One lock for the whole agent (DESIGN §1): the daemon takes it per unit of
// work, the CLI per command. O_EXCL creation is atomic on local filesystems;
// a lock left by a dead process on this host is stale and taken over.
import { open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LockHeldError } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';

interface LockInfo {
  pid: number;
  host: string;
  since: string;
  command: string;
}

export interface AgentLock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function tryAcquire(file: string, command: string, clock: Clock): Promise<AgentLock | LockInfo> {
  const info: LockInfo = { pid: process.pid, host: os.hostname(), since: clock.now().toISOString(), command };
  try {
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(info) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    let released = false;
    return {
      async release() {
        if (released) return;
        released = true;
        await rm(file, { force: true });
      },
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let holder: LockInfo;
  try {
    holder = JSON.parse(await readFile(file, 'utf8')) as LockInfo;
  } catch {
    // Half-written by a holder that is creating it right now; report as held.
    return { pid: 0, host: '?', since: '?', command: '(being created)' };
  }
  if (holder.host === os.hostname() && !alive(holder.pid)) {
    // Stale: its process is gone. Remove and let the caller retry.
    await rm(file, { force: true });
    return tryAcquire(file, command, clock);
  }
  return holder;
}

/** Take the agent lock, waiting up to `waitMs` for a holder to finish; else LockHeldError. */
export async function acquireLock(
  stateDir: string,
  opts: { command: string; waitMs?: number; clock?: Clock; file?: string },
): Promise<AgentLock> {
  const clock = opts.clock ?? systemClock;
  // `lock` serialises units of work; `daemon.lock` (held for the daemon's
  // lifetime) only keeps a second daemon from starting.
  const file = path.join(stateDir, opts.file ?? 'lock');
  const deadline = clock.now().getTime() + (opts.waitMs ?? 0);
  let interval = 50;
  for (;;) {
    const r = await tryAcquire(file, opts.command, clock);
    if ('release' in r) return r;
    if (clock.now().getTime() >= deadline) {
      throw new LockHeldError(`pid ${r.pid} on ${r.host}, running "${r.command}" since ${r.since}; lock file ${file}`);
    }
    await clock.sleep(interval);
    interval = Math.min(interval * 2, 1000);
  }
}

/**
 * The running daemon on this host (from `daemon.lock`), if any: its pid, so
 * a CLI command that changed the state (`mxcert rollover`) can ask it to
 * re-plan with SIGUSR1 instead of leaving the change to its next tick.
 */
export async function runningDaemonPid(stateDir: string): Promise<number | undefined> {
  try {
    const holder = JSON.parse(await readFile(path.join(stateDir, 'daemon.lock'), 'utf8')) as LockInfo;
    if (holder.host !== os.hostname() || !Number.isInteger(holder.pid) || holder.pid <= 1 || holder.pid === process.pid) return undefined;
    return alive(holder.pid) ? holder.pid : undefined;
  } catch {
    return undefined;
  }
}
