// Measuring one command: wall time from spawn to exit (monotonic clock) and
// peak RSS from GNU time's %M (the kernel's ru_maxrss of the command and the
// children it waited for, i.e. the largest single process of the tree).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, appendFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const GNU_TIME = '/usr/bin/time';

export interface Step {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export interface Measured {
  ok: boolean;
  wallMs: number;
  /** KiB, max over the steps. */
  peakRssKiB: number;
  /** user + system CPU seconds of the steps and their children. */
  cpuS: number;
  exitCodes: number[];
  /** Steps that exited non-zero (with continueOnError, the rest still ran). */
  failedSteps: number;
  /** Tail of stdout+stderr of the first failing step. */
  error?: string;
  /** stdout of the last step, when asked for (`keepStdout`). */
  stdout?: string;
}

let tmp: string | undefined;
async function tmpDir(): Promise<string> {
  tmp ??= await mkdtemp(path.join(os.tmpdir(), 'mxcert-bench-time-'));
  return tmp;
}
export async function cleanupMeasureTmp(): Promise<void> {
  if (tmp) await rm(tmp, { recursive: true, force: true });
}

/** Run `step` under GNU time; `log` receives its output. */
async function runOne(step: Step, log?: string): Promise<{ code: number; wallMs: number; rssKiB: number; cpuS: number; out: string; stdout: string }> {
  const tfile = path.join(await tmpDir(), `t-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const started = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '%M %U %S', '-o', tfile, step.cmd, ...step.args], {
    env: step.env ?? process.env,
    cwd: step.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  const stdout: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => {
    chunks.push(c);
    stdout.push(c);
  });
  child.stderr.on('data', (c: Buffer) => chunks.push(c));
  const timer = setTimeout(() => child.kill('SIGKILL'), step.timeoutMs ?? 300_000);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  clearTimeout(timer);
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const out = Buffer.concat(chunks).toString('utf8');
  if (log) await appendFile(log, `\n$ ${step.cmd} ${step.args.join(' ')}\n(exit ${code}, ${wallMs.toFixed(0)} ms)\n${out}`);
  let rssKiB = 0;
  let cpuS = 0;
  try {
    // GNU time writes "Command exited with non-zero status N" first on failure.
    const last = (await readFile(tfile, 'utf8')).trim().split('\n').pop() ?? '';
    const [m, u, s] = last.split(/\s+/).map(Number);
    rssKiB = m ?? 0;
    cpuS = (u ?? 0) + (s ?? 0);
  } catch {
    /* killed before time wrote it */
  }
  await rm(tfile, { force: true });
  return { code, wallMs, rssKiB, cpuS, out, stdout: Buffer.concat(stdout).toString('utf8') };
}

/** Steps run one after another; the wall times add up, RSS is the max. */
export async function measure(steps: Step[], log?: string, opts: { continueOnError?: boolean; keepStdout?: boolean } = {}): Promise<Measured> {
  const res: Measured = { ok: true, wallMs: 0, peakRssKiB: 0, cpuS: 0, exitCodes: [], failedSteps: 0 };
  for (const s of steps) {
    const r = await runOne(s, log);
    res.wallMs += r.wallMs;
    res.peakRssKiB = Math.max(res.peakRssKiB, r.rssKiB);
    res.cpuS += r.cpuS;
    res.exitCodes.push(r.code);
    if (opts.keepStdout) res.stdout = r.stdout;
    if (r.code !== 0) {
      res.failedSteps++;
      res.error ??= r.out.split('\n').slice(-15).join('\n');
      if (!opts.continueOnError) {
        res.ok = false;
        break;
      }
    }
  }
  return res;
}

export interface Stats {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Median absolute deviation. */
  mad: number;
}

export function stats(xs: number[]): Stats | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const med = (a: number[]) => (a.length % 2 ? a[(a.length - 1) / 2]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2);
  const median = med(s);
  return { n: s.length, median, min: s[0]!, max: s[s.length - 1]!, mad: med(s.map((x) => Math.abs(x - median)).sort((a, b) => a - b)) };
}

/** RSS (KiB) and utime+stime (s) of a live process, from /proc. */
export function procSample(pid: number): { rssKiB: number; cpuS: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime in clock ticks (CLK_TCK = 100 on Linux).
    const cpuS = (Number(f[11]) + Number(f[12])) / 100;
    return { rssKiB: rss, cpuS };
  } catch {
    return undefined;
  }
}
