// The pure parts of `npm run deb` (scripts/build-deb.mjs, scripts/deb/):
// which npm packages ship, which of their files, what the bundle may import,
// and the Debian version. test/integration/deb-package.test.ts builds,
// installs and purges the real package.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
// @ts-expect-error plain JavaScript build script, no type declarations
import { dependencyClosure, runtimeFiles, unresolvedImports } from '../../scripts/deb/closure.mjs';
// @ts-expect-error plain JavaScript build script, no type declarations
import { debianVersion } from '../../scripts/build-deb.mjs';

interface Pkg { name: string; version: string; rel: string; dir: string; bin?: unknown }

describe('deb: what the bundle may import', () => {
  it('Node built-ins, the externals and relative chunks pass; any other package is reported', () => {
    const src = [
      'import { readFile } from "node:fs/promises"; import fs from "fs"; const cp = require("child_process");',
      'import { pino } from "pino"; const t = "pino-pretty"; import("./chunk-ABC.js"); import "pino/file";',
      'import pad from "left-pad"; const x = require("@scope/pkg/sub"); await import("other");',
    ];
    assert.deepEqual(unresolvedImports(src, ['pino', 'pino-pretty']), ['@scope/pkg/sub', 'left-pad', 'other']);
  });

  it('import-like text inside strings is not an import (seen in @peculiar/x509 and tsyringe)', () => {
    const src = [
      `throw new Error("Cannot get 'saltLength' from 'alg' argument");`,
      'throw new Error(`tsyringe requires a reflect polyfill. Please add \'import "reflect-metadata"\' to the top`);',
      'const s = "require(\\"nope\\")";',
      'import {\n  a,\n  b\n} from "multi-line";',
    ];
    assert.deepEqual(unresolvedImports(src, []), ['multi-line']);
  });
});

describe('deb: Debian version of the npm version', () => {
  it('adds the packaging revision; a pre-release sorts before its release', () => {
    assert.equal(debianVersion('0.1.0'), '0.1.0-1');
    assert.equal(debianVersion('1.0.0-rc.1'), '1.0.0~rc.1-1');
    // dpkg's own ordering: exit 0 when the relation holds.
    execFileSync('dpkg', ['--compare-versions', debianVersion('1.0.0-rc.1'), 'lt', debianVersion('1.0.0')]);
    assert.throws(() => debianVersion('v1.0'), /not a semver version/);
  });
});

describe('deb: dependency closure and runtime files', () => {
  let repo: string;
  const pkgJson = (name: string, version: string, extra: object = {}) => JSON.stringify({ name, version, ...extra });
  async function pkg(dir: string, name: string, version: string, extra: object = {}) {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'package.json'), pkgJson(name, version, extra));
  }

  before(async () => {
    repo = await mkdtemp(path.join(os.tmpdir(), 'mxcert-deb-unit-'));
    const nm = path.join(repo, 'node_modules');
    await pkg(path.join(nm, 'a'), 'a', '1.0.0', { dependencies: { b: '^2', c: '^1' }, optionalDependencies: { gone: '*' }, bin: { a: './cli.js' } });
    await pkg(path.join(nm, 'b'), 'b', '1.0.0'); // the top-level b is not the one a needs
    await pkg(path.join(nm, 'a', 'node_modules', 'b'), 'b', '2.0.0');
    await pkg(path.join(nm, 'c'), 'c', '1.0.0', { dependencies: { b: '^1' } });
    await pkg(path.join(nm, 'unrelated'), 'unrelated', '1.0.0');
    for (const f of ['index.js', 'lib/worker.js', 'lib/data.json', 'cli.js', 'README.md', 'LICENSE', 'index.d.ts', 'test/a.test.js', 'benchmarks/x.js', '.eslintrc.js', 'bench.js']) {
      await mkdir(path.dirname(path.join(nm, 'a', f)), { recursive: true });
      await writeFile(path.join(nm, 'a', f), '');
    }
  });

  after(async () => {
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('follows Node resolution: a nested version where a package has its own, optional ones only when installed', () => {
    const found = (dependencyClosure(repo, ['a']) as Pkg[]).map((p) => `${p.rel}@${p.version}`);
    assert.deepEqual(found, ['a@1.0.0', 'a/node_modules/b@2.0.0', 'b@1.0.0', 'c@1.0.0']);
  });

  it('a missing required dependency is an error naming it', () => {
    assert.throws(() => dependencyClosure(repo, ['nope']), /nope .*is not installed/);
  });

  it('ships code and package.json, not tests, benchmarks, docs, types, dotfiles or the package\'s own CLI', () => {
    const a = (dependencyClosure(repo, ['a']) as Pkg[]).find((p) => p.rel === 'a')!;
    assert.deepEqual(runtimeFiles(a), ['index.js', 'lib/data.json', 'lib/worker.js', 'package.json']);
  });
});
