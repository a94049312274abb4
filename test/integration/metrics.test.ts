// The daemon's Prometheus endpoint on real servers: scrape the real
// /metrics of a running `mxcert run` after a renewal and after a failure, and
// compare with the certificate deployed on disk. Time is compressed through
// Pebble's certificate lifetime: the daemon's own timer makes the second
// attempt (at about half of the 40-second lifetime), after Pebble is stopped.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { access, copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { CLI, startSandbox, type Sandbox } from '../support/sandbox.js';
import { freePort, logTail, pollUntil } from '../env/proc.js';

const EC = { cert: 'mx1', key_type: 'ecdsa-p256' };

function startDaemon(cfg: string, log: string): ChildProcess {
  const fd = openSync(log, 'a');
  return spawn(process.execPath, [CLI, 'run', '--config', cfg], { stdio: ['ignore', fd, fd], env: { ...process.env, MXCERT_LOG_LEVEL: 'debug' } });
}

function exited(p: ChildProcess): Promise<number | null> {
  return p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));
}

/** One sample of the text format, by metric name and (a subset of) its labels. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** The leaf of the deployed combined file (key, leaf, intermediates). */
async function deployedLeaf(file: string): Promise<X509Certificate> {
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(await readFile(file, 'utf8'));
  assert.ok(pem, `no certificate in ${file}`);
  return new X509Certificate(pem[0]);
}

describe('metrics endpoint of mxcert run on real Pebble + BIND + Postfix', { timeout: 300_000 }, () => {
  let sb: Sandbox;
  let daemon: ChildProcess | undefined;
  let log: string;
  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 40 } });
    log = path.join(sb.dir, 'daemon.log');
  });
  after(async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    await sb?.stop();
  });

  it('refuses a non-loopback listen address at config check and at daemon start', async () => {
    const port = await freePort();
    const open = await sb.writeConfig({ ...sb.baseConfig(), metrics: { listen: `0.0.0.0:${port}` } }, path.join(sb.dir, 'open.yaml'));
    const expected = `metrics.listen: 0.0.0.0 is not a loopback address; the metrics endpoint listens on loopback only unless metrics.allowNonLoopback is true`;

    const check = await sb.cli(['config', 'check', '--config', open]);
    assert.equal(check.code, 2, check.stdout + check.stderr);
    assert.ok(check.stderr.includes(expected), check.stderr);

    const run = await sb.cli(['run', '--config', open], { timeoutMs: 20_000 });
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.ok(run.stderr.includes(expected), run.stderr);
    await assert.rejects(access(path.join(sb.stateDir, 'daemon.lock')), 'no daemon lock left behind');
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'nothing listens');

    const allowed = await sb.writeConfig(
      { ...sb.baseConfig(), metrics: { listen: `0.0.0.0:${port}`, allowNonLoopback: true } },
      path.join(sb.dir, 'open-allowed.yaml'),
    );
    const ok = await sb.cli(['config', 'check', '--config', allowed]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });

  it('serves the deployed certificate, counts a renewal and a failure with its step', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/metrics`;
    const base = sb.baseConfig();
    // Pebble's CA bundle lives in its temp dir, which goes away with it in step 2.
    const caBundle = path.join(sb.dir, 'pebble-ca.pem');
    await copyFile(base.acme.caBundle, caBundle);
    base.acme.caBundle = caBundle;
    const cfg = await sb.writeConfig({ ...base, schedule: '0 0 1 1 *', metrics: { listen: `127.0.0.1:${port}` } });
    daemon = startDaemon(cfg, log);
    const detail = () => `daemon log:\n${logTail(log, 30)}`;
    const scrape = async (): Promise<string> => {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return res.text();
    };

    // 1. After the first pass (issuance at start): one success, and the
    //    gauges show exactly what is on disk. The daemon may renew again at
    //    half-life, so file and scrape are compared until they agree.
    await pollUntil(async () => ((sample(await scrape(), 'mxcert_renewal_successes_total', EC) ?? 0) >= 1 ? true : undefined), {
      deadlineMs: 60_000,
      what: 'mxcert_renewal_successes_total >= 1',
      detail,
    });
    const { text, leaf } = await pollUntil(
      async () => {
        const leaf = await deployedLeaf(sb.combinedPath());
        const text = await scrape();
        return sample(text, 'mxcert_certificate_expiry_timestamp_seconds', EC) === Date.parse(leaf.validTo) / 1000 ? { text, leaf } : undefined;
      },
      { deadlineMs: 20_000, what: 'the scraped expiry to equal the deployed notAfter', detail },
    );
    assert.ok(leaf.issuer.includes('Pebble'), leaf.issuer);
    assert.equal(sample(text, 'mxcert_certificate_not_before_timestamp_seconds', EC), Date.parse(leaf.validFrom) / 1000);
    const lifetime = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
    const next = sample(text, 'mxcert_next_renewal_timestamp_seconds', { ...EC, reason: 'lifetime-fraction' });
    assert.equal(typeof next, 'number', text);
    const halfLife = Date.parse(leaf.validFrom) / 1000 + lifetime / 2;
    assert.ok(Math.abs(next! - halfLife) <= lifetime * 0.03, `next renewal ${next} near half-life ${halfLife}`);
    assert.equal(sample(text, 'mxcert_live_check_success', EC), 1);
    assert.equal(sample(text, 'mxcert_renewal_failures_total', { ...EC, step: 'obtain' }), 0);
    const successes = sample(text, 'mxcert_renewal_successes_total', EC)!;
    assert.equal(sample(text, 'mxcert_renewal_attempts_total', EC), successes);
    assert.ok((sample(text, 'mxcert_last_pass_timestamp_seconds') ?? 0) > Date.now() / 1000 - 60);
    assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process metrics');
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 404);

    // 2. The CA goes away; the daemon's timer makes the next attempt at the
    //    due instant, which fails at the obtain step.
    await sb.pebble.stop();
    const failed = await pollUntil(
      async () => {
        const t = await scrape();
        return (sample(t, 'mxcert_renewal_failures_total', { ...EC, step: 'obtain' }) ?? 0) >= 1 ? t : undefined;
      },
      { deadlineMs: 90_000, what: 'mxcert_renewal_failures_total{step="obtain"} >= 1', detail },
    );
    const successesNow = sample(failed, 'mxcert_renewal_successes_total', EC)!;
    const failures = sample(failed, 'mxcert_renewal_failures_total', { ...EC, step: 'obtain' })!;
    assert.equal(sample(failed, 'mxcert_renewal_attempts_total', EC), successesNow + failures);
    assert.ok((sample(failed, 'mxcert_consecutive_failures', EC) ?? 0) >= 1);
    assert.equal(sample(failed, 'mxcert_passes_total', { result: 'error' }), 0, 'the passes themselves completed');
    assert.equal(typeof sample(failed, 'mxcert_next_renewal_timestamp_seconds', { ...EC, reason: 'backoff' }), 'number', 'next attempt after backoff');
    assert.equal(sample(failed, 'mxcert_next_renewal_timestamp_seconds', { ...EC, reason: 'lifetime-fraction' }), undefined, 'the old reason is gone');
    // Still what is on disk: the failed attempt changed nothing there.
    const still = await deployedLeaf(sb.combinedPath());
    assert.equal(sample(failed, 'mxcert_certificate_expiry_timestamp_seconds', EC), Date.parse(still.validTo) / 1000);
    // The last live check was the successful one; a failure before verification says nothing new.
    assert.equal(sample(failed, 'mxcert_live_check_success', EC), 1);
    const status = JSON.parse((await sb.cli(['status', '--json', '--config', cfg])).stdout) as { certificates: Array<{ lastError: string }> };
    assert.match(status.certificates[0]!.lastError, /^obtain: /);

    // 3. SIGTERM: exit 0 and the endpoint is gone.
    daemon.kill('SIGTERM');
    const code = await Promise.race([exited(daemon), new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
    assert.equal(code, 0, detail());
    await assert.rejects(fetch(url), 'metrics endpoint closed');
  });
});
