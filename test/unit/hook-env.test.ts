// What a hook may receive and what of its output mxcert repeats
// (docs/architecture.md, "Security model"): the pure parts, and the config
// settings behind them (hooks.env, passTimeout).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { hookProcessEnv, reservedHookVariable, secretEnvNames, withholdFromHooks } from '../../src/hooks/environment.js';
import { errorTail, lastBytes, OutputTail } from '../../src/hooks/output-tail.js';
import { childEnv, secretValues } from '../../src/daemon/child-env.js';
import { ConfigError, DeployError, describeError, HookError } from '../../src/errors.js';
import { loadConfig } from '../../src/config/load.js';

describe('hookProcessEnv', () => {
  const inherited = {
    PATH: '/usr/sbin:/usr/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    LC_ALL: 'C',
    LC_TIME: 'en_GB.UTF-8',
    TZ: 'Europe/Berlin',
    SHELL: '/bin/bash',
    SSH_AUTH_SOCK: '/tmp/agent',
    MXCERT_CONFIG: '/etc/mxcert/config.yaml',
    MXCERT_KEY: '/stale',
    HKE_TSIG: 'tsig-secret',
    HKE_OTHER: 'unrelated',
  };

  it('inherits only PATH, LANG, LC_*, TZ and HOME; adds the config env, then mxcert variables win', () => {
    const env = hookProcessEnv({ MXCERT_EVENT: 'deploy', RENEWED_DOMAINS: 'a.test' }, { POSTFIX_CONFIG_DIR: '/etc/pf', PATH: '/opt/bin:/usr/bin', MXCERT_EVENT: 'x', RENEWED_LINEAGE: '/x' }, inherited);
    assert.deepEqual(env, {
      PATH: '/opt/bin:/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
      LC_TIME: 'en_GB.UTF-8',
      TZ: 'Europe/Berlin',
      POSTFIX_CONFIG_DIR: '/etc/pf',
      MXCERT_EVENT: 'deploy',
      RENEWED_DOMAINS: 'a.test',
    });
  });

  it('never passes a withheld name, from any source', () => {
    withholdFromHooks(['HKE_TSIG', 'LC_SECRET']);
    const env = hookProcessEnv({ MXCERT_EVENT: 'deploy', HKE_TSIG: 'from mxcert' }, { HKE_TSIG: 'listed in config' }, { ...inherited, LC_SECRET: 'x' });
    assert.equal(env.HKE_TSIG, undefined);
    assert.equal(env.LC_SECRET, undefined);
    assert.equal(env.MXCERT_EVENT, 'deploy');
  });

  it('reserved names: mxcert\'s and certbot\'s, except the settings of the shipped hooks', () => {
    for (const n of ['MXCERT_EVENT', 'MXCERT_ERROR', 'MXCERT_FUTURE', 'RENEWED_LINEAGE', 'RENEWED_X']) assert.equal(reservedHookVariable(n), true, n);
    for (const n of ['MXCERT_NOTIFY_TO', 'POSTFIX_CONFIG_DIR', 'PATH', 'MXCERTX']) assert.equal(reservedHookVariable(n), false, n);
  });
});

describe('secretEnvNames', () => {
  it('finds every *Env setting, wherever it is, and nothing else', () => {
    const names = secretEnvNames({
      acme: { eab: { kid: 'k', hmacKeyEnv: 'A' } },
      certificates: [
        { challenge: { dns: { tsig: { secretEnv: 'B', secretFile: '/x' } } }, hooks: { env: { NOT_A_SECRET: 'v' } } },
        { dane: { publisher: { provider: 'pdns', apiKeyEnv: 'C' } } },
        { dane: { publisher: { provider: 'rfc2136', tsig: { secretEnv: 'D' } } } },
      ],
    });
    assert.deepEqual([...names].sort(), ['A', 'B', 'C', 'D']);
  });
});

describe('the daemon children\'s environment', () => {
  it('keeps what hooks and Node need, drops secrets and everything else; secrets travel separately', () => {
    const env = { PATH: '/usr/bin', HOME: '/root', LANG: 'C', LC_ALL: 'C', TZ: 'UTC', TMPDIR: '/var/tmp', NODE_EXTRA_CA_CERTS: '/ca.pem', MXCERT_LOG_LEVEL: 'debug', TSIG: 's1', PDNS: 's2', OTHER: 'x', SHELL: '/bin/sh' };
    const secrets = new Set(['TSIG', 'PDNS', 'UNSET']);
    assert.deepEqual(childEnv(env, secrets), { PATH: '/usr/bin', HOME: '/root', LANG: 'C', LC_ALL: 'C', TZ: 'UTC', TMPDIR: '/var/tmp', NODE_EXTRA_CA_CERTS: '/ca.pem', MXCERT_LOG_LEVEL: 'debug' });
    assert.deepEqual(childEnv(env, new Set(['PATH'])).PATH, undefined, 'a secret named like an inherited variable is dropped too');
    assert.deepEqual(secretValues(env, secrets), { TSIG: 's1', PDNS: 's2' });
  });
});

describe('errorTail', () => {
  it('all of a short output, lines joined on one line', () => {
    const t = new OutputTail(64 * 1024);
    for (const l of ['first', '', 'second  ', 'third']) t.push(l);
    assert.equal(errorTail(t, 'stderr'), 'first | second | third');
    assert.equal(errorTail(new OutputTail(1024), 'stderr'), '');
  });

  it('the last 20 lines of a long output, and says so', () => {
    const t = new OutputTail(64 * 1024);
    for (let i = 0; i < 1000; i++) t.push(`line ${i}`);
    const text = errorTail(t, 'stderr');
    assert.ok(text.startsWith('stderr (last 20 of 1000 lines): line 980 | '), text);
    assert.ok(text.endsWith('line 999'));
    assert.ok(!text.includes('line 979'));
  });

  it('at most 2 KiB, even for long lines', () => {
    const t = new OutputTail(64 * 1024);
    for (let i = 0; i < 30; i++) t.push(`${i}:${'x'.repeat(300)}`);
    const text = errorTail(t, 'stdout');
    const body = text.slice(text.indexOf('): ') + 3);
    assert.ok(Buffer.byteLength(body) <= 2048, `${Buffer.byteLength(body)} bytes`);
    assert.match(text, /^stdout \(last 6 of 30 lines\): 24:x+/);
    const one = new OutputTail(64 * 1024);
    one.push(`start${'é'.repeat(5000)}end`);
    const cut = errorTail(one, 'stderr');
    assert.ok(Buffer.byteLength(cut) <= 2048 && cut.startsWith('…') && cut.endsWith('éend'), cut.slice(0, 20));
  });

  it('control characters and terminal escapes do not get through', () => {
    const t = new OutputTail(1024);
    t.push('\x1b[31mred\x1b[0m\tand a bell\x07');
    assert.equal(errorTail(t, 'stderr'), 'red and a bell?');
  });

  it('OutputTail keeps only the end, whole characters', () => {
    const t = new OutputTail(100);
    for (let i = 0; i < 100; i++) t.push(`line ${i}`);
    assert.ok(Buffer.byteLength(t.text()) <= 100);
    assert.ok(t.text().endsWith('line 99'));
    assert.equal(lastBytes('abcd€', 6), '…€', 'cut before whole characters');
    assert.equal(lastBytes('abcd€', 5), '…', 'never half a character');
    assert.equal(lastBytes('abc', 3), 'abc');
  });
});

describe('describeError and hook errors', () => {
  // What execa puts in an error: the whole command line, and the output.
  const execaLike = Object.assign(new Error('Command failed with exit code 1: /usr/lib/hook --token=SECRET\n\nall the stderr'), {
    escapedCommand: '/usr/lib/hook --token=SECRET',
    exitCode: 1,
  });

  it('stops at a HookError: its message is whole; the execa cause is never shown', () => {
    const hook = new HookError('hook /usr/lib/hook exited with code 1: the reason', { exitCode: 1 }, { cause: execaLike });
    const text = describeError(new DeployError(`hooks: ${hook.message}`, { cause: hook }));
    assert.equal(text, 'hooks: hook /usr/lib/hook exited with code 1: the reason');
  });

  it('never renders an execa error or result, wrapped or not', () => {
    const wrapped = describeError(new DeployError('nsupdate failed', { cause: execaLike }));
    assert.equal(wrapped, 'nsupdate failed');
    const bare = describeError(execaLike);
    assert.equal(bare, 'a command exited with code 1');
    assert.ok(!describeError({ escapedCommand: 'x --token=SECRET', signal: 'SIGKILL' }).includes('SECRET'));
  });
});

describe('config: hooks.env and passTimeout', () => {
  let dir: string;
  let out: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-hookenv-'));
    out = path.join(dir, 'out');
    await mkdir(out, { mode: 0o700 });
    await chmod(dir, 0o700);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(mutate: (c: Record<string, any>) => void, env: NodeJS.ProcessEnv = {}) {
    const c: Record<string, any> = {
      acme: { directory: 'https://acme.example.test/directory' },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.com'],
          challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.com', tsig: { name: 'k', secretEnv: 'HKE_CFG_TSIG' } } },
          output: { combined: `${out}/mx1.pem` },
        },
      ],
    };
    mutate(c);
    const file = path.join(dir, 'config.yaml');
    await writeFile(file, stringify(c));
    return loadConfig(file, { env: { HKE_CFG_TSIG: 'c2VjcmV0', ...env } });
  }

  async function problems(mutate: (c: Record<string, any>) => void): Promise<string[]> {
    const err = await load(mutate).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }

  it('defaults: no hook env, a one-hour pass deadline', async () => {
    const cfg = await load(() => {});
    assert.deepEqual(cfg.certificates[0]!.hooks.env, {});
    assert.equal(cfg.passTimeout, 3_600_000);
  });

  it('accepts variables for the hooks, and a passTimeout', async () => {
    const cfg = await load((c) => {
      c.certificates[0].hooks = { env: { POSTFIX_CONFIG_DIR: '/etc/postfix-out', MXCERT_NOTIFY_TO: 'root' } };
      c.passTimeout = '20m';
    });
    assert.deepEqual(cfg.certificates[0]!.hooks.env, { POSTFIX_CONFIG_DIR: '/etc/postfix-out', MXCERT_NOTIFY_TO: 'root' });
    assert.equal(cfg.passTimeout, 20 * 60_000);
  });

  it('refuses bad and reserved names, a secret\'s name, and a tiny passTimeout, each with its path', async () => {
    const lines = await problems((c) => {
      c.certificates[0].hooks = { env: { 'BAD-NAME': 'x', MXCERT_EVENT: 'x', RENEWED_LINEAGE: '/x', HKE_CFG_TSIG: 'x' } };
      c.passTimeout = '500ms';
    });
    const has = (re: RegExp) => assert.ok(lines.some((l) => re.test(l)), `${re} in\n${lines.join('\n')}`);
    has(/^certificates\[0\]\.hooks\.env\.BAD-NAME|^certificates\[0\]\.hooks\.env\["BAD-NAME"\]: .*not an environment variable name/);
    has(/^certificates\[0\]\.hooks\.env\.MXCERT_EVENT: MXCERT_\* and RENEWED_\* variables are set by mxcert/);
    has(/^certificates\[0\]\.hooks\.env\.RENEWED_LINEAGE: /);
    has(/^passTimeout: must be at least 1s/);
    // The secret's name is found once the schema passes.
    const secret = await problems((c) => {
      c.certificates[0].hooks = { env: { HKE_CFG_TSIG: 'x' } };
    });
    assert.deepEqual(secret, ['certificates[0].hooks.env.HKE_CFG_TSIG: HKE_CFG_TSIG is named by a secretEnv/apiKeyEnv/hmacKeyEnv setting; hooks never get a secret']);
  });
});
