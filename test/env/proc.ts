// Process helpers for the real-server test environment: start daemons with
// their output in a log file, wait for them by polling with deadlines (never
// fixed sleeps), stop them by PID, and make sure none outlives the test
// process even when a test throws or forgets to call stop().

import { spawn, execFile } from 'node:child_process';
import { openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';

/** PIDs of servers we started; killed on process exit if still alive. */
const tracked = new Map<number, string>();
/** Synchronous extra cleanups, run on exit. */
const exitHooks = new Set<() => void>();
/** Server temp dirs, removed on exit (after the servers are gone). */
const tempDirs = new Set<string>();
let hooksInstalled = false;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM means it exists but belongs to someone else; still "alive".
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // Daemons that fork themselves (postfix master) are reparented to PID 1;
  // in containers PID 1 may reap late or never, and kill(pid, 0) succeeds on
  // a zombie. A zombie has finished running, so count it as gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Blocks the thread briefly; only used inside the synchronous 'exit' handler. */
function blockMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function cleanupAllSync(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // Best effort: one failing hook must not keep other servers alive.
    }
  }
  exitHooks.clear();
  const pids = [...tracked.keys()];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  // 'exit' handlers cannot await, so poll synchronously for a short while and
  // escalate to SIGKILL for anything that ignores SIGTERM.
  const deadline = Date.now() + 3000;
  while (pids.some(isAlive) && Date.now() < deadline) blockMs(20);
  for (const pid of pids) {
    if (isAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // raced with its exit
      }
    }
  }
  tracked.clear();
  if (!process.env.KEEP_TEST_ENV) {
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  }
  tempDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAllSync);
  // 'exit' does not fire when a signal kills us, so turn the usual termination
  // signals into an orderly exit (the test runner sends SIGTERM on timeout).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanupAllSync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** Remember a PID (e.g. a daemon that forked itself) for exit cleanup. */
export function trackPid(pid: number, name: string): void {
  installHooks();
  tracked.set(pid, name);
}

export function untrackPid(pid: number): void {
  tracked.delete(pid);
}

/**
 * Lets every server started so far outlive this process and keeps their temp
 * dirs: for a sandbox run with --keep. Servers started afterwards are tracked
 * again as usual.
 */
export function keepServersRunning(): { servers: Array<{ pid: number; name: string }>; tempDirs: string[] } {
  const kept = { servers: [...tracked].map(([pid, name]) => ({ pid, name })), tempDirs: [...tempDirs] };
  tracked.clear();
  exitHooks.clear();
  tempDirs.clear();
  return kept;
}

/**
 * When `pid` started, in clock ticks after boot (field 22 of /proc/PID/stat),
 * or undefined if no such process runs. With the pid, it names one process:
 * a pid reused by another program has another start time.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Register a synchronous cleanup that runs on exit; returns an unregister function. */
export function onExitSync(hook: () => void): () => void {
  installHooks();
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

/**
 * Registers a server's temp dir for removal at process exit, so a test that
 * never reaches stop() leaves nothing behind. KEEP_TEST_ENV=1 keeps the dirs
 * (and their logs) for post-mortems.
 */
export function registerTempDir(dir: string): void {
  installHooks();
  tempDirs.add(dir);
}

/** Removes a registered temp dir now (honouring KEEP_TEST_ENV). */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  if (!process.env.KEEP_TEST_ENV) await rm(dir, { recursive: true, force: true });
}

/** The last `lines` lines of a log file, or a note if it cannot be read. */
export function logTail(path: string, lines = 40): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read ${path}: ${(err as Error).message})`;
  }
}

export interface Daemon {
  pid: number;
  logPath: string;
  /** Resolves with the exit code/signal once the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
}

export interface StartDaemonOptions {
  name: string;
  command: string;
  args: string[];
  /** Working directory (usually the server's temp dir). */
  cwd: string;
  /** stdout and stderr are appended here. */
  logPath: string;
  env?: NodeJS.ProcessEnv;
  /** Own process group; survives a terminal ^C to the test runner. */
  detached?: boolean;
}

/**
 * Spawns a long-running server with stdout/stderr going to a file (not pipes:
 * an unread pipe fills up and blocks the server). The child is unref'd so it
 * never keeps the test process alive; the exit hook kills it instead.
 */
export function startDaemon(opts: StartDaemonOptions): Daemon {
  const fd = openSync(opts.logPath, 'a');
  let child;
  try {
    child = spawn(opts.command, opts.args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: opts.detached ?? false,
    });
  } finally {
    // The child holds its own copy of the descriptor.
    closeSync(fd);
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  child.unref();
  if (child.pid === undefined) {
    throw new Error(`${opts.name}: failed to spawn ${opts.command}\n${logTail(opts.logPath)}`);
  }
  trackPid(child.pid, opts.name);
  void exited.then(() => untrackPid(child.pid!));
  return { pid: child.pid, logPath: opts.logPath, exited, hasExited: () => done };
}

export interface PollOptions {
  /** Total time allowed, in ms. */
  deadlineMs: number;
  /** Pause between attempts, in ms. */
  intervalMs?: number;
  /** Used in the timeout error. */
  what: string;
  /** Extra detail appended to the timeout error (e.g. a log tail). */
  detail?: () => string;
}

/**
 * Calls `attempt` until it returns a value other than undefined, or throws
 * once the deadline passes. Errors from `attempt` count as "not yet" and the
 * last one is reported on timeout.
 */
export async function pollUntil<T>(
  attempt: () => Promise<T | undefined> | T | undefined,
  opts: PollOptions,
): Promise<T> {
  const deadline = Date.now() + opts.deadlineMs;
  const interval = opts.intervalMs ?? 50;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      const detail = opts.detail ? `\n${opts.detail()}` : '';
      throw new Error(`timed out after ${opts.deadlineMs} ms waiting for ${opts.what}${why}${detail}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitForTcpPort(host: string, port: number, deadlineMs: number): Promise<void> {
  await pollUntil(
    () =>
      new Promise<true>((resolve, reject) => {
        const sock = net.connect({ host, port });
        sock.setTimeout(1000);
        sock.once('connect', () => {
          sock.destroy();
          resolve(true);
        });
        sock.once('timeout', () => {
          sock.destroy();
          reject(new Error('connect timeout'));
        });
        sock.once('error', (err) => {
          sock.destroy();
          reject(err);
        });
      }),
    { deadlineMs, what: `TCP ${host}:${port}` },
  );
}

/** SIGTERM, wait until gone, SIGKILL after the deadline. No-op if already gone. */
export async function stopPid(pid: number, deadlineMs = 5000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    untrackPid(pid);
    return;
  }
  try {
    await pollUntil(() => (isAlive(pid) ? undefined : true), {
      deadlineMs,
      intervalMs: 20,
      what: `PID ${pid} to exit`,
    });
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited between the check and the kill
    }
    await pollUntil(() => (isAlive(pid) ? undefined : true), {
      deadlineMs: 2000,
      intervalMs: 20,
      what: `PID ${pid} to die after SIGKILL`,
    });
  }
  untrackPid(pid);
}

/** Whether a process with this PID currently exists. */
export function pidAlive(pid: number): boolean {
  return isAlive(pid);
}

/**
 * A port that was free a moment ago (bind to port 0, read it, close). Another
 * process could take it before the server binds, which is acceptable for tests.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * Runs a short command to completion. Throws (with its output) on a non-zero
 * exit unless `allowFailure` is set.
 */
export function run(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; allowFailure?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        if (err && !opts.allowFailure) {
          reject(
            new Error(`${command} ${args.join(' ')} failed (${err.message.split('\n')[0]})\n${stdout}${stderr}`),
          );
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    // Always close stdin: tools like nsupdate otherwise wait for more input.
    // A command that exits at once (or refuses its input) closes the pipe
    // before we write: that EPIPE is not an error of the test.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}
