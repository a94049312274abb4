// `scripts/sandbox.sh --keep` leaves the sandbox's real servers running and
// records them; `scripts/sandbox.sh --stop` stops exactly those, by PID, and
// leaves alone a process that merely reuses a recorded PID.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO } from '../support/sandbox.js';
import { pidAlive, processStartTime, run } from '../env/proc.js';

interface Record {
  servers: Array<{ pid: number; name: string; startTime?: string }>;
  tempDirs: string[];
}

const exists = (p: string) => access(p).then(() => true, () => false);

describe('sandbox --keep / --stop', { timeout: 300_000 }, () => {
  let dir: string;
  const env = () => ({ ...process.env, MXCERT_SANDBOX_DIR: dir });

  after(async () => {
    // Whatever happened above, leave no server behind.
    if (dir) await run('bash', [path.join(REPO, 'scripts/sandbox.sh'), '--stop'], { env: env(), timeoutMs: 60_000, allowFailure: true }).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--keep records every server it leaves running, and --stop stops them all and removes their dirs', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-sandbox-keep-'));
    const keep = await run(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/sandbox.ts'), '--keep'], { env: env(), cwd: REPO, timeoutMs: 240_000, allowFailure: true });
    assert.equal(keep.code, 0, keep.stdout + keep.stderr);
    const record = JSON.parse(await readFile(path.join(dir, 'servers.json'), 'utf8')) as Record;
    const names = record.servers.map((s) => s.name).join(' ');
    for (const server of ['named', 'pebble', 'postfix']) assert.match(names, new RegExp(server), `${server} is recorded (${names})`);
    for (const s of record.servers) {
      assert.ok(pidAlive(s.pid), `${s.name} (pid ${s.pid}) still runs after --keep`);
      assert.match(keep.stdout, new RegExp(`${s.name} \\(pid ${s.pid}\\)`), 'the output names each server with its pid');
    }
    assert.match(keep.stdout, /scripts\/sandbox\.sh --stop/);
    assert.ok(record.tempDirs.length > 0);
    for (const d of record.tempDirs) assert.ok(await exists(d), `${d} kept`);

    const stop = await run('bash', [path.join(REPO, 'scripts/sandbox.sh'), '--stop'], { env: env(), timeoutMs: 60_000, allowFailure: true });
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    for (const s of record.servers) assert.ok(!pidAlive(s.pid), `${s.name} (pid ${s.pid}) stopped`);
    for (const d of record.tempDirs) assert.ok(!(await exists(d)), `${d} removed`);
    assert.ok(!(await exists(path.join(dir, 'servers.json'))), 'the record is gone');

    const again = await run('bash', [path.join(REPO, 'scripts/sandbox.sh'), '--stop'], { env: env(), timeoutMs: 60_000, allowFailure: true });
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing to stop/);
  });

  it('--stop leaves alone a process that reuses a recorded pid', async () => {
    dir ??= await mkdtemp(path.join(os.tmpdir(), 'mxcert-sandbox-keep-'));
    const bystander = spawn('sleep', ['120'], { stdio: 'ignore' });
    try {
      const pid = bystander.pid!;
      const real = processStartTime(pid);
      assert.ok(real);
      const record: Record = { servers: [{ pid, name: 'pebble', startTime: String(Number(real) - 1) }], tempDirs: [] };
      await writeFile(path.join(dir, 'servers.json'), JSON.stringify(record));
      const stop = await run('bash', [path.join(REPO, 'scripts/sandbox.sh'), '--stop'], { env: env(), timeoutMs: 60_000, allowFailure: true });
      assert.equal(stop.code, 0, stop.stdout + stop.stderr);
      assert.match(stop.stdout, /pebble \(pid \d+\) is no longer running/);
      assert.ok(pidAlive(pid), 'the unrelated process was not signalled');
    } finally {
      bystander.kill('SIGKILL');
    }
  });
});
