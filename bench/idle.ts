// The idle daemon: `mxcert run` on an N-certificate config whose schedule
// does not come round during the window, RSS and CPU time from /proc every
// 5 s after the start-up pass (a not-due pass over every certificate).
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { pollUntil, stopPid, trackPid, untrackPid } from '../test/env/proc.js';
import { mxcertCliPath, mxcertConfig, type Ctx } from './clients.js';
import { procSample, stats } from './measure.js';
import type { Results } from './report.js';

const say = (s: string) => process.stdout.write(s + '\n');

export async function idleDaemon(o: { ctx: Ctx; dir: string; names: string[]; seconds: number; logFile: string }): Promise<NonNullable<Results['idle']>> {
  const { ctx, dir, names, seconds, logFile } = o;
  // The default schedule is hourly; pick a minute outside the window so the
  // window shows the daemon idle (a not-due pass is measured at start-up).
  const minute = (new Date().getUTCMinutes() + Math.ceil(seconds / 60) + 5) % 60;
  const cfgObj = mxcertConfig(ctx, { domains: names, challenge: 'dns-01', dir });
  cfgObj.schedule = `${minute} * * * *`;
  const cfg = path.join(dir, 'config-daemon.yaml');
  await writeFile(cfg, stringify(cfgObj), { mode: 0o600 });
  const log = path.join(dir, 'daemon.log');
  const fd = openSync(log, 'a');
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('MXCERT_')) delete env[k];
  // TZ=UTC: the cron minute above is computed in UTC.
  const child = spawn(process.execPath, [mxcertCliPath(), 'run', '--config', cfg], { env: { ...env, TZ: 'UTC' }, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const pid = child.pid!;
  trackPid(pid, 'mxcert-daemon');
  const t0 = Date.now();
  say(`bench: mxcert run (PID ${pid}) with ${names.length} certificates; idle window ${seconds} s after the start-up pass ...`);
  try {
    await pollUntil(() => (readFileSync(log, 'utf8').includes('pass finished') ? true : undefined), { deadlineMs: 600_000, intervalMs: 50, what: 'the daemon start-up pass' });
    const startupMs = Date.now() - t0;
    const start = procSample(pid)!;
    const samples: Array<{ t: number; rssKiB: number; cpuS: number }> = [];
    const tStart = Date.now();
    while (Date.now() - tStart < seconds * 1000) {
      await new Promise((r) => setTimeout(r, Math.min(5000, seconds * 1000 - (Date.now() - tStart)) || 1));
      const s = procSample(pid);
      if (!s) throw new Error('the daemon exited during the idle window');
      samples.push({ t: (Date.now() - tStart) / 1000, ...s });
    }
    const end = samples[samples.length - 1] ?? start;
    const passes = (readFileSync(log, 'utf8').match(/pass finished/g) ?? []).length;
    const r = {
      certificates: names.length,
      seconds,
      startupPassMs: startupMs,
      rssAfterStartupKiB: start.rssKiB,
      rssMedianKiB: stats(samples.map((s) => s.rssKiB))?.median ?? start.rssKiB,
      rssMaxKiB: Math.max(start.rssKiB, ...samples.map((s) => s.rssKiB)),
      cpuStartupS: start.cpuS,
      cpuIdleS: end.cpuS - start.cpuS,
      passesDuringWindow: passes - 1,
      samples,
    };
    say(`  idle: start-up pass ${(startupMs / 1000).toFixed(2)} s; RSS median ${(r.rssMedianKiB / 1024).toFixed(1)} MiB, max ${(r.rssMaxKiB / 1024).toFixed(1)} MiB, CPU ${r.cpuIdleS.toFixed(2)} s over ${seconds} s`);
    return r;
  } finally {
    await stopPid(pid, 15_000);
    untrackPid(pid);
    await writeFile(logFile, `\n--- daemon log (idle, ${names.length} certificates) ---\n${readFileSync(log, 'utf8').split('\n').slice(-20).join('\n')}\n`, { flag: 'a' });
  }
}
