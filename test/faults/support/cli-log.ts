// Every mxcert run of a fault test file goes through here: at debug log level,
// with stdout and stderr kept, so the file can end by checking that no line
// any run printed contains a secret (the TSIG and EAB secrets must
// appear in no log line; docs/architecture.md, "Security model").
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { CLI } from '../../support/sandbox.js';
import type { RunResult } from '../../env/proc.js';

export interface LoggedRun extends RunResult {
  args: string[];
  /** Set when the run was ended by a signal (kill -9 runs). */
  signal?: NodeJS.Signals | null;
}

export interface Killable {
  child: ChildProcess;
  /** Resolves once the process has ended and its output is collected. */
  done: Promise<LoggedRun>;
}

export class CliLog {
  readonly runs: LoggedRun[] = [];

  /** Where the runs start (relative paths in a broken config resolve there); default: ours. */
  cwd: string | undefined;

  private env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    return { ...process.env, ...extra, MXCERT_LOG_LEVEL: 'debug' };
  }

  /**
   * `mxcert ARGS` to completion (killed after `timeoutMs`). `wrap` runs it
   * under another command, e.g. prlimit. A run ended by a signal has `signal`
   * set and code -1.
   */
  async cli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; wrap?: string[] } = {}): Promise<LoggedRun> {
    const run = this.spawn(args, opts);
    const timer = setTimeout(() => run.child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    try {
      return await run.done;
    } finally {
      clearTimeout(timer);
    }
  }

  /** `mxcert ARGS` as a child the test can kill; output is recorded when it ends. */
  spawn(args: string[], opts: { env?: NodeJS.ProcessEnv; wrap?: string[] } = {}): Killable {
    const argv = [...(opts.wrap ?? []), process.execPath, CLI, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env: this.env(opts.env), cwd: this.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const done = new Promise<LoggedRun>((resolve) => {
      child.on('close', (code, signal) => {
        const r: LoggedRun = { args, code: code ?? -1, signal, stdout, stderr };
        this.runs.push(r);
        resolve(r);
      });
    });
    return { child, done };
  }

  /** Everything every run printed. */
  text(): string {
    return this.runs.map((r) => `${r.stdout}\n${r.stderr}`).join('\n');
  }

  /**
   * No line of any run contains a secret, in its configured form or as
   * another common encoding of the same bytes (hex, base64, base64url).
   */
  assertNoSecrets(secrets: Record<string, string>): void {
    assert.ok(this.runs.length > 0, 'some runs were recorded');
    const lines = this.runs.flatMap((r) => `${r.stdout}\n${r.stderr}`.split('\n'));
    for (const [what, secret] of Object.entries(secrets)) {
      const forms = new Set([secret]);
      for (const enc of ['base64', 'base64url'] as const) {
        const bytes = Buffer.from(secret, enc);
        if (bytes.length >= 16) {
          forms.add(bytes.toString('hex'));
          forms.add(bytes.toString('base64'));
          forms.add(bytes.toString('base64').replace(/=+$/, ''));
          forms.add(bytes.toString('base64url'));
        }
      }
      for (const form of forms) {
        const hit = lines.find((l) => l.includes(form));
        // The message shows the line with the secret masked (and no actual/expected that would repeat it).
        assert.ok(hit === undefined, `${what} appears in a log line: ${hit?.split(form).join('<SECRET>')}`);
      }
    }
  }
}
