// `mxcert status` started plainly skips commander (src/cli/main.ts,
// plainStatusArgs): the forms it takes must mean what commander makes of
// them, and everything else must still reach commander.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { plainStatusArgs } from '../../src/cli/main.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'mxcert-status-args-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('plainStatusArgs', () => {
  it('takes status with the global options anywhere and --json, --wide after it, the last value winning', () => {
    assert.deepEqual(plainStatusArgs(['status']), { g: {}, json: false, wide: false });
    assert.deepEqual(plainStatusArgs(['-c', '/a.yaml', 'status', '--json']), { g: { config: '/a.yaml' }, json: true, wide: false });
    assert.deepEqual(plainStatusArgs(['status', '--wide', '--config=/a.yaml', '--format', 'text']), { g: { config: '/a.yaml', format: 'text' }, json: false, wide: true });
    assert.deepEqual(plainStatusArgs(['--format=json', '--log-level', 'warn', 'status', '--config', '/a', '--config', '/b']), {
      g: { config: '/b', format: 'json', logLevel: 'warn' },
      json: false,
      wide: false,
    });
  });

  it('leaves everything else to commander (its help, errors and exit codes)', () => {
    for (const args of [
      [],
      ['run'],
      ['--json', 'status'],
      ['status', 'status'],
      ['status', '--json', '--json'],
      ['status', '--help'],
      ['status', '-h'],
      ['status', '--format', 'yaml'],
      ['status', '--format'],
      ['status', '--log-level=loud'],
      ['status', '--config', '--json'],
      ['status', '-cfile.yaml'],
      ['status', '--', 'x'],
      ['status', 'extra'],
      ['status', '--wait', '5'],
    ]) {
      assert.equal(plainStatusArgs(args), undefined, args.join(' '));
    }
  });

  it('prints what the commander path prints, without loading commander', () => {
    const config = path.join(dir, 'missing.yaml');
    const log = path.join(dir, 'loaded.log');
    const hooks = path.join(dir, 'hooks.mjs');
    writeFileSync(hooks, "import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(process.env.MXCERT_LOADED_LOG, url + '\\n'); return next(url, context); }\n");
    const register = path.join(dir, 'register.mjs');
    writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
    const run = (args: string[]) => {
      writeFileSync(log, '');
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--import', register, '--input-type=module', '-e', `import { main } from './src/cli/main.ts';\nprocess.exitCode = await main(['node', 'mxcert', ...${JSON.stringify(args)}]);`],
        { cwd: REPO, encoding: 'utf8', env: { ...process.env, MXCERT_LOADED_LOG: log } },
      );
      const commander = readFileSync(log, 'utf8').split('\n').some((u) => u.includes('/node_modules/commander/'));
      return { code: r.status, stdout: r.stdout.replace(/"generatedAt": "[^"]*"/, ''), stderr: r.stderr, commander };
    };
    const plain = run(['status', '--json', '--config', config]);
    const viaCommander = run(['status', '--json', `-c${config}`]);
    assert.equal(plain.commander, false, 'the plain path does not load commander');
    assert.equal(viaCommander.commander, true, 'the other spelling goes through commander');
    assert.equal(plain.code, 2, plain.stderr);
    assert.deepEqual({ ...plain, commander: undefined }, { ...viaCommander, commander: undefined });
    assert.match(plain.stdout, /cannot read config file/);
  });
});
