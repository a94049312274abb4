// @peculiar/x509 (asn1js, its schemas, reflect-metadata, tsyringe) is loaded
// only on the paths that issue or inspect a certificate: `mxcert status`
// reads meta.json and must not load it (bench/README.md: its start-up time),
// nor may the daemon parent (daemon-process.test.ts checks its static imports).
// Here: what a real `mxcert status` process loads, recorded by a module hook,
// with a positive control showing the hook does see the library when a chain
// is checked.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { StateStore } from '../../src/store/state-store.js';
import { makePki } from './pki-fixtures.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

let dir: string;
let hook: string;
let config: string;
let chainFile: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'mxcert-lazy-x509-'));
  // A loader hook that writes every module URL node loads to $MXCERT_LOADED_LOG.
  const hooks = path.join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    "import { appendFileSync } from 'node:fs';\n" +
      'export async function load(url, context, next) { appendFileSync(process.env.MXCERT_LOADED_LOG, url + "\\n"); return next(url, context); }\n',
  );
  hook = path.join(dir, 'register.mjs');
  writeFileSync(hook, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);

  const now = new Date();
  const pki = await makePki(now, ['mx1.example.test']);
  const stateDir = path.join(dir, 'state');
  mkdirSync(path.join(dir, 'out'), { mode: 0o700 });
  config = path.join(dir, 'config.yaml');
  writeFileSync(
    config,
    stringify({
      stateDir,
      acme: { directory: 'https://127.0.0.1:14000/dir', email: 'postmaster@example.test' },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.test'],
          keys: ['ecdsa-p256'],
          challenge: { type: 'http-01', http: { listen: '127.0.0.1:5002' } },
          output: { combined: path.join(dir, 'out', 'mx1-{keytype}.pem') },
        },
      ],
    }),
    { mode: 0o600 },
  );
  // A stored certificate, so status has a version and its metadata to show.
  const store = new StateStore(stateDir);
  const id = await store.saveVersion('mx1', 'ecdsa-p256', {
    keyPem: pki.leaf.keyPem,
    leafPem: pki.leaf.pem,
    intermediatesPem: [pki.intermediate.pem],
    meta: {
      serial: '01',
      notBefore: now.toISOString(),
      notAfter: new Date(now.getTime() + 86_400_000).toISOString(),
      names: ['mx1.example.test'],
      issuer: 'CN=mxcert Test Intermediate',
      spkiSha256: '00',
      keyType: 'ecdsa-p256',
      issuedAt: now.toISOString(),
    },
  });
  await store.writeState('mx1', 'ecdsa-p256', { current: id, consecutiveFailures: 0 });
  chainFile = path.join(dir, 'chain.json');
  writeFileSync(chainFile, JSON.stringify({ keyPem: pki.leaf.keyPem, chainPem: pki.leaf.pem + pki.intermediate.pem }));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Run `script` (ESM, from the repository root) under tsx and the hook; the module URLs it loaded. */
function loadedBy(script: string, log: string): { urls: string[]; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', hook, '--input-type=module', '-e', script], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, MXCERT_LOADED_LOG: log },
  });
  assert.equal(r.status, 0, r.stderr);
  return { urls: readFileSync(log, 'utf8').trim().split('\n'), stdout: r.stdout };
}

const isX509 = (u: string): boolean => /@peculiar\/x509|\/asn1js\/|src\/util\/cert-fields\.ts/.test(u);

describe('@peculiar/x509 is loaded lazily', () => {
  it('`mxcert status` does not load it', () => {
    const { urls, stdout } = loadedBy(
      `import { main } from './src/cli/main.ts';\nprocess.exitCode = await main(['node', 'mxcert', 'status', '--json', '--config', ${JSON.stringify(config)}]);`,
      path.join(dir, 'status.log'),
    );
    const rows = (JSON.parse(stdout) as { certificates: Array<{ cert: string; serial: string | null }> }).certificates;
    assert.deepEqual(rows.map((r) => [r.cert, r.serial]), [['mx1', '01']], 'status read the stored version');
    assert.ok(urls.some((u) => u.endsWith('/src/cli/status.ts')), 'the hook saw the status command load');
    assert.deepEqual(urls.filter(isX509), []);
  });

  it('checking a chain does (the hook sees it)', () => {
    const { urls } = loadedBy(
      `import { readFileSync } from 'node:fs';\nimport { checkChain } from './src/validate/chain-check.ts';\n` +
        `const c = JSON.parse(readFileSync(${JSON.stringify(chainFile)}, 'utf8'));\n` +
        `await checkChain({ ...c, domains: ['mx1.example.test'], now: new Date() });`,
      path.join(dir, 'check.log'),
    );
    assert.ok(urls.some((u) => u.includes('@peculiar/x509')), urls.join('\n'));
  });
});
