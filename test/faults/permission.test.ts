// mxcert run by a user who may not read root's files: every file it cannot
// read is reported as a permission problem ("mxcert expects to run as root"),
// never as a file that does not exist. The CLI runs as `nobody` (setpriv),
// against files only root may read, the way an operator trying `config
// check` from their own account meets them. No servers needed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { CLI } from '../support/sandbox.js';
import { run } from '../env/proc.js';

describe('faults: run as a user who may not read root\'s files', { timeout: 120_000 }, () => {
  let root: string;
  let cfg: Record<string, unknown>;
  let cfgFile: string;
  let tsigFile: string;
  let hook: string;

  before(async () => {
    // World-traversable down to the config, so only the files meant to be
    // unreadable are (mkdtemp makes 0700 directories).
    root = await mkdtemp(path.join(os.tmpdir(), 'mxcert-perm-'));
    await chmod(root, 0o755);
    const secrets = path.join(root, 'secrets');
    const hooks = path.join(root, 'hooks');
    const out = path.join(root, 'out');
    for (const d of [secrets, hooks, out]) await mkdir(d, { mode: 0o755 });
    await chmod(hooks, 0o700); // a hook directory only root may enter
    tsigFile = path.join(secrets, 'tsig.key');
    await writeFile(tsigFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    hook = path.join(hooks, 'reload');
    await writeFile(hook, '#!/bin/sh\nexit 0\n', { mode: 0o700 });
    cfg = {
      stateDir: path.join(root, 'state'),
      acme: { directory: 'https://127.0.0.1:9/dir', email: 'postmaster@example.test' },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.test'],
          challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.test', tsig: { name: 'mxcert', secretFile: tsigFile } } },
          output: { combined: path.join(out, 'mx1.pem') },
          hooks: { deploy: [hook] },
        },
      ],
    };
    cfgFile = path.join(root, 'config.yaml');
    await writeFile(cfgFile, stringify(cfg), { mode: 0o644 });
  });
  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const asNobody = (args: string[]) =>
    run('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, CLI, ...args], { allowFailure: true, cwd: '/' });

  it('as root the config is valid (so what follows is about permissions only)', async () => {
    const r = await run(process.execPath, [CLI, 'config', 'check', '--config', cfgFile], { allowFailure: true });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('config check as nobody: the secret file and the hook are "permission denied", not "does not exist"', async () => {
    const r = await asNobody(['config', 'check', '--config', cfgFile]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    const lines = r.stderr.split('\n');
    assert.ok(
      lines.includes(`certificates[0].challenge.dns.tsig.secretFile: permission denied reading ${tsigFile}: mxcert expects to run as root`),
      r.stderr,
    );
    assert.ok(lines.includes(`certificates[0].hooks.deploy[0]: hook: permission denied reading ${hook}: mxcert expects to run as root`), r.stderr);
    assert.doesNotMatch(r.stderr, /does not exist/);
  });

  it('a config file only root may read: "permission denied", with the same hint', async () => {
    await chmod(cfgFile, 0o600);
    try {
      const r = await asNobody(['config', 'check', '--config', cfgFile]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`cannot read config file ${cfgFile.replace(/[.]/g, '\\.')}: permission denied: mxcert expects to run as root`));
    } finally {
      await chmod(cfgFile, 0o644);
    }
  });
});
