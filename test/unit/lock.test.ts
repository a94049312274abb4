// The agent lock (src/store/lock.ts): exclusive, taken over from a dead
// holder, never left "being created" by a process killed while taking it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { acquireLock } from '../../src/store/lock.js';
import { LockHeldError } from '../../src/errors.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-lock-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('exclusive: a second taker gets LockHeldError naming the holder; after release it is free', () =>
  withDir(async (dir) => {
    const a = await acquireLock(dir, { command: 'renew' });
    const held = JSON.parse(await readFile(path.join(dir, 'lock'), 'utf8')) as { pid: number; command: string };
    assert.equal(held.pid, process.pid);
    await assert.rejects(acquireLock(dir, { command: 'status' }), (err: unknown) => err instanceof LockHeldError && new RegExp(`pid ${process.pid} .*"renew"`).test(err.message));
    await a.release();
    const b = await acquireLock(dir, { command: 'status' });
    await b.release();
    assert.deepEqual(await readdir(dir), [], 'no lock and no temporary files left');
  }));

test('a lock whose process is gone is taken over', () =>
  withDir(async (dir) => {
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => child.once('exit', r));
    await writeFile(path.join(dir, 'lock'), JSON.stringify({ pid: child.pid, host: os.hostname(), since: new Date().toISOString(), command: 'renew' }) + '\n');
    const l = await acquireLock(dir, { command: 'renew' });
    await l.release();
  }));

test('an empty lock file (crash of an older version): held while fresh, taken over once it is 10 s old', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'lock');
    await writeFile(file, '');
    await assert.rejects(acquireLock(dir, { command: 'renew' }), /unreadable lock file/);
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    const l = await acquireLock(dir, { command: 'renew' });
    assert.equal((JSON.parse(await readFile(file, 'utf8')) as { pid: number }).pid, process.pid);
    await l.release();
  }));

test('kill -9 at random instants while taking the lock never leaves a lock that blocks the next taker', { timeout: 120_000 }, () =>
  withDir(async (dir) => {
    const mod = new URL('../../src/store/lock.ts', import.meta.url).href;
    const script = `import { acquireLock } from ${JSON.stringify(mod)}; for (;;) { const l = await acquireLock(${JSON.stringify(dir)}, { command: 'loop', waitMs: 60000 }); await l.release(); }`;
    for (let i = 0; i < 20; i++) {
      const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'ignore' });
      // Let it start (tsx start-up is a few hundred ms), then kill somewhere in the loop.
      await new Promise((r) => setTimeout(r, 400 + Math.floor(Math.random() * 300)));
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
      const l = await acquireLock(dir, { command: 'check', waitMs: 2000 });
      await l.release();
    }
  }));
