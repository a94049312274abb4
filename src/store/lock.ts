// One lock for the whole agent (DESIGN §1): the daemon takes it per unit of
// work, the CLI per command. The lock file appears with its whole content at
// once (written to a private temp file, then hard-linked into place, which
// fails atomically if it exists); a lock left by a dead process on this host
// is stale and taken over.
import { link, open, readFile, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
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

const GARBLED_STALE_MS = 10_000;

/** Create `file` (never an existing one), write the lock info and fsync it. */
async function writeNew(file: string, info: LockInfo): Promise<void> {
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(info) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function tryAcquire(file: string, command: string, clock: Clock): Promise<AgentLock | LockInfo> {
  const info: LockInfo = { pid: process.pid, host: os.hostname(), since: clock.now().toISOString(), command };
  // Why not open(file, 'wx') and then write: a process killed between the
  // two left an empty lock that read as "being created" for ever, and every
  // later run failed with "lock held" (seen with kill -9 during a rollover).
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeNew(temp, info);
    try {
      await link(temp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A filesystem without hard links: exclusive create, then write.
      await writeNew(file, info);
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
  } finally {
    await rm(temp, { force: true });
  }
  let holder: LockInfo;
  try {
    holder = JSON.parse(await readFile(file, 'utf8')) as LockInfo;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return tryAcquire(file, command, clock);
    // Unreadable content cannot come from this code any more (the file
    // appears whole); a lock file emptied or garbled by a crash of an older
    // version or a full disk is stale once it has not changed for a while.
    const age = await stat(file).then((st) => clock.now().getTime() - st.mtimeMs, () => 0);
    if (age > GARBLED_STALE_MS) {
      await rm(file, { force: true });
      return tryAcquire(file, command, clock);
    }
    return { pid: 0, host: '?', since: '?', command: '(unreadable lock file)' };
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
