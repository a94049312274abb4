// Runs one hook (DESIGN §4): an executable with an argv, never a shell, so a
// path or argument with spaces or `;` reaches the hook literally.
import { HookError } from '../errors.js';
import type { Logger } from '../log.js';
import { HOOK_VARIABLES } from './environment.js';
import { assertTrustedHook } from './trusted-hook.js';

export interface RunHookOptions {
  env: Record<string, string>;
  timeoutMs: number;
  logger: Logger;
  /** After the timeout's SIGTERM, how long before SIGKILL. */
  killGraceMs?: number;
}

export interface HookResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_KILL_GRACE_MS = 5000;

function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !HOOK_VARIABLES.includes(k)) env[k] = v;
  }
  return env;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? '';
}

/**
 * Run `argv` with the hook environment on top of mxcert's own. Output lines
 * are logged as they arrive. Resolves only when the hook exits 0; otherwise
 * throws HookError with the exit code or `timedOut`.
 */
export async function runHook(argv: string[], opts: RunHookOptions): Promise<HookResult> {
  const [file, ...args] = argv;
  if (!file) throw new HookError('hook command is empty', {});
  await assertTrustedHook(file);
  const grace = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const log = opts.logger.child({ hook: file });
  const logLines = (stream: 'stdout' | 'stderr') =>
    function* (line: unknown) {
      log.info({ stream }, String(line));
      yield line;
    };

  log.debug({ args }, 'running hook');
  // Loaded on first use: execa costs ~70 ms of start-up to every command otherwise.
  const { execa } = await import('execa');
  const subprocess = execa(file, args, {
    shell: false,
    env: { ...inheritedEnv(), ...opts.env },
    extendEnv: false,
    stdin: 'ignore',
    stdout: ['pipe', logLines('stdout')],
    stderr: ['pipe', logLines('stderr')],
    timeout: opts.timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: grace,
    reject: false,
    // Own process group: a shell hook's children (sleep, a stuck `systemctl`)
    // would otherwise survive the timeout holding our stdout pipe, and the
    // wait would last as long as they do.
    detached: true,
  });
  const pid = subprocess.pid;
  const termTimer = setTimeout(() => killGroup(pid, 'SIGTERM'), opts.timeoutMs);
  const killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), opts.timeoutMs + grace);
  let result;
  try {
    result = await subprocess;
  } finally {
    clearTimeout(termTimer);
    clearTimeout(killTimer);
  }

  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  if (result.timedOut) {
    throw new HookError(`hook ${file} timed out after ${opts.timeoutMs} ms`, { timedOut: true }, { cause: result });
  }
  const spawnCode = (result.cause as NodeJS.ErrnoException | undefined)?.code;
  if (result.exitCode === undefined && spawnCode) {
    const why =
      spawnCode === 'ENOENT' ? 'does not exist (or its interpreter does not)' :
      spawnCode === 'EACCES' ? 'is not executable' :
      `could not be started (${spawnCode})`;
    throw new HookError(`hook ${file} ${why}`, {}, { cause: result.cause });
  }
  if (result.exitCode !== 0) {
    const detail = lastLine(stderr) || lastLine(stdout);
    const how = result.exitCode !== undefined ? `exited with code ${result.exitCode}` : `was killed by ${result.signal ?? 'a signal'}`;
    throw new HookError(`hook ${file} ${how}${detail ? `: ${detail}` : ''}`, { exitCode: result.exitCode }, { cause: result });
  }
  log.debug('hook succeeded');
  return { exitCode: 0, stdout, stderr };
}
