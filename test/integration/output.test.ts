// What mxcert prints, as people see it, from the built CLI on real servers:
// on a terminal (script(1) gives the CLI a pty) log lines and results appear
// in the order things happened, every time in one display; a failure names
// its step once; `status` fits 100 columns, shows the files, and still shows
// the certificates when the config is broken; --format and --quiet; and no
// long wait is silent (an ACME server that never answers, a stopped Postfix,
// a held lock, the daemon between passes).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { CLI, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { ariCertId, startAcmeFront, type AcmeFront } from '../support/acme-front.js';
import { assertStatusSchema } from '../support/status-schema.js';
import { freePort, run, type RunResult } from '../env/proc.js';
import { acquireLock } from '../../src/store/lock.js';
import { displayTime } from '../../src/util/display-time.js';

const ANSI = /\x1b\[[0-9;]*m/g;
/** A timestamp as pino-pretty printed it before: local time, no date, no zone. */
const BARE_CLOCK = /\[\d\d:\d\d:\d\d\.\d{3}\]/;
const ISO_IN_TEXT = /\d{4}-\d\d-\d\dT\d\d:\d\d/;
const TEXT_LOG_LINE = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\] (DEBUG|INFO|WARN|ERROR): /;

/** `mxcert ARGS` on a pseudo-terminal (stdout and stderr both the pty, as in an interactive shell). */
async function onTerminal(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; lines: string[] }> {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const r = await run('script', ['-qec', cmd, '/dev/null'], {
    allowFailure: true,
    timeoutMs: 120_000,
    env: { ...process.env, MXCERT_LOG_LEVEL: 'info', ...env },
  });
  return { code: r.code, lines: r.stdout.replace(ANSI, '').split(/\r?\n/).filter((l) => l !== '') };
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const indexOf = (lines: string[], re: RegExp, what: string): number => {
  const i = lines.findIndex((l) => re.test(l));
  assert.ok(i >= 0, `no line matches ${re} (${what}):\n${lines.join('\n')}`);
  return i;
};

interface StatusDoc {
  certificates: Array<{ cert: string; serial: string | null; nextRenewal: string; lastStep?: string | null; lastError: string | null; outputs?: Record<string, string> }>;
  configProblems?: Array<{ path: string; message: string }>;
}

describe('output for people, on real servers', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  let front: AcmeFront;
  const cfgFile = (c: SandboxConfig, name: string) => sb.writeConfig(c, path.join(sb.dir, `${name}.yaml`));

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    front = await startAcmeFront({ pebble: sb.pebble });
  });
  after(async () => {
    await front?.stop();
    await sb?.stop();
  });

  it('on a terminal: the result comes after the log lines of the steps that produced it; every time is 2026-12-07 23:50:24Z', async () => {
    const cfg = await cfgFile(sb.baseConfig(), 'tty');
    const { code, lines } = await onTerminal(['renew', '--force', '--config', cfg]);
    assert.equal(code, 0, lines.join('\n'));
    const result = indexOf(lines, /^mx1 \(ecdsa-p256\): renewed, serial [0-9a-f]+, valid until \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/, 'result');
    assert.ok(indexOf(lines, /endpoint serves the new certificate/, 'verify log') < result, lines.join('\n'));
    assert.ok(indexOf(lines, /renewed and verified/, 'last log line') < result, lines.join('\n'));
    assert.equal(result, lines.length - 1, 'the result is the last line');
    for (const l of lines.slice(0, result)) assert.match(l, TEXT_LOG_LINE);
    const all = lines.join('\n');
    assert.doesNotMatch(all, BARE_CLOCK);
    assert.doesNotMatch(all, ISO_IN_TEXT, 'no time in another display');
  });

  it('a failed deploy hook: the step is named once, the rollback line does not repeat the error; status fits 100 columns with the files', async () => {
    const hook = path.join(sb.dir, 'failing-reload');
    await writeFile(hook, '#!/bin/sh\necho "postfix/postfix-script: fatal: the Postfix mail system is not running" >&2\nexit 1\n', { mode: 0o755 });
    const c = sb.baseConfig();
    c.certificates[0].hooks.deploy = [hook];
    const cfg = await cfgFile(c, 'failhook');
    const { code, lines } = await onTerminal(['renew', '--force', '--config', cfg]);
    assert.equal(code, 1, lines.join('\n'));
    const result = lines[indexOf(lines, /^mx1 \(ecdsa-p256\): FAILED at /, 'result')]!;
    assert.match(result, /^mx1 \(ecdsa-p256\): FAILED at hooks: hook \S+failing-reload exited with code 1/);
    assert.doesNotMatch(result, /hooks: hooks:/);
    const rollback = lines[indexOf(lines, /rolling back to the previous files/, 'rollback')]!;
    assert.doesNotMatch(rollback, /fatal: the Postfix mail system/, 'the error is reported once, by the failure line');

    const text = await sb.cli(['status', '--config', cfg]);
    assert.equal(text.code, 1, text.stdout + text.stderr);
    const out = text.stdout.split('\n');
    for (const l of out) assert.ok(l.length <= 100, `${l.length} columns: ${l}`);
    assert.match(text.stdout, /^mx1 \(ecdsa-p256\): FAILED at hooks$/m);
    assert.match(text.stdout, /Last attempt: failed \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(\d+m ago\): hook /);
    assert.doesNotMatch(text.stdout, /hooks: hook/, 'the step is not repeated in the error');
    assert.ok(out.some((l) => l.includes(`combined  ${sb.combinedPath()}`)), text.stdout);
    assert.ok(out.some((l) => l.includes(`fullchain ${path.join(sb.outDir, 'mx1-ecdsa-p256.fullchain.pem')}`)), text.stdout);
    assert.doesNotMatch(text.stdout, ISO_IN_TEXT);

    const wide = await sb.cli(['status', '--wide', '--config', cfg]);
    const rows = wide.stdout.trimEnd().split('\n');
    assert.equal(rows.length, 2, wide.stdout);
    assert.match(rows[0]!, /^CERT +KEY +NAMES +SERIAL +NOT AFTER +NEXT RENEWAL +ARI WINDOW +DANE +FILES +LAST$/);
    assert.ok(rows[1]!.includes(sb.combinedPath()) && rows[1]!.includes('FAILED at hooks: hook '), rows[1]);

    const json = await sb.cli(['status', '--json', '--config', cfg]);
    const doc = JSON.parse(json.stdout) as StatusDoc;
    assertStatusSchema(doc);
    const row = doc.certificates[0]!;
    assert.equal(row.lastStep, 'hooks');
    assert.match(row.lastError!, /^hooks: hook \S+ exited with code 1/, 'lastError keeps its documented step prefix, once');
    assert.doesNotMatch(row.lastError!, /^hooks: hooks:/);
    assert.deepEqual(row.outputs, { combined: sb.combinedPath(), fullchain: path.join(sb.outDir, 'mx1-ecdsa-p256.fullchain.pem') });
    assert.deepEqual(doc.configProblems, []);
  });

  it('status on a broken config (secret file and output directory missing): the certificates first, then the problems, exit 2', async () => {
    const c = sb.baseConfig();
    c.certificates[0].challenge.dns.tsig.secretFile = path.join(sb.dir, 'no-such-tsig.key');
    c.certificates[0].output.fullchain = path.join(sb.dir, 'no-such-dir', 'fullchain.pem');
    const cfg = await cfgFile(c, 'broken');
    const text = await sb.cli(['status', '--config', cfg]);
    assert.equal(text.code, 2, text.stdout + text.stderr);
    assert.match(text.stdout, /^mx1 \(ecdsa-p256\): /m);
    assert.match(text.stdout, /^ {2}Serial: +[0-9a-f]+$/m);
    assert.match(text.stdout, /^ {2}Valid: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \.\. \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(expires in \d+m\)$/m);
    assert.match(text.stderr, /certificates\[0\]\.challenge\.dns\.tsig\.secretFile: .*no-such-tsig\.key/);
    assert.match(text.stderr, /certificates\[0\]\.output\.fullchain: .*no-such-dir/);

    const json = await sb.cli(['status', '--json', '--config', cfg]);
    assert.equal(json.code, 2, json.stderr);
    const doc = JSON.parse(json.stdout) as StatusDoc;
    assertStatusSchema(doc);
    assert.equal(doc.certificates.length, 1);
    assert.ok(doc.certificates[0]!.serial);
    assert.deepEqual(doc.configProblems!.map((p) => p.path).sort(), ['certificates[0].challenge.dns.tsig.secretFile', 'certificates[0].output.fullchain']);
  });

  it('renew --quiet: nothing at all when nothing changed; the result and its log lines when something did', async () => {
    const cfg = await cfgFile(sb.baseConfig(), 'quiet');
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const idle = await sb.cli(['renew', '--quiet', '--format', 'text', '--config', cfg]);
    assert.equal(idle.code, 0, idle.stdout + idle.stderr);
    assert.equal(idle.stdout + idle.stderr, '', 'cron mails nothing');
    const normal = await sb.cli(['renew', '--format', 'text', '--config', cfg]);
    assert.match(normal.stdout, /^mx1 \(ecdsa-p256\): not due; renews at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(lifetime-fraction\)$/m);

    const busy = await sb.cli(['renew', '--quiet', '--format', 'text', '--force', '--config', cfg]);
    assert.equal(busy.code, 0, busy.stdout + busy.stderr);
    assert.match(busy.stdout, /^mx1 \(ecdsa-p256\): renewed, serial [0-9a-f]+, valid until \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\n$/);
    const logs = busy.stderr.split('\n').filter(Boolean);
    assert.ok(logs.length > 0 && logs.every((l) => TEXT_LOG_LINE.test(l)), busy.stderr);
    assert.doesNotMatch(busy.stderr, ANSI, 'no colours when not on a terminal');
  });

  it('--format json on a terminal gives JSON lines only', async () => {
    const cfg = await cfgFile(sb.baseConfig(), 'json-tty');
    const { lines } = await onTerminal(['renew', '--format', 'json', '--config', cfg]);
    assert.ok(lines.length >= 2, lines.join('\n'));
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(parsed.some((p) => p.status === 'not-due'));
    assert.ok(parsed.some((p) => p.msg === 'not due'));
  });

  it('ARI: the log line shows both ends of the window and the instant status shows (clamped into the validity)', async () => {
    const c = sb.baseConfig();
    c.stateDir = path.join(sb.dir, 'state-ari');
    c.acme.directory = front.directoryUrl;
    c.acme.caBundle = front.caBundlePath;
    const cfg = await cfgFile(c, 'ari');
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const pem = await readFile(sb.combinedPath(), 'utf8');
    const leaf = new X509Certificate(pem.slice(pem.indexOf('-----BEGIN CERTIFICATE-----')));
    // A window entirely after expiry: the pick is clamped to the emergency point.
    const notAfter = new Date(leaf.validTo).getTime();
    const start = new Date(notAfter + 3_600_000);
    const end = new Date(notAfter + 7_200_000);
    front.setRenewalWindow(ariCertId(leaf.toString()), { start, end }, 3600);

    const r = await sb.cli(['renew', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ari = jsonLines(r.stderr).find((l) => typeof l.msg === 'string' && l.msg.startsWith('ARI window'));
    assert.ok(ari, r.stderr);
    const status = JSON.parse((await sb.cli(['status', '--json', '--config', cfg])).stdout) as StatusDoc;
    const next = status.certificates[0]!.nextRenewal;
    assert.ok(new Date(next).getTime() < notAfter, 'status: renewal before expiry');
    assert.equal(ari.renewAt, next, 'the log says the instant status shows');
    assert.equal(ari.msg, `ARI window ${displayTime(start)} .. ${displayTime(end)}; renews at ${displayTime(next)} (ari-window)`);
    const text = await sb.cli(['status', '--config', cfg]);
    assert.match(text.stdout, new RegExp(`ARI window: +${displayTime(start)} \\.\\. ${displayTime(end)}, picked `));
    assert.match(text.stdout, new RegExp(`Renewal: +${displayTime(next)}, in \\d+m \\(ari-window\\)`));
  });

  it('the daemon logs its next wake-up, and why, at info level', async () => {
    const c = sb.baseConfig();
    c.stateDir = path.join(sb.dir, 'state-daemon');
    c.schedule = '0 0 1 1 *'; // the next cron tick is far away: the renewal is what wakes it
    const cfg = await cfgFile(c, 'daemon');
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const child = spawn(process.execPath, [CLI, 'run', '--config', cfg], { env: { ...process.env, MXCERT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const wake = await new Promise<Record<string, unknown>>((resolve, reject) => {
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString('utf8');
          const hit = stderr.split('\n').find((l) => l.includes('"next wake-up at '));
          if (hit) resolve(JSON.parse(hit) as Record<string, unknown>);
        });
        void exited.then(() => reject(new Error(`daemon exited:\n${stderr}`)));
        // Its first pass renews nothing (the certificate is fresh): the line follows within seconds.
        setTimeout(() => reject(new Error(`no "next wake-up" line at info level within 60 s:\n${stderr}`)), 60_000).unref();
      });
      assert.equal(wake.level, 30, 'info');
      assert.equal(wake.why, 'mx1 (ecdsa-p256): renewal (lifetime-fraction)');
      assert.equal(wake.msg, `next wake-up at ${displayTime(wake.nextAt as string)}: ${wake.why as string}`);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });

  it('a warning carries its error on one line, without a stack trace; the trace only at debug level', async () => {
    const c = sb.baseConfig();
    c.stateDir = path.join(sb.dir, 'state-prune');
    const cfg = await cfgFile(c, 'prune');
    for (let i = 0; i < 2; i++) assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    // The oldest version is pruned by the next renewal; a mount point cannot be removed (EBUSY).
    const versions = path.join(c.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'versions');
    const state = JSON.parse(await readFile(path.join(c.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'state.json'), 'utf8')) as { previous: string };
    const empty = path.join(sb.dir, 'empty-dir');
    await mkdir(empty, { recursive: true });
    await run('mount', ['--bind', empty, path.join(versions, state.previous)]);
    try {
      const info = await sb.cli(['renew', '--force', '--config', cfg]);
      assert.equal(info.code, 0, info.stdout + info.stderr);
      const warn = jsonLines(info.stderr).find((l) => l.msg === 'pruning old versions failed');
      assert.ok(warn, info.stderr);
      assert.equal(typeof warn.err, 'string');
      assert.match(warn.err as string, /EBUSY/);
      assert.doesNotMatch(info.stderr, /\n\s+at |dist\/bundle\//, 'no stack trace, no bundle paths');

      const debug = await sb.cli(['renew', '--force', '--config', cfg], { env: { MXCERT_LOG_LEVEL: 'debug' } });
      const full = jsonLines(debug.stderr).find((l) => l.msg === 'pruning old versions failed');
      assert.ok(full, debug.stderr);
      // pino's full error object (type, message, stack; fs errors carry no JS frames).
      assert.equal((full.err as { type: string }).type, 'Error');
      assert.match((full.err as { stack: string }).stack, /^Error: EBUSY/);
    } finally {
      await run('umount', [path.join(versions, state.previous)]);
    }
  });

  // Last: it stops the sandbox's Postfix.
  it('verify with Postfix stopped: says what it waits for and until when, before the verify step ends', async () => {
    await sb.postfix.stop();
    const c = sb.baseConfig();
    c.certificates[0].hooks.deploy = [];
    c.certificates[0].verify.timeout = '6s';
    const cfg = await cfgFile(c, 'postfix-down');
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const logs = jsonLines(r.stderr);
    const i = logs.findIndex((l) => typeof l.msg === 'string' && l.msg.startsWith(`waiting for 127.0.0.1:${sb.postfix.port} to serve the new certificate`));
    assert.ok(i >= 0, r.stderr);
    const wait = logs[i]!;
    assert.match(wait.msg as string, /\(last try: .*ECONNREFUSED.*\) until \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    assert.ok((wait.msg as string).endsWith(`until ${displayTime(wait.until as string)}`));
    assert.ok(new Date(wait.until as string).getTime() > (wait.time as number), 'the deadline is ahead');
    const failed = logs.findIndex((l) => l.msg === 'renewal failed');
    assert.ok(i < failed, 'announced before the verify step ended');
    assert.equal(logs[failed]!.step, 'verify');
  });
});

describe('long waits without servers say what they wait for, and until when', { timeout: 120_000 }, () => {
  let dir: string;
  let config: string;
  let acme: net.Server;
  let acmePort: number;
  const sockets: net.Socket[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-waits-'));
    await mkdir(path.join(dir, 'out'), { mode: 0o700 });
    // Accepts connections and never says a word (not even a TLS handshake).
    acme = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => acme.listen(0, '127.0.0.1', r));
    acmePort = (acme.address() as net.AddressInfo).port;
    config = path.join(dir, 'config.yaml');
    const cfg = {
      stateDir: path.join(dir, 'state'),
      acme: { directory: `https://127.0.0.1:${acmePort}/dir`, email: 'postmaster@example.test' },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.test'],
          keys: ['ecdsa-p256'],
          challenge: { type: 'http-01', http: { listen: `127.0.0.1:${await freePort()}` } },
          output: { combined: path.join(dir, 'out', 'mx1-{keytype}.pem') },
        },
      ],
    };
    await writeFile(config, stringify(cfg), { mode: 0o600 });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => acme?.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs mxcert until a stderr line matches; the process is still running then, and is stopped. */
  async function untilLine(args: string[], re: RegExp): Promise<{ line: Record<string, unknown>; stillRunning: boolean; result: RunResult }> {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, MXCERT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let ended = false;
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => ((ended = true), resolve(code ?? -1))));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      const found = await new Promise<{ line: Record<string, unknown>; stillRunning: boolean }>((resolve, reject) => {
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString('utf8');
          const hit = stderr.split('\n').find((l) => re.test(l));
          if (hit) resolve({ line: JSON.parse(hit) as Record<string, unknown>, stillRunning: !ended });
        });
        void exited.then(() => setImmediate(() => reject(new Error(`ended without a line matching ${re}:\n${stdout}${stderr}`))));
      });
      child.kill('SIGTERM');
      const code = await exited;
      return { ...found, result: { code, stdout, stderr } };
    } finally {
      clearTimeout(timer);
    }
  }

  it('an ACME server that accepts the connection and never answers', async () => {
    const { line, stillRunning } = await untilLine(['renew', '--force', '--config', config], /"msg":"waiting for /);
    assert.ok(stillRunning, 'announced while the request was still waiting');
    assert.equal(line.msg, `waiting for the TLS handshake from the ACME server (GET https://127.0.0.1:${acmePort}/dir) until ${displayTime(line.until as string)}`);
    assert.ok(new Date(line.until as string).getTime() > (line.time as number));
  });

  it('the state lock, held by another process', async () => {
    const lock = await acquireLock(path.join(dir, 'state'), { command: 'test-holder' });
    try {
      const r = await new Promise<RunResult>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'renew', '--wait', '4', '--config', config], { env: { ...process.env, MXCERT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
        child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      });
      assert.equal(r.code, 3, r.stdout + r.stderr);
      const lines = r.stderr.split('\n').filter(Boolean);
      const wait = lines.findIndex((l) => l.includes('"msg":"waiting for the state lock'));
      assert.ok(wait >= 0, r.stderr);
      const msg = (JSON.parse(lines[wait]!) as { msg: string }).msg;
      assert.match(msg, new RegExp(`^waiting for the state lock \\(held by pid ${process.pid} running "test-holder" since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ; .*lock\\) until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`));
      assert.match(lines.slice(wait + 1).join('\n'), /another mxcert holds the state lock/, 'the wait ended after the announcement');
    } finally {
      await lock.release();
    }
  });
});
