// http-01 in webroot mode writes into a directory the web server's user owns.
// That user may plant symlinks at .well-known, .well-known/acme-challenge or
// at the token's own name; root must then write nothing outside the webroot
// and remove nothing it did not create. Real directories owned by nobody.
import { after, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChallengeError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createHttp01Solver } from '../../src/obtain/http01.js';

const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;
const TOKEN = 'tok_en-1';
const ch = { identifier: 'mx1.example.test', token: TOKEN, value: `${TOKEN}.thumbprint` };

describe('http-01 webroot', () => {
  let base: string;
  let webroot: string;
  let secretDir: string;
  let secretFile: string;

  beforeEach(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'mxcert-webroot-'));
    webroot = path.join(base, 'www');
    await mkdir(webroot, { mode: 0o755 });
    // Root-owned, elsewhere: where a planted link points.
    secretDir = path.join(base, 'root-only');
    await mkdir(secretDir, { mode: 0o700 });
    secretFile = path.join(secretDir, TOKEN);
    await writeFile(secretFile, 'ROOT ONLY\n', { mode: 0o600 });
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  /** Make `p` belong to the web user, as a webroot's contents do. */
  async function theirs(...paths: string[]): Promise<void> {
    if (isRoot) for (const p of paths) await chown(p, NOBODY, NOBODY);
  }

  async function secretUntouched(): Promise<void> {
    assert.deepEqual(await readdir(secretDir), [TOKEN], 'nothing created next to the root-only file');
    assert.equal(await readFile(secretFile, 'utf8'), 'ROOT ONLY\n');
    assert.equal((await stat(secretFile)).mode & 0o777, 0o600);
  }

  it('writes the token (0644) under .well-known/acme-challenge and removes only it', async () => {
    await theirs(webroot);
    const solver = createHttp01Solver({ webroot }, silentLogger);
    await solver.present(ch);
    const file = path.join(webroot, '.well-known', 'acme-challenge', TOKEN);
    assert.equal(await readFile(file, 'utf8'), ch.value);
    assert.equal((await stat(file)).mode & 0o777, 0o644);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o755);
    await solver.cleanup(ch);
    assert.deepEqual(await readdir(path.dirname(file)), []);
  });

  it('a symlink planted at .well-known/acme-challenge: refused, nothing written where it points', async () => {
    await mkdir(path.join(webroot, '.well-known'));
    const link = path.join(webroot, '.well-known', 'acme-challenge');
    await symlink(secretDir, link);
    await theirs(webroot, path.join(webroot, '.well-known'));
    const solver = createHttp01Solver({ webroot }, silentLogger);
    await assert.rejects(solver.present(ch), (err: unknown) => {
      assert.ok(err instanceof ChallengeError, String(err));
      assert.equal(err.message, `http-01 webroot: refusing ${link}: it is a symlink; mxcert does not follow links in the webroot`);
      return true;
    });
    await solver.cleanup(ch);
    await secretUntouched();
    assert.ok((await lstat(link)).isSymbolicLink(), 'the planted link is left alone');
  });

  it('a symlink planted at .well-known: refused the same way', async () => {
    const link = path.join(webroot, '.well-known');
    await mkdir(path.join(secretDir, 'acme-challenge'), { mode: 0o700 });
    await symlink(secretDir, link);
    await theirs(webroot);
    const solver = createHttp01Solver({ webroot }, silentLogger);
    await assert.rejects(solver.present(ch), /refusing .*\.well-known: it is a symlink/);
    assert.deepEqual(await readdir(path.join(secretDir, 'acme-challenge')), []);
  });

  it('a symlink planted at the token path: the root-owned file it points to stays untouched, and the link is not removed', async () => {
    const dir = path.join(webroot, '.well-known', 'acme-challenge');
    await mkdir(dir, { recursive: true });
    const link = path.join(dir, TOKEN);
    await symlink(secretFile, link);
    await theirs(webroot, path.dirname(dir), dir);
    const solver = createHttp01Solver({ webroot }, silentLogger);
    await assert.rejects(solver.present(ch), (err: unknown) => err instanceof ChallengeError && err.message.startsWith(`http-01 webroot: refusing to write ${link}: something mxcert did not write is already there`));
    await solver.cleanup(ch);
    await secretUntouched();
    assert.ok((await lstat(link)).isSymbolicLink(), 'not ours: not removed');
  });

  it('cleanup leaves a file it did not write; a leftover of ours (same key authorization) is taken over and removed', async () => {
    const dir = path.join(webroot, '.well-known', 'acme-challenge');
    await mkdir(dir, { recursive: true });
    const foreign = path.join(dir, TOKEN);
    await writeFile(foreign, 'the web admin’s file\n');
    const solver = createHttp01Solver({ webroot }, silentLogger);
    await assert.rejects(solver.present(ch), ChallengeError);
    await solver.cleanup(ch);
    assert.equal(await readFile(foreign, 'utf8'), 'the web admin’s file\n');

    // A file an earlier run wrote and failed to clean up: exactly our key authorization.
    await writeFile(foreign, ch.value);
    await solver.present(ch);
    await solver.cleanup(ch);
    assert.deepEqual(await readdir(dir), []);
  });

  it('a webroot that is itself a symlink is refused', async () => {
    const link = path.join(base, 'www-link');
    await symlink(webroot, link);
    const solver = createHttp01Solver({ webroot: link }, silentLogger);
    await assert.rejects(solver.present(ch), /refusing .*www-link: it is a symlink/);
    await assert.rejects(lstat(path.join(webroot, '.well-known')), { code: 'ENOENT' });
  });
});
