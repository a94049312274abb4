// The trust rule for paths root acts on (docs/architecture.md "Security
// model"): the pure decision on (path, stat) entries, then the walk over
// real files (as root: directories chowned to nobody, planted symlinks).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  checkTrustedPath,
  pathEntries,
  readRegularNoFollow,
  trustProblem,
  UntrustedPathError,
  type PathEntry,
  type TrustPolicy,
} from '../../src/security/trusted-path.js';

const ROOT_ONLY: TrustPolicy = { trustedUids: [0], allowSymlinks: false };
const NOBODY = 65534;
const isRoot = process.geteuid?.() === 0;

const dir = (p: string, mode: number, uid = 0, role: PathEntry['role'] = 'ancestor'): PathEntry => ({ path: p, type: 'dir', uid, mode, role });
const file = (p: string, mode: number, uid = 0): PathEntry => ({ path: p, type: 'file', uid, mode, role: 'target' });

describe('trustProblem (pure)', () => {
  it('accepts root-owned directories writable by no one else, up to the target', () => {
    const entries = [dir('/', 0o755), dir('/etc', 0o755), dir('/etc/mxcert', 0o700, 0, 'parent'), file('/etc/mxcert/config.yaml', 0o600)];
    assert.equal(trustProblem(entries, ROOT_ONLY), undefined);
  });

  it('refuses a directory owned by another user, naming it and its owner', () => {
    const entries = [dir('/', 0o755), dir('/srv', 0o755, NOBODY), dir('/srv/tls', 0o755, 0, 'parent')];
    const p = trustProblem(entries, ROOT_ONLY, (uid) => (uid === NOBODY ? 'nobody' : undefined));
    assert.deepEqual(p, { path: '/srv', message: 'directory /srv is owned by uid 65534 (nobody), not root', rule: true });
  });

  it('refuses a group- or other-writable directory anywhere on the way', () => {
    for (const mode of [0o775, 0o757, 0o777]) {
      const entries = [dir('/', 0o755), dir('/srv', mode), dir('/srv/tls', 0o700, 0, 'parent')];
      assert.match(trustProblem(entries, ROOT_ONLY)?.message ?? '', /^directory \/srv is writable by group or others \(mode 0\d{3}\)$/, mode.toString(8));
    }
  });

  it('a root-owned sticky ancestor (like /tmp) passes; the directory holding the files gets no such exception', () => {
    assert.equal(trustProblem([dir('/', 0o755), dir('/tmp', 0o1777), dir('/tmp/out', 0o700, 0, 'parent')], ROOT_ONLY), undefined);
    assert.match(trustProblem([dir('/', 0o755), dir('/tmp', 0o1777, 0, 'parent')], ROOT_ONLY)?.message ?? '', /\/tmp is writable by group or others \(mode 01777\)/);
    // Sticky does not excuse an untrusted owner: the owner of a sticky directory may still rename anything in it.
    assert.match(trustProblem([dir('/', 0o755), dir('/scratch', 0o1777, NOBODY), dir('/scratch/out', 0o700, 0, 'parent')], ROOT_ONLY)?.message ?? '', /owned by uid 65534/);
  });

  it('a file (hook, config) must be root-owned, writable by no one else, and regular', () => {
    const up = [dir('/', 0o755), dir('/usr', 0o755), dir('/usr/lib', 0o755, 0, 'parent')];
    assert.equal(trustProblem([...up, file('/usr/lib/h', 0o755)], ROOT_ONLY), undefined);
    assert.match(trustProblem([...up, file('/usr/lib/h', 0o777)], ROOT_ONLY)?.message ?? '', /\/usr\/lib\/h is writable by group or others \(mode 0777\)/);
    assert.match(trustProblem([...up, file('/usr/lib/h', 0o700, NOBODY)], ROOT_ONLY)?.message ?? '', /\/usr\/lib\/h is owned by uid 65534, not root/);
    assert.match(trustProblem([...up, { ...file('/usr/lib/h', 0o755), type: 'dir' }], ROOT_ONLY)?.message ?? '', /not a regular file/);
  });

  it('symlinks: refused when not allowed; when allowed, only if owned by a trusted user', () => {
    const link: PathEntry = { path: '/etc/tls', type: 'symlink', uid: 0, mode: 0o777, role: 'link', linkTarget: '/srv/tls' };
    const entries = [dir('/', 0o755), dir('/etc', 0o755), link];
    assert.match(trustProblem(entries, ROOT_ONLY)?.message ?? '', /^\/etc\/tls is a symlink \(to \/srv\/tls\); give the real path/);
    assert.equal(trustProblem(entries, { ...ROOT_ONLY, allowSymlinks: true }), undefined);
    assert.match(trustProblem([dir('/', 0o755), dir('/tmp', 0o1777), { ...link, path: '/tmp/l', uid: NOBODY }], { ...ROOT_ONLY, allowSymlinks: true })?.message ?? '', /symlink \/tmp\/l is owned by uid 65534/);
  });

  it('an unprivileged run also trusts its own uid, and says so', () => {
    const policy: TrustPolicy = { trustedUids: [0, 1000], allowSymlinks: false };
    assert.equal(trustProblem([dir('/', 0o755), dir('/home', 0o755), dir('/home/u', 0o700, 1000, 'parent')], policy), undefined);
    assert.match(trustProblem([dir('/', 0o755), dir('/home', 0o755, NOBODY)], policy)?.message ?? '', /not root or uid 1000 \(the user mxcert runs as\)/);
  });

  it('reports the first bad entry from the root down', () => {
    const entries = [dir('/', 0o755), dir('/a', 0o777), dir('/a/b', 0o755, NOBODY, 'parent')];
    assert.equal(trustProblem(entries, ROOT_ONLY)?.path, '/a');
  });
});

describe('checkTrustedPath / pathEntries on real files', () => {
  let base: string;
  before(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'mxcert-trust-'));
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('walks every component: / and each directory, the target last, with roles', async () => {
    const d = path.join(base, 'walk');
    await mkdir(d);
    await writeFile(path.join(d, 'f'), 'x');
    const entries = await pathEntries(path.join(d, 'f'), { kind: 'file', allowSymlinks: false });
    assert.deepEqual(entries.map((e) => e.path), ['/', ...ancestorsOf(d), d, path.join(d, 'f')]);
    assert.deepEqual(entries.slice(-2).map((e) => e.role), ['parent', 'target']);
    assert.ok(entries.slice(0, -2).every((e) => e.role === 'ancestor'));
  });

  it('accepts a root-owned 0700 directory under /tmp (sticky, root-owned)', async () => {
    assert.deepEqual(await checkTrustedPath(base, { what: 'output directory', kind: 'dir' }), { ok: true });
  });

  it('a 0755 directory owned by nobody is refused, naming the directory and its owner', { skip: !isRoot && 'needs root to chown' }, async () => {
    const d = path.join(base, 'nobodys');
    await mkdir(d, { mode: 0o755 });
    await chown(d, NOBODY, NOBODY);
    const r = await checkTrustedPath(d, { what: 'output directory', kind: 'dir' });
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.reason, 'untrusted');
    assert.equal(r.message, `refusing output directory ${d}: directory ${d} is owned by uid 65534 (nobody), not root; it and every directory above it must be owned by root and writable by no one else`);
    // A root-owned directory below it does not help: the owner above can rename it away.
    const below = path.join(d, 'tls');
    await mkdir(below, { mode: 0o700 });
    const r2 = await checkTrustedPath(below, { what: 'output directory', kind: 'dir' });
    assert.ok(!r2.ok && r2.detail.startsWith(`directory ${d} is owned by uid 65534 (nobody)`));
  });

  it('a group-writable ancestor is refused', async () => {
    const shared = path.join(base, 'shared');
    const out = path.join(shared, 'out');
    await mkdir(out, { recursive: true, mode: 0o700 });
    await chmod(shared, 0o775);
    const r = await checkTrustedPath(out, { what: 'output directory', kind: 'dir' });
    assert.ok(!r.ok && r.detail.startsWith(`directory ${shared} is writable by group or others (mode 0775)`), JSON.stringify(r));
  });

  it('a symlinked directory is refused unless symlinks are allowed; then its target is checked too', async () => {
    const real = path.join(base, 'real');
    await mkdir(real, { mode: 0o700 });
    const link = path.join(base, 'link');
    await symlink(real, link);
    const r = await checkTrustedPath(link, { what: 'output directory', kind: 'dir' });
    assert.ok(!r.ok && r.detail.startsWith(`${link} is a symlink (to ${real}); give the real path`), JSON.stringify(r));
    assert.deepEqual(await checkTrustedPath(link, { what: 'x', kind: 'dir', allowSymlinks: true }), { ok: true });

    const loose = path.join(base, 'loose');
    await mkdir(loose, { mode: 0o777 });
    await chmod(loose, 0o777);
    await writeFile(path.join(loose, 'hook'), '#!/bin/sh\n', { mode: 0o755 });
    const via = path.join(base, 'via');
    await symlink(path.join(loose, 'hook'), via);
    const r2 = await checkTrustedPath(via, { what: 'hook', kind: 'file', allowSymlinks: true });
    assert.ok(!r2.ok && r2.detail.startsWith(`directory ${loose} is writable by group or others (mode 0777)`), JSON.stringify(r2));
  });

  it('follows the merged-/usr links of the system (/bin -> usr/bin) to a trusted hook', async () => {
    assert.deepEqual(await checkTrustedPath('/bin/true', { what: 'hook', kind: 'file', allowSymlinks: true }), { ok: true });
  });

  it('a missing component is reported as missing, not as untrusted', async () => {
    const r = await checkTrustedPath(path.join(base, 'nope', 'f'), { what: 'hook', kind: 'file', allowSymlinks: true });
    assert.ok(!r.ok && r.reason === 'missing' && r.detail === `${path.join(base, 'nope')} does not exist`, JSON.stringify(r));
  });
});

describe('readRegularNoFollow', () => {
  let base: string;
  before(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'mxcert-nofollow-'));
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('reads content, mode and owner from one descriptor', async () => {
    const f = path.join(base, 'f');
    await writeFile(f, 'hello', { mode: 0o640 });
    await chmod(f, 0o640);
    const r = await readRegularNoFollow(f);
    assert.equal(r?.content.toString(), 'hello');
    assert.equal(r?.mode, 0o640);
    assert.equal(r?.uid, process.geteuid?.());
    assert.equal(await readRegularNoFollow(path.join(base, 'missing')), undefined);
  });

  it('refuses a symlink (never reads what it points to) and a FIFO (without blocking)', async () => {
    const secret = path.join(base, 'root-only');
    await writeFile(secret, 'ROOT ONLY', { mode: 0o600 });
    const link = path.join(base, 'link');
    await symlink(secret, link);
    await assert.rejects(readRegularNoFollow(link), (e: unknown) => e instanceof UntrustedPathError && e.message === `${link} is a symlink; mxcert does not follow it`);
    const fifo = path.join(base, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(readRegularNoFollow(fifo), (e: unknown) => e instanceof UntrustedPathError && /fifo is not a regular file/.test(e.message));
  });
});

function ancestorsOf(p: string): string[] {
  const out: string[] = [];
  for (let d = path.dirname(p); d !== '/'; d = path.dirname(d)) out.unshift(d);
  return out;
}
