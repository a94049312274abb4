// `npm run bench` / `bash bench/run.sh`: mxcert side by side with certbot,
// lego, dehydrated and uacme on the same real Pebble + BIND 9 + Postfix
// sandbox (test/support/sandbox.ts), alternating the clients so machine drift
// hits all of them alike. Writes bench/results/{results.json,results.md,chart.svg}.
//
// A benchmark measures and reports; it never fails on a number.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { REPO, startSandbox, type Sandbox } from '../test/support/sandbox.js';
import { pollUntil, stopPid, trackPid, untrackPid } from '../test/env/proc.js';
import { DaneWatcher } from '../test/support/dane-watcher.js';
import { CLIENTS, CLIENT_DEFS, HOOK, mxcertCliPath, mxcertConfig, mxcertStep, useMxcertCli, writeMergedBundle, type Challenge, type ClientName, type Ctx } from './clients.js';
import { scaleScenario } from './scale.js';
import { fleetScenario } from './fleet.js';
import { cleanupMeasureTmp, measure, stats, type Measured } from './measure.js';
import { renderChart, renderMarkdown, type Results } from './report.js';
import { idleDaemon } from './idle.js';

const SCENARIOS = ['dns01', 'http01', 'hundred', 'status', 'idle', 'scale', 'rollover', 'fleet'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Options {
  runs: number;
  only: Set<Scenario>;
  clients: ClientName[];
  hundredClients: ClientName[];
  count: number;
  /** Clients measured on fewer names in the 100-certificate scenario (time budget). */
  reducedClients: ClientName[];
  reducedCount: number;
  statusRuns: number;
  idleSeconds: number;
  ttl: number;
  /** The scale scenario (bench/scale.ts). */
  scaleCounts: number[];
  scalePasses: number;
  scaleStatusRuns: number;
  scaleIdleSeconds: number;
  /** The fleet scenario (bench/fleet.ts). */
  fleetTtls: number[];
  fleetSizes: number[];
  fleetRenewals: number;
  out: string;
}

function usage(): never {
  process.stderr.write(`usage: bench/run.sh [options]
  --runs N               issuances per client and challenge (default 5)
  --only LIST            scenarios: ${SCENARIOS.join(',')} (default all)
  --clients LIST         clients for dns01/http01: ${CLIENTS.join(',')} (default all)
  --hundred-clients LIST clients for the 100-certificate pass (default all)
  --count N              certificates in the renewal pass (default 100)
  --reduced-clients LIST clients run on --reduced-count names instead (default none)
  --reduced-count N      (default 20); their per-certificate time × count is shown as extrapolated
  --status-runs N        mxcert status cold starts (default 10)
  --idle-seconds S       daemon idle window (default 600)
  --ttl T                TLSA TTL for the rollover, seconds (default 5)
  --scale-counts LIST    certificates per host in the scale scenario (default 100,300,1000)
  --scale-passes N       forced renewal passes per count (default 1)
  --scale-status-runs N  mxcert status cold starts per count (default 5)
  --scale-idle-seconds S daemon idle window per count, 0 to skip (default 60)
  --fleet-ttls LIST      TLSA TTLs for the fleet rollover across 3 daemons (default 5,10)
  --fleet-sizes LIST     fleet sizes for orders per renewal (default 1,3,5)
  --fleet-renewals N     forced renewals per fleet size (default 2)
  --mxcert-cli FILE      the mxcert launcher to measure (default bin/mxcert.js; another build's for before/after)
  --out DIR              results directory (default bench/results)
`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const o: Options = {
    runs: 5,
    only: new Set(SCENARIOS),
    clients: [...CLIENTS],
    hundredClients: [...CLIENTS],
    count: 100,
    reducedClients: [],
    reducedCount: 20,
    statusRuns: 10,
    idleSeconds: 600,
    ttl: 5,
    scaleCounts: [100, 300, 1000],
    scalePasses: 1,
    scaleStatusRuns: 5,
    scaleIdleSeconds: 60,
    fleetTtls: [5, 10],
    fleetSizes: [1, 3, 5],
    fleetRenewals: 2,
    out: path.join(REPO, 'bench', 'results'),
  };
  const list = <T extends string>(v: string | undefined, allowed: readonly T[]): T[] => {
    const xs = (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const x of xs) if (!allowed.includes(x as T)) usage();
    return xs as T[];
  };
  const num = (v: string | undefined) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) usage();
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => argv[++i];
    if (a === '--runs') o.runs = num(v());
    else if (a === '--only') o.only = new Set(list(v(), SCENARIOS));
    else if (a === '--clients') o.clients = list(v(), CLIENTS);
    else if (a === '--hundred-clients') o.hundredClients = list(v(), CLIENTS);
    else if (a === '--count') o.count = num(v());
    else if (a === '--reduced-clients') o.reducedClients = list(v(), CLIENTS);
    else if (a === '--reduced-count') o.reducedCount = num(v());
    else if (a === '--status-runs') o.statusRuns = num(v());
    else if (a === '--idle-seconds') o.idleSeconds = num(v());
    else if (a === '--ttl') o.ttl = num(v());
    else if (a === '--scale-counts') o.scaleCounts = (v() ?? '').split(',').map((x) => num(x));
    else if (a === '--scale-passes') o.scalePasses = num(v());
    else if (a === '--scale-status-runs') o.scaleStatusRuns = num(v());
    else if (a === '--scale-idle-seconds') {
      const x = v();
      o.scaleIdleSeconds = x === '0' ? 0 : num(x);
    }
    else if (a === '--fleet-ttls') o.fleetTtls = (v() ?? '').split(',').map((x) => num(x));
    else if (a === '--fleet-sizes') o.fleetSizes = (v() ?? '').split(',').map((x) => num(x));
    else if (a === '--fleet-renewals') o.fleetRenewals = num(v());
    else if (a === '--mxcert-cli') useMxcertCli(path.resolve(v() ?? usage()));
    else if (a === '--out') o.out = path.resolve(v() ?? usage());
    else usage();
  }
  return o;
}

const say = (s: string) => process.stdout.write(s + '\n');
const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function machineInfo() {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    kernel: os.release(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadAvgAtStart: os.loadavg(),
    debian: sh('cat', ['/etc/debian_version']),
  };
}

function versions(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const dpkg = (p: string) => sh('dpkg-query', ['-W', '-f=${Version}', p]) || 'not installed';
  return {
    mxcert: `${pkg.version} (${sh('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'])})${mxcertCliPath() === path.join(REPO, 'bin', 'mxcert.js') ? '' : `, measured: ${mxcertCliPath()}`}`,
    certbot: dpkg('certbot'),
    'python3-certbot-dns-rfc2136': dpkg('python3-certbot-dns-rfc2136'),
    lego: dpkg('lego'),
    dehydrated: dpkg('dehydrated'),
    uacme: dpkg('uacme'),
    pebble: dpkg('pebble'),
    bind9: dpkg('bind9'),
    postfix: dpkg('postfix'),
  };
}

/** A static file server for the peers that answer http-01 from a webroot. */
async function serveWebroot(root: string, port: number): Promise<() => Promise<void>> {
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '').split('?')[0]!;
    if (!/^\/\.well-known\/acme-challenge\/[A-Za-z0-9_-]+$/.test(p)) return void res.writeHead(404).end();
    readFile(path.join(root, p)).then(
      (b) => res.writeHead(200, { 'content-type': 'text/plain' }).end(b),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, resolve);
  });
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Client order for run i: rotated so no client always goes first (or last). */
function rotate<T>(xs: T[], i: number): T[] {
  const k = i % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (!existsSync(path.join(REPO, 'dist', 'src', 'cli', 'main.js'))) {
    process.stderr.write('bench: dist/ is missing; run `npm run build` first (bench/run.sh does)\n');
    return 2;
  }
  await mkdir(o.out, { recursive: true });
  const work = await mkdtemp(path.join(os.tmpdir(), 'mxcert-bench-'));
  const logFile = path.join(o.out, 'bench.log');
  await writeFile(logFile, `mxcert bench ${new Date().toISOString()}\n`);
  const results: Results = {
    meta: { machine: machineInfo(), versions: versions(), options: { ...o, only: [...o.only] } as unknown as Record<string, unknown>, notes: [] },
    issuance: {},
  };
  say(`bench: machine ${results.meta.machine.cpus} × ${results.meta.machine.cpuModel}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  let sb: Sandbox | undefined;
  let hundredDir: string | undefined;
  try {
    const needMain = ['dns01', 'http01', 'hundred', 'status', 'idle'].some((s) => o.only.has(s as Scenario));
    if (needMain) {
      say('bench: starting BIND 9, Pebble (VA no-sleep, nonce reject 0 %, authz reuse 0 %) and Postfix ...');
      sb = await startSandbox({ pebble: { nonceReject: 0, authzReuse: 0 } });
      const ctx: Ctx = { sb, mergedBundle: path.join(work, 'ca-bundle.crt'), webroot: path.join(work, 'webroot') };
      await writeMergedBundle(sb, ctx.mergedBundle);
      await mkdir(path.join(ctx.webroot, '.well-known', 'acme-challenge'), { recursive: true });

      for (const [scenario, challenge] of [['dns01', 'dns-01'], ['http01', 'http-01']] as Array<[Scenario, Challenge]>) {
        if (!o.only.has(scenario)) continue;
        results.issuance[scenario] = await issuanceScenario(ctx, o, challenge, work, logFile);
      }

      if (o.only.has('hundred') || o.only.has('status') || o.only.has('idle')) {
        const names = Array.from({ length: o.count }, (_, i) => `h${String(i + 1).padStart(3, '0')}.example.test`);
        const clients = o.only.has('hundred') ? o.hundredClients : (['mxcert'] as ClientName[]);
        if (!clients.includes('mxcert')) clients.unshift('mxcert');
        results.hundred = { count: o.count, clients: {} };
        let idle: Promise<Results['idle']> | undefined;
        // mxcert first: its state then serves `status` (measured while
        // nothing else of ours runs) and the idle daemon (which runs alongside
        // the peers' passes; an idle daemon only sleeps).
        for (const name of clients) {
          const dir = path.join(work, `hundred-${name}`);
          const c = CLIENT_DEFS[name];
          const n = o.reducedClients.includes(name) && name !== 'mxcert' ? Math.min(o.reducedCount, o.count) : o.count;
          const mine = names.slice(0, n);
          say(`bench: ${name}: issuing ${n} certificates (one account, dns-01) ...`);
          // One certificate failing (say a race in a peer's DNS step) is counted, not fatal.
          const setup = await measure(await c.setupMany(ctx, dir, mine), logFile, { continueOnError: true });
          say(`  initial issuance ${setup.ok ? fmtS(setup.wallMs) : 'FAILED'}${setup.failedSteps ? ` (${setup.failedSteps} failed steps)` : ''}`);
          let renew: Measured | undefined;
          if (setup.ok && (o.only.has('hundred') || name === 'mxcert')) {
            say(`bench: ${name}: renewal pass over ${n} certificates (forced) ...`);
            renew = await measure(await c.renewMany(ctx, dir, mine), logFile, { continueOnError: true });
            say(`  renewal pass ${renew.ok ? fmtS(renew.wallMs) : 'FAILED: ' + renew.error}${renew.failedSteps ? ` (${renew.failedSteps} failed steps)` : ''}`);
          }
          if (setup.error) say(`  ${setup.error.split('\n').slice(-4).join('\n  ')}`);
          results.hundred.clients[name] = { setup, renew, count: n };
          if (name === 'mxcert' && setup.ok) {
            hundredDir = dir;
            if (o.only.has('status')) results.status = await statusScenario(o, path.join(dir, 'config.yaml'), logFile);
            if (o.only.has('idle')) idle = idleDaemon({ ctx, dir, names, seconds: o.idleSeconds, logFile });
          }
        }
        if (!o.only.has('hundred')) delete results.hundred;
        if (idle) {
          results.idle = await idle;
          if (o.only.has('hundred') && o.hundredClients.length > 1) {
            results.meta.notes.push('The idle daemon was measured while the peers ran their 100-certificate passes (to save 10 minutes); its own CPU time and RSS are what is reported.');
          }
        }
      }
      await sb.stop();
      sb = undefined;
    }

    if (o.only.has('scale')) {
      results.scale = await scaleScenario({ counts: o.scaleCounts, passes: o.scalePasses, statusRuns: o.scaleStatusRuns, idleSeconds: o.scaleIdleSeconds }, work, logFile);
    }

    if (o.only.has('rollover')) results.rollover = await rolloverScenario(o, work, logFile);
    if (o.only.has('fleet')) results.fleet = await fleetScenario({ ttls: o.fleetTtls, sizes: o.fleetSizes, renewals: o.fleetRenewals, cli: mxcertCliPath(), logFile });
  } finally {
    await sb?.stop();
    await cleanupMeasureTmp();
    if (!process.env.BENCH_KEEP) await rm(work, { recursive: true, force: true });
    else say(`bench: kept ${work}`);
  }
  void hundredDir;

  results.meta.machine.loadAvgAtEnd = os.loadavg();
  if (results.meta.machine.cpus <= 2) {
    results.meta.notes.push(`Measured on a ${results.meta.machine.cpus}-core machine shared with another engineer's test suites (load average at start and end above); clients were alternated run by run so that drift hits all of them alike.`);
  }
  await writeFile(path.join(o.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  const md = renderMarkdown(results);
  await writeFile(path.join(o.out, 'results.md'), md);
  await writeFile(path.join(o.out, 'chart.svg'), renderChart(results));
  say('\n' + md);
  say(`bench: wrote ${path.relative(REPO, o.out)}/results.json, results.md, chart.svg (log: ${path.relative(REPO, logFile)})`);
  return 0;
}

// ------------------------------------------------------------------ issuance

async function issuanceScenario(ctx: Ctx, o: Options, challenge: Challenge, work: string, logFile: string) {
  const variants: string[] = [...o.clients];
  // The full product path as an extra row: plus Postfix reload and STARTTLS verification.
  if (o.clients.includes('mxcert')) variants.splice(1, 0, 'mxcert+deploy');
  const out: Record<string, Measured[]> = Object.fromEntries(variants.map((v) => [v, []]));
  for (let i = 0; i < o.runs; i++) {
    for (const v of rotate(variants, i)) {
      const dir = await mkdtemp(path.join(work, `${v}-${challenge}-`));
      let steps;
      if (v === 'mxcert+deploy') {
        await mkdir(path.join(dir, 'out'), { recursive: true, mode: 0o700 });
        const cfg = mxcertConfig(ctx, { domains: ['mx1.example.test'], challenge, dir, deployAndVerify: true });
        // Postfix reads the sandbox's combined file: write that one.
        (cfg.certificates as Array<Record<string, unknown>>)[0]!.output = ctx.sb.baseConfig().certificates[0].output;
        const file = path.join(dir, 'config.yaml');
        await writeFile(file, stringify(cfg), { mode: 0o600 });
        steps = [mxcertStep(['renew', '--config', file])];
      } else {
        steps = await CLIENT_DEFS[v as ClientName].issue(ctx, dir, 'mx1.example.test', challenge);
      }
      const stopWeb = v !== 'mxcert+deploy' && CLIENT_DEFS[v as ClientName].needsWebroot(challenge) ? await serveWebroot(ctx.webroot, ctx.sb.httpPort) : undefined;
      let m: Measured;
      try {
        m = await measure(steps, logFile);
      } finally {
        await stopWeb?.();
      }
      out[v]!.push(m);
      say(`bench: ${challenge} run ${i + 1}/${o.runs} ${v.padEnd(14)} ${m.ok ? `${fmtS(m.wallMs)}  peak RSS ${(m.peakRssKiB / 1024).toFixed(1)} MiB` : `FAILED\n${m.error}`}`);
      await rm(dir, { recursive: true, force: true });
    }
  }
  return out;
}

// ------------------------------------------------------------------ status

async function statusScenario(o: Options, cfg: string, logFile: string): Promise<Results['status']> {
  say(`bench: mxcert status cold start (${o.statusRuns} runs, ${o.count} certificates configured; node -e 0 alternated as the floor) ...`);
  const status: Measured[] = [];
  const nodeFloor: Measured[] = [];
  for (let i = 0; i < o.statusRuns; i++) {
    nodeFloor.push(await measure([{ cmd: process.execPath, args: ['-e', '0'] }], logFile));
    status.push(await measure([mxcertStep(['status', '--config', cfg])], logFile));
  }
  const s = stats(status.filter((m) => m.ok).map((m) => m.wallMs));
  say(`  status median ${s ? fmtS(s.median) : 'FAILED'}; node -e 0 median ${fmtS(stats(nodeFloor.map((m) => m.wallMs))!.median)}`);
  return { runs: status, nodeFloor, certificates: o.count };
}

// ------------------------------------------------------------------ DANE rollover

interface Journal {
  phase: string;
  current: { tlsa: string };
  next: { tlsa: string };
  old?: { tlsa: string };
  holdUntil?: string;
  nextVisibleAt?: string;
}

async function rolloverScenario(o: Options, work: string, logFile: string): Promise<Results['rollover']> {
  const T = o.ttl;
  say(`bench: DANE rollover, TTL ${T} s, minHold 0, BIND primary + secondary, mxcert run as the driver ...`);
  const sb = await startSandbox({ secondary: true, pebble: { nonceReject: 0, authzReuse: 0 } });
  const dir = await mkdtemp(path.join(work, 'rollover-'));
  let daemon: number | undefined;
  let watcher: DaneWatcher | undefined;
  try {
    const cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    cfgObj.stateDir = path.join(dir, 'state');
    const dns = cfgObj.certificates[0].challenge.dns;
    cfgObj.certificates[0].dane = {
      enabled: true,
      endpoints: [{ host: 'mx1.example.test', port: sb.postfix.port }],
      publisher: { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: T, nameservers: dns.nameservers },
      keyLifetime: '90d',
      minHold: '0s',
    };
    // Hourly, at a minute that will not come during the measurement: only the
    // daemon's own timers may move the rollover along.
    cfgObj.schedule = `${(new Date().getUTCMinutes() + 30) % 60} * * * *`;
    const cfg = await sb.writeConfig(cfgObj, path.join(dir, 'config.yaml'));
    const journalPath = path.join(cfgObj.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'dane', 'journal.json');
    const journal = async () => JSON.parse(await readFile(journalPath, 'utf8')) as Journal;
    const owner = `_${sb.postfix.port}._tcp.mx1.example.test`;

    watcher = new DaneWatcher({ servers: [sb.bind.primary, sb.bind.secondary!], owner, smtpPort: sb.postfix.port, ttl: T, intervalMs: 20 });
    watcher.start();
    // Adoption (no RRset yet): deploy the current key, publish current + next.
    const tAdopt = Date.now();
    const first = await sb.cli(['renew', '--config', cfg], { env: { MXCERT_LOG_LEVEL: 'info' } });
    await writeFile(logFile, `\n--- rollover adoption ---\n${first.stdout}${first.stderr.split('\n').slice(-20).join('\n')}\n`, { flag: 'a' });
    let j = await journal();
    const next = j.next.tlsa;
    const current = j.current.tlsa;
    // The rotation is asked for at once, so it runs into the whole 2T hold
    // that started when the next key's record became visible everywhere.
    const req = await sb.cli(['rollover', '--cert', 'mx1', '--config', cfg]);
    if (req.code !== 0) throw new Error(`mxcert rollover failed: ${req.stdout}${req.stderr}`);
    const tRequest = Date.now();

    const dlog = path.join(dir, 'daemon.log');
    const fd = openSync(dlog, 'a');
    const env: NodeJS.ProcessEnv = { ...process.env, TZ: 'UTC' };
    for (const k of Object.keys(env)) if (k.startsWith('MXCERT_')) delete env[k];
    const child = spawn(process.execPath, [mxcertCliPath(), 'run', '--config', cfg], { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    daemon = child.pid!;
    trackPid(daemon, 'mxcert-daemon');
    const limitMs = Math.max(120_000, 20 * T * 1000);
    let finished = true;
    try {
      await pollUntil(
        async () => {
          j = await journal();
          return j.current.tlsa === next && j.phase === 'STEADY' && !j.old ? true : undefined;
        },
        { deadlineMs: limitMs, intervalMs: 50, what: 'the rollover (swap and retire) driven by mxcert run' },
      );
    } catch {
      finished = false;
    }
    const tDone = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    await watcher.stop();
    const samples = watcher.samples;
    const dnsAt = (server: string, pred: (h: string[]) => boolean) => samples.filter((s) => s.kind === 'dns' && s.server === server && pred(s.hashes)).map((s) => s.t);
    const servers = [sb.bind.primary, sb.bind.secondary!].map((s) => `${s.host}:${s.port}`);
    const firstOn = (server: string, h: string) => dnsAt(server, (x) => x.includes(h))[0];
    const tPublished = Math.min(...servers.map((s) => firstOn(s, next) ?? Infinity));
    const tVisibleAll = Math.max(...servers.map((s) => firstOn(s, next) ?? Infinity));
    const tServed = watcher.firstServed(next);
    // Old record gone everywhere (after it was served last).
    const tRetired = Math.max(...servers.map((s) => dnsAt(s, (x) => x.includes(current)).pop() ?? Infinity)) ;
    const dlogText = readFileSync(dlog, 'utf8');
    await writeFile(logFile, `\n--- rollover daemon log ---\n${dlogText.split('\n').slice(-40).join('\n')}\n`, { flag: 'a' });
    const ms = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) ? b - a : null);
    const r = {
      ttl: T,
      finished,
      floorMs: 2 * T * 1000,
      // The headline: next key's record first published → new key served.
      publishToServedMs: ms(tPublished, tServed),
      visibleToServedMs: ms(tVisibleAll, tServed),
      requestToServedMs: ms(tRequest, tServed),
      adoptionPassMs: ms(tAdopt, tRequest),
      servedToRetiredMs: ms(tServed, tRetired),
      publishToDoneMs: ms(tPublished, tDone),
      holdUntil: j.holdUntil ?? null,
      violations: watcher.violations(),
      probeErrors: watcher.probeErrors.length,
      samples: samples.length,
      daemonPasses: (dlogText.match(/pass finished/g) ?? []).length,
    };
    say(`  published → served ${r.publishToServedMs !== null ? fmtS(r.publishToServedMs) : '?'} (floor 2T = ${fmtS(r.floorMs)}); invariant violations: ${r.violations.length}${finished ? '' : ' (DID NOT FINISH within ' + fmtS(limitMs) + ')'}`);
    return r;
  } finally {
    await watcher?.stop().catch(() => undefined);
    if (daemon) {
      await stopPid(daemon, 15_000);
      untrackPid(daemon);
    }
    await sb.stop();
  }
}

void HOOK;
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
