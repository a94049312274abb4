// Renewal decisions end to end, on real Pebble (behind the ACME front, which
// counts orders), real BIND 9 and a real Postfix:
// - a name removed from `domains` makes the certificate due; status shows the
//   names the certificate holds and flags the difference;
// - a name outside the zone fails before any record is added, so nothing is
//   left in the cleanup ledger; after three failures the fixed config is
//   tried at once instead of waiting out the backoff, and while backing off
//   `renew` says until when and that --force retries now;
// - a failing deploy hook keeps the issued certificate staged; the next
//   attempt (plain, or --force) deploys that same certificate, no new order.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { startAcmeFront, type AcmeFront } from '../support/acme-front.js';
import { assertStatusSchema } from '../support/status-schema.js';
import { pollUntil, run } from '../env/proc.js';

const MX = (n: number) => `mx${n}.example.test`;

interface ResultLine {
  status: string;
  step?: string;
  error?: string;
  serial?: string;
  plan: { reason: string; at: string; due: boolean; failures?: number };
}

interface StatusRow {
  serial: string | null;
  domains: string[];
  certNames: string[] | null;
  namesDiffer: boolean;
  nextRenewalReason: string;
  lastResult: string | null;
  staged: { serial: string; notAfter: string } | null;
  pendingCleanups: Array<{ owner: string }>;
}

function results(stdout: string): ResultLine[] {
  return stdout.split('\n').filter((l) => l.startsWith('{"cert"')).map((l) => JSON.parse(l) as ResultLine);
}

function one(stdout: string): ResultLine {
  const r = results(stdout);
  assert.equal(r.length, 1, `one result line:\n${stdout}`);
  return r[0]!;
}

describe('renewal decisions on real Pebble + BIND + Postfix', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let front: AcmeFront;
  let failingHook: string;
  const unitDir = () => path.join(sb.stateDir, 'certs', 'mx1', 'ecdsa-p256');

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    front = await startAcmeFront({ pebble: sb.pebble });
    failingHook = path.join(sb.dir, 'failing-hook');
    await writeFile(failingHook, '#!/bin/sh\necho "refusing on purpose" >&2\nexit 1\n', { mode: 0o700 });
  });
  after(async () => {
    await front?.stop();
    await sb?.stop();
  });

  const config = (domains: string[], opts: { failingHook?: boolean } = {}) => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.acme.directory = front.directoryUrl;
    c.acme.caBundle = front.caBundlePath;
    c.certificates[0].domains = domains;
    if (opts.failingHook) c.certificates[0].hooks.deploy.push(failingHook);
    return sb.writeConfig(c, path.join(sb.dir, 'decisions.yaml'));
  };
  const status = async (cfg: string): Promise<{ row: StatusRow; pendingCleanups: unknown[] }> => {
    const r = await sb.cli(['status', '--json', '--config', cfg]);
    const doc = JSON.parse(r.stdout) as { certificates: StatusRow[]; pendingCleanups: unknown[] };
    assertStatusSchema(doc);
    return { row: doc.certificates[0]!, pendingCleanups: doc.pendingCleanups };
  };
  const deployedLeaf = async () => {
    const text = await readFile(sb.combinedPath(), 'utf8');
    return new X509Certificate(text.slice(text.indexOf('-----BEGIN CERTIFICATE-----')));
  };
  const waitServed = (serial: string) =>
    pollUntil(async () => (new X509Certificate(await servedLeafPem(sb.postfix.port)).serialNumber === serial ? true : undefined), {
      deadlineMs: 10_000,
      what: `Postfix to serve serial ${serial}`,
    });
  const sans = (c: X509Certificate) => (c.subjectAltName ?? '').split(', ').map((s) => s.replace(/^DNS:/, '')).sort();

  it('a name removed from the config: status shows the names the certificate holds and flags the difference; a plain renew re-issues', async () => {
    const two = await config([MX(1), MX(2)]);
    const r0 = await sb.cli(['renew', '--force', '--config', two]);
    assert.equal(r0.code, 0, r0.stdout + r0.stderr);
    assert.deepEqual(sans(await deployedLeaf()), [MX(1), MX(2)]);

    const cfg = await config([MX(1)]);
    const { row } = await status(cfg);
    assert.deepEqual([...(row.certNames ?? [])].sort(), [MX(1), MX(2)], 'the names the certificate holds');
    assert.equal(row.namesDiffer, true);
    assert.equal(row.nextRenewalReason, 'names-changed');
    const table = await sb.cli(['status', '--config', cfg]);
    assert.match(table.stdout, /mx\d\.example\.test,mx\d\.example\.test ≠config/, table.stdout);

    const r = await sb.cli(['renew', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const res = one(r.stdout);
    assert.deepEqual([res.status, res.plan.reason], ['renewed', 'names-changed']);
    const leaf = await deployedLeaf();
    assert.deepEqual(sans(leaf), [MX(1)], 'the removed name is gone from the certificate');
    await waitServed(leaf.serialNumber);
    assert.equal((await status(cfg)).row.namesDiffer, false);
  });

  it('a name outside the zone: no cleanup recorded; while backing off renew says until when; a fixed config is tried at once', async () => {
    const broken = await config([MX(1), MX(2), 'mx3.elsewhere.test']);
    // Three failures: the backoff is then 100 minutes, far beyond this test.
    for (const args of [[], ['--force'], ['--force']]) {
      const r = await sb.cli(['renew', ...args, '--config', broken]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const res = one(r.stdout);
      assert.equal(res.step, 'obtain');
      assert.match(res.error!, /_acme-challenge\.mx3\.elsewhere\.test\. is not in the configured zone example\.test\./);
    }
    // The record was never added, so there is nothing to clean up.
    await assert.rejects(stat(path.join(sb.stateDir, 'pending-cleanups.json')), { code: 'ENOENT' });
    assert.deepEqual((await status(broken)).pendingCleanups, []);

    const waiting = await sb.cli(['renew', '--config', broken]);
    assert.equal(waiting.code, 0, waiting.stdout + waiting.stderr);
    const w = one(waiting.stdout);
    assert.deepEqual([w.status, w.plan.reason, w.plan.failures], ['not-due', 'backoff', 3]);
    // What a person at a terminal reads.
    const tty = await run('script', ['-q', '-e', '-c', `${process.execPath} ${CLI} renew --config ${broken}`, '/dev/null'], { allowFailure: true, timeoutMs: 60_000 });
    assert.match(
      tty.stdout,
      /mx1 \(ecdsa-p256\): not due: backing off after 3 failures until \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(renew --force retries now\)/,
      tty.stdout,
    );

    const fixed = await config([MX(1), MX(2)]);
    const r = await sb.cli(['renew', '--config', fixed]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const res = one(r.stdout);
    assert.deepEqual([res.status, res.plan.reason], ['renewed', 'names-changed'], 'the changed config lifts the backoff');
    assert.deepEqual(sans(await deployedLeaf()), [MX(1), MX(2)]);
  });

  it('a failing deploy hook: exit 1, old files restored, the certificate kept staged; once fixed, renew deploys that same serial without a new order', async () => {
    const old = await readFile(sb.combinedPath(), 'utf8');
    const oldSerial = (await deployedLeaf()).serialNumber;
    const ordersBefore = front.orders.length;
    const bad = await config([MX(1), MX(2), MX(4)], { failingHook: true });
    const r1 = await sb.cli(['renew', '--config', bad]);
    assert.equal(r1.code, 1, r1.stdout + r1.stderr);
    assert.equal(one(r1.stdout).step, 'hooks');
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), old, 'combined file restored byte for byte');
    await waitServed(oldSerial);
    assert.equal(front.orders.length, ordersBefore + 1, 'one order');

    const stagedRoot = path.join(unitDir(), 'staged');
    const ids = await readdir(stagedRoot);
    assert.equal(ids.length, 1, `one staged certificate: ${ids.join(' ')}`);
    const dir = path.join(stagedRoot, ids[0]!);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    for (const f of ['key.pem', 'cert.pem', 'chain.pem', 'meta.json']) assert.equal((await stat(path.join(dir, f))).mode & 0o777, 0o600, f);
    const staged = new X509Certificate(await readFile(path.join(dir, 'cert.pem'), 'utf8'));
    assert.notEqual(staged.serialNumber, oldSerial);
    assert.deepEqual(sans(staged), [MX(1), MX(2), MX(4)]);
    const st = await status(bad);
    assert.equal(st.row.lastResult, 'failure');
    assert.equal(st.row.staged?.serial, staged.serialNumber.toLowerCase());
    const table = await sb.cli(['status', '--config', bad]);
    assert.match(table.stdout, new RegExp(`\\[staged ${staged.serialNumber.toLowerCase().slice(0, 16)} waiting to deploy\\]`), table.stdout);

    const good = await config([MX(1), MX(2), MX(4)]);
    const r2 = await sb.cli(['renew', '--config', good]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    const res = one(r2.stdout);
    assert.equal(res.status, 'renewed');
    assert.equal(res.serial, staged.serialNumber.toLowerCase(), 'the staged certificate, not a new one');
    assert.equal(front.orders.length, ordersBefore + 1, 'no new order');
    assert.equal((await deployedLeaf()).serialNumber, staged.serialNumber);
    await waitServed(staged.serialNumber);
    assert.deepEqual(await readdir(stagedRoot), [], 'no longer staged');
    assert.ok((await readdir(path.join(unitDir(), 'versions'))).includes(ids[0]!), 'it became a version');
    const after = await status(good);
    assert.deepEqual([after.row.staged, after.row.lastResult, after.row.serial], [null, 'success', staged.serialNumber.toLowerCase()]);
  });

  it('--force with a fresh staged certificate deploys it instead of ordering again', async () => {
    const bad = await config([MX(1), MX(2), MX(4)], { failingHook: true });
    const r1 = await sb.cli(['renew', '--force', '--config', bad]);
    assert.equal(r1.code, 1, r1.stdout + r1.stderr);
    const orders = front.orders.length;
    const [id] = await readdir(path.join(unitDir(), 'staged'));
    const staged = new X509Certificate(await readFile(path.join(unitDir(), 'staged', id!, 'cert.pem'), 'utf8'));

    const r2 = await sb.cli(['renew', '--force', '--config', await config([MX(1), MX(2), MX(4)])]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.equal(one(r2.stdout).serial, staged.serialNumber.toLowerCase());
    assert.equal(front.orders.length, orders, 'no new order');
    await waitServed(staged.serialNumber);
  });
});
