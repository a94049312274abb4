// The agent lock (src/store/lock.ts): exclusive, taken over from a dead
// holder (one identified by PID, start time and boot id, not PID alone) by
// exactly one taker, never from another host, never left "being created" by
// a process killed while taking it. Real processes and files throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
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

test('kill -9 at random instants while taking the lock never leaves a lock that blocks the next taker', { timeout: 180_000 }, () =>
  withDir(async (dir) => {
    const mod = new URL('../../src/store/lock.ts', import.meta.url).href;
    // The child says "took" each time it holds the lock, so the kill lands inside a running take/release loop.
    const script =
      `import { acquireLock } from ${JSON.stringify(mod)}; ` +
      `for (;;) { const l = await acquireLock(${JSON.stringify(dir)}, { command: 'loop', waitMs: 60000 }); process.stdout.write('took\\n'); await l.release(); }`;
    for (let i = 0; i < 20; i++) {
      const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
      let took = 0;
      const firstTake = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child ${i + 1} did not take the lock within 30 s`)), 30_000);
        readline.createInterface({ input: p.stdout! }).on('line', (line) => {
          if (line !== 'took') return;
          took++;
          clearTimeout(timer);
          resolve();
        });
        p.once('exit', (code, signal) => reject(new Error(`child ${i + 1} exited (${code ?? signal}) before taking the lock`)));
      });
      try {
        await firstTake;
        // Then kill at a random instant of its loop (a take and release is about a millisecond).
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20)));
      } finally {
        p.kill('SIGKILL');
      }
      await new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)));
      assert.ok(took >= 1, `child ${i + 1} held the lock before the kill (${took} times)`);
      const l = await acquireLock(dir, { command: 'check', waitMs: 2000 });
      await l.release();
    }
  }));

// --- Identity of the holder: PID + start time + boot id -------------------

/** Field 22 of /proc/PID/stat, read here independently of the code under test. */
function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[19]!;
}
const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

function startSleeper(): ChildProcess & { pid: number } {
  const p = spawn('sleep', ['60'], { stdio: 'ignore' });
  assert.ok(p.pid, 'sleep started');
  return p as ChildProcess & { pid: number };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

const lockRecord = (over: Record<string, unknown>) =>
  JSON.stringify({ host: os.hostname(), since: new Date().toISOString(), command: 'run', bootId: bootId(), nonce: randomBytes(12).toString('hex'), ...over }) + '\n';

test('a stale lock naming a live unrelated process (PID reused: other start time) is taken over, and that process is left alone', () =>
  withDir(async (dir) => {
    const sleeper = startSleeper();
    try {
      const file = path.join(dir, 'daemon.lock');
      const recorded = String(Number(startTimeOf(sleeper.pid)) - 1);
      await writeFile(file, lockRecord({ pid: sleeper.pid, startTime: recorded }));
      const l = await acquireLock(dir, { command: 'run', file: 'daemon.lock' });
      assert.equal((JSON.parse(await readFile(file, 'utf8')) as { pid: number }).pid, process.pid, 'the lock now names us');
      await l.release();
      assert.ok(alive(sleeper.pid), 'the unrelated process still runs');
    } finally {
      sleeper.kill('SIGKILL');
    }
  }));

test('a lock whose PID and start time match a running process is held', () =>
  withDir(async (dir) => {
    const sleeper = startSleeper();
    try {
      const file = path.join(dir, 'lock');
      const content = lockRecord({ pid: sleeper.pid, startTime: startTimeOf(sleeper.pid) });
      await writeFile(file, content);
      await assert.rejects(acquireLock(dir, { command: 'renew' }), (err: unknown) => err instanceof LockHeldError && err.message.includes(`pid ${sleeper.pid} `));
      assert.equal(await readFile(file, 'utf8'), content, 'untouched');
    } finally {
      sleeper.kill('SIGKILL');
    }
  }));

test('a lock written in an earlier boot is stale even if its PID and start time match a process of this boot', () =>
  withDir(async (dir) => {
    const sleeper = startSleeper();
    try {
      await writeFile(path.join(dir, 'lock'), lockRecord({ pid: sleeper.pid, startTime: startTimeOf(sleeper.pid), bootId: '00000000-0000-4000-8000-000000000000' }));
      const l = await acquireLock(dir, { command: 'renew' });
      await l.release();
      assert.ok(alive(sleeper.pid));
    } finally {
      sleeper.kill('SIGKILL');
    }
  }));

test('a lock of an older version (PID only): stale if that PID now belongs to a process younger than the lock, held otherwise', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'lock');
    const legacy = (pid: number) => JSON.stringify({ pid, host: os.hostname(), since: new Date().toISOString(), command: 'renew' }) + '\n';
    const older = startSleeper();
    try {
      // Written after `older` started: its holder may well be `older`.
      await new Promise((r) => setTimeout(r, 20));
      await writeFile(file, legacy(older.pid));
      await assert.rejects(acquireLock(dir, { command: 'renew' }), LockHeldError);
      // Written an hour ago: a process that started seconds ago cannot have written it.
      const young = startSleeper();
      try {
        await writeFile(file, legacy(young.pid));
        const hourAgo = new Date(Date.now() - 3_600_000);
        await utimes(file, hourAgo, hourAgo);
        const l = await acquireLock(dir, { command: 'renew' });
        await l.release();
        assert.ok(alive(young.pid));
      } finally {
        young.kill('SIGKILL');
      }
    } finally {
      older.kill('SIGKILL');
    }
  }));

test('a lock held on another host is never taken over, even if its PID is free here; the error says so', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'lock');
    const content = lockRecord({ pid: await deadPid(), host: `not-${os.hostname()}`, bootId: undefined });
    await writeFile(file, content);
    await assert.rejects(acquireLock(dir, { command: 'renew' }), (err: unknown) => err instanceof LockHeldError && /another host/.test(err.message));
    assert.equal(await readFile(file, 'utf8'), content, 'untouched');
  }));

test('release removes only our own lock', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'lock');
    const l = await acquireLock(dir, { command: 'renew' });
    const other = lockRecord({ pid: process.pid, startTime: startTimeOf(process.pid), command: 'other' });
    await writeFile(file, other);
    await l.release();
    assert.equal(await readFile(file, 'utf8'), other);
  }));

test('a taker killed while holding its takeover claim does not block later takers: the stale claim is taken over in turn', () =>
  withDir(async (dir) => {
    const dead = await deadPid();
    const stale = lockRecord({ pid: dead, startTime: '1', command: 'renew' });
    await writeFile(path.join(dir, 'lock'), stale);
    // The claim a taker of exactly this lock file would hold, left by one killed with it held.
    const claim = `lock.${createHash('sha256').update(stale).digest('hex').slice(0, 16)}.takeover`;
    await writeFile(path.join(dir, claim), lockRecord({ pid: dead, startTime: '1', command: 'takeover' }));
    const l = await acquireLock(dir, { command: 'renew' });
    assert.deepEqual(await readdir(dir), ['lock'], 'stale lock and stale claim both gone');
    await l.release();
  }));

// --- Takeover is atomic: of several racers over one stale lock, one wins ---

/** A long-lived child that, on "go R", tries the lock once and reports; on "release R" lets go. */
function racer(dir: string, marks: string): { proc: ChildProcess; lines: AsyncIterator<string> } {
  const mod = new URL('../../src/store/lock.ts', import.meta.url).href;
  const script = `
    import { acquireLock } from ${JSON.stringify(mod)};
    import { appendFileSync } from 'node:fs';
    import readline from 'node:readline';
    let held;
    process.stdout.write('ready\\n');
    for await (const line of readline.createInterface({ input: process.stdin })) {
      const [cmd, round] = line.split(' ');
      if (cmd === 'go') {
        try {
          held = await acquireLock(${JSON.stringify(dir)}, { command: 'race' });
          appendFileSync(${JSON.stringify(marks)}, round + ' ' + process.pid + ' start\\n');
          process.stdout.write(round + ' 1\\n');
        } catch (err) {
          process.stdout.write(round + (err.name === 'LockHeldError' || /holds the state lock/.test(err.message) ? ' 0' : ' error ' + err.message) + '\\n');
        }
      } else if (cmd === 'release') {
        appendFileSync(${JSON.stringify(marks)}, round + ' ' + process.pid + ' end\\n');
        await held.release();
        process.stdout.write(round + ' released\\n');
      }
    }`;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  return { proc, lines: readline.createInterface({ input: proc.stdout! })[Symbol.asyncIterator]() };
}

async function nextLine(r: { lines: AsyncIterator<string> }): Promise<string> {
  const n = await r.lines.next();
  assert.ok(!n.done, 'racer exited early');
  return n.value;
}

test('many processes racing to take over one stale lock: in every round exactly one holds it, and no two holds overlap', { timeout: 300_000 }, () =>
  withDir(async (dir) => {
    const ROUNDS = 60;
    const N = 8;
    const lockDir = path.join(dir, 'state');
    const marks = path.join(dir, 'marks');
    await mkdir(lockDir);
    await appendFile(marks, '');
    const racers = Array.from({ length: N }, () => racer(lockDir, marks));
    try {
      for (const r of racers) assert.equal(await nextLine(r), 'ready');
      const dead = await deadPid();
      const holders: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        await writeFile(path.join(lockDir, 'lock'), lockRecord({ pid: dead, startTime: '1', command: 'renew' }));
        for (const r of racers) r.proc.stdin!.write(`go ${round}\n`);
        const answers = await Promise.all(racers.map(nextLine));
        for (const a of answers) assert.match(a, new RegExp(`^${round} [01]$`), 'each racer got the lock or LockHeldError');
        const winners = racers.filter((_, i) => answers[i] === `${round} 1`);
        holders.push(winners.length);
        // Winners hold until every racer has answered, so two winners means two holders at once.
        for (const w of winners) w.proc.stdin!.write(`release ${round}\n`);
        for (const w of winners) assert.equal(await nextLine(w), `${round} released`);
        assert.deepEqual(await readdir(lockDir), [], `round ${round}: no lock, claim or temporary file left`);
      }
      const bad = holders.map((n, i) => [i, n] as const).filter(([, n]) => n !== 1);
      assert.deepEqual(bad, [], `rounds whose holder count was not exactly 1 ([round, holders]) out of ${ROUNDS}`);
      // The holders' own record: start/end strictly alternate.
      const events = (await readFile(marks, 'utf8')).trim().split('\n').map((l) => l.split(' '));
      let open: string | undefined;
      for (const [round, pid, what] of events) {
        if (what === 'start') {
          assert.equal(open, undefined, `round ${round}: pid ${pid} started holding while ${open} held`);
          open = pid;
        } else {
          assert.equal(open, pid, `round ${round}: end by the holder`);
          open = undefined;
        }
      }
      assert.equal(events.length, 2 * ROUNDS);
    } finally {
      for (const r of racers) r.proc.kill('SIGKILL');
    }
  }));
