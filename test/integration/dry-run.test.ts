// `renew --dry-run` proves the challenge path on real servers, and
// `renew --force` says when it did not (Pebble reusing authorizations):
// - a wrong TSIG secret: the dry run fails naming the step and BADSIG, and
//   nothing is deployed or recorded;
// - a right one: the random TXT really is on BIND while mxcert waits for
//   every authoritative server (held at a DNS gate), and gone afterwards;
// - acme.staging: a full order at a second Pebble, its own account, the
//   real account, state and output files untouched;
// - http-01 (module level, so names resolve through the test BIND and the
//   port is the test's): the built-in listener and a webroot served by a
//   real web server pass, a webroot nobody serves fails naming the step;
// - renew --force on a reused authorization logs that the challenge path
//   was not exercised.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { startPebble, type PebbleEnv } from '../env/pebble.js';
import { dig } from '../env/bind.js';
import { freePort, pollUntil, stopPid, waitForTcpPort, type RunResult } from '../env/proc.js';
import { startDnsGate } from '../faults/support/dns-gate.js';
import { dryRunCertificate } from '../../src/obtain/dry-run.js';
import { createHttp01Solver } from '../../src/obtain/http01.js';
import type { CertificateConfig } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';

const CHALLENGE = '_acme-challenge.mx1.example.test';

interface StepLine {
  dryRun?: boolean;
  cert: string;
  step: string;
  ok: boolean;
  detail: string;
  message: string;
}

const steps = (stdout: string): StepLine[] =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as StepLine & { dryRun?: boolean })
    .filter((l) => l.dryRun);

/** Every file under `dir` with its content (missing dir: empty). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[path.relative(dir, p)] = await readFile(p, 'utf8');
    }
  };
  await walk(dir);
  return out;
}

describe('renew --dry-run exercises the challenge path; --force says when it was not', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  let wrongSecret: string;

  const txtOnPrimary = async () => (await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE])).trim();

  before(async () => {
    // Every order reuses a valid authorization when there is one: the case
    // where a forced renewal proves nothing about the DNS credentials.
    sb = await startSandbox({ pebble: { validitySeconds: 3600, authzReuse: 100 } });
    wrongSecret = path.join(sb.dir, 'wrong-tsig.key');
    await writeFile(wrongSecret, Buffer.from('not the secret BIND has, 32 byte').toString('base64'), { mode: 0o600 });
  });
  after(async () => {
    await sb?.stop();
  });

  function withWrongSecret(c: SandboxConfig): SandboxConfig {
    c.certificates[0].challenge.dns.tsig.secretFile = wrongSecret;
    return c;
  }

  it('a wrong TSIG secret: --force --dry-run exits 1 naming the dns-01 step and BADSIG; nothing deployed or recorded', async () => {
    const c = withWrongSecret(sb.baseConfig({ challenge: 'dns-01' }));
    c.stateDir = path.join(sb.dir, 'state-wrong');
    const files = await snapshot(sb.outDir);
    const r = await sb.cli(['renew', '--force', '--dry-run', '--config', await sb.writeConfig(c, path.join(sb.dir, 'wrong.yaml'))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const s = steps(r.stdout);
    assert.equal(s.length, 1, r.stdout);
    assert.equal(s[0]!.step, 'dns-01 for mx1.example.test');
    assert.equal(s[0]!.ok, false);
    assert.match(s[0]!.detail, /BADSIG/);
    assert.match(s[0]!.message, /^dry run: dns-01 for mx1\.example\.test: FAILED: .*127\.0\.0\.1:\d+.*BADSIG/);
    assert.deepEqual(await snapshot(c.stateDir), {}, 'no state written');
    assert.deepEqual(await snapshot(sb.outDir), files, 'nothing deployed');
  });

  it('the right secret: the random TXT is on BIND while mxcert waits for every server, then removed; exit 0, nothing deployed', async () => {
    const gate = await startDnsGate(sb.bind.primary);
    let child: ChildProcess | undefined;
    try {
      const c = sb.baseConfig({ challenge: 'dns-01' });
      c.stateDir = path.join(sb.dir, 'state-dry');
      // The gate counts as one more authoritative server: while held, mxcert waits.
      c.certificates[0].challenge.dns.nameservers.push(gate.address);
      const cfg = await sb.writeConfig(c, path.join(sb.dir, 'dry.yaml'));
      const files = await snapshot(sb.outDir);
      gate.hold();
      child = spawn(process.execPath, [CLI, 'renew', '--dry-run', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MXCERT_LOG_LEVEL: 'info' } });
      const done = collect(child);
      await pollUntil(() => (gate.queries.some((q) => q.name === CHALLENGE && q.type === 'TXT') ? true : undefined), { deadlineMs: 30_000, what: 'mxcert to wait for the TXT at the gate' });
      const published = await txtOnPrimary();
      assert.match(published, /^"[A-Za-z0-9_-]{43}"$/, 'a random token is published on the real primary');
      gate.release();
      const r = await done;
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const s = steps(r.stdout);
      assert.deepEqual(s.map((x) => [x.step, x.ok]), [['dns-01 for mx1.example.test', true]]);
      assert.equal(await txtOnPrimary(), '', 'removed again');
      assert.deepEqual(await snapshot(c.stateDir), {}, 'no state written');
      assert.deepEqual(await snapshot(sb.outDir), files, 'nothing deployed');
    } finally {
      gate.release();
      if (child?.pid && child.exitCode === null) await stopPid(child.pid);
      await gate.stop();
    }
  });

  describe('with acme.staging', () => {
    let staging: PebbleEnv;
    before(async () => {
      staging = await startPebble({ dnsServer: sb.bind.primary, httpPort: sb.httpPort, validitySeconds: 3600 });
    });
    after(async () => {
      await staging?.stop();
    });

    it('a full order at the staging CA under its own account; the real account, state and files are untouched', async () => {
      const c = sb.baseConfig({ challenge: 'dns-01' });
      c.stateDir = path.join(sb.dir, 'state-staging');
      // One caBundle trusts both CAs' HTTPS endpoints.
      const bundle = path.join(sb.dir, 'both-cas.pem');
      await writeFile(bundle, (await readFile(sb.pebble.caBundlePath, 'utf8')) + (await readFile(staging.caBundlePath, 'utf8')));
      c.acme.caBundle = bundle;
      const real = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'real.yaml'))]);
      assert.equal(real.code, 0, real.stdout + real.stderr);
      const stateBefore = await snapshot(c.stateDir);
      const filesBefore = await snapshot(sb.outDir);

      c.acme.staging = staging.directoryUrl;
      const r = await sb.cli(['renew', '--dry-run', '--config', await sb.writeConfig(c, path.join(sb.dir, 'staging.yaml'))]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const s = steps(r.stdout);
      assert.deepEqual(s.map((x) => [x.step, x.ok]), [['dns-01 for mx1.example.test', true], ['staging order for mx1.example.test', true]]);
      const serial = /issued serial ([0-9a-f]+)/.exec(s[1]!.detail)?.[1];
      assert.ok(serial, s[1]!.detail);
      assert.equal((await staging.certStatus(serial))?.Status, 'Valid', 'the staging CA issued it');
      assert.equal(await sb.pebble.certStatus(serial), undefined, 'the real CA did not');
      assert.deepEqual(await snapshot(sb.outDir), filesBefore, 'nothing deployed');
      const stateAfter = await snapshot(c.stateDir);
      for (const [f, text] of Object.entries(stateBefore)) assert.equal(stateAfter[f], text, `${f} unchanged`);
      const added = Object.keys(stateAfter).filter((f) => !(f in stateBefore));
      assert.equal(added.length, 2, `only the staging account was added: ${added.join(', ')}`);
      assert.ok(added.every((f) => f.startsWith('accounts/')));
      const stagingAccount = JSON.parse(stateAfter[added.find((f) => f.endsWith('account.json'))!]!) as { directory: string };
      assert.equal(stagingAccount.directory, staging.directoryUrl);

      // A broken challenge set-up stops before the staging order.
      const w = await sb.cli(['renew', '--dry-run', '--config', await sb.writeConfig(withWrongSecret(c), path.join(sb.dir, 'staging-wrong.yaml'))]);
      assert.equal(w.code, 1);
      assert.deepEqual(steps(w.stdout).map((x) => [x.step, x.ok]), [['dns-01 for mx1.example.test', false]]);
    });
  });

  it('renew --force on a reused authorization says the challenge path was not exercised', async () => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-reuse');
    assert.equal((await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'reuse.yaml'))])).code, 0);
    // The credentials break; Pebble reuses the valid authorization, so the
    // forced renewal still succeeds (--force means "renew now")...
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(withWrongSecret(c), path.join(sb.dir, 'reuse-wrong.yaml'))]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // ...and says what it did not prove.
    assert.match(r.stderr, /the CA reused a valid authorization for mx1\.example\.test; the challenge path was not exercised \(use --dry-run to test it\)/);
  });

  it('http-01 (module level): listener and served webroot pass; a webroot nobody serves fails naming the step', async () => {
    const resolver = new Resolver();
    resolver.setServers([`127.0.0.1:${sb.bind.primary.port}`]);
    const resolve = (name: string) => resolver.resolve4(name);
    const logger = createLogger({ level: 'silent' });
    const cert = { name: 'mx1', domains: ['mx1.example.test'], keys: ['ecdsa-p256'] } as unknown as CertificateConfig;
    const run = async (solver: ReturnType<typeof createHttp01Solver>) => {
      try {
        return await dryRunCertificate(cert, { solverFor: () => solver, logger, now: () => new Date(), resolve, httpPort: sb.httpPort });
      } finally {
        await solver.close();
      }
    };

    const listener = await run(createHttp01Solver({ listen: `127.0.0.1:${sb.httpPort}` }, logger));
    assert.deepEqual(listener.map((s) => [s.step, s.ok]), [['http-01 for mx1.example.test', true]], JSON.stringify(listener));
    assert.match(listener[0]!.detail, new RegExp(`http://mx1\\.example\\.test:${sb.httpPort}/\\.well-known/acme-challenge/`));

    const webroot = path.join(sb.dir, 'www');
    await mkdir(webroot, { recursive: true });
    const refused = await run(createHttp01Solver({ webroot }, logger));
    assert.equal(refused[0]!.ok, false);
    assert.match(refused[0]!.detail, /ECONNREFUSED/);
    assert.deepEqual(await readdir(path.join(webroot, '.well-known', 'acme-challenge')), [], 'the test token is removed');

    const web = spawn('python3', ['-m', 'http.server', String(sb.httpPort), '--bind', '127.0.0.1', '--directory', webroot], { stdio: 'ignore' });
    try {
      await waitForTcpPort('127.0.0.1', sb.httpPort, 10_000);
      const served = await run(createHttp01Solver({ webroot }, logger));
      assert.deepEqual(served.map((s) => [s.step, s.ok]), [['http-01 for mx1.example.test', true]], JSON.stringify(served));
    } finally {
      if (web.pid) await stopPid(web.pid);
    }
    // A name that does not resolve is named as such.
    const other = await dryRunCertificate({ ...cert, domains: ['nowhere.example.test'] } as CertificateConfig, {
      solverFor: () => createHttp01Solver({ webroot }, logger),
      logger,
      now: () => new Date(),
      resolve,
      httpPort: await freePort(),
    });
    assert.match(other[0]!.detail, /nowhere\.example\.test does not resolve/);
  });
});

function collect(child: ChildProcess): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}
