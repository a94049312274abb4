import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deployOutputs, type OutputFile } from '../../src/deploy/outputs.js';
import { writeLineage } from '../../src/deploy/lineage.js';
import { DeployError } from '../../src/errors.js';

const isRoot = process.geteuid?.() === 0;

async function modeOf(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

describe('deployOutputs', () => {
  let dir: string;
  let files: OutputFile[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-out-'));
    files = [
      { kind: 'combined', path: path.join(dir, 'combined.pem'), content: 'KEY+CERT+CHAIN\n', mode: 0o600 },
      { kind: 'key', path: path.join(dir, 'key.pem'), content: 'KEY\n', mode: 0o640 },
      { kind: 'fullchain', path: path.join(dir, 'fullchain.pem'), content: 'CERT+CHAIN\n', mode: 0o644 },
    ];
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every file with its mode and reports them in order', async () => {
    const r = await deployOutputs(files);
    assert.deepEqual(r.written, files.map((f) => f.path));
    for (const f of files) {
      assert.equal(await readFile(f.path, 'utf8'), f.content);
      assert.equal(await modeOf(f.path), f.mode);
    }
  });

  it('restore() brings back old content and mode, and removes files that were new', async () => {
    await writeFile(files[0]!.path, 'OLD COMBINED\n');
    await chmod(files[0]!.path, 0o640);
    await writeFile(files[2]!.path, 'OLD FULLCHAIN\n');
    await chmod(files[2]!.path, 0o600);
    const r = await deployOutputs(files);
    assert.equal(await readFile(files[0]!.path, 'utf8'), 'KEY+CERT+CHAIN\n');
    assert.equal(await modeOf(files[0]!.path), 0o600);

    await r.restore();
    assert.equal(await readFile(files[0]!.path, 'utf8'), 'OLD COMBINED\n');
    assert.equal(await modeOf(files[0]!.path), 0o640);
    assert.equal(await readFile(files[2]!.path, 'utf8'), 'OLD FULLCHAIN\n');
    assert.equal(await modeOf(files[2]!.path), 0o600);
    await assert.rejects(lstat(files[1]!.path), { code: 'ENOENT' });
    assert.deepEqual((await readdir(dir)).sort(), ['combined.pem', 'fullchain.pem']);
  });

  it('restore() puts the previous owner back', { skip: !isRoot && 'needs root to chown' }, async () => {
    await writeFile(files[0]!.path, 'OLD\n', { mode: 0o640 });
    await chown(files[0]!.path, 0, 4242);
    const r = await deployOutputs([{ ...files[0]!, gid: 0 }]);
    assert.equal((await stat(files[0]!.path)).gid, 0);
    await r.restore();
    assert.equal((await stat(files[0]!.path)).gid, 4242);
  });

  it('validates every target before writing any: a bad last target changes nothing', async () => {
    await writeFile(files[0]!.path, 'OLD COMBINED\n');
    // Same inode afterwards proves nothing was written and rolled back.
    const inode = (await stat(files[0]!.path)).ino;
    const real = path.join(dir, 'real-chain.pem');
    await writeFile(real, 'REAL');
    const link = path.join(dir, 'chain.pem');
    await symlink(real, link);
    await assert.rejects(
      deployOutputs([...files, { kind: 'chain', path: link, content: 'CHAIN\n', mode: 0o644 }]),
      (err: unknown) => err instanceof DeployError && /chain\.pem.*symlink/.test(err.message),
    );
    assert.equal(await readFile(files[0]!.path, 'utf8'), 'OLD COMBINED\n');
    assert.equal((await stat(files[0]!.path)).ino, inode);
    assert.equal(await readFile(real, 'utf8'), 'REAL');
    assert.deepEqual((await readdir(dir)).sort(), ['chain.pem', 'combined.pem', 'real-chain.pem']);
  });

  it('refuses a group-writable directory before writing anything', async () => {
    const open = path.join(dir, 'shared');
    await mkdir(open);
    await chmod(open, 0o775);
    await assert.rejects(
      deployOutputs([...files, { kind: 'cert', path: path.join(open, 'cert.pem'), content: 'C\n', mode: 0o644 }]),
      /writable by group or others/,
    );
    assert.deepEqual(await readdir(dir), ['shared']);
  });

  it('refuses a 0755 directory owned by another user, naming it and its owner, before writing anything', { skip: !isRoot && 'needs root to chown' }, async () => {
    const theirs = path.join(dir, 'theirs');
    await mkdir(theirs, { mode: 0o755 });
    await chown(theirs, 65534, 65534);
    const target = path.join(theirs, 'combined.pem');
    await assert.rejects(
      deployOutputs([...files, { kind: 'cert', path: target, content: 'C\n', mode: 0o644 }]),
      (err: unknown) =>
        err instanceof DeployError &&
        err.message === `refusing to write ${target}: directory ${theirs} is owned by uid 65534 (nobody), not root; it and every directory above it must be owned by root and writable by no one else`,
    );
    assert.deepEqual(await readdir(dir), ['theirs']);
    assert.deepEqual(await readdir(theirs), []);
  });

  it('refuses a directory whose ancestor is group-writable', async () => {
    const shared = path.join(dir, 'shared');
    const out = path.join(shared, 'tls');
    await mkdir(out, { recursive: true, mode: 0o700 });
    await chmod(shared, 0o775);
    await assert.rejects(
      deployOutputs([{ ...files[0]!, path: path.join(out, 'combined.pem') }]),
      (err: unknown) => err instanceof DeployError && err.message.includes(`directory ${shared} is writable by group or others (mode 0775)`),
    );
    assert.deepEqual(await readdir(out), []);
  });

  it('refuses a symlinked parent directory (stat would have followed it)', async () => {
    const real = path.join(dir, 'real');
    await mkdir(real, { mode: 0o700 });
    const link = path.join(dir, 'tls');
    await symlink(real, link);
    await assert.rejects(
      deployOutputs([{ ...files[0]!, path: path.join(link, 'combined.pem') }]),
      (err: unknown) => err instanceof DeployError && err.message.includes(`${link} is a symlink (to ${real}); give the real path`),
    );
    assert.deepEqual(await readdir(real), []);
  });

  it('a previous file swapped for a symlink after the checks is not read through: the link target never reaches the output', async () => {
    // The race of a deploy+rollback loop, made deterministic: the swap happens
    // right after the target's lstat (the check) and is undone once the
    // previous file has been kept, so the writes themselves go through.
    const secret = path.join(dir, 'root-only.key');
    await writeFile(secret, 'ROOT ONLY SECRET\n', { mode: 0o600 });
    const [a, b] = [files[0]!, files[2]!];
    await writeFile(a.path, 'OLD COMBINED\n', { mode: 0o600 });
    await writeFile(b.path, 'OLD FULLCHAIN\n', { mode: 0o644 });
    const realLstat = fs.promises.lstat;
    const seen = new Map<string, number>();
    fs.promises.lstat = (async (p: fs.PathLike, ...rest: unknown[]) => {
      const st = await (realLstat as (...args: unknown[]) => Promise<fs.Stats>)(p, ...rest);
      const n = (seen.get(String(p)) ?? 0) + 1;
      seen.set(String(p), n);
      if (String(p) === a.path && n === 1) {
        await rm(a.path);
        await symlink(secret, a.path);
      } else if (String(p) === b.path && n === 2 && (await realLstat(a.path)).isSymbolicLink()) {
        await rm(a.path);
        await writeFile(a.path, 'OLD COMBINED\n', { mode: 0o600 });
      }
      return st;
    }) as typeof fs.promises.lstat;
    syncBuiltinESMExports();
    let outcome: unknown;
    try {
      outcome = await deployOutputs([a, b]).then(async (r) => {
        await r.restore();
        return 'restored';
      }, (err: unknown) => err);
    } finally {
      fs.promises.lstat = realLstat;
      syncBuiltinESMExports();
    }
    for (const f of [a.path, b.path]) {
      // A symlink still there is the one planted above, not an output mxcert wrote.
      if (!(await lstat(f)).isFile()) continue;
      assert.ok(!(await readFile(f, 'utf8')).includes('ROOT ONLY SECRET'), `${f} must never receive the symlink target's content`);
    }
    assert.equal(await readFile(secret, 'utf8'), 'ROOT ONLY SECRET\n');
    assert.ok(outcome instanceof DeployError, `refused, got ${String(outcome)}`);
    assert.match(outcome.message, new RegExp(`cannot read the current ${a.path}: .*is a symlink`));
  });

  it('never lets a key file be readable by others or writable by the group', async () => {
    for (const [kind, mode] of [['combined', 0o644], ['key', 0o604], ['key', 0o660], ['combined', 0o700], ['key', 0o601]] as const) {
      await assert.rejects(
        deployOutputs([{ kind, path: path.join(dir, 'k.pem'), content: 'K', mode }]),
        (err: unknown) => err instanceof DeployError && /private key/.test(err.message),
        `${kind} ${mode.toString(8)}`,
      );
    }
    assert.deepEqual(await readdir(dir), []);
    await deployOutputs([{ kind: 'key', path: path.join(dir, 'k.pem'), content: 'K', mode: 0o640 }]);
    await deployOutputs([{ kind: 'cert', path: path.join(dir, 'c.pem'), content: 'C', mode: 0o644 }]);
  });

  it('refuses two outputs on the same path', async () => {
    await assert.rejects(
      deployOutputs([files[0]!, { ...files[1]!, path: files[0]!.path }]),
      /both write/,
    );
  });

  it('rolls back the files already written when a later write fails', async () => {
    await writeFile(files[0]!.path, 'OLD COMBINED\n');
    const failing = { ...files[2]!, uid: 2 ** 32 }; // fchown of the temp file fails
    await assert.rejects(deployOutputs([files[0]!, files[1]!, failing]), DeployError);
    assert.equal(await readFile(files[0]!.path, 'utf8'), 'OLD COMBINED\n');
    assert.deepEqual(await readdir(dir), ['combined.pem']);
  });
});

describe('writeLineage', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-lin-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const bundle = { key: 'KEY\n', cert: 'CERT\n', chain: 'CHAIN\n', fullchain: 'CERT\nCHAIN\n' };

  it('writes a certbot-style lineage: 0700 dir, 0600 privkey.pem', async () => {
    const lin = path.join(dir, 'live', 'mx1');
    await writeLineage(lin, bundle);
    assert.equal(await modeOf(lin), 0o700);
    assert.deepEqual((await readdir(lin)).sort(), ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem']);
    assert.equal(await readFile(path.join(lin, 'privkey.pem'), 'utf8'), 'KEY\n');
    assert.equal(await modeOf(path.join(lin, 'privkey.pem')), 0o600);
    assert.equal(await readFile(path.join(lin, 'fullchain.pem'), 'utf8'), 'CERT\nCHAIN\n');
    assert.equal(await readFile(path.join(lin, 'chain.pem'), 'utf8'), 'CHAIN\n');
    assert.equal(await readFile(path.join(lin, 'cert.pem'), 'utf8'), 'CERT\n');
  });

  it('tightens an existing directory and refuses a symlinked one', async () => {
    const lin = path.join(dir, 'mx1');
    await mkdir(lin, { mode: 0o755 });
    await chmod(lin, 0o755);
    await writeLineage(lin, bundle);
    assert.equal(await modeOf(lin), 0o700);

    const link = path.join(dir, 'mx2');
    await symlink(lin, link);
    await assert.rejects(writeLineage(link, { ...bundle, key: 'OTHER\n' }), DeployError);
    assert.equal(await readFile(path.join(lin, 'privkey.pem'), 'utf8'), 'KEY\n');
  });
});
