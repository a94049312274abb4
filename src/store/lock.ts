// One lock for the whole agent (docs/architecture.md): the daemon takes it per unit of
// work, the CLI per command. The lock file appears with its whole content at
// once (written to a private temp file, then hard-linked into place, which
// fails atomically if it exists). It names its holder by PID, process start
// time and boot id (holder.ts); a lock whose holder is gone is stale and
// taken over, by exactly one of the processes that find it so
// (docs/architecture.md, "Security model").
import { link, open, readFile, rm, unlink } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { LockHeldError } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import { judgeHolder, localHost, looksLikeMxcertRun, processFacts, provenHolder, readCmdline, selfRecord, type HolderRecord } from './holder.js';

export interface AgentLock {
  release(): Promise<void>;
}

/** Who holds it, as reported in LockHeldError. */
type Held = HolderRecord & { note?: string };

const GARBLED_STALE_MS = 10_000;
/** A taker killed while taking over leaves a stale claim, taken over the same way; deeper nesting means something else is wrong. */
const MAX_CLAIM_DEPTH = 3;

/** Create `file` (never an existing one), write `content` and fsync it. */
async function writeNew(file: string, content: string): Promise<void> {
  const fh = await open(file, 'wx', 0o600);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Make `file` appear with all of `content`, unless it exists (false). */
async function createWhole(file: string, content: string): Promise<boolean> {
  // Why not open(file, 'wx') and then write: a process killed between the
  // two left an empty lock that read as "being created" for ever, and every
  // later run failed with "lock held" (seen with kill -9 during a rollover).
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeNew(temp, content);
    try {
      await link(temp, file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      // A filesystem without hard links: exclusive create, then write.
      await writeNew(file, content);
    }
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

/** One lock file as found: content, inode and mtime read through one descriptor. */
interface Seen {
  raw: Buffer;
  ino: number;
  mtimeMs: number;
}

async function readSeen(file: string): Promise<Seen | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const st = await fh.stat();
    return { raw: await fh.readFile(), ino: st.ino, mtimeMs: st.mtimeMs };
  } finally {
    await fh.close();
  }
}

function sameFile(a: Seen, b: Seen): boolean {
  return a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.raw.equals(b.raw);
}

function parseHolder(raw: Buffer): HolderRecord | undefined {
  try {
    const h = JSON.parse(raw.toString('utf8')) as HolderRecord;
    return h && typeof h === 'object' && Number.isInteger(h.pid) && h.pid > 0 && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** The holder if the lock is held (or from another host); undefined if it is stale. */
async function judge(seen: Seen, clock: Clock): Promise<Held | undefined> {
  const holder = parseHolder(seen.raw);
  if (!holder) {
    // Unreadable content cannot come from this code (the file appears
    // whole); a lock emptied or garbled by a crash of an older version or a
    // full disk is stale once it has not changed for a while.
    if (clock.now().getTime() - seen.mtimeMs > GARBLED_STALE_MS) return undefined;
    return { pid: 0, host: '?', since: '?', command: '(unreadable lock file)' };
  }
  const here = await localHost();
  // Process ages are real time, so the lock's age is too (not the injected clock).
  const verdict = judgeHolder(holder, here, await processFacts(holder.pid), Date.now() - seen.mtimeMs);
  if (verdict === 'stale') return undefined;
  if (verdict === 'foreign') {
    return { ...holder, note: 'held on another host; mxcert never takes over a lock from another host: remove the file by hand once no mxcert runs there' };
  }
  return holder;
}

/**
 * Remove the stale lock `seen`, if it is still there, so that exactly one
 * of the processes that judged it stale does so. Unlinking by path after a
 * check is not atomic: a slower taker would remove the lock a faster one had
 * just created, and both would hold it. So the removal happens under a claim
 * file named after this very lock file's content (unique: it holds a random
 * nonce), taken with this same algorithm; whoever holds the claim checks
 * that the lock is still the one judged, then unlinks it. Nobody else
 * removes that file meanwhile: its holder is gone and other takers wait for
 * the claim. A claim left by a taker killed half-way is stale in turn.
 * Returns false if another process holds the claim.
 */
async function removeStale(file: string, seen: Seen, clock: Clock, depth: number): Promise<boolean> {
  const claim = `${file}.${createHash('sha256').update(seen.raw).digest('hex').slice(0, 16)}.takeover`;
  const c = await tryAcquire(claim, 'takeover', clock, depth + 1);
  if (!('release' in c)) return false;
  try {
    const now = await readSeen(file);
    if (now && sameFile(now, seen)) await unlink(file).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
  } finally {
    await c.release();
  }
  return true;
}

async function tryAcquire(file: string, command: string, clock: Clock, depth = 0): Promise<AgentLock | Held> {
  for (;;) {
    const me = await selfRecord(command, clock.now(), randomBytes(12).toString('hex'));
    const content = JSON.stringify(me) + '\n';
    if (await createWhole(file, content)) return handle(file, content);
    const seen = await readSeen(file);
    if (!seen) continue; // released meanwhile
    const holder = await judge(seen, clock);
    if (holder) return holder;
    const stale = parseHolder(seen.raw) ?? { pid: 0, host: '?', since: '?', command: '(unreadable lock file)' };
    if (depth >= MAX_CLAIM_DEPTH) return { ...stale, note: `stale, but its takeover claims are stale too (${path.basename(file)}.*.takeover)` };
    if (!(await removeStale(file, seen, clock, depth))) return { ...stale, note: 'stale, being taken over by another process' };
  }
}

function handle(file: string, content: string): AgentLock {
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      // Only our own lock: one that is not ours was never ours to remove.
      const now = await readFile(file, 'utf8').catch(() => undefined);
      if (now === content) await rm(file, { force: true });
    },
  };
}

function describeHolder(h: Held, file: string): string {
  return `pid ${h.pid} on ${h.host}, running "${h.command}" since ${h.since}${h.note ? ` (${h.note})` : ''}; lock file ${file}`;
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
    if (clock.now().getTime() >= deadline) throw new LockHeldError(describeHolder(r, file));
    await clock.sleep(interval);
    interval = Math.min(interval * 2, 1000);
  }
}

/**
 * The running daemon on this host (from `daemon.lock`), so a CLI command
 * that changed the state (`mxcert rollover`) can ask it to re-plan with
 * SIGUSR1. Only a process proven to be that daemon is returned: the PID,
 * start time and boot id recorded in the lock match, and its command line
 * is `node …mxcert… run`. A signal sent on a PID alone reaches whatever
 * process has that number now (SIGUSR1 kills most programs).
 */
export async function runningDaemon(stateDir: string): Promise<{ pid: number } | { none: string }> {
  const file = path.join(stateDir, 'daemon.lock');
  const raw = await readFile(file).catch(() => undefined);
  if (!raw) return { none: `no ${file}` };
  const holder = parseHolder(raw);
  if (!holder) return { none: `${file} is unreadable` };
  if (holder.host !== (await localHost()).host) return { none: `${file} was written on ${holder.host}` };
  if (holder.pid <= 1 || holder.pid === process.pid) return { none: `${file} names pid ${holder.pid}` };
  if (!(await provenHolder(holder))) return { none: `pid ${holder.pid} from ${file} is not the process that took it (gone, restarted, another boot, or no /proc to tell)` };
  const argv = await readCmdline(holder.pid);
  if (!looksLikeMxcertRun(argv)) return { none: `pid ${holder.pid} from ${file} is not "mxcert run" (${JSON.stringify(argv.join(' ').slice(0, 200))})` };
  return { pid: holder.pid };
}
