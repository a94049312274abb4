// `mxcert status` as shipped (the bundle, which carries its build id): the
// first run validates the config in full and remembers the result in
// stateDir/cache (src/config/validated-cache.ts), later runs of the same
// bytes use it and print the same; a rebuilt bundle (another build id) or an
// edited config does not; a config problem is still reported in full.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { CLI } from '../support/sandbox.js';

let dir: string;
let config: string;
let entry: string;

function status(): { code: number | null; doc: { certificates: Array<{ cert: string; domains: string[] }>; configProblems: Array<{ path: string; message: string }> } } {
  const r = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', config], { encoding: 'utf8' });
  assert.ok(r.stdout, r.stderr);
  return { code: r.status, doc: JSON.parse(r.stdout) };
}

// Certificates not issued yet are due "now": every instant differs from run to run.
const withoutTime = (s: string) => s.replace(/"\d{4}-\d\d-\d\dT[\d:.]+Z"/g, '"T"');

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mxcert-status-cache-'));
  mkdirSync(path.join(dir, 'out'), { mode: 0o700 });
  const stateDir = path.join(dir, 'state');
  entry = path.join(stateDir, 'cache', 'validated-config.json');
  config = path.join(dir, 'config.yaml');
  writeFileSync(
    config,
    stringify({
      stateDir,
      acme: { directory: 'https://127.0.0.1:14000/dir', email: 'postmaster@example.test' },
      certificates: ['mx1', 'mx2'].map((name) => ({
        name,
        domains: [`${name}.example.test`],
        challenge: { type: 'http-01', http: { listen: '127.0.0.1:5002' } },
        output: { combined: path.join(dir, 'out', `${name}-{keytype}.pem`) },
      })),
    }),
    { mode: 0o600 },
  );
  mkdirSync(stateDir, { mode: 0o700 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('mxcert status with the validated config cache', () => {
  it('remembers the validation on the first run and prints the same from it', () => {
    const first = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', config], { encoding: 'utf8' });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(statSync(entry).mode & 0o777, 0o600);
    const second = spawnSync(process.execPath, [CLI, 'status', '--json', '--config', config], { encoding: 'utf8' });
    assert.equal(second.status, 0, second.stderr);
    assert.equal(withoutTime(second.stdout), withoutTime(first.stdout));
  });

  it('uses the entry (a planted value shows), and not once the config bytes change', () => {
    const e = JSON.parse(readFileSync(entry, 'utf8')) as { build: string; config: { certificates: Array<{ domains: string[] }> } };
    assert.match(e.build, /^[0-9a-f]{64}$/, 'the bundle carries its build id');
    e.config.certificates[0]!.domains = ['planted.example.test'];
    writeFileSync(entry, JSON.stringify(e));
    assert.deepEqual(status().doc.certificates[0]!.domains, ['planted.example.test']);
    writeFileSync(config, readFileSync(config, 'utf8') + '# edited\n');
    assert.deepEqual(status().doc.certificates[0]!.domains, ['mx1.example.test']);
  });

  it('is not used by another build', () => {
    const e = JSON.parse(readFileSync(entry, 'utf8')) as { build: string; config: { certificates: Array<{ domains: string[] }> } };
    e.build = 'f'.repeat(64);
    e.config.certificates[0]!.domains = ['planted.example.test'];
    writeFileSync(entry, JSON.stringify(e));
    assert.deepEqual(status().doc.certificates[0]!.domains, ['mx1.example.test']);
  });

  it('still reports, with exit 2, an output directory that became unsafe after the entry was written', () => {
    status();
    chmodSync(path.join(dir, 'out'), 0o777);
    const r = status();
    chmodSync(path.join(dir, 'out'), 0o700);
    assert.equal(r.code, 2);
    assert.deepEqual(
      r.doc.configProblems.map((p) => p.path),
      ['certificates[0].output.combined', 'certificates[1].output.combined'],
    );
    assert.match(r.doc.configProblems[0]!.message, /writable by group or others/);
  });
});
