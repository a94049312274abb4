// `mxcert run` on real servers, with time compressed through config: Pebble
// issues 20-second certificates, so the fallback rule (renew at half the
// lifetime for short certificates) fires ~10 s after each issuance — between
// cron ticks, so only the daemon's precise timer can catch it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import { CLI, servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { pollUntil } from '../env/proc.js';

function startDaemon(sb: Sandbox, cfg: string, log: string): ChildProcess & { exitCode: number | null } {
  const fd = openSync(log, 'a');
  return spawn(process.execPath, [CLI, 'run', '--config', cfg], { stdio: ['ignore', fd, fd], env: { ...process.env, MXCERT_LOG_LEVEL: 'debug' } });
}

function exited(p: ChildProcess): Promise<number | null> {
  return p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));
}

async function served(sb: Sandbox): Promise<X509Certificate> {
  return new X509Certificate(await servedLeafPem(sb.postfix.port));
}

describe('mxcert run (daemon) on real Pebble + BIND + Postfix', { timeout: 300_000 }, () => {
  let sb: Sandbox;
  let daemon: ChildProcess | undefined;
  let cfg: string;
  let log: string;
  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 20 } });
    log = path.join(sb.dir, 'daemon.log');
    cfg = await sb.writeConfig({ ...sb.baseConfig({ challenge: 'dns-01' }), schedule: '0 0 1 1 *' });
  });
  after(async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    await sb?.stop();
  });

  it('takes over a stale daemon.lock naming a live unrelated process, issues at start, renews at the due instant between cron ticks, shares the lock, reloads on SIGHUP, exits 0 on SIGTERM', async () => {
    // 0. The daemon crashed and its PID now belongs to an unrelated process:
    //    the lock records the crashed daemon's start time, not this one's.
    const unrelated = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const stat = readFileSync(`/proc/${unrelated.pid}/stat`, 'utf8');
      const startTime = Number(stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[19]);
      await mkdir(sb.stateDir, { recursive: true, mode: 0o700 });
      await writeFile(
        path.join(sb.stateDir, 'daemon.lock'),
        JSON.stringify({
          pid: unrelated.pid, host: os.hostname(), since: new Date(Date.now() - 3_600_000).toISOString(), command: 'run',
          startTime: String(startTime - 100), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), nonce: randomBytes(12).toString('hex'),
        }) + '\n',
      );
      daemon = startDaemon(sb, cfg, log);
      const running = daemon;
      const tookOver = pollUntil(async () => {
        const held = JSON.parse(await readFile(path.join(sb.stateDir, 'daemon.lock'), 'utf8')) as { pid: number };
        return held.pid === running.pid ? 'took over' : undefined;
      }, { deadlineMs: 20_000, what: 'the daemon to take over the stale daemon.lock' });
      tookOver.catch(() => {}); // reported through the race below
      const outcome = await Promise.race([tookOver, exited(running).then((code) => `exited ${code}`)]);
      assert.equal(outcome, 'took over', await readFile(log, 'utf8').catch(() => ''));
      assert.equal(unrelated.exitCode, null, 'the unrelated process still runs');
      assert.equal(unrelated.signalCode, null, 'and was not signalled');
    } finally {
      unrelated.kill('SIGKILL');
    }
    const logText = () => readFile(log, 'utf8').catch(() => '');

    // 1. First issuance right after start ("missing").
    const first = await pollUntil(
      async () => {
        const c = await served(sb).catch(() => undefined);
        return c && c.subjectAltName?.includes('mx1.example.test') && c.issuer.includes('Pebble') ? c : undefined;
      },
      { deadlineMs: 30_000, what: 'the daemon to issue and deploy the first certificate', detail: () => '' },
    );

    // 2. A second instance refuses to start while the first runs.
    const second = await sb.cli(['run', '--config', cfg], { timeoutMs: 15_000 });
    assert.equal(second.code, 3, second.stdout + second.stderr);
    assert.match(second.stderr, /daemon\.lock|another mxcert/);

    // 3. The CLI gets the agent lock between passes.
    const forced = await sb.cli(['renew', '--force', '--wait', '30', '--config', cfg]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    const afterForce = await pollUntil(async () => {
      const c = await served(sb);
      return c.serialNumber !== first.serialNumber ? c : undefined;
    }, { deadlineMs: 10_000, what: 'the forced renewal to be served' });

    // 4. The daemon renews on its own at ~half of the 20 s lifetime: the
    //    schedule is once a year, so only the precise timer can do it.
    const renewed = await pollUntil(async () => {
      const c = await served(sb);
      return c.serialNumber !== afterForce.serialNumber ? c : undefined;
    }, { deadlineMs: 40_000, what: 'the daemon to renew at the due instant' });
    // Not before the due instant: with 1/2 of a ≤ 10-day lifetime left
    // (schedule/renewal-time.ts, no ARI; the jitter only delays it). Pebble's
    // notBefore is its issuance time in whole seconds, hence the second of slack.
    const issuedAt = Date.parse(afterForce.validFrom);
    const due = issuedAt + (Date.parse(afterForce.validTo) - issuedAt) / 2;
    const renewedAt = Date.parse(renewed.validFrom);
    assert.ok(renewedAt >= due - 1000, `renewed at ${renewedAt - issuedAt} ms after issuance, due at ${due - issuedAt} ms`);
    // And before expiry: the new certificate was issued while the old one was
    // valid (when this poll noticed it does not matter on a loaded machine).
    assert.ok(renewedAt < Date.parse(afterForce.validTo), `renewed before expiry (issued ${renewedAt - issuedAt} ms after the previous one, which lived 20 s)`);
    assert.notEqual(renewed.serialNumber, afterForce.serialNumber);
    assert.match(await logText(), /"reason":"lifetime-fraction"/);
    // The pass is logged a moment after Postfix serves the new certificate.
    await pollUntil(async () => (/"why":"due","renewed":1/.test(await logText()) ? true : undefined), {
      deadlineMs: 10_000,
      what: 'a pass started by the precise timer ("why":"due") that renewed',
    });

    // 5. SIGHUP with an invalid config: rejected with its YAML path, old config keeps running.
    const good = await readFile(cfg, 'utf8');
    await writeFile(cfg, good.replace('schedule:', 'shedule:'));
    daemon.kill('SIGHUP');
    await pollUntil(async () => ((await logText()).includes('config reload rejected') ? true : undefined), { deadlineMs: 10_000, what: 'reload rejection in the log' });
    assert.match(await logText(), /shedule/);
    assert.equal(daemon.exitCode, null, 'still running');
    await writeFile(cfg, good);
    daemon.kill('SIGHUP');
    await pollUntil(async () => ((await logText()).includes('config reloaded') ? true : undefined), { deadlineMs: 10_000, what: 'reload in the log' });

    // 6. SIGTERM: exit 0, locks released.
    daemon.kill('SIGTERM');
    const code = await Promise.race([exited(daemon), new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
    assert.equal(code, 0);
    await assert.rejects(access(path.join(sb.stateDir, 'daemon.lock')), 'daemon lock released');
    await assert.rejects(access(path.join(sb.stateDir, 'lock')), 'agent lock released');
  });
});
