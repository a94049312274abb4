// Who holds a lock (src/store/holder.ts): the pure verdict over recorded and
// observed facts, the kill(pid, 0) mapping, the /proc parsing, and — with
// real processes — which process `mxcert rollover` may signal.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { judgeHolder, LEGACY_AGE_MARGIN_MS, looksLikeMxcertRun, parseStartTime, signalZero, type HolderRecord, type HostFacts, type ProcessFacts } from '../../src/store/holder.js';
import { runningDaemon } from '../../src/store/lock.js';

const here: HostFacts = { host: 'mx1', bootId: 'boot-a' };
const noProc: HostFacts = { host: 'mx1' };
const rec = (over: Partial<HolderRecord> = {}): HolderRecord => ({ pid: 4242, host: 'mx1', since: '2026-01-01T00:00:00Z', command: 'run', startTime: '1000', bootId: 'boot-a', nonce: 'n', ...over });
const proc = (over: Partial<ProcessFacts> = {}): ProcessFacts => ({ signal: 'alive', startTime: '1000', ageMs: 60_000, ...over });

describe('judgeHolder', () => {
  it('same host, same boot, same PID and start time: live', () => {
    assert.equal(judgeHolder(rec(), here, proc(), 1000), 'live');
  });
  it('the PID now belongs to a process with another start time: stale', () => {
    assert.equal(judgeHolder(rec(), here, proc({ startTime: '2000' }), 1000), 'stale');
  });
  it('written in another boot: stale, even if PID and start time match', () => {
    assert.equal(judgeHolder(rec({ bootId: 'boot-b' }), here, proc(), 1000), 'stale');
  });
  it('no such process: stale', () => {
    assert.equal(judgeHolder(rec(), here, { signal: 'gone' }, 1000), 'stale');
    assert.equal(judgeHolder(rec(), noProc, { signal: 'gone' }, 1000), 'stale');
  });
  it('another host: foreign, whatever the PID looks like here', () => {
    assert.equal(judgeHolder(rec({ host: 'mx2' }), here, { signal: 'gone' }, 1000), 'foreign');
    assert.equal(judgeHolder(rec({ host: 'mx2', bootId: 'boot-b' }), here, proc({ startTime: '9' }), 1000), 'foreign');
  });
  it('EPERM from kill(pid, 0) is a live process, not a dead one', () => {
    // Without /proc, kill is all there is.
    assert.equal(judgeHolder(rec({ startTime: undefined, bootId: undefined }), noProc, { signal: 'eperm' }, 1000), 'live');
    // With /proc hidden from us (hidepid), the same.
    assert.equal(judgeHolder(rec(), here, { signal: 'eperm' }, 1000), 'live');
  });
  it('a process that exists but whose /proc entry is hidden (ProtectProc=invisible) is taken to be the holder', () => {
    assert.equal(judgeHolder(rec(), here, { signal: 'alive' }, 1000), 'live');
  });
  it('no /proc (not Linux): kill(pid, 0) decides, as before', () => {
    assert.equal(judgeHolder(rec({ startTime: undefined, bootId: undefined }), noProc, { signal: 'alive' }, 1000), 'live');
  });
  it('a lock of an older version (no start time): stale only if the process is younger than the lock by more than the margin', () => {
    const legacy = rec({ startTime: undefined, bootId: undefined, nonce: undefined });
    const lockAge = 3_600_000;
    assert.equal(judgeHolder(legacy, here, proc({ ageMs: 10_000 }), lockAge), 'stale');
    assert.equal(judgeHolder(legacy, here, proc({ ageMs: lockAge + 1 }), lockAge), 'live');
    assert.equal(judgeHolder(legacy, here, proc({ ageMs: lockAge - LEGACY_AGE_MARGIN_MS + 1 }), lockAge), 'live');
    assert.equal(judgeHolder(legacy, here, proc({ ageMs: lockAge - LEGACY_AGE_MARGIN_MS - 1 }), lockAge), 'stale');
    assert.equal(judgeHolder(legacy, here, proc({ ageMs: undefined }), lockAge), 'live');
    assert.equal(judgeHolder(legacy, here, proc({ ageMs: lockAge - LEGACY_AGE_MARGIN_MS }), lockAge), 'live', 'exactly at the margin: live');
  });
  it('without a boot id here (no /proc), a recorded boot id or start time proves nothing: kill(pid, 0) decides', () => {
    assert.equal(judgeHolder(rec({ bootId: 'boot-b' }), noProc, proc(), 1000), 'live');
    assert.equal(judgeHolder(rec({ startTime: '999' }), noProc, proc({ startTime: '1000' }), 1000), 'live');
  });
});

describe('signalZero', () => {
  const throwing = (code: string) => () => {
    throw Object.assign(new Error(code), { code });
  };
  it('maps kill(pid, 0): success alive, EPERM eperm (exists), ESRCH gone', () => {
    assert.equal(signalZero(1, () => true), 'alive');
    assert.equal(signalZero(1, throwing('EPERM')), 'eperm');
    assert.equal(signalZero(1, throwing('ESRCH')), 'gone');
  });
  it('on a real process and a real free PID', async () => {
    assert.equal(signalZero(process.pid), 'alive');
    const child = spawn('true');
    await new Promise((r) => child.once('exit', r));
    assert.equal(signalZero(child.pid!), 'gone');
  });
});

describe('parseStartTime', () => {
  it('reads field 22 even when the command name holds spaces and parentheses', () => {
    const rest = Array.from({ length: 50 }, (_, i) => String(i + 3)).join(' ');
    assert.equal(parseStartTime(`123 (a) (b c) ${rest}`), '22');
    assert.match(parseStartTime(readFileSync('/proc/self/stat', 'utf8')) ?? '', /^\d+$/);
    assert.equal(parseStartTime('garbage'), undefined);
  });
  it('needs the closing parenthesis of the command name, wherever it is, and a number in field 22', () => {
    const fields = (n: number, at19 = '22') => Array.from({ length: n }, (_, i) => (i === 19 ? at19 : String(i + 3)));
    assert.equal(parseStartTime(`1 2 ${fields(30).join(' ')}`), undefined, 'no ")": not a stat line');
    assert.equal(parseStartTime(`) ${fields(30).join(' ')}`), '22', 'the ")" may be the first character');
    assert.equal(parseStartTime(`1 (x)  ${fields(30).join('  ')}`), '22', 'runs of blanks between fields');
    assert.equal(parseStartTime(`1 (x) ${fields(19).join(' ')}`), undefined, 'too few fields');
    for (const bad of ['x', 'a12', '12a', '-1']) assert.equal(parseStartTime(`1 (x) ${fields(30, bad).join(' ')}`), undefined, bad);
  });
});

describe('looksLikeMxcertRun', () => {
  it('node running the mxcert launcher or bundle with `run`', () => {
    assert.ok(looksLikeMxcertRun(['node', '/usr/bin/mxcert', 'run']));
    assert.ok(looksLikeMxcertRun(['/usr/bin/node', '/opt/mxcert/bin/mxcert.js', 'run', '--config', '/etc/mxcert/config.yaml']));
    assert.ok(looksLikeMxcertRun(['/usr/local/bin/node', '/usr/local/bin/mxcert', '--log-level', 'debug', 'run']));
    assert.ok(looksLikeMxcertRun(['node', '--enable-source-maps', '/srv/mxcert/dist/bundle/main.js', 'run']));
  });
  it('anything else is not', () => {
    assert.ok(!looksLikeMxcertRun(['sleep', '60']));
    assert.ok(!looksLikeMxcertRun(['node', '/usr/bin/mxcert', 'renew']));
    assert.ok(!looksLikeMxcertRun(['node', '/tmp/other.js', 'run']));
    assert.ok(!looksLikeMxcertRun(['python3', '/usr/bin/mxcert', 'run']));
    assert.ok(!looksLikeMxcertRun(['node', 'run', '/usr/bin/mxcert']));
    assert.ok(!looksLikeMxcertRun([]));
    // The interpreter must be node itself (or nodejs, node20, node-20.1), not a name ending or starting in node.
    assert.ok(looksLikeMxcertRun(['/usr/bin/nodejs', '/usr/bin/mxcert', 'run']));
    assert.ok(looksLikeMxcertRun(['/opt/node-20.11.1', '/usr/bin/mxcert', 'run']));
    for (const node of ['/usr/bin/mynode', '/usr/bin/node-gyp', '/usr/bin/nodemon', '/usr/bin/nodex']) {
      assert.ok(!looksLikeMxcertRun([node, '/usr/bin/mxcert', 'run']), node);
    }
    // The mxcert entry comes after the interpreter: argv[0] itself does not count.
    assert.ok(!looksLikeMxcertRun(['/usr/bin/mxcert', 'node', 'run']));
    assert.ok(!looksLikeMxcertRun(['node', 'x', 'run']));
  });
});

describe('runningDaemon: only a process proven to be the daemon', () => {
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const startTime = (pid: number) => parseStartTime(readFileSync(`/proc/${pid}/stat`, 'utf8'))!;
  const lock = (pid: number, over: Record<string, unknown> = {}) =>
    JSON.stringify({ pid, host: os.hostname(), since: new Date().toISOString(), command: 'run', startTime: startTime(pid), bootId, nonce: randomBytes(8).toString('hex'), ...over }) + '\n';

  it('names the daemon when PID, start time, boot id and command line all match; nothing otherwise', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-holder-'));
    const children: ChildProcess[] = [];
    try {
      // A stand-in for `node …/bin/mxcert.js run` that just waits.
      await mkdir(path.join(dir, 'bin'));
      const launcher = path.join(dir, 'bin', 'mxcert.js');
      await writeFile(launcher, 'setInterval(() => {}, 1000);\n');
      const daemon = spawn(process.execPath, [launcher, 'run', '--config', '/nonexistent'], { stdio: 'ignore' });
      const renew = spawn(process.execPath, [launcher, 'renew'], { stdio: 'ignore' });
      const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      children.push(daemon, renew, sleeper);
      // cmdline is the new program's only once exec has happened: wait for it.
      for (const c of children) {
        const want = c === sleeper ? 'sleep' : 'mxcert.js';
        const deadline = Date.now() + 5000;
        while (!readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').includes(want)) {
          assert.ok(Date.now() < deadline, `pid ${c.pid} runs ${want} within 5 s`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      const file = path.join(dir, 'daemon.lock');
      const verdict = async (content: string) => {
        await writeFile(file, content);
        return runningDaemon(dir);
      };
      assert.deepEqual(await verdict(lock(daemon.pid!)), { pid: daemon.pid });
      for (const [what, content] of [
        ['another start time', lock(daemon.pid!, { startTime: String(Number(startTime(daemon.pid!)) + 1) })],
        ['another boot', lock(daemon.pid!, { bootId: '00000000-0000-4000-8000-000000000000' })],
        ['no start time recorded', lock(daemon.pid!, { startTime: undefined })],
        ['another host', lock(daemon.pid!, { host: `not-${os.hostname()}` })],
        ['not mxcert (sleep), identity matching', lock(sleeper.pid!)],
        ['mxcert, but not `run`', lock(renew.pid!)],
        ['garbage', 'not json'],
      ] as const) {
        const r = await verdict(content);
        assert.ok('none' in r, `${what}: ${JSON.stringify(r)}`);
      }
      await rm(file);
      assert.ok('none' in (await runningDaemon(dir)), 'no daemon.lock');
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
