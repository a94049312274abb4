// One host with many certificates (a hosting provider's MX): for each N in
// --scale-counts, a fresh sandbox (Pebble keeps every order in memory and
// scans all its authorizations for each new order, so a Pebble that already
// served the smaller N would make the larger one look slower than it is)
// and a fresh state with N certificates (one name each, dns-01, one
// account), then
//   - the initial issuance of all N (`mxcert renew`),
//   - --scale-passes forced renewal passes (`mxcert renew --force`),
//   - `mxcert status` cold starts, alternated with `node -e 0`,
//   - `mxcert run` idle for --scale-idle-seconds after its start-up pass.
// The config is written by yaml.stringify, as the other scenarios do: the
// shared `challenge` block and key list become one anchor and N − 1 aliases,
// which is how a generated config for many certificates looks.
//
// A benchmark measures and reports; it never fails on a number.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { startSandbox } from '../test/support/sandbox.js';
import { mxcertConfig, mxcertStep, type Ctx } from './clients.js';
import { idleDaemon } from './idle.js';
import { measure, procSample, stats, type Measured } from './measure.js';
import type { Results, ScaleRow } from './report.js';

const say = (s: string) => process.stdout.write(s + '\n');
const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export interface ScaleOptions {
  counts: number[];
  passes: number;
  statusRuns: number;
  idleSeconds: number;
}

/** Units reported as renewed in `mxcert renew`'s JSON lines (one line per unit on stdout). */
function renewedUnits(m: Measured): number {
  return (m.stdout ?? '').split('\n').filter((l) => l.includes('"status":"renewed"')).length;
}

function withCount(m: Measured): Measured & { renewed: number } {
  const renewed = renewedUnits(m);
  delete m.stdout;
  return { ...m, renewed };
}

export async function scaleScenario(o: ScaleOptions, work: string, logFile: string): Promise<NonNullable<Results['scale']>> {
  const rows: ScaleRow[] = [];
  for (const n of o.counts) {
    say(`bench: scale ${n}: starting BIND 9, Pebble (VA no-sleep, nonce reject 0 %, authz reuse 0 %) and Postfix ...`);
    const sb = await startSandbox({ pebble: { nonceReject: 0, authzReuse: 0 } });
    try {
      rows.push(await scaleRow({ sb, mergedBundle: '', webroot: '' }, n, o, work, logFile));
    } finally {
      await sb.stop();
    }
  }
  return { rows };
}

async function scaleRow(ctx: Ctx, n: number, o: ScaleOptions, work: string, logFile: string): Promise<ScaleRow> {
  const dir = path.join(work, `scale-${n}`);
  await mkdir(path.join(dir, 'out'), { recursive: true, mode: 0o700 });
  // Names of their own per N, so no order of one size meets an authorization of another.
  const names = Array.from({ length: n }, (_, i) => `n${n}-${String(i + 1).padStart(4, '0')}.example.test`);
  const text = stringify(mxcertConfig(ctx, { domains: names, challenge: 'dns-01', dir }));
  const cfg = path.join(dir, 'config.yaml');
  await writeFile(cfg, text, { mode: 0o600 });
  const aliases = (text.match(/^\s+\S+: \*a\d+$/gm) ?? []).length;
  say(`bench: scale ${n}: config ${(text.length / 1024).toFixed(0)} KiB with ${aliases} aliases; initial issuance of ${n} certificates ...`);

  const long = 3_600_000;
  const issuance = withCount(await measure([mxcertStep(['renew', '--format', 'json', '--config', cfg], long)], logFile, { continueOnError: true, keepStdout: true }));
  say(`  initial issuance ${fmtS(issuance.wallMs)}, ${issuance.cpuS.toFixed(1)} s CPU, ${issuance.renewed}/${n} issued`);

  const passes: Array<Measured & { renewed: number }> = [];
  for (let i = 0; i < o.passes; i++) {
    // Pebble's own CPU during the pass: on 2 cores, mxcert's and the servers' CPU together bound the wall time.
    const before = procSample(ctx.sb.pebble.pid);
    const m = withCount(await measure([mxcertStep(['renew', '--force', '--format', 'json', '--config', cfg], long)], logFile, { continueOnError: true, keepStdout: true }));
    const after = procSample(ctx.sb.pebble.pid);
    const pebbleCpuS = before && after ? after.cpuS - before.cpuS : undefined;
    passes.push({ ...m, ...(pebbleCpuS !== undefined ? { pebbleCpuS } : {}) });
    say(`  forced renewal pass ${i + 1}/${o.passes}: ${fmtS(m.wallMs)}, ${m.cpuS.toFixed(1)} s CPU (Pebble ${pebbleCpuS?.toFixed(1) ?? '?'} s), peak RSS ${(m.peakRssKiB / 1024).toFixed(0)} MiB, ${m.renewed}/${n} renewed`);
  }

  const status: Measured[] = [];
  const nodeFloor: Measured[] = [];
  for (let i = 0; i < o.statusRuns; i++) {
    nodeFloor.push(await measure([{ cmd: process.execPath, args: ['-e', '0'] }], logFile));
    status.push(await measure([mxcertStep(['status', '--config', cfg])]));
  }
  const st = stats(status.filter((m) => m.ok).map((m) => m.wallMs));
  const fl = stats(nodeFloor.map((m) => m.wallMs));
  say(`  status median ${st ? `${st.median.toFixed(0)} ms` : 'FAILED'} (node -e 0: ${fl ? fl.median.toFixed(0) : '?'} ms)`);

  const idle = o.idleSeconds > 0 ? await idleDaemon({ ctx, dir, names, seconds: o.idleSeconds, logFile }) : undefined;
  return { count: n, configBytes: text.length, aliases, issuance, passes, status: { runs: status, nodeFloor }, ...(idle ? { idle } : {}) };
}
