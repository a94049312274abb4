// The validated config remembered for `mxcert status` (src/config/validated-cache.ts):
// used only for the exact bytes and build it was made from, only from a
// trusted root-only place, never holding an inline secret, and never hiding a
// problem that a full load would report. Real files, real owners (the tests
// run as root and chown to nobody).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { examineConfig } from '../../src/config/load.js';
import { CACHE_DIR, CACHE_FILE, examineConfigForStatus, stateDirHint } from '../../src/config/validated-cache.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BUILD = 'a'.repeat(64);
const OTHER_BUILD = 'b'.repeat(64);
const NOBODY = 65534;
const env = {};

const root = mkdtempSync(path.join(tmpdir(), 'mxcert-vcache-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
let dir: string;
let stateDir: string;
let config: string;
let secretFile: string;
const entryFile = () => path.join(stateDir, CACHE_DIR, CACHE_FILE);

function configObject(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    stateDir,
    acme: { directory: 'https://acme.example.test/directory', email: 'postmaster@example.test', ...extra },
    certificates: ['mx1', 'mx2'].map((name) => ({
      name,
      domains: [`${name}.example.test`],
      challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.test', tsig: { name: 'mxcert', secretFile } } },
      output: { combined: path.join(dir, 'out', `${name}-{keytype}.pem`) },
    })),
  };
}

function writeConfig(text: string): void {
  writeFileSync(config, text, { mode: 0o600 });
  chmodSync(config, 0o600);
}

beforeEach(() => {
  dir = path.join(root, `t${++n}`);
  mkdirSync(path.join(dir, 'out'), { recursive: true, mode: 0o700 });
  stateDir = path.join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  secretFile = path.join(dir, 'tsig.secret');
  writeFileSync(secretFile, 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n', { mode: 0o600 });
  config = path.join(dir, 'config.yaml');
  writeConfig(stringify(configObject()));
});

/** Rewrite the stored entry's config (as an attacker, or a stale build, might), keeping its key and modes. */
function plantDomain(domain: string): void {
  const e = JSON.parse(readFileSync(entryFile(), 'utf8')) as { config: { certificates: Array<{ domains: string[] }> } };
  e.config.certificates[0]!.domains = [domain];
  writeFileSync(entryFile(), JSON.stringify(e));
  chmodSync(entryFile(), 0o600);
}

const domainsSeen = async (build = BUILD) => (await examineConfigForStatus(config, { env, build })).config?.certificates[0]?.domains;

describe('validated config cache for status', () => {
  it('is written after a clean full load (0600 in a 0700 directory) and then used', async () => {
    const first = await examineConfigForStatus(config, { env, build: BUILD });
    assert.deepEqual(first.problems, []);
    assert.equal(statSync(entryFile()).mode & 0o777, 0o600);
    assert.equal(statSync(path.dirname(entryFile())).mode & 0o777, 0o700);
    const second = await examineConfigForStatus(config, { env, build: BUILD });
    assert.deepEqual(second, first, 'the same answer as the full load');
    // Proof that the entry, not a parse, answered: a planted value comes back.
    plantDomain('planted.example.test');
    assert.deepEqual(await domainsSeen(), ['planted.example.test']);
  });

  it('is not used for other bytes (one byte more), nor by another build', async () => {
    await examineConfigForStatus(config, { env, build: BUILD });
    plantDomain('planted.example.test');
    assert.deepEqual(await domainsSeen(OTHER_BUILD), ['mx1.example.test'], 'another build parses');
    await examineConfigForStatus(config, { env, build: BUILD });
    plantDomain('planted.example.test');
    writeConfig(readFileSync(config, 'utf8') + '#\n');
    assert.deepEqual(await domainsSeen(), ['mx1.example.test'], 'changed bytes are parsed');
  });

  for (const [what, spoil] of [
    ['the cache directory is readable by others (0755)', () => chmodSync(path.join(stateDir, CACHE_DIR), 0o755)],
    ['the cache directory is owned by nobody', () => chownSync(path.join(stateDir, CACHE_DIR), NOBODY, NOBODY)],
    ['the state dir is owned by nobody', () => chownSync(stateDir, NOBODY, NOBODY)],
    ['the entry is owned by nobody', () => chownSync(entryFile(), NOBODY, NOBODY)],
    ['the entry is readable by group (0640)', () => chmodSync(entryFile(), 0o640)],
    [
      'the entry is a symlink to a root-owned 0600 copy',
      () => {
        const copy = path.join(dir, 'copy.json');
        writeFileSync(copy, readFileSync(entryFile()), { mode: 0o600 });
        unlinkSync(entryFile());
        symlinkSync(copy, entryFile());
      },
    ],
  ] as const) {
    it(`is not used when ${what}`, async () => {
      await examineConfigForStatus(config, { env, build: BUILD });
      plantDomain('planted.example.test');
      spoil();
      assert.deepEqual(await domainsSeen(), ['mx1.example.test']);
    });
  }

  it('is not used when the entry was made for a config naming another state dir', async () => {
    await examineConfigForStatus(config, { env, build: BUILD });
    const e = JSON.parse(readFileSync(entryFile(), 'utf8')) as { config: { stateDir: string; certificates: Array<{ domains: string[] }> } };
    e.config.stateDir = path.join(dir, 'elsewhere');
    e.config.certificates[0]!.domains = ['planted.example.test'];
    writeFileSync(entryFile(), JSON.stringify(e));
    assert.deepEqual(await domainsSeen(), ['mx1.example.test']);
  });

  it('still reports a problem outside the bytes (secret file now readable by others), exactly as the full load', async () => {
    await examineConfigForStatus(config, { env, build: BUILD });
    plantDomain('planted.example.test');
    chmodSync(secretFile, 0o644);
    const viaCache = await examineConfigForStatus(config, { env, build: BUILD });
    const full = await examineConfig(config, { env });
    assert.ok(full.problems.length > 0);
    assert.deepEqual(viaCache.problems, full.problems);
    assert.deepEqual(viaCache.config?.certificates[0]?.domains, ['mx1.example.test'], 'the full load answered');
  });

  it('still reports an output directory that became unsafe, and a config file others may write', async () => {
    await examineConfigForStatus(config, { env, build: BUILD });
    chownSync(path.join(dir, 'out'), NOBODY, NOBODY);
    const r = await examineConfigForStatus(config, { env, build: BUILD });
    assert.deepEqual(r.problems, (await examineConfig(config, { env })).problems);
    assert.match(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'), /certificates\[0\]\.output\.combined: .*owned by uid 65534/);
    chownSync(path.join(dir, 'out'), 0, 0);
    chmodSync(config, 0o620);
    const w = await examineConfigForStatus(config, { env, build: BUILD });
    assert.match(w.problems.map((p) => p.message).join('\n'), /writable by group/);
    assert.deepEqual(w.problems, (await examineConfig(config, { env })).problems);
  });

  it('is never written for a config with a problem, or with an inline secret, or without a build id', async () => {
    writeConfig(stringify({ ...configObject(), schedule: 42 }));
    const broken = await examineConfigForStatus(config, { env, build: BUILD });
    assert.ok(broken.problems.length > 0);
    assert.deepEqual(broken.problems, (await examineConfig(config, { env })).problems);
    assert.equal(existsSync(entryFile()), false);

    writeConfig(stringify(configObject({ eab: { kid: 'kid-1', hmacKey: 'aW5saW5lLWhtYWMta2V5LW11c3Qtbm90LWJlLWNhY2hlZA' } })));
    assert.deepEqual((await examineConfigForStatus(config, { env, build: BUILD })).problems, []);
    assert.equal(existsSync(entryFile()), false, 'an inline secret is never copied into the cache');

    writeConfig(stringify(configObject()));
    await examineConfigForStatus(config, { env, build: undefined });
    assert.equal(existsSync(entryFile()), false, 'an unbundled run (no build id) caches nothing');

    // A stateDir the next run would not find without parsing (flow style): written nowhere.
    writeConfig(stringify(configObject(), { flow: true }));
    assert.deepEqual((await examineConfigForStatus(config, { env, build: BUILD })).problems, []);
    assert.equal(existsSync(entryFile()), false, 'not written where it would never be found');
  });

  it('does not create a state dir that is not there', async () => {
    rmSync(stateDir, { recursive: true });
    assert.deepEqual((await examineConfigForStatus(config, { env, build: BUILD })).problems, []);
    assert.equal(existsSync(stateDir), false);
  });

  it('is read only by the status command', () => {
    const importers: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && /from '[./]+(config\/)?validated-cache\.js'/.test(readFileSync(p, 'utf8'))) importers.push(path.relative(REPO, p));
      }
    };
    walk(path.join(REPO, 'src'));
    assert.deepEqual(importers, ['src/cli/status.ts']);
  });

  it('a hit loads neither the YAML parser, the schema (zod, node-cron) nor pino', async () => {
    await examineConfigForStatus(config, { env, build: BUILD });
    const log = path.join(dir, 'loaded.log');
    const hooks = path.join(dir, 'hooks.mjs');
    writeFileSync(hooks, "import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(process.env.MXCERT_LOADED_LOG, url + '\\n'); return next(url, context); }\n");
    const register = path.join(dir, 'register.mjs');
    writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
    const script =
      `import './src/cli/status.ts';\nimport { examineConfigForStatus } from './src/config/validated-cache.ts';\n` +
      `const r = await examineConfigForStatus(${JSON.stringify(config)}, { env: {}, build: ${JSON.stringify(BUILD)} });\n` +
      `if (r.problems.length || r.config?.certificates.length !== 2) throw new Error('unexpected result');\n`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', register, '--input-type=module', '-e', script], {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, MXCERT_LOADED_LOG: log },
    });
    assert.equal(r.status, 0, r.stderr);
    const urls = readFileSync(log, 'utf8').trim().split('\n');
    assert.ok(urls.some((u) => u.endsWith('/src/config/validated-cache.ts')), 'the hook saw the cache module load');
    assert.deepEqual(urls.filter((u) => /\/node_modules\/(yaml|zod|node-cron|pino)\/|\/src\/config\/(schema|yaml|load)\.ts$/.test(u)), []);
  });
});

describe('stateDirHint', () => {
  it('reads a top-level stateDir line, plain or quoted, with a comment', () => {
    assert.equal(stateDirHint('acme: {}\nstateDir: /srv/mxcert\n'), '/srv/mxcert');
    assert.equal(stateDirHint('stateDir: "/srv/mx cert" # quoted\n'), '/srv/mx cert');
    assert.equal(stateDirHint("stateDir: '/srv/x'\n"), '/srv/x');
    assert.equal(stateDirHint('stateDir: /srv/y   # where the state lives\n'), '/srv/y');
  });
  it('falls back to the default where there is none at the top level', () => {
    assert.equal(stateDirHint('certificates:\n  - stateDir: /nested\n'), '/var/lib/mxcert');
    assert.equal(stateDirHint('{stateDir: /flow}\n'), '/var/lib/mxcert');
  });
});
