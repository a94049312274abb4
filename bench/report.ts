// Results → markdown table and a hand-written SVG chart (no dependencies).
import { stats, type Measured, type Stats } from './measure.js';
import type { FleetResults } from './fleet.js';

export interface Results {
  meta: {
    machine: Record<string, unknown> & { cpus: number; loadAvgAtEnd?: number[] };
    versions: Record<string, string>;
    options: Record<string, unknown>;
    notes: string[];
  };
  /** dns01 / http01 → client (or "mxcert+deploy") → one entry per run. */
  issuance: Record<string, Record<string, Measured[]>>;
  hundred?: { count: number; clients: Record<string, { setup: Measured; renew?: Measured; count?: number }> };
  status?: { runs: Measured[]; nodeFloor: Measured[]; certificates: number };
  idle?: {
    certificates: number;
    seconds: number;
    startupPassMs: number;
    rssAfterStartupKiB: number;
    rssMedianKiB: number;
    rssMaxKiB: number;
    cpuStartupS: number;
    cpuIdleS: number;
    passesDuringWindow: number;
    samples: Array<{ t: number; rssKiB: number; cpuS: number }>;
  };
  rollover?: {
    ttl: number;
    finished: boolean;
    floorMs: number;
    publishToServedMs: number | null;
    visibleToServedMs: number | null;
    requestToServedMs: number | null;
    adoptionPassMs: number | null;
    servedToRetiredMs: number | null;
    publishToDoneMs: number | null;
    holdUntil: string | null;
    violations: string[];
    probeErrors: number;
    samples: number;
    daemonPasses: number;
  };
  /** One host with many certificates (bench/scale.ts). */
  scale?: { rows: ScaleRow[] };
  /** A fleet of daemons (bench/fleet.ts). */
  fleet?: FleetResults;
  targets?: Target[];
}

type IdleResult = NonNullable<Results['idle']>;

export interface ScaleRow {
  count: number;
  configBytes: number;
  /** Aliases in the config yaml.stringify wrote (the shared challenge block and key list). */
  aliases: number;
  issuance: Measured & { renewed: number };
  passes: Array<Measured & { renewed: number; pebbleCpuS?: number }>;
  status: { runs: Measured[]; nodeFloor: Measured[] };
  idle?: IdleResult;
}

export interface Target {
  what: string;
  target: string;
  value: string;
  met: boolean | null;
}

const s2 = (ms: number) => (ms / 1000).toFixed(2);
const mib = (kib: number) => (kib / 1024).toFixed(1);

export function wallStats(runs: Measured[] | undefined): Stats | null {
  return stats((runs ?? []).filter((m) => m.ok).map((m) => m.wallMs));
}
function rssStats(runs: Measured[] | undefined): Stats | null {
  return stats((runs ?? []).filter((m) => m.ok).map((m) => m.peakRssKiB));
}

export function computeTargets(r: Results): Target[] {
  const t: Target[] = [];
  const dns = r.issuance.dns01;
  if (dns) {
    const mx = wallStats(dns.mxcert);
    const ua = wallStats(dns.uacme);
    t.push({
      what: 'one dns-01 issuance (median)',
      target: '≤ 0.7 × uacme',
      value: mx && ua ? `${s2(mx.median)} s vs uacme ${s2(ua.median)} s = ${(mx.median / ua.median).toFixed(2)} ×` : 'not measured',
      met: mx && ua ? mx.median <= 0.7 * ua.median : null,
    });
  }
  const pass = r.hundred?.clients.mxcert?.renew;
  if (r.hundred) {
    t.push({
      what: `renewal pass over ${r.hundred.count} certificates`,
      target: '≤ 10 s',
      value: pass?.ok ? `${s2(pass.wallMs)} s` : 'failed',
      met: pass?.ok ? pass.wallMs <= 10_000 : false,
    });
  }
  if (r.idle) {
    t.push({
      what: `daemon idle RSS (${r.idle.certificates} certificates, ${r.idle.seconds} s)`,
      target: '≤ 60 MiB',
      value: `median ${mib(r.idle.rssMedianKiB)} MiB, max ${mib(r.idle.rssMaxKiB)} MiB`,
      met: r.idle.rssMaxKiB <= 60 * 1024,
    });
  }
  if (r.status) {
    const s = wallStats(r.status.runs);
    t.push({ what: `mxcert status cold start (median, ${r.status.certificates} certificates)`, target: '≤ 300 ms', value: s ? `${s.median.toFixed(0)} ms` : 'failed', met: s ? s.median <= 300 : false });
  }
  const big = r.scale?.rows.at(-1);
  if (big) {
    const pass = wallStats(big.passes);
    const passOk = big.passes.filter((p) => p.ok && p.renewed === big.count);
    t.push({
      what: `renewal pass over ${big.count} certificates (median of ${big.passes.length})`,
      target: '≤ 60 s',
      value: pass ? `${s2(pass.median)} s, ${passOk.length} of ${big.passes.length} passes renewed all` : 'failed',
      met: pass && passOk.length === big.passes.length ? pass.median <= 60_000 : false,
    });
    const st = wallStats(big.status.runs);
    t.push({ what: `mxcert status cold start (median, ${big.count} certificates)`, target: '≤ 400 ms', value: st ? `${st.median.toFixed(0)} ms` : 'failed', met: st ? st.median <= 400 : false });
    if (big.idle) {
      t.push({
        what: `daemon idle RSS (${big.count} certificates, ${big.idle.seconds} s)`,
        target: '≤ 60 MiB',
        value: `median ${mib(big.idle.rssMedianKiB)} MiB, max ${mib(big.idle.rssMaxKiB)} MiB`,
        met: big.idle.rssMaxKiB <= 60 * 1024,
      });
    }
  }
  if (r.rollover) {
    const v = r.rollover.publishToServedMs;
    const limit = r.rollover.floorMs + 3000;
    t.push({
      what: `DANE rollover, TTL ${r.rollover.ttl} s, minHold 0 (next record published → new key served)`,
      target: `≤ 2T + 3 s = ${s2(limit)} s`,
      value: v !== null && r.rollover.finished ? `${s2(v)} s (floor 2T = ${s2(r.rollover.floorMs)} s)` : 'did not finish',
      met: v !== null && r.rollover.finished ? v <= limit : false,
    });
  }
  return t;
}

function issuanceRows(runs: Record<string, Measured[]>): string[] {
  const rows: string[] = [];
  const uacme = wallStats(runs.uacme)?.median;
  const order = Object.keys(runs).sort((a, b) => (wallStats(runs[a])?.median ?? Infinity) - (wallStats(runs[b])?.median ?? Infinity));
  for (const c of order) {
    const w = wallStats(runs[c]);
    const m = rssStats(runs[c]);
    const failed = runs[c]!.filter((x) => !x.ok).length;
    rows.push(
      `| ${c} | ${w ? s2(w.median) : '–'} | ${w ? `${s2(w.min)}–${s2(w.max)}` : '–'} | ${w ? s2(w.mad) : '–'} | ${w && uacme ? (w.median / uacme).toFixed(2) + ' ×' : '–'} | ${m ? mib(m.median) : '–'} | ${w?.n ?? 0}${failed ? ` (+${failed} failed)` : ''} |`,
    );
  }
  return rows;
}

export function renderMarkdown(r: Results): string {
  r.targets = computeTargets(r);
  const m = r.meta.machine;
  const out: string[] = [];
  out.push('# mxcert benchmark results', '');
  out.push(`Date: ${String(m.date)} · host: ${m.cpus} × ${String(m.cpuModel)}, ${String(m.memGiB)} GiB, Linux ${String(m.kernel)}, Debian ${String(m.debian)}, Node ${String(m.node)}`);
  out.push(`Load average at start ${(m.loadAvgAtStart as number[]).map((x) => x.toFixed(2)).join(' ')}, at end ${(m.loadAvgAtEnd ?? []).map((x) => x.toFixed(2)).join(' ')}.`, '');
  out.push('Versions: ' + Object.entries(r.meta.versions).map(([k, v]) => `${k} ${v}`).join(' · '), '');
  for (const n of r.meta.notes) out.push(`> ${n}`, '');
  out.push('Generated by `npm run bench` (bench/run.ts); raw numbers in results.json, chart in chart.svg. See bench/README.md for the method.', '');

  out.push('## Targets', '', '| what | target | measured | met |', '|---|---|---|---|');
  for (const t of r.targets) out.push(`| ${t.what} | ${t.target} | ${t.value} | ${t.met === null ? '–' : t.met ? 'yes' : '**no**'} |`);
  out.push('');

  for (const [key, title] of [['dns01', 'dns-01 (RFC 2136)'], ['http01', 'http-01']] as const) {
    const runs = r.issuance[key];
    if (!runs) continue;
    out.push(`## One ECDSA P-256 issuance, fresh account, ${title}`, '');
    out.push('Wall time from process start to exit (registration included), seconds; peak RSS of the largest process. `mxcert+deploy` adds the Postfix reload hook and the STARTTLS check of what Postfix serves.', '');
    out.push('| client | median s | min–max s | MAD s | × uacme | peak RSS MiB | runs |', '|---|---:|---:|---:|---:|---:|---:|');
    out.push(...issuanceRows(runs), '');
  }

  if (r.hundred) {
    out.push(`## ${r.hundred.count} certificates (one account, ${r.hundred.count} names, dns-01)`, '');
    out.push("mxcert: one `mxcert renew` process for the whole pass (bounded concurrency). Peers as they run them one by one: certbot `renew` and dehydrated `-c` walk their lineages in one process; lego and uacme run once per certificate. The renewal pass is forced (`--force`, `--force-renewal`, `--days 3650`, `-f`).", '');
    out.push(`Clients marked * ran on fewer names (time budget); their ${r.hundred.count}-certificate figures are per-certificate time × ${r.hundred.count}, extrapolated, not measured.`, '');
    out.push(`| client | certificates | initial issuance s | renewal pass s | per certificate s | pass for ${r.hundred.count} s | peak RSS MiB (pass) |`, '|---|---:|---:|---:|---:|---:|---:|');
    const perCert = (v: { renew?: Measured; count?: number }) => (v.renew?.ok ? v.renew.wallMs / (v.count ?? r.hundred!.count) : Infinity);
    const entries = Object.entries(r.hundred.clients).sort((a, b) => perCert(a[1]) - perCert(b[1]));
    for (const [c, v] of entries) {
      const rn = v.renew;
      const n = v.count ?? r.hundred.count;
      const full = n === r.hundred.count;
      const failed = (m?: Measured) => (m?.failedSteps ? ` (${m.failedSteps} failed)` : '');
      out.push(
        `| ${c}${full ? '' : ' *'} | ${n} | ${v.setup.ok ? s2(v.setup.wallMs) : 'failed'}${failed(v.setup)} | ${rn ? (rn.ok ? s2(rn.wallMs) : 'failed') : '–'}${failed(rn)} | ${rn?.ok ? (rn.wallMs / 1000 / n).toFixed(3) : '–'} | ${rn?.ok ? (full ? s2(rn.wallMs) : `~${s2((rn.wallMs / n) * r.hundred.count)}`) : '–'} | ${rn?.ok ? mib(rn.peakRssKiB) : '–'} |`,
      );
    }
    out.push('');
  }

  if (r.status || r.idle) {
    out.push('## mxcert alone', '', '| measurement | value |', '|---|---|');
    if (r.status) {
      const s = wallStats(r.status.runs);
      const f = wallStats(r.status.nodeFloor);
      const rss = rssStats(r.status.runs);
      if (s) out.push(`| \`mxcert status\` cold start, ${r.status.certificates} certificates (${s.n} runs) | median ${s.median.toFixed(0)} ms (min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)}), peak RSS ${rss ? mib(rss.median) : '?'} MiB |`);
      if (f) out.push(`| \`node -e 0\` (the floor any Node CLI pays), same runs | median ${f.median.toFixed(0)} ms |`);
    }
    if (r.idle) {
      const i = r.idle;
      out.push(`| \`mxcert run\` start-up pass, ${i.certificates} certificates not due | ${s2(i.startupPassMs)} s, ${i.cpuStartupS.toFixed(2)} s CPU |`);
      out.push(`| daemon RSS while idle over ${i.seconds} s | after start-up ${mib(i.rssAfterStartupKiB)} MiB, median ${mib(i.rssMedianKiB)} MiB, max ${mib(i.rssMaxKiB)} MiB |`);
      out.push(`| daemon CPU time while idle over ${i.seconds} s | ${i.cpuIdleS.toFixed(2)} s (${((i.cpuIdleS / i.seconds) * 100).toFixed(3)} % of one core); passes in the window: ${i.passesDuringWindow} |`);
    }
    out.push('');
  }

  if (r.scale) out.push(...scaleSection(r.scale.rows));
  if (r.fleet) out.push(...fleetSection(r.fleet));

  if (r.rollover) {
    const ro = r.rollover;
    const f = (x: number | null) => (x === null ? '–' : `${s2(x)} s`);
    out.push(`## DANE rollover, TTL T = ${ro.ttl} s, minHold 0`, '');
    out.push('BIND primary + secondary (zone transfer), Postfix, Pebble; `mxcert renew` adopts (deploys the current key, publishes current + next), `mxcert rollover` asks for the rotation at once, then `mxcert run` drives it. Times come from an independent watcher (dig against both servers, openssl s_client against Postfix, every ~20 ms plus probe time).', '');
    out.push('| interval | time |', '|---|---:|');
    out.push(`| next key's TLSA first published → new key served (**total**) | ${f(ro.publishToServedMs)} |`);
    out.push(`| floor: 2T hold | ${f(ro.floorMs)} |`);
    out.push(`| overhead over the floor | ${ro.publishToServedMs === null ? '–' : f(ro.publishToServedMs - ro.floorMs)} |`);
    out.push(`| visible on both servers → new key served | ${f(ro.visibleToServedMs)} |`);
    out.push(`| new key served → old record gone from both servers (RETIRE waits ≥ T) | ${f(ro.servedToRetiredMs)} |`);
    out.push(`| invariant violations seen by the watcher (served key missing from an RRset seen in the last 2T) | ${ro.violations.length} |`);
    out.push(`| daemon passes | ${ro.daemonPasses} |`);
    out.push('');
  }
  return out.join('\n') + '\n';
}

/** A fleet of daemons: rollover time against 2T + 5 s, orders per renewal, memory (bench/fleet.ts). */
function fleetSection(f: FleetResults): string[] {
  const out = ['## A fleet of daemons (3-node etcd, one `mxcert run` per member)', ''];
  out.push('| rollover, 3 members | total | target 2T + 5 s | met | phases (time from `mxcert rollover`) | orders |', '|---|---:|---:|---|---|---:|');
  for (const r of f.rollovers) {
    const total = r.totalMs === null ? (r.error ?? 'did not finish') : `${s2(r.totalMs)} s`;
    out.push(`| TTL ${r.ttl} s | ${total} | ${s2(r.targetMs)} s | ${r.totalMs !== null && r.totalMs <= r.targetMs ? 'yes' : 'no'} | ${r.phases.map((p) => `${p.phase} ${s2(p.ms)} s`).join(', ')} | ${r.orders} |`);
  }
  out.push('', '| members | orders, first issuance | orders per forced renewal | new serial served everywhere after the forced pass | daemon RSS | fleet watcher RSS |', '|---:|---:|---:|---:|---:|---:|');
  for (const o of f.orders) {
    const per = o.renewals ? (o.renewalOrders / o.renewals).toFixed(2) : '–';
    const d = o.rss.map((x) => mib(x.daemonKiB)).join(' / ');
    const w = o.rss.map((x) => mib(x.watcherKiB)).join(' / ');
    out.push(`| ${o.members} | ${o.firstIssuanceOrders} | ${per} (${o.renewalOrders}/${o.renewals}) | ${o.convergeMs === null ? (o.error ?? '–') : `${s2(o.convergeMs)} s`} | ${d} MiB | ${w} MiB |`);
  }
  if (f.noFleetDaemonKiB) out.push('', `Daemon without a fleet (same certificate, no \`fleet\` block), after its start-up pass: ${mib(f.noFleetDaemonKiB)} MiB.`);
  out.push('');
  return out;
}

/** One host, N certificates: how each figure grows with N (bench/scale.ts). */
function scaleSection(rows: ScaleRow[]): string[] {
  const out: string[] = ['## One host with many certificates', ''];
  out.push(
    'Each N on a fresh sandbox (BIND, Pebble, Postfix) and state dir: one account, N certificates of one name each (dns-01), a config written by `yaml.stringify` (the shared challenge block and key list as one anchor and N − 1 aliases). Renewal pass: `mxcert renew --force`, wall time and CPU (user + system, the process and its children; in brackets the CPU Pebble used during the pass). Status: cold starts, median. Daemon: `mxcert run`, start-up pass (not due) and RSS while idle.',
    '',
  );
  out.push(
    '| N | config KiB | initial issuance s | renewal pass s (median) | ms per certificate | pass CPU s (Pebble) | pass peak RSS MiB | renewed | status ms (median) | status peak RSS MiB | `node -e 0` ms | daemon start-up pass s | daemon idle RSS MiB (median / max) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of rows) {
    const pass = wallStats(r.passes);
    const cpu = stats(r.passes.filter((p) => p.ok).map((p) => p.cpuS));
    const pebble = stats(r.passes.flatMap((p) => (p.pebbleCpuS === undefined ? [] : [p.pebbleCpuS])));
    const rss = rssStats(r.passes);
    const st = wallStats(r.status.runs);
    const stRss = rssStats(r.status.runs);
    const fl = wallStats(r.status.nodeFloor);
    const renewed = r.passes.map((p) => `${p.renewed}`).join(', ');
    out.push(
      `| ${r.count} | ${(r.configBytes / 1024).toFixed(0)} | ${r.issuance.ok ? s2(r.issuance.wallMs) : 'failed'} (${r.issuance.renewed}) | ${pass ? s2(pass.median) : '–'} | ${pass ? (pass.median / r.count).toFixed(1) : '–'} | ${cpu ? cpu.median.toFixed(1) : '–'}${pebble ? ` (${pebble.median.toFixed(1)})` : ''} | ${rss ? mib(rss.median) : '–'} | ${renewed || '–'} | ${st ? st.median.toFixed(0) : '–'} | ${stRss ? mib(stRss.median) : '–'} | ${fl ? fl.median.toFixed(0) : '–'} | ${r.idle ? s2(r.idle.startupPassMs) : '–'} | ${r.idle ? `${mib(r.idle.rssMedianKiB)} / ${mib(r.idle.rssMaxKiB)}` : '–'} |`,
    );
  }
  const first = rows[0];
  const last = rows.at(-1);
  if (first && last && last !== first) {
    const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(b / a).toFixed(1)} ×` : '–');
    out.push(
      '',
      `Growth from ${first.count} to ${last.count} certificates (${(last.count / first.count).toFixed(0)} × the certificates): renewal pass ${ratio(wallStats(first.passes)?.median, wallStats(last.passes)?.median)}, status ${ratio(wallStats(first.status.runs)?.median, wallStats(last.status.runs)?.median)}, daemon idle RSS ${ratio(first.idle?.rssMedianKiB, last.idle?.rssMedianKiB)}.`,
    );
  }
  out.push('');
  return out;
}

// ------------------------------------------------------------------ chart

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Bar {
  label: string;
  median: number;
  min: number;
  max: number;
}

function panel(title: string, unit: string, bars: Bar[], x0: number, y0: number, w: number, h: number, highlight = 'mxcert'): string {
  const parts: string[] = [];
  const top = Math.max(...bars.map((b) => b.max), 0.001) * 1.1;
  const left = x0 + 110;
  const right = x0 + w - 20;
  const rowH = Math.min(28, (h - 50) / Math.max(bars.length, 1));
  const scale = (v: number) => left + ((right - left) * v) / top;
  parts.push(`<text x="${x0 + 10}" y="${y0 + 20}" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // grid
  const step = niceStep(top);
  for (let v = 0; v <= top; v += step) {
    const x = scale(v);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${y0 + 30}" x2="${x.toFixed(1)}" y2="${y0 + 35 + rowH * bars.length}" stroke="#ddd"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${y0 + 48 + rowH * bars.length}" font-size="10" text-anchor="middle" fill="#555">${fmtTick(v)}</text>`);
  }
  parts.push(`<text x="${right}" y="${y0 + 62 + rowH * bars.length}" font-size="10" text-anchor="end" fill="#555">${esc(unit)}</text>`);
  bars.forEach((b, i) => {
    const y = y0 + 35 + i * rowH;
    const color = b.label.startsWith(highlight) ? '#1f77b4' : '#999';
    parts.push(`<text x="${left - 6}" y="${y + rowH * 0.62}" font-size="11" text-anchor="end">${esc(b.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 3}" width="${Math.max(1, scale(b.median) - left).toFixed(1)}" height="${(rowH - 8).toFixed(1)}" fill="${color}"/>`);
    if (b.max > b.min) {
      const ym = y + rowH / 2 - 1;
      parts.push(`<line x1="${scale(b.min).toFixed(1)}" y1="${ym}" x2="${scale(b.max).toFixed(1)}" y2="${ym}" stroke="#000" stroke-width="1"/>`);
      for (const v of [b.min, b.max]) parts.push(`<line x1="${scale(v).toFixed(1)}" y1="${ym - 4}" x2="${scale(v).toFixed(1)}" y2="${ym + 4}" stroke="#000"/>`);
    }
    parts.push(`<text x="${Math.min(scale(b.max), right - 40) + 6}" y="${y + rowH * 0.62}" font-size="10" fill="#000">${fmtTick(b.median)}</text>`);
  });
  return parts.join('\n');
}

function niceStep(top: number): number {
  const raw = top / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
const fmtTick = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function renderChart(r: Results): string {
  const panels: Array<{ title: string; unit: string; bars: Bar[] }> = [];
  for (const [key, title] of [['dns01', 'One issuance, dns-01 (median, min–max)'], ['http01', 'One issuance, http-01 (median, min–max)']] as const) {
    const runs = r.issuance[key];
    if (!runs) continue;
    const bars = Object.entries(runs)
      .map(([label, ms]) => ({ label, s: wallStats(ms) }))
      .filter((b) => b.s)
      .map((b) => ({ label: b.label, median: b.s!.median / 1000, min: b.s!.min / 1000, max: b.s!.max / 1000 }))
      .sort((a, b) => a.median - b.median);
    panels.push({ title, unit: 'seconds', bars });
  }
  if (r.hundred) {
    const bars = Object.entries(r.hundred.clients)
      .filter(([, v]) => v.renew?.ok)
      .map(([label, v]) => {
        const n = v.count ?? r.hundred!.count;
        const s = ((v.renew!.wallMs / n) * r.hundred!.count) / 1000;
        return { label: n === r.hundred!.count ? label : `${label} (extrap.)`, median: s, min: s, max: s };
      })
      .sort((a, b) => a.median - b.median);
    panels.push({ title: `Renewal pass over ${r.hundred.count} certificates (extrap. = from fewer names)`, unit: 'seconds', bars });
  }
  if (r.rollover?.publishToServedMs != null) {
    const ro = r.rollover;
    panels.push({
      title: `DANE rollover, TTL ${ro.ttl} s: published → served vs the 2T floor`,
      unit: 'seconds',
      bars: [
        { label: 'mxcert', median: ro.publishToServedMs! / 1000, min: ro.publishToServedMs! / 1000, max: ro.publishToServedMs! / 1000 },
        { label: '2T floor', median: ro.floorMs / 1000, min: ro.floorMs / 1000, max: ro.floorMs / 1000 },
        { label: '2T + 3 s target', median: ro.floorMs / 1000 + 3, min: ro.floorMs / 1000 + 3, max: ro.floorMs / 1000 + 3 },
      ],
    });
  }
  const W = 760;
  let y = 40;
  const body: string[] = [];
  for (const p of panels) {
    const h = 80 + p.bars.length * 28;
    body.push(panel(p.title, p.unit, p.bars, 0, y, W, h));
    y += h + 10;
  }
  const date = String(r.meta.machine.date ?? '').slice(0, 10);
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 10}" viewBox="0 0 ${W} ${y + 10}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="24" font-size="16" font-weight="bold">mxcert vs certbot, lego, dehydrated, uacme — Pebble + BIND 9 + Postfix on loopback (${esc(date)}, ${r.meta.machine.cpus} cores)</text>
${body.join('\n')}
</svg>
`;
}
