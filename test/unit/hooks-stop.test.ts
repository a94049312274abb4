// stopHooks (the daemon pass ran out of time, src/daemon/pass-child.ts): it
// ends every running hook with its process group and refuses new ones for
// the rest of the process, so it has a test file (a process) of its own.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runHook, stopHooks } from '../../src/hooks/run-hook.js';
import { HookError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { pidAlive as alive } from '../env/proc.js';


describe('stopHooks', () => {
  it('ends a running hook and its children at once, and refuses new hooks', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-stophooks-'));
    const pids = path.join(dir, 'pids');
    const hook = path.join(dir, 'blocks');
    await writeFile(hook, `#!/bin/sh\necho $$ > "${pids}"\nsleep 300 &\necho $! >> "${pids}"\nwait $!\n`);
    await chmod(hook, 0o755);
    try {
      const running = runHook([hook], { env: {}, timeoutMs: 600_000, logger: silentLogger }).then(
        () => assert.fail('a stopped hook does not succeed'),
        (e: unknown) => e,
      );
      // Poll for the hook to have started its child.
      let started: number[] = [];
      for (let i = 0; i < 500 && started.length < 2; i++) {
        started = (await readFile(pids, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).map(Number);
        if (started.length < 2) await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(started.length, 2, 'the hook and its sleep started');
      stopHooks();
      const err = await running;
      assert.ok(err instanceof HookError, String(err));
      assert.equal(err.message, `hook ${hook} was stopped with its pass`);
      for (const pid of started) {
        for (let i = 0; i < 500 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(alive(pid), false, `process ${pid} of the hook is gone`);
      }
      await assert.rejects(runHook([hook], { env: {}, timeoutMs: 5000, logger: silentLogger }), /not started: this pass is being stopped/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
