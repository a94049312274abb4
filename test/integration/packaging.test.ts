// `npm pack` produces a package that `npm install -g` turns into a working
// `mxcert` command with hooks/, config/, systemd/ and docs/ included.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO } from '../support/sandbox.js';
import { run } from '../env/proc.js';

describe('packaging', { timeout: 300_000 }, () => {
  it('npm pack → npm install -g into a temp prefix → mxcert --version, --help, config check', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-pack-'));
    const packed = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: REPO, timeoutMs: 180_000 });
    const tarball = path.join(dir, packed.stdout.trim().split('\n').at(-1)!);
    const prefix = path.join(dir, 'prefix');
    await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { timeoutMs: 240_000 });
    const bin = path.join(prefix, 'bin', 'mxcert');
    const version = await run(bin, ['--version']);
    const pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.stdout.trim(), pkg.version);
    const help = await run(bin, ['--help']);
    for (const cmd of ['run', 'renew', 'status', 'tlsa', 'check', 'rollover', 'config']) assert.match(help.stdout, new RegExp(`\\b${cmd}\\b`));
    const installed = path.join(prefix, 'lib', 'node_modules', 'mxcert');
    for (const f of ['hooks/postfix-reload', 'hooks/notify-mail', 'config/example.yaml', 'systemd/mxcert.service', 'docs/systemd.md', 'docs/mxcert.1', 'README.md']) {
      await access(path.join(installed, f));
    }
    // npm links the manual page ("man" in package.json) where man(1) looks under the prefix.
    await access(path.join(prefix, 'share', 'man', 'man1', 'mxcert.1'));
    // A shipped example passes the config check up to the files it names
    // that do not exist here: exit 2 with YAML paths, never a crash.
    const check = await run(bin, ['config', 'check', '--config', path.join(installed, 'config', 'http-01.example.yaml')], { allowFailure: true });
    assert.ok(check.code === 0 || check.code === 2, check.stdout + check.stderr);
    assert.doesNotMatch(check.stderr, /TypeError|ReferenceError|at .*\.js:\d+/);
  });
});
