import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { hookEnvironment, HOOK_VARIABLES, secretEnvNames, withholdFromHooks } from '../../src/hooks/environment.js';
import { runHook } from '../../src/hooks/run-hook.js';
import { DeployError, describeError, HookError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/log.js';

const HOOKS_DIR = fileURLToPath(new URL('../../hooks/', import.meta.url));
const isRoot = process.geteuid?.() === 0;

function captureLogger(level = 'info'): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n').filter(Boolean)) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger: Logger = pino({ level }, stream);
  return { logger, records };
}

async function script(dir: string, name: string, body: string): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, `#!/bin/sh\n${body}\n`);
  await chmod(p, 0o755);
  return p;
}

function hookError(check: (e: HookError) => void) {
  return (err: unknown) => {
    assert.ok(err instanceof HookError, `expected HookError, got ${String(err)}`);
    check(err);
    return true;
  };
}

describe('hookEnvironment', () => {
  it('deploy: names, key type, written outputs only, certbot variables', () => {
    const env = hookEnvironment({
      event: 'deploy',
      certName: 'mx1',
      domains: ['mx1.example.test', 'mx2.example.test'],
      keyType: 'ecdsa-p256',
      outputs: { combined: '/etc/postfix/tls/mx1.pem', fullchain: '/etc/ssl/mx1/fullchain.pem', key: undefined },
      lineageDir: '/var/lib/mxcert/live/mx1',
    });
    assert.deepEqual(env, {
      MXCERT_EVENT: 'deploy',
      MXCERT_CERT_NAME: 'mx1',
      MXCERT_DOMAINS: 'mx1.example.test mx2.example.test',
      MXCERT_KEY_TYPE: 'ecdsa-p256',
      MXCERT_COMBINED: '/etc/postfix/tls/mx1.pem',
      MXCERT_FULLCHAIN: '/etc/ssl/mx1/fullchain.pem',
      RENEWED_LINEAGE: '/var/lib/mxcert/live/mx1',
      RENEWED_DOMAINS: 'mx1.example.test mx2.example.test',
    });
  });

  it('every output kind has its variable', () => {
    const env = hookEnvironment({
      event: 'deploy', certName: 'c', domains: ['a.test'], keyType: 'rsa-2048',
      outputs: { combined: '/o/1', key: '/o/2', cert: '/o/3', chain: '/o/4', fullchain: '/o/5' },
    });
    assert.equal(env.MXCERT_COMBINED, '/o/1');
    assert.equal(env.MXCERT_KEY, '/o/2');
    assert.equal(env.MXCERT_CERT, '/o/3');
    assert.equal(env.MXCERT_CHAIN, '/o/4');
    assert.equal(env.MXCERT_FULLCHAIN, '/o/5');
    assert.equal(env.RENEWED_LINEAGE, undefined);
    for (const k of Object.keys(env)) assert.ok(HOOK_VARIABLES.includes(k), k);
  });

  it('failure carries the error; tlsa events carry the records one per line', () => {
    const fail = hookEnvironment({ event: 'failure', certName: 'mx1', domains: ['a.test'], keyType: 'ecdsa-p384', outputs: {}, error: 'names: the leaf does not cover b.test' });
    assert.equal(fail.MXCERT_EVENT, 'failure');
    assert.equal(fail.MXCERT_ERROR, 'names: the leaf does not cover b.test');
    assert.equal(fail.MXCERT_TLSA, undefined);
    assert.equal(fail.MXCERT_COMBINED, undefined);

    const records = ['_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 aa', '_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 bb'];
    const pub = hookEnvironment({ event: 'tlsa-publish', certName: 'mx1', domains: ['a.test'], keyType: 'ecdsa-p256', outputs: {}, tlsa: records });
    assert.equal(pub.MXCERT_EVENT, 'tlsa-publish');
    assert.equal(pub.MXCERT_TLSA, records.join('\n'));
    assert.equal(pub.MXCERT_ERROR, undefined);
  });
});

describe('runHook', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert hooks ')); // a space in every hook path
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes the hook environment, logs output lines at debug level only, returns the output', async () => {
    const hook = await script(dir, 'env-hook', 'echo "event=$MXCERT_EVENT"\necho "home=${HOME:+set}"\necho "stale=${MXCERT_KEY:-none}"\necho oops >&2');
    const { logger, records } = captureLogger('debug');
    const quiet = captureLogger('info');
    process.env.MXCERT_KEY = '/stale/from/parent';
    try {
      const r = await runHook([hook], { env: { MXCERT_EVENT: 'deploy' }, timeoutMs: 5000, logger });
      assert.equal(r.exitCode, 0);
      assert.equal(r.stdout, 'event=deploy\nhome=set\nstale=none');
      assert.equal(r.stderr, 'oops');
      await runHook([hook], { env: { MXCERT_EVENT: 'deploy' }, timeoutMs: 5000, logger: quiet.logger });
    } finally {
      delete process.env.MXCERT_KEY;
    }
    assert.deepEqual(quiet.records.filter((r) => r.stream), [], 'no output lines at info level');
    const lines = records.filter((r) => r.hook === hook && r.stream);
    assert.ok(lines.every((r) => r.level === 20), 'debug level');
    // Within a stream the order is kept; across stdout and stderr it is not defined.
    assert.deepEqual(lines.filter((r) => r.stream === 'stdout').map((r) => r.msg), ['event=deploy', 'home=set', 'stale=none']);
    assert.deepEqual(lines.filter((r) => r.stream === 'stderr').map((r) => r.msg), ['oops']);
  });

  it('passes argv literally, without a shell', async () => {
    const hook = await script(dir, 'args-hook', 'for a in "$@"; do printf "[%s]\\n" "$a"; done');
    const marker = path.join(dir, 'pwned');
    const args = ['two words', `x; touch '${marker}'`, '$(id -u)', '*', '`echo hi`', "it's", ''];
    const r = await runHook([hook, ...args], { env: {}, timeoutMs: 5000, logger: silentLogger });
    assert.deepEqual(r.stdout.split('\n'), args.map((a) => `[${a}]`));
    await assert.rejects(access(marker));
  });

  it('a non-zero exit is a HookError with the code and the end of stderr', async () => {
    const hook = await script(dir, 'fail-hook', 'echo working\necho "first problem" >&2\necho "postfix: fatal: bad config" >&2\nexit 1');
    await assert.rejects(
      runHook([hook], { env: {}, timeoutMs: 5000, logger: silentLogger }),
      hookError((e) => {
        assert.equal(e.exitCode, 1);
        assert.equal(e.timedOut, false);
        assert.equal(e.message, `hook ${hook} exited with code 1: first problem | postfix: fatal: bad config`);
      }),
    );
    const stdoutOnly = await script(dir, 'stdout-fail', 'echo "said on stdout"\nexit 2');
    await assert.rejects(
      runHook([stdoutOnly], { env: {}, timeoutMs: 5000, logger: silentLogger }),
      hookError((e) => assert.equal(e.message, `hook ${stdoutOnly} exited with code 2: said on stdout`)),
    );
    const quiet = await script(dir, 'quiet-fail', 'exit 3');
    await assert.rejects(
      runHook([quiet], { env: {}, timeoutMs: 5000, logger: silentLogger }),
      hookError((e) => assert.equal(e.message, `hook ${quiet} exited with code 3`)),
    );
  });

  it('a hook that hangs times out, and its children are killed too', async () => {
    const hook = await script(dir, 'sleep-hook', 'echo started\nsleep 30');
    const t0 = Date.now();
    await assert.rejects(
      // A long grace: SIGTERM to the whole group must end it, not the SIGKILL fallback.
      runHook([hook], { env: {}, timeoutMs: 300, logger: silentLogger, killGraceMs: 10_000 }),
      hookError((e) => {
        assert.equal(e.timedOut, true);
        assert.equal(e.message, `hook ${hook} timed out after 300 ms: started`);
      }),
    );
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 250 && elapsed < 2500, `took ${elapsed} ms`);
  });

  it('a hook that ignores SIGTERM is killed after the grace period', async () => {
    const hook = await script(dir, 'stubborn-hook', "trap '' TERM\nsleep 30");
    const t0 = Date.now();
    await assert.rejects(
      runHook([hook], { env: {}, timeoutMs: 200, logger: silentLogger, killGraceMs: 300 }),
      hookError((e) => assert.equal(e.timedOut, true)),
    );
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 450 && elapsed < 3000, `took ${elapsed} ms`);
  });

  it('gets a clean environment: its variables, PATH/LANG/LC_*/TZ/HOME, its config env; no secret, nothing else', async () => {
    // A root-owned directory, mode 0755, as hooks live in.
    const hooksDir = await mkdtemp(path.join(tmpdir(), 'mxcert-envhook-'));
    await chmod(hooksDir, 0o755);
    const dump = path.join(hooksDir, 'env.out');
    const hook = await script(hooksDir, 'dump-env', `env > '${dump}'`);
    const config = {
      acme: { eab: { kid: 'k', hmacKeyEnv: 'UT_EAB_HMAC' } },
      certificates: [
        { challenge: { dns: { tsig: { secretEnv: 'UT_TSIG_SECRET' } } }, dane: { publisher: { provider: 'pdns', apiKeyEnv: 'UT_PDNS_KEY' } } },
      ],
    };
    withholdFromHooks(secretEnvNames(config));
    const set = { UT_EAB_HMAC: 'eab-hmac-value', UT_TSIG_SECRET: 'tsig-secret-value', UT_PDNS_KEY: 'pdns-key-value', UT_UNRELATED: 'unrelated', LANG: 'C.UTF-8', LC_TIME: 'C', TZ: 'UTC' };
    const saved = Object.fromEntries(Object.keys(set).map((k) => [k, process.env[k]]));
    Object.assign(process.env, set);
    try {
      await runHook([hook], {
        env: { MXCERT_EVENT: 'deploy', MXCERT_CERT_NAME: 'mx1' },
        // Listing a secret's name does not pass it either.
        configEnv: { POSTFIX_CONFIG_DIR: '/etc/postfix-out', UT_TSIG_SECRET: 'listed', MXCERT_EVENT: 'spoofed' },
        timeoutMs: 5000,
        logger: silentLogger,
      });
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    const text = await readFile(dump, 'utf8');
    const env = Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    for (const secret of ['eab-hmac-value', 'tsig-secret-value', 'pdns-key-value', 'unrelated', 'listed']) assert.ok(!text.includes(secret), `${secret} reached the hook`);
    assert.equal(env.MXCERT_EVENT, 'deploy');
    assert.equal(env.MXCERT_CERT_NAME, 'mx1');
    assert.equal(env.POSTFIX_CONFIG_DIR, '/etc/postfix-out');
    assert.equal(env.PATH, process.env.PATH);
    assert.equal(env.HOME, process.env.HOME);
    assert.equal(env.LANG, 'C.UTF-8');
    assert.equal(env.LC_TIME, 'C');
    assert.equal(env.TZ, 'UTC');
    // sh adds PWD (and maybe SHLVL, _) itself.
    const extra = Object.keys(env).filter((k) => !['MXCERT_EVENT', 'MXCERT_CERT_NAME', 'POSTFIX_CONFIG_DIR', 'PATH', 'HOME', 'LANG', 'LC_TIME', 'TZ', 'PWD', 'SHLVL', '_'].includes(k));
    assert.deepEqual(extra, [], 'nothing else');
    await rm(hooksDir, { recursive: true, force: true });
  });

  it('a failed hook with huge output: the error has the path, exit code and a bounded tail, never its arguments', async () => {
    const hook = await script(dir, 'noisy-fail', 'i=0\nwhile [ $i -lt 10000 ]; do echo "early line $i of noise" >&2; i=$((i+1)); done\necho "the real reason" >&2\nexit 4');
    const secretArg = 'sk-Secret-Looking-Argument-0123456789';
    let err: HookError | undefined;
    await runHook([hook, secretArg], { env: {}, timeoutMs: 20_000, logger: silentLogger }).catch((e: unknown) => (err = e as HookError));
    assert.ok(err instanceof HookError);
    assert.equal(err.exitCode, 4);
    const text = describeError(new DeployError('hooks', { cause: new DeployError(`hooks: ${err.message}`, { cause: err }) }));
    assert.ok(text.includes(`hook ${hook} exited with code 4`), text);
    assert.ok(!text.includes(secretArg), 'no argument in the error');
    assert.ok(!text.includes('early line 0 '), 'no early line');
    assert.ok(!text.includes('early line 9979 '), 'no line before the last 20');
    assert.equal(text.split('the real reason').length - 1, 1, 'the tail appears once');
    const tail = err.message.slice(err.message.indexOf('lines): ') + 'lines): '.length);
    assert.ok(Buffer.byteLength(tail) <= 2048, `tail of ${Buffer.byteLength(tail)} bytes`);
    assert.match(err.message, /stderr \(last 20 of 10001 lines\)/);
    assert.ok(err.message.endsWith('early line 9999 of noise | the real reason'), err.message.slice(-200));
  });

  it('a hook that exits 0 leaving a setsid child on its stdout succeeds at its exit, not at the child\'s end', async () => {
    const hooksDir = await mkdtemp(path.join(tmpdir(), 'mxcert-setsid-'));
    await chmod(hooksDir, 0o755);
    const marker = path.join(hooksDir, 'child-ended');
    const pidFile = path.join(hooksDir, 'child.pid');
    // The child keeps the hook's stdout and stderr open for 60 s, then leaves its marker.
    const hook = await script(hooksDir, 'leaves-child', `echo deploying\nsetsid sh -c 'echo $$ > "${pidFile}"; sleep 60; touch "${marker}"' &\necho done`);
    try {
      const r = await runHook([hook], { env: {}, timeoutMs: 3000, logger: silentLogger });
      assert.equal(r.exitCode, 0);
      assert.match(r.stdout, /deploying/);
      await assert.rejects(access(marker), 'runHook returned while the child still lived');
    } finally {
      const pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
      if (pid > 0) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await rm(hooksDir, { recursive: true, force: true });
    }
  });

  it('a missing or non-executable hook is a clear HookError', async () => {
    const missing = path.join(dir, 'no-such-hook');
    await assert.rejects(
      runHook([missing], { env: {}, timeoutMs: 5000, logger: silentLogger }),
      hookError((e) => assert.match(e.message, new RegExp(`hook ${missing} does not exist`))),
    );
    const plain = path.join(dir, 'not-executable');
    await writeFile(plain, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    await assert.rejects(
      runHook([plain], { env: {}, timeoutMs: 5000, logger: silentLogger }),
      hookError((e) => assert.match(e.message, /not-executable is not executable/)),
    );
    await assert.rejects(runHook([], { env: {}, timeoutMs: 5000, logger: silentLogger }), HookError);
  });
});

describe('runHook: only trusted hooks run', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-hook-trust-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A hook that would leave a marker if it ran. */
  async function markerHook(where: string, name: string): Promise<{ hook: string; marker: string }> {
    const marker = path.join(dir, `${name}.ran`);
    return { hook: await script(where, name, `touch '${marker}'`), marker };
  }

  it('a hook of mode 0777 owned by nobody in a 0777 directory is refused and does not run', async () => {
    const open = path.join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    const { hook, marker } = await markerHook(open, 'evil');
    await chmod(hook, 0o777);
    if (isRoot) await chown(hook, 65534, 65534);
    await assert.rejects(
      runHook([hook], { env: {}, timeoutMs: 5000, logger: silentLogger }),
      hookError((e) => assert.match(e.message, new RegExp(`^refusing to run hook ${hook}: directory ${open} is writable by group or others \\(mode 0777\\)`))),
    );
    await assert.rejects(access(marker), 'the hook did not run');
  });

  it('refused: a hook owned by nobody, a group-writable hook, a hook in a directory owned by nobody', { skip: !isRoot && 'needs root to chown' }, async () => {
    const a = await markerHook(dir, 'owned-by-nobody');
    await chown(a.hook, 65534, 65534);
    const b = await markerHook(dir, 'group-writable');
    await chmod(b.hook, 0o775);
    const theirs = path.join(dir, 'theirs');
    await mkdir(theirs, { mode: 0o755 });
    const c = await markerHook(theirs, 'in-their-dir');
    await chown(theirs, 65534, 65534);
    const expect: Array<[typeof a, string]> = [
      [a, `${a.hook} is owned by uid 65534 (nobody), not root`],
      [b, `${b.hook} is writable by group or others (mode 0775)`],
      [c, `directory ${theirs} is owned by uid 65534 (nobody), not root`],
    ];
    for (const [h, why] of expect) {
      await assert.rejects(
        runHook([h.hook], { env: {}, timeoutMs: 5000, logger: silentLogger }),
        hookError((e) => assert.ok(e.message.startsWith(`refusing to run hook ${h.hook}: ${why}; it and every directory above it must be owned by root`), e.message)),
      );
      await assert.rejects(access(h.marker), `${h.hook} did not run`);
    }
  });

  it('a root-owned hook reached through root-owned links (/bin -> usr/bin) runs', async () => {
    const r = await runHook(['/bin/echo', 'ok'], { env: {}, timeoutMs: 5000, logger: silentLogger });
    assert.equal(r.stdout, 'ok');
  });
});

describe('shipped hooks', () => {
  let dir: string;
  let bin: string;
  let calls: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-shipped-'));
    bin = path.join(dir, 'bin');
    calls = path.join(dir, 'calls');
    await mkdir(bin);
    // Fakes that record their argv; FAIL_ON=<first word> makes that call fail.
    const fake = (name: string) =>
      script(bin, name, `echo "${name} $*" >> "${calls}"\ncase " $* " in *" \${FAIL_ON:-none} "*) echo "${name}: fatal: broken" >&2; exit 7;; esac`);
    await Promise.all(['postfix', 'exim', 'doveconf', 'doveadm'].map(fake));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function run(hook: string, args: string[], env: Record<string, string> = {}): Promise<string[]> {
    await rm(calls, { force: true });
    await runHook([path.join(HOOKS_DIR, hook), ...args], {
      env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...env },
      timeoutMs: 10_000,
      logger: silentLogger,
    });
    return callsSoFar();
  }

  async function callsSoFar(): Promise<string[]> {
    return (await readFile(calls, 'utf8')).trim().split('\n');
  }

  it('are executable POSIX sh scripts with set -eu and a header', async () => {
    for (const name of ['postfix-reload', 'exim-reload', 'dovecot-reload']) {
      const p = path.join(HOOKS_DIR, name);
      assert.ok((await stat(p)).mode & 0o111, `${name} executable`);
      const text = await readFile(p, 'utf8');
      assert.ok(text.startsWith('#!/bin/sh\n# '), name);
      assert.match(text, /^set -eu$/m, name);
    }
  });

  it('postfix-reload: check then reload, config dir from argument or POSTFIX_CONFIG_DIR', async () => {
    assert.deepEqual(await run('postfix-reload', ['/etc/postfix-mx1']), ['postfix -c /etc/postfix-mx1 check', 'postfix -c /etc/postfix-mx1 reload']);
    assert.deepEqual(await run('postfix-reload', [], { POSTFIX_CONFIG_DIR: '/etc/pf two' }), ['postfix -c /etc/pf two check', 'postfix -c /etc/pf two reload']);
    assert.deepEqual(await run('postfix-reload', []), ['postfix check', 'postfix reload']);
  });

  it('postfix-reload: a failed check stops before the reload and fails the hook', async () => {
    await assert.rejects(
      run('postfix-reload', ['/etc/pf'], { FAIL_ON: 'check' }),
      hookError((e) => {
        assert.equal(e.exitCode, 7);
        assert.match(e.message, /'postfix check' failed/);
      }),
    );
    assert.deepEqual(await callsSoFar(), ['postfix -c /etc/pf check']);
  });

  it('dovecot-reload: doveconf -n then doveadm reload; a bad config stops it', async () => {
    assert.deepEqual(await run('dovecot-reload', []), ['doveconf -n', 'doveadm reload']);
    assert.deepEqual(await run('dovecot-reload', [], { DOVECOT_CONFIG: '/etc/dc.conf' }), ['doveconf -c /etc/dc.conf -n', 'doveadm -c /etc/dc.conf reload']);
    await assert.rejects(run('dovecot-reload', [], { FAIL_ON: '-n' }), HookError);
    assert.deepEqual(await callsSoFar(), ['doveconf -n']);
  });

  it('exim-reload: exim -bV then SIGHUP to the PID in EXIM_PID_FILE', async () => {
    const hupFile = path.join(dir, 'hupped');
    const daemon = spawn('sh', ['-c', `trap 'echo hup > "${hupFile}"; exit 0' HUP; while :; do sleep 0.05; done`], { stdio: 'ignore' });
    try {
      const pidFile = path.join(dir, 'exim.pid');
      await writeFile(pidFile, `${daemon.pid}\n`);
      assert.deepEqual(await run('exim-reload', [], { EXIM_PID_FILE: pidFile }), ['exim -bV']);
      for (let i = 0; i < 100 && !(await access(hupFile).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await readFile(hupFile, 'utf8'), 'hup\n');

      await assert.rejects(run('exim-reload', [], { EXIM_PID_FILE: path.join(dir, 'missing.pid') }), hookError((e) => assert.match(e.message, /cannot read pid file/)));
      await writeFile(pidFile, 'garbage\n');
      await assert.rejects(run('exim-reload', [], { EXIM_PID_FILE: pidFile }), hookError((e) => assert.match(e.message, /no PID/)));
      await assert.rejects(run('exim-reload', [], { EXIM_PID_FILE: pidFile, FAIL_ON: '-bV' }), hookError((e) => assert.match(e.message, /'exim -bV' failed/)));
    } finally {
      daemon.kill('SIGKILL');
    }
  });
});
