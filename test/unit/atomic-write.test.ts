import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readIfExists, removeFile, resolveOwner, sweepStaleTemps, writeFileAtomic, writeFilesAtomic } from '../../src/deploy/atomic-write.js';
import { DeployError } from '../../src/errors.js';

const isRoot = process.geteuid?.() === 0;

async function modeOf(p: string): Promise<number> {
  return (await stat(p)).mode & 0o7777;
}

function deployError(re: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof DeployError, `expected DeployError, got ${String(err)}`);
    assert.match(err.message, re);
    return true;
  };
}

describe('writeFileAtomic', () => {
  let dir: string;
  let savedUmask: number;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-aw-'));
    savedUmask = process.umask(0o022);
  });
  afterEach(async () => {
    process.umask(savedUmask);
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the file with the requested mode and content, leaving no temp file', async () => {
    const p = path.join(dir, 'combined.pem');
    await writeFileAtomic(p, 'secret\n', { mode: 0o600 });
    assert.equal(await readFile(p, 'utf8'), 'secret\n');
    assert.equal(await modeOf(p), 0o600);
    assert.deepEqual(await readdir(dir), ['combined.pem']);
  });

  it('replaces an existing wider file with the new mode instead of inheriting the old one', async () => {
    const p = path.join(dir, 'key.pem');
    await writeFile(p, 'old', { mode: 0o644 });
    await chmod(p, 0o644);
    await writeFileAtomic(p, Buffer.from('new'), { mode: 0o600 });
    assert.equal(await readFile(p, 'utf8'), 'new');
    assert.equal(await modeOf(p), 0o600);
  });

  it('applies group bits when asked, and lets the umask narrow but never widen', async () => {
    const p = path.join(dir, 'k.pem');
    await writeFileAtomic(p, 'x', { mode: 0o640 });
    assert.equal(await modeOf(p), 0o640);
    process.umask(0o077);
    await writeFileAtomic(p, 'y', { mode: 0o644 });
    assert.equal(await modeOf(p), 0o600);
    await writeFileAtomic(p, 'z', { mode: 0o4755 });
    assert.equal(await modeOf(p), 0o700, 'special bits are dropped');
  });

  it('sets owner and group', { skip: !isRoot && 'needs root to chown' }, async () => {
    const p = path.join(dir, 'owned.pem');
    await writeFileAtomic(p, 'x', { mode: 0o640, uid: 4321, gid: 4322 });
    const st = await stat(p);
    assert.equal(st.uid, 4321);
    assert.equal(st.gid, 4322);
    await writeFileAtomic(p, 'y', { mode: 0o640, gid: 4323 });
    assert.equal((await stat(p)).gid, 4323);
  });

  it('refuses a symlink target and leaves the link and what it points to alone', async () => {
    const real = path.join(dir, 'real.pem');
    const link = path.join(dir, 'link.pem');
    await writeFile(real, 'original');
    await symlink(real, link);
    await assert.rejects(writeFileAtomic(link, 'evil', { mode: 0o600 }), deployError(/link\.pem.*symlink/));
    assert.equal(await readFile(real, 'utf8'), 'original');
    assert.deepEqual((await readdir(dir)).sort(), ['link.pem', 'real.pem']);
  });

  it('refuses a directory writable by group or others and leaves the existing file unchanged', async () => {
    for (const dmode of [0o775, 0o757, 0o1777]) {
      const sub = path.join(dir, `d${dmode.toString(8)}`);
      await mkdir(sub);
      const p = path.join(sub, 'combined.pem');
      await writeFile(p, 'old');
      await chmod(sub, dmode);
      await assert.rejects(
        writeFileAtomic(p, 'new', { mode: 0o600 }),
        deployError(new RegExp(`${sub}.*writable by group or others`)),
      );
      assert.equal(await readFile(p, 'utf8'), 'old');
      assert.deepEqual(await readdir(sub), ['combined.pem']);
    }
  });

  it('refuses a target that is not a regular file, or whose directory is missing', async () => {
    await mkdir(path.join(dir, 'adir'));
    await assert.rejects(writeFileAtomic(path.join(dir, 'adir'), 'x', { mode: 0o600 }), deployError(/not a regular file/));
    await assert.rejects(writeFileAtomic(path.join(dir, 'nope', 'f'), 'x', { mode: 0o600 }), deployError(/nope/));
  });

  it('removes the temp file and keeps the old content when writing fails', async () => {
    const p = path.join(dir, 'combined.pem');
    await writeFile(p, 'old');
    // An impossible uid makes the fchown after the temp file's creation fail.
    await assert.rejects(writeFileAtomic(p, 'new', { mode: 0o600, uid: 2 ** 32 }), (err: unknown) => {
      assert.ok(err instanceof DeployError);
      assert.match(err.message, /cannot write .*combined\.pem/);
      assert.ok(err.cause, 'keeps the cause');
      return true;
    });
    // Data the write itself rejects.
    await assert.rejects(writeFileAtomic(p, 42 as unknown as string, { mode: 0o600 }), DeployError);
    assert.equal(await readFile(p, 'utf8'), 'old');
    assert.deepEqual(await readdir(dir), ['combined.pem']);
  });

  it('sweeps temporaries a killed writer left behind, and only those', async () => {
    const p = path.join(dir, 'combined.pem');
    // A pid that is certainly gone: a child that has exited (and been reaped).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    const old = new Date(Date.now() - 3600_000);
    const files = {
      deadWriter: `.combined.pem.${dead}.0123456789ab.tmp`,
      liveWriter: `.combined.pem.${process.ppid}.0123456789ab.tmp`,
      unownedOld: '.combined.pem.abcdef012345.tmp',
      unownedNew: '.combined.pem.fedcba543210.tmp',
      otherTarget: `.other.pem.${dead}.0123456789ab.tmp`,
      notOurPattern: `.combined.pem.${dead}.backup.tmp`,
    };
    for (const n of Object.values(files)) await writeFile(path.join(dir, n), 'KEY', { mode: 0o600 });
    await utimes(path.join(dir, files.unownedOld), old, old);
    await writeFileAtomic(p, 'new', { mode: 0o600 });
    const left = new Set(await readdir(dir));
    assert.equal(left.has(files.deadWriter), false, 'a dead writer’s temporary is removed');
    assert.equal(left.has(files.unownedOld), false, 'an old pid-less temporary is removed');
    for (const k of ['liveWriter', 'unownedNew', 'otherTarget', 'notOurPattern'] as const) assert.ok(left.has(files[k]), `${k} kept`);
    assert.equal(await readFile(p, 'utf8'), 'new');
  });

  it('writeFilesAtomic replaces a set of files in one directory, each with its mode, no temporary left', async () => {
    await writeFile(path.join(dir, 'privkey.pem'), 'old key', { mode: 0o600 });
    await writeFilesAtomic([
      { target: path.join(dir, 'privkey.pem'), data: 'KEY', opts: { mode: 0o600 } },
      { target: path.join(dir, 'cert.pem'), data: 'CERT', opts: { mode: 0o644 } },
    ]);
    assert.deepEqual((await readdir(dir)).sort(), ['cert.pem', 'privkey.pem']);
    assert.equal(await readFile(path.join(dir, 'privkey.pem'), 'utf8'), 'KEY');
    assert.equal((await stat(path.join(dir, 'privkey.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(path.join(dir, 'cert.pem'))).mode & 0o777, 0o644);
  });

  it('writeFilesAtomic renames nothing when one of the set cannot be written, and leaves no temporary', async () => {
    await writeFile(path.join(dir, 'privkey.pem'), 'old key', { mode: 0o600 });
    await mkdir(path.join(dir, 'chain.pem'));
    await assert.rejects(
      writeFilesAtomic([
        { target: path.join(dir, 'privkey.pem'), data: 'KEY', opts: { mode: 0o600 } },
        { target: path.join(dir, 'chain.pem'), data: 'CHAIN', opts: { mode: 0o644 } },
      ]),
      deployError(/chain\.pem: it is not a regular file/),
    );
    assert.equal(await readFile(path.join(dir, 'privkey.pem'), 'utf8'), 'old key', 'the first file is not replaced either');
    assert.deepEqual((await readdir(dir)).sort(), ['chain.pem', 'privkey.pem']);
    await assert.rejects(
      writeFilesAtomic([
        { target: path.join(dir, 'a'), data: 'A', opts: { mode: 0o600 } },
        { target: path.join(dir, 'chain.pem', 'b'), data: 'B', opts: { mode: 0o600 } },
      ]),
      deployError(/not all in one directory/),
    );
  });

  it('never sweeps through a symlink or a directory named like a temporary', async () => {
    const outside = path.join(dir, 'outside');
    await writeFile(outside, 'precious');
    await symlink(outside, path.join(dir, '.combined.pem.1.0123456789ab.tmp'));
    await mkdir(path.join(dir, '.combined.pem.2.0123456789ab.tmp'));
    assert.deepEqual(await sweepStaleTemps(dir, 'combined.pem'), []);
    assert.equal(await readFile(outside, 'utf8'), 'precious');
    assert.ok((await lstat(path.join(dir, '.combined.pem.1.0123456789ab.tmp'))).isSymbolicLink(), 'the link is left alone');
    assert.ok((await lstat(path.join(dir, '.combined.pem.2.0123456789ab.tmp'))).isDirectory(), 'the directory is left alone');
  });

  it('a concurrent reader sees a whole old or whole new file, never a mix', async () => {
    const p = path.join(dir, 'combined.pem');
    const a = 'A'.repeat(256 * 1024);
    const b = 'B'.repeat(256 * 1024);
    await writeFileAtomic(p, a, { mode: 0o600 });
    let done = false;
    let reads = 0;
    const reader = (async () => {
      while (!done) {
        const got = await readFile(p, 'utf8');
        assert.ok(got === a || got === b, `torn read of ${got.length} bytes`);
        reads++;
      }
    })();
    for (let i = 0; i < 40; i++) await writeFileAtomic(p, i % 2 ? a : b, { mode: 0o600 });
    done = true;
    await reader;
    assert.ok(reads > 0);
  });
});

describe('readIfExists / removeFile', () => {
  it('returns undefined for a missing file and the bytes otherwise; removes idempotently', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-aw-'));
    try {
      const p = path.join(dir, 'f');
      assert.equal(await readIfExists(p), undefined);
      await writeFile(p, 'hello');
      assert.deepEqual(await readIfExists(p), Buffer.from('hello'));
      await removeFile(p);
      assert.equal(await readIfExists(p), undefined);
      await removeFile(p);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('readIfExists', () => {
  it('refuses a symlink instead of reading what it points to', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-aw-'));
    try {
      const secret = path.join(dir, 'root-only');
      await writeFile(secret, 'ROOT ONLY', { mode: 0o600 });
      const link = path.join(dir, 'combined.pem');
      await symlink(secret, link);
      await assert.rejects(readIfExists(link), /combined\.pem is a symlink/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveOwner', () => {
  it('passes numbers through and resolves names', () => {
    assert.deepEqual(resolveOwner(), {});
    assert.deepEqual(resolveOwner(1001, 1002), { uid: 1001, gid: 1002 });
    assert.deepEqual(resolveOwner('1001', '1002'), { uid: 1001, gid: 1002 });
    assert.deepEqual(resolveOwner('root', 'root'), { uid: 0, gid: 0 });
    assert.deepEqual(resolveOwner(undefined, 'root'), { gid: 0 });
  });

  it('names an unknown user or group', () => {
    assert.throws(() => resolveOwner('no-such-user-mxcert'), deployError(/unknown user "no-such-user-mxcert"/));
    assert.throws(() => resolveOwner(undefined, 'no-such-group-mxcert'), deployError(/unknown group/));
  });

  it('asks NSS once per name in a process, however many certificates name it (a pass over a thousand did it two thousand times)', async () => {
    // A getent first on PATH that answers for two made-up names and logs every call.
    const bin = await mkdtemp(path.join(tmpdir(), 'mxcert-getent-'));
    const log = path.join(bin, 'calls');
    const suffix = Math.random().toString(36).slice(2, 8);
    const [user, group] = [`mxu${suffix}`, `mxg${suffix}`];
    await writeFile(
      path.join(bin, 'getent'),
      `#!/bin/sh\necho "$1 $2" >> ${log}\ncase "$1 $2" in\n  "passwd ${user}") echo "${user}:x:4321:4321::/:/bin/false" ;;\n  "group ${group}") echo "${group}:x:4322:" ;;\n  *) exit 2 ;;\nesac\n`,
      { mode: 0o755 },
    );
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      for (let i = 0; i < 50; i++) assert.deepEqual(resolveOwner(user, group), { uid: 4321, gid: 4322 });
      assert.throws(() => resolveOwner(`nouser${suffix}`), deployError(/unknown user/));
      assert.throws(() => resolveOwner(`nouser${suffix}`), deployError(/unknown user/), 'an unknown name is asked again, not remembered');
      assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), [`passwd ${user}`, `group ${group}`, `passwd nouser${suffix}`, `passwd nouser${suffix}`]);
    } finally {
      process.env.PATH = savedPath;
      await rm(bin, { recursive: true, force: true });
    }
  });
});

// Durability (docs/architecture.md): the new content is fsynced before the
// rename makes it visible, and the directory after it, so a power cut leaves
// the old file or the whole new one. A crash cannot be staged in a unit test;
// the system calls can be watched: strace(1) on a child process that writes.
describe('writeFileAtomic and removeFile: fsync order, seen by strace', () => {
  const REPO = fileURLToPath(new URL('../../', import.meta.url));
  const mod = new URL('../../src/deploy/atomic-write.ts', import.meta.url).href;
  const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  /** The fsync/rename/unlink calls `script` makes, one per line as strace prints them (-y: fds with their paths). */
  function traced(dir: string, script: string): string[] {
    const out = path.join(dir, 'strace.out');
    const r = spawnSync(
      'strace',
      ['-f', '--seccomp-bpf', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat', '-o', out,
        process.execPath, '--import', 'tsx', '--input-type=module', '-e', `import * as aw from ${JSON.stringify(mod)};\n${script}`],
      { cwd: REPO, encoding: 'utf8' },
    );
    assert.equal(r.error, undefined, 'strace runs (scripts/install-system-deps.sh installs it)');
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(out, 'utf8').split('\n');
  }

  it('writeFileAtomic: the temp file is fsynced before the rename, the directory after it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-aw-sync-'));
    try {
      const target = path.join(dir, 'combined.pem');
      const calls = traced(dir, `await aw.writeFileAtomic(${JSON.stringify(target)}, 'key and chain', { mode: 0o600 });`);
      const tmp = `${re(dir)}/\\.combined\\.pem\\.\\d+\\.[0-9a-f]{12}\\.tmp`;
      const renamed = calls.findIndex((l) => new RegExp(`rename(at2?)?\\(.*"${tmp}".*"${re(target)}"`).test(l));
      const fileSync = calls.findIndex((l) => new RegExp(`f(data)?sync\\(\\d+<${tmp}>`).test(l));
      const dirSync = calls.findIndex((l, i) => i > renamed && new RegExp(`f(data)?sync\\(\\d+<${re(dir)}>`).test(l));
      const shown = calls.filter((l) => l.includes(dir)).join('\n');
      assert.ok(renamed >= 0, `the temp file is renamed over the target:\n${shown}`);
      assert.ok(fileSync >= 0 && fileSync < renamed, `the temp file is fsynced before the rename:\n${shown}`);
      assert.ok(dirSync > renamed, `the directory is fsynced after the rename:\n${shown}`);
      assert.equal(await readFile(target, 'utf8'), 'key and chain');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('removeFile: the directory is fsynced after the unlink', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-aw-sync-'));
    try {
      const target = path.join(dir, 'old.pem');
      await writeFile(target, 'old');
      const calls = traced(dir, `await aw.removeFile(${JSON.stringify(target)});`);
      const unlinked = calls.findIndex((l) => new RegExp(`unlink(at)?\\(.*"${re(target)}"`).test(l));
      const dirSync = calls.findIndex((l, i) => i > unlinked && new RegExp(`f(data)?sync\\(\\d+<${re(dir)}>`).test(l));
      const shown = calls.filter((l) => l.includes(dir)).join('\n');
      assert.ok(unlinked >= 0, `the file is unlinked:\n${shown}`);
      assert.ok(dirSync > unlinked, `the directory is fsynced after the unlink:\n${shown}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
