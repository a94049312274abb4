// Runs one hook (docs/architecture.md, "The pipeline"): an executable with an argv, never a shell, so a
// path or argument with spaces or `;` reaches the hook literally.
//
// The hook's fate is decided by its exit, not by the end of its output: a
// hook may leave a child behind (a daemon it restarted, `setsid cmd &`) that
// still holds the pipes, and waiting for their end-of-file would last as long
// as that child does. After the exit the output is read a short while longer,
// then the pipes are closed (docs/architecture.md, "Security model").
import type { ResultPromise } from 'execa';
import { HookError } from '../errors.js';
import type { Logger } from '../log.js';
import { hookProcessEnv } from './environment.js';
import { errorTail, OutputTail } from './output-tail.js';
import { assertTrustedHook } from './trusted-hook.js';

export interface RunHookOptions {
  /** mxcert's variables for this run (hookEnvironment); they win over `configEnv`. */
  env: Record<string, string>;
  /** What the hook's config passes explicitly (hooks.env, dane.publisher.env). */
  configEnv?: Record<string, string>;
  timeoutMs: number;
  logger: Logger;
  /** After the timeout's SIGTERM, how long before SIGKILL. */
  killGraceMs?: number;
  /** After the hook has exited, how long its output is still read. */
  outputGraceMs?: number;
}

export interface HookResult {
  exitCode: number;
  /** The end of the output (the last 64 KiB of each stream). */
  stdout: string;
  stderr: string;
}

const DEFAULT_KILL_GRACE_MS = 5000;
const DEFAULT_OUTPUT_GRACE_MS = 500;
const RESULT_TAIL_BYTES = 64 * 1024;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

type Outcome = { exit: Exit | undefined; ended: 'timeout' | 'stopped' | undefined; result: Awaited<ResultPromise> };

/** Hooks running now, by pid, with what ends each (for stopHooks). */
const running = new Map<number, () => void>();
let stopping = false;

/**
 * Ends every hook this process runs and refuses new ones: the daemon's pass
 * ran out of time (src/daemon/pass-child.ts). Each hook's process group gets
 * SIGTERM, then SIGKILL after its grace, like a timeout.
 */
export function stopHooks(): void {
  stopping = true;
  for (const end of running.values()) end();
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Run `argv` in a clean environment (hookProcessEnv). Output lines are
 * logged at debug level as they arrive; an error carries only the path, how
 * the hook ended and a short tail of its output. Resolves only when the hook
 * exits 0; otherwise throws HookError with the exit code or `timedOut`.
 */
export async function runHook(argv: string[], opts: RunHookOptions): Promise<HookResult> {
  const [file, ...args] = argv;
  if (!file) throw new HookError('hook command is empty', {});
  if (stopping) throw new HookError(`hook ${file} not started: this pass is being stopped`, {});
  await assertTrustedHook(file);
  const log = opts.logger.child({ hook: file });
  const out = { stdout: new OutputTail(RESULT_TAIL_BYTES), stderr: new OutputTail(RESULT_TAIL_BYTES) };
  const collect = (stream: 'stdout' | 'stderr') =>
    function* (line: unknown) {
      out[stream].push(String(line));
      log.debug({ stream }, String(line));
    };

  log.debug({ args }, 'running hook');
  // Loaded on first use: execa costs ~70 ms of start-up to every command otherwise.
  const { execa } = await import('execa');
  const subprocess = execa(file, args, {
    shell: false,
    env: hookProcessEnv(opts.env, opts.configEnv),
    extendEnv: false,
    stdin: 'ignore',
    stdout: ['pipe', collect('stdout')],
    stderr: ['pipe', collect('stderr')],
    // The tails above are all that is kept.
    buffer: false,
    reject: false,
    // Own process group: a shell hook's children (sleep, a stuck `systemctl`)
    // are killed with it on timeout.
    detached: true,
  });
  const { exit, ended, result } = await supervise(subprocess, opts);

  const tail = errorTail(out.stderr, 'stderr') || errorTail(out.stdout, 'stdout');
  const detail = tail ? `: ${tail}` : '';
  if (ended === 'timeout') {
    throw new HookError(`hook ${file} timed out after ${opts.timeoutMs} ms${detail}`, { timedOut: true }, { cause: result });
  }
  if (ended === 'stopped') throw new HookError(`hook ${file} was stopped with its pass${detail}`, {}, { cause: result });
  if (!exit) {
    const spawnCode = (result.cause as NodeJS.ErrnoException | undefined)?.code;
    const why =
      spawnCode === 'ENOENT' ? 'does not exist (or its interpreter does not)' :
      spawnCode === 'EACCES' ? 'is not executable' :
      `could not be started (${spawnCode ?? 'no exit status'})`;
    throw new HookError(`hook ${file} ${why}`, {}, { cause: result });
  }
  if (exit.code !== 0) {
    const how = exit.code !== null ? `exited with code ${exit.code}` : `was killed by ${exit.signal ?? 'a signal'}`;
    throw new HookError(`hook ${file} ${how}${detail}`, { exitCode: exit.code ?? undefined, signal: exit.signal ?? undefined }, { cause: result });
  }
  log.debug('hook succeeded');
  return { exitCode: 0, stdout: out.stdout.text(), stderr: out.stderr.text() };
}

/**
 * Waits for the hook's exit, enforcing the timeout on its process group, and
 * for its output until `outputGraceMs` after the exit. A hook that was
 * terminated (timeout, stopHooks) has what is left of its group killed when
 * it exits; one that exited by itself keeps its children.
 */
async function supervise(subprocess: ResultPromise, opts: RunHookOptions): Promise<Outcome> {
  const pid = subprocess.pid;
  const grace = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  let exit: Exit | undefined;
  let ended: Outcome['ended'];
  let killTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  const terminate = (why: 'timeout' | 'stopped') => {
    if (ended || exit) return;
    ended = why;
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), grace);
  };
  const termTimer = setTimeout(() => terminate('timeout'), opts.timeoutMs);
  if (pid !== undefined) running.set(pid, () => terminate('stopped'));
  subprocess.once('exit', (code, signal) => {
    exit = { code, signal };
    clearTimeout(termTimer);
    clearTimeout(killTimer);
    if (pid !== undefined) running.delete(pid);
    if (ended) killGroup(pid, 'SIGKILL');
    drainTimer = setTimeout(() => {
      subprocess.stdout?.destroy();
      subprocess.stderr?.destroy();
    }, opts.outputGraceMs ?? DEFAULT_OUTPUT_GRACE_MS);
  });
  try {
    const result = await subprocess;
    return { exit, ended, result };
  } finally {
    clearTimeout(termTimer);
    clearTimeout(killTimer);
    clearTimeout(drainTimer);
    if (pid !== undefined) running.delete(pid);
  }
}
