// The metrics module on a made-up stateDir (no servers): gauges mirror the
// state on disk, counters follow the outcomes they are given, the endpoint
// serves /metrics only, and the listen address is loopback unless allowed.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

// An owner-only output directory: the loader checks that output directories exist and are not loose.
const OUT_DIR = path.join(tmpdir(), `mxcert-unit-out-${process.pid}`);
mkdirSync(OUT_DIR, { recursive: true, mode: 0o700 });
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { isLoopbackHost } from '../../src/metrics/loopback.js';
import { MxcertMetrics } from '../../src/metrics/metrics.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import type { UnitOutcome } from '../../src/renew/orchestrator.js';
import { StateStore } from '../../src/store/state-store.js';
import { freePort } from '../env/proc.js';

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-metrics-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configWith(extra: Record<string, unknown>, opts: { dane?: boolean } = {}): Promise<string> {
  const secretFile = path.join(dir, `tsig-${++n}`);
  await writeFile(secretFile, 'c2VjcmV0', { mode: 0o600 });
  await chmod(secretFile, 0o600);
  const file = path.join(dir, `config-${n}.yaml`);
  await writeFile(
    file,
    stringify({
      stateDir: path.join(dir, 'state'),
      acme: { directory: 'https://acme.example.test/directory', email: 'postmaster@example.com' },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.com'],
          keys: ['ecdsa-p256', 'rsa-2048'],
          challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.com', tsig: { name: 'mxcert', secretFile } } },
          output: { combined: `${OUT_DIR}/mx1-{keytype}.pem` },
          verify: { smtp: ['127.0.0.1:25'] },
          ...(opts.dane ? { dane: { enabled: true, endpoints: [{ host: 'mx1.example.com', port: 25 }] } } : {}),
        },
      ],
      ...extra,
    }),
  );
  return file;
}

/** `name{labels} value` lines of the text format, as a lookup. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('metrics.listen', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '192.0.2.1', '[2001:db8::1]', 'mx1.example.com', '128.0.0.1', '::ffff:192.0.2.1']) assert.ok(!isLoopbackHost(h), h);
  });

  it('refuses a non-loopback listen address unless allowNonLoopback is true', async () => {
    const err = await loadConfig(await configWith({ metrics: { listen: '0.0.0.0:9469' } })).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(
      err.problems.map((p) => `${p.path}: ${p.message}`),
      ['metrics.listen: 0.0.0.0 is not a loopback address; the metrics endpoint listens on loopback only unless metrics.allowNonLoopback is true'],
    );
    const ok = await loadConfig(await configWith({ metrics: { listen: '0.0.0.0:9469', allowNonLoopback: true } }));
    assert.equal(ok.metrics?.allowNonLoopback, true);
    const v6 = await loadConfig(await configWith({ metrics: { listen: '[::1]:9469' } }));
    assert.equal(v6.metrics?.allowNonLoopback, false);
    const typo = await loadConfig(await configWith({ metrics: { listen: '127.0.0.1:9469', allowNonLoopbak: true } })).catch((e: unknown) => e);
    assert.ok(typo instanceof ConfigError);
    assert.match(typo.problems[0]!.message, /did you mean "allowNonLoopback"/);
  });

  it('is checked again when the server starts from a Config built in code', async () => {
    const cfg = await loadConfig(await configWith({}));
    const bad = { ...cfg, metrics: { listen: '192.0.2.1:9469', allowNonLoopback: false } } as Config;
    await assert.rejects(startMetricsServer(bad, createLogger({ level: 'silent' })), /192\.0\.2\.1 is not a loopback address/);
  });
});

describe('MxcertMetrics', () => {
  it('shows the DANE phase of a retirement with DANE switched off in the config', async () => {
    const cfg = await loadConfig(await configWith({}, { dane: false }));
    const store = new StateStore(cfg.stateDir);
    await store.ensure();
    await mkdir(path.join(store.certDir('mx1', 'ecdsa-p256'), 'dane'), { recursive: true });
    await writeFile(path.join(store.certDir('mx1', 'ecdsa-p256'), 'dane', 'journal.json'), JSON.stringify({ phase: 'AWAIT_GONE' }));
    const m = new MxcertMetrics({ processMetrics: false });
    await m.refresh(cfg, new Date('2030-01-10T00:00:00Z'));
    const text = await m.text();
    assert.equal(sample(text, 'mxcert_dane_phase', { cert: 'mx1', key_type: 'ecdsa-p256', phase: 'AWAIT_GONE' }), 1);
    assert.equal(sample(text, 'mxcert_dane_phase', { cert: 'mx1', key_type: 'ecdsa-p256', phase: 'STEADY' }), 0);
  });

  it('mirrors stateDir in gauges and counts outcomes', async () => {
    const cfg = await loadConfig(await configWith({}, { dane: true }));
    const store = new StateStore(cfg.stateDir);
    await store.ensure();
    const now = new Date('2030-01-10T00:00:00Z');
    const id = await store.saveVersion('mx1', 'ecdsa-p256', {
      keyPem: 'key',
      leafPem: 'leaf',
      intermediatesPem: [],
      meta: {
        serial: '0abc',
        notBefore: '2030-01-01T00:00:00.000Z',
        notAfter: '2030-03-31T00:00:00.000Z',
        names: ['mx1.example.com'],
        issuer: 'CN=Test CA',
        spkiSha256: '00',
        keyType: 'ecdsa-p256',
        issuedAt: '2030-01-01T00:00:00.000Z',
      },
    });
    await store.writeState('mx1', 'ecdsa-p256', { current: id, consecutiveFailures: 0, last: { at: '2030-01-01T00:00:00.000Z', result: 'success' } });
    await store.writeState('mx1', 'rsa-2048', {
      consecutiveFailures: 2,
      last: { at: '2030-01-09T23:00:00.000Z', result: 'failure', step: 'verify', error: 'verify: served the old certificate' },
    });
    await mkdir(path.join(store.certDir('mx1', 'ecdsa-p256'), 'dane'), { recursive: true });
    await writeFile(path.join(store.certDir('mx1', 'ecdsa-p256'), 'dane', 'journal.json'), JSON.stringify({ phase: 'AWAIT_VISIBLE' }));

    const m = new MxcertMetrics({ processMetrics: false });
    await m.refresh(cfg, now);
    const ec = { cert: 'mx1', key_type: 'ecdsa-p256' };
    const rsa = { cert: 'mx1', key_type: 'rsa-2048' };
    let text = await m.text();
    assert.equal(sample(text, 'mxcert_certificate_expiry_timestamp_seconds', ec), Date.parse('2030-03-31T00:00:00Z') / 1000);
    assert.equal(sample(text, 'mxcert_certificate_not_before_timestamp_seconds', ec), Date.parse('2030-01-01T00:00:00Z') / 1000);
    assert.equal(sample(text, 'mxcert_certificate_expiry_timestamp_seconds', rsa), undefined, 'no certificate yet');
    const next = sample(text, 'mxcert_next_renewal_timestamp_seconds', { ...ec, reason: 'lifetime-fraction' });
    assert.ok(next && next > Date.parse('2030-02-28T00:00:00Z') / 1000 && next < Date.parse('2030-03-05T00:00:00Z') / 1000, String(next));
    assert.equal(sample(text, 'mxcert_next_renewal_timestamp_seconds', { ...rsa, reason: 'missing' }), now.getTime() / 1000);
    assert.equal(sample(text, 'mxcert_dane_phase', { ...ec, phase: 'AWAIT_VISIBLE' }), 1);
    assert.equal(sample(text, 'mxcert_dane_phase', { ...ec, phase: 'STEADY' }), 0);
    assert.equal(sample(text, 'mxcert_dane_phase', { ...rsa, phase: 'STEADY' }), undefined, 'no journal, no phase');
    assert.equal(sample(text, 'mxcert_live_check_success', ec), 1);
    assert.equal(sample(text, 'mxcert_live_check_success', rsa), 0);
    assert.equal(sample(text, 'mxcert_consecutive_failures', rsa), 2);
    assert.equal(sample(text, 'mxcert_renewal_attempts_total', ec), 0);
    assert.equal(sample(text, 'mxcert_renewal_failures_total', { ...ec, step: 'obtain' }), 0);
    assert.equal(sample(text, 'mxcert_last_pass_timestamp_seconds'), 0);

    const plan = { due: true, at: now, reason: 'lifetime-fraction' } as unknown as UnitOutcome['plan'];
    const outcomes: UnitOutcome[] = [
      { cert: 'mx1', keyType: 'ecdsa-p256', status: 'renewed', plan, serial: '0abd', notAfter: '2030-04-10T00:00:00.000Z' },
      { cert: 'mx1', keyType: 'rsa-2048', status: 'failed', plan, step: 'obtain', error: 'obtain: connect ECONNREFUSED', code: 'error' },
    ];
    m.recordPass(outcomes, now);
    m.recordPass(undefined, new Date(now.getTime() + 1000));
    // A failure before verification leaves the last known live-check result alone.
    await store.writeState('mx1', 'rsa-2048', { consecutiveFailures: 3, last: { at: now.toISOString(), result: 'failure', step: 'obtain', error: 'x' } });
    await m.refresh(cfg, now);
    text = await m.text();
    assert.equal(sample(text, 'mxcert_renewal_attempts_total', ec), 1);
    assert.equal(sample(text, 'mxcert_renewal_successes_total', ec), 1);
    assert.equal(sample(text, 'mxcert_renewal_attempts_total', rsa), 1);
    assert.equal(sample(text, 'mxcert_renewal_successes_total', rsa), 0);
    assert.equal(sample(text, 'mxcert_renewal_failures_total', { ...rsa, step: 'obtain' }), 1);
    assert.equal(sample(text, 'mxcert_renewal_failures_total', { ...rsa, step: 'verify' }), 0);
    assert.equal(sample(text, 'mxcert_passes_total', { result: 'completed' }), 1);
    assert.equal(sample(text, 'mxcert_passes_total', { result: 'error' }), 1);
    assert.equal(sample(text, 'mxcert_last_pass_timestamp_seconds'), now.getTime() / 1000 + 1);
    assert.equal(sample(text, 'mxcert_live_check_success', rsa), 0);
    assert.equal(sample(text, 'mxcert_consecutive_failures', rsa), 3);
  });
});

describe('metrics endpoint', () => {
  it('serves GET /metrics in the text format, 404 elsewhere, 405 for other methods', async () => {
    const cfg = await loadConfig(await configWith({ metrics: { listen: `127.0.0.1:${await freePort()}` } }));
    const ep = await startMetricsServer(cfg, createLogger({ level: 'silent' }));
    try {
      const base = `http://${ep.address}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const body = await res.text();
      assert.match(body, /^# TYPE mxcert_certificate_expiry_timestamp_seconds gauge$/m);
      assert.match(body, /^process_resident_memory_bytes \d+/m, 'process metrics');
      assert.match(body, /^nodejs_heap_size_used_bytes \d+/m);
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics/x`)).status, 404);
      const post = await fetch(`${base}/metrics`, { method: 'POST' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET, HEAD');
    } finally {
      await ep.stop();
    }
  });

  it('says clearly when the address is taken', async () => {
    const cfg = await loadConfig(await configWith({ metrics: { listen: `127.0.0.1:${await freePort()}` } }));
    const first = await startMetricsServer(cfg, createLogger({ level: 'silent' }));
    try {
      const taken = { ...cfg, metrics: { listen: first.address, allowNonLoopback: false } } as Config;
      await assert.rejects(startMetricsServer(taken, createLogger({ level: 'silent' })), /metrics\.listen: cannot listen on 127\.0\.0\.1:\d+: address already in use/);
    } finally {
      await first.stop();
    }
  });
});
