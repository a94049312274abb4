// What a hook can get out of mxcert and what it can do to it, on real
// Pebble + BIND + Postfix (docs/architecture.md, "Security model"):
// - its environment: mxcert's variables, PATH/LANG/TZ/HOME, its config's
//   `hooks.env`; never the secrets behind secretEnv, hmacKeyEnv, apiKeyEnv,
//   nor anything else of mxcert's environment;
// - a failed hook's error (status, MXCERT_ERROR): its path, its exit code and
//   a short tail of its output, not its arguments or the bulk of its output;
// - a hook that exits 0 leaving a setsid child on its stdout: done at its
//   exit, not when the child ends;
// - the daemon's pass deadline (passTimeout): a hook that blocks is ended,
//   the pass stopped, the failure hooks run, and the next pass gets the lock;
//   the pass child itself never holds the secrets in its environment.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLI, POSTFIX_RELOAD_HOOK, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { logTail, pidAlive, pollUntil } from '../env/proc.js';

const PDNS_KEY = 'pdns-api-key-7c1f0e9a';
const UNRELATED = 'unrelated-value-5d2b';

/** KEY=VALUE lines (env(1), /proc/PID/environ with NULs turned into newlines) as a map. */
function envMap(text: string): Map<string, string> {
  return new Map(text.split(/\n|\0/).filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
}

describe('hooks: environment, errors, detached children, pass deadline', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let hooksDir: string;
  let secrets: Record<string, string>;
  /** mxcert's environment in these runs: the secrets, one unrelated variable, locale and zone. */
  let mxEnv: NodeJS.ProcessEnv;

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600, eab: true } });
    // Hooks live in a root-owned directory that only root may write.
    hooksDir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-hook-safety-'));
    await chmod(hooksDir, 0o755);
    secrets = { MXT_TSIG_SECRET: sb.bind.tsig.secret.trim(), MXT_EAB_HMAC: sb.pebble.eabHmacKey!, MXT_PDNS_KEY: PDNS_KEY };
    mxEnv = { ...secrets, MXT_UNRELATED: UNRELATED, LANG: 'C.UTF-8', TZ: 'Europe/Berlin', HOME: '/root' };
  });
  after(async () => {
    await sb?.stop();
    if (hooksDir) await rm(hooksDir, { recursive: true, force: true });
  });

  async function hook(name: string, body: string): Promise<string> {
    const p = path.join(hooksDir, name);
    await writeFile(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    await chmod(p, 0o755);
    return p;
  }

  /** The sandbox config with every secret taken from the environment (secretEnv, hmacKeyEnv, apiKeyEnv). */
  function config(): SandboxConfig {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.acme.eab = { kid: sb.pebble.eabKid, hmacKeyEnv: 'MXT_EAB_HMAC' };
    c.certificates[0].challenge.dns.tsig = { name: sb.bind.tsig.name, algorithm: sb.bind.tsig.algorithm, secretEnv: 'MXT_TSIG_SECRET' };
    // Not in use (DANE off), yet the variable it names is a secret all the same.
    c.certificates[0].dane = { enabled: false, publisher: { provider: 'pdns', url: 'http://127.0.0.1:9', zone: sb.bind.zone, apiKeyEnv: 'MXT_PDNS_KEY' } };
    return c;
  }

  function assertNoSecret(text: string, where: string): void {
    for (const [name, value] of Object.entries({ ...secrets, MXT_UNRELATED: UNRELATED })) {
      assert.equal(text.includes(value), false, `the value of ${name} is in ${where}`);
    }
  }

  it('a deploy hook gets MXCERT_*, RENEWED_*, PATH, LANG, TZ, HOME and hooks.env; no secret and nothing unrelated', async () => {
    const dump = path.join(hooksDir, 'deploy-env.out');
    const dumper = await hook('dump-env', `env > '${dump}'`);
    const c = config();
    c.certificates[0].hooks.deploy = [[POSTFIX_RELOAD_HOOK, sb.postfix.configDir], dumper];
    c.certificates[0].hooks.env = { MXT_CONFIGURED: 'from-config', MXCERT_NOTIFY_TO: 'root' };
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'env.yaml'));
    const r = await sb.cli(['renew', '--force', '--config', cfg], { env: mxEnv });
    assert.equal(r.code, 0, r.stdout + r.stderr);

    const text = await readFile(dump, 'utf8');
    assertNoSecret(text, "the deploy hook's environment");
    const env = envMap(text);
    for (const name of ['MXT_TSIG_SECRET', 'MXT_EAB_HMAC', 'MXT_PDNS_KEY', 'MXT_UNRELATED']) assert.equal(env.has(name), false, name);
    assert.equal(env.get('MXCERT_EVENT'), 'deploy');
    assert.equal(env.get('MXCERT_CERT_NAME'), 'mx1');
    assert.equal(env.get('MXCERT_DOMAINS'), 'mx1.example.test');
    assert.equal(env.get('MXCERT_KEY_TYPE'), 'ecdsa-p256');
    assert.equal(env.get('MXCERT_COMBINED'), sb.combinedPath());
    assert.equal(env.get('RENEWED_DOMAINS'), 'mx1.example.test');
    assert.ok(env.get('RENEWED_LINEAGE'));
    assert.equal(env.get('PATH'), process.env.PATH);
    assert.equal(env.get('LANG'), 'C.UTF-8');
    assert.equal(env.get('TZ'), 'Europe/Berlin');
    assert.equal(env.get('HOME'), '/root');
    assert.equal(env.get('MXT_CONFIGURED'), 'from-config');
    assert.equal(env.get('MXCERT_NOTIFY_TO'), 'root');
    assertNoSecret(r.stdout + r.stderr, "mxcert's output");
  });

  it('a failing hook with 10,000 lines of stderr and a secret-looking argument: the error has its path and a short tail only', async () => {
    const secretArg = 'sk_live_SecretLookingArgument_4f9a1c';
    const noisy = await hook('noisy-fail', 'i=0\nwhile [ $i -lt 10000 ]; do echo "early line $i of noise" >&2; i=$((i+1)); done\necho "postfix: fatal: the real reason" >&2\nexit 3');
    const seen = path.join(hooksDir, 'mxcert-error.out');
    const failure = await hook('record-error', `printf '%s' "$MXCERT_ERROR" > '${seen}'`);
    const c = config();
    c.certificates[0].hooks.deploy = [[POSTFIX_RELOAD_HOOK, sb.postfix.configDir], [noisy, secretArg]];
    c.certificates[0].hooks.failure = [failure];
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'noisy.yaml'));
    const r = await sb.cli(['renew', '--force', '--config', cfg], { env: mxEnv });
    assert.equal(r.code, 1, r.stdout + r.stderr);

    const st = JSON.parse((await sb.cli(['status', '--json', '--config', cfg], { env: mxEnv })).stdout) as { certificates: Array<{ lastResult: string; lastError: string }> };
    assert.equal(st.certificates[0]!.lastResult, 'failure');
    const checks: Array<[string, () => Promise<string>]> = [
      ['status --json', async () => st.certificates[0]!.lastError],
      // (A failure hook given the whole output in MXCERT_ERROR may not even start: E2BIG.)
      ['MXCERT_ERROR', () => readFile(seen, 'utf8')],
    ];
    for (const [where, read] of checks) {
      const text = await read();
      assert.ok(text.includes(`hook ${noisy} exited with code 3`), `${where}: ${text.slice(0, 300)}`);
      assert.equal(text.includes(secretArg), false, `${where}: no argument`);
      assert.equal(text.includes('early line 0 '), false, `${where}: no early line`);
      assert.equal(text.includes('early line 9979 '), false, `${where}: nothing before the last 20 lines`);
      assert.equal(text.split('the real reason').length - 1, 1, `${where}: the tail appears once`);
      const tail = text.slice(text.indexOf('lines): ') + 'lines): '.length, text.indexOf(' (previous files restored)'));
      assert.ok(text.indexOf('lines): ') > 0 && Buffer.byteLength(tail) <= 2048, `${where}: tail of ${Buffer.byteLength(tail)} bytes`);
      assert.ok(tail.endsWith('early line 9999 of noise | postfix: fatal: the real reason'), `${where}: ${tail.slice(-120)}`);
    }
    // Not in the logs either, at the default level.
    assert.equal((r.stdout + r.stderr).includes(secretArg), false, 'no argument in the output');
    assert.equal((r.stdout + r.stderr).includes('early line 0 '), false, 'no early line in the output');
  });

  it('a deploy hook that exits 0 leaving a setsid child on its stdout: success at once, nothing rolled back', async () => {
    const marker = path.join(hooksDir, 'child-ended');
    const pidFile = path.join(hooksDir, 'child.pid');
    // The child holds the hook's stdout and stderr for 60 s, then leaves the marker.
    const leaver = await hook('leaves-child', `echo reloading\nsetsid sh -c 'echo $$ > "${pidFile}"; sleep 60; touch "${marker}"' &\necho reloaded`);
    const c = config();
    // Alone, with a short timeout: the wait for the child would be a timeout and a rollback.
    c.certificates[0].hooks.deploy = [leaver];
    c.certificates[0].hooks.timeout = '3s';
    c.certificates[0].verify.smtp = [];
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'setsid.yaml'));
    const before = await readFile(sb.combinedPath(), 'utf8').catch(() => '');
    try {
      const r = await sb.cli(['renew', '--force', '--config', cfg], { env: mxEnv });
      // The child's lifetime is the measure: mxcert finished while it still ran.
      await assert.rejects(access(marker), 'mxcert waited for the detached child');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /timed out|rolling back/);
      const after = await readFile(sb.combinedPath(), 'utf8');
      assert.notEqual(after, before, 'the new certificate stays deployed');
      const st = JSON.parse((await sb.cli(['status', '--json', '--config', cfg], { env: mxEnv })).stdout) as { certificates: Array<{ lastResult: string }> };
      assert.equal(st.certificates[0]!.lastResult, 'success');
    } finally {
      const pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
      if (pid > 0) {
        try {
          process.kill(-pid, 'SIGKILL'); // its own session and process group
        } catch {
          // gone already
        }
      }
    }
  });

  describe('the daemon', () => {
    let daemon: ChildProcess | undefined;
    after(() => {
      if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    });

    it('stops a pass at passTimeout: ends the blocking hook, runs the failure hooks, and the next pass takes the lock', async () => {
      const work = await mkdtemp(path.join(hooksDir, 'daemon-'));
      await chmod(work, 0o755);
      const started = path.join(work, 'started');
      const release = path.join(work, 'release');
      const childEnviron = path.join(work, 'pass-child.environ');
      const failures = path.join(work, 'failures');
      // Records its pid and the environment of its parent (the pass child), then blocks until released.
      const blocker = await hook(
        'blocks-until-released',
        `tr '\\0' '\\n' < /proc/$PPID/environ > '${childEnviron}'\necho $$ >> '${started}'\nwhile [ ! -e '${release}' ]; do sleep 0.2; done`,
      );
      const failureHook = await hook('record-failure', `printf '%s|%s\\n' "$MXCERT_EVENT" "$MXCERT_ERROR" >> '${failures}'`);
      const c = config();
      c.stateDir = path.join(sb.dir, 'state-daemon');
      c.schedule = '0 0 1 1 *';
      c.passTimeout = '30s';
      c.certificates[0].verify.smtp = [];
      c.certificates[0].hooks = { deploy: [blocker], failure: [failureHook], timeout: '10m' };
      const cfg = await sb.writeConfig(c, path.join(sb.dir, 'daemon.yaml'));
      const log = path.join(work, 'daemon.log');
      const fd = openSync(log, 'a');
      daemon = spawn(process.execPath, [CLI, 'run', '--config', cfg], { stdio: ['ignore', fd, fd], env: { ...process.env, ...mxEnv, MXCERT_LOG_LEVEL: 'info' } });
      const logText = () => readFile(log, 'utf8').catch(() => '');
      const detail = () => logTail(log, 30);

      // The first pass issues and reaches the hook, which blocks.
      const hookPid = await pollUntil(async () => Number((await readFile(started, 'utf8').catch(() => '')).trim()) || undefined, {
        deadlineMs: 30_000,
        what: 'the deploy hook to start',
        detail,
      });
      assert.equal(await logText().then((t) => t.includes('passTimeout')), false, 'the deadline had not passed when the hook started');
      // The pass child ran with PATH etc., but without any secret in its environment.
      const environ = await readFile(childEnviron, 'utf8');
      assertNoSecret(environ, "the pass child's /proc/PID/environ");
      assert.equal(envMap(environ).get('PATH'), process.env.PATH);
      assert.equal(envMap(environ).get('LANG'), 'C.UTF-8');

      await pollUntil(async () => ((await logText()).includes('pass ran longer than passTimeout') ? true : undefined), { deadlineMs: 60_000, what: 'the deadline in the log', detail });
      const failureLine = await pollUntil(async () => (await readFile(failures, 'utf8').catch(() => '')).split('\n').find((l) => l.includes('passTimeout')), {
        deadlineMs: 30_000,
        what: 'the failure hook to hear of the deadline',
        detail,
      });
      assert.match(failureLine, /^failure\|renewal pass failed: the pass ran longer than passTimeout \(30 s\) and was stopped$/);
      await pollUntil(() => (pidAlive(hookPid) ? undefined : true), { deadlineMs: 15_000, what: `the blocking hook ${hookPid} to be ended` });
      assert.match(await logText(), /"level":50[^\n]*passTimeout \(30 s\) and was stopped[^\n]*"msg":"pass failed"/);

      // The next pass gets the agent lock (released, or left by a dead process).
      await writeFile(release, '');
      const before = (await logText()).length;
      daemon.kill('SIGUSR1');
      await pollUntil(async () => ((await logText()).slice(before).includes('"msg":"pass finished"') ? true : undefined), {
        deadlineMs: 60_000,
        what: 'a later pass to finish',
        detail,
      });
      assert.doesNotMatch((await logText()).slice(before), /another mxcert holds the state lock/);

      daemon.kill('SIGTERM');
      const code = await new Promise((r) => (daemon!.exitCode !== null ? r(daemon!.exitCode) : daemon!.once('exit', r)));
      assert.equal(code, 0);
      await assert.rejects(access(path.join(c.stateDir, 'lock')), 'agent lock released');
      assertNoSecret(await logText(), "the daemon's log");
    });
  });
});
