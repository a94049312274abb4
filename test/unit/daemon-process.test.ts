// The long-lived `mxcert run` process (idle RSS at most 60 MiB with 100
// certificates, bench/README.md): how it is started without commander, the timers it keeps
// instead of node-cron, and what it must not load (that work belongs to the
// short-lived config and pass children).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { plainRunArgs } from '../../src/cli/main.js';
import { dueDelay, tickDelay } from '../../src/daemon/run.js';
import { defaultSchedule, nextTick, scheduleOf } from '../../src/schedule/cron-tick.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

describe('plainRunArgs: `mxcert run` without commander', () => {
  it('takes run with the global options in their usual spellings, the last one winning', () => {
    assert.deepEqual(plainRunArgs(['run']), {});
    assert.deepEqual(plainRunArgs(['run', '--config', '/a.yaml']), { config: '/a.yaml' });
    assert.deepEqual(plainRunArgs(['-c', '/a.yaml', 'run']), { config: '/a.yaml' });
    assert.deepEqual(plainRunArgs(['--config=/a.yaml', 'run', '--log-level', 'debug']), { config: '/a.yaml', logLevel: 'debug' });
    assert.deepEqual(plainRunArgs(['run', '--log-level=warn', '--config', '/a', '--config', '/b']), { config: '/b', logLevel: 'warn' });
    assert.deepEqual(plainRunArgs(['run', '--config=']), { config: '' });
  });

  it('leaves everything else to commander (its help, errors and exit codes)', () => {
    for (const args of [
      [],
      ['renew'],
      ['status', 'run'],
      ['run', 'run'],
      ['run', '--help'],
      ['-h', 'run'],
      ['run', '-V'],
      ['run', '--log-level', 'loud'],
      ['run', '--log-level=loud'],
      ['run', '--config'],
      ['run', '--config', '--log-level', 'debug'],
      ['run', '-cfile.yaml'],
      ['run', '--wait', '5'],
      ['run', '--', 'x'],
      ['config', 'check'],
    ]) {
      assert.equal(plainRunArgs(args), undefined, args.join(' '));
    }
  });
});

describe('daemon timers', () => {
  const now = 1_000_000;
  it('due timer: at the instant, never sooner than the backoff, backoff alone when unknown, none when nothing is due', () => {
    assert.equal(dueDelay(now + 90_000, now, 1000), 90_000);
    assert.equal(dueDelay(now - 5000, now, 1000), 1000, 'overdue: no spinning');
    assert.equal(dueDelay(now + 90_000, now, 120_000), 120_000, 'after failed passes the backoff wins');
    assert.equal(dueDelay(undefined, now, 60_000), 60_000, 'the pass child could not say');
    assert.equal(dueDelay(null, now, 1000), undefined, 'nothing is ever due');
    assert.equal(dueDelay(now + 365 * 86_400_000, now, 1000), 2 ** 31 - 1, 'setTimeout limit');
  });

  it('tick timer: fires at the tick, looks at the wall clock again at least hourly', () => {
    assert.equal(tickDelay(now + 59_000, now), 59_000);
    assert.equal(tickDelay(now - 10, now), 0, 'a tick already past fires at once');
    assert.equal(tickDelay(now + 86_400_000, now), 3_600_000);
  });
});

describe('cron-tick (node-cron, in the children only)', () => {
  it('the default schedule is hourly at a minute derived from the host name', () => {
    assert.equal(defaultSchedule('mx1.example.com'), defaultSchedule('mx1.example.com'));
    assert.match(defaultSchedule('mx1.example.com'), /^([0-9]|[1-5][0-9]) \* \* \* \*$/);
    assert.notEqual(defaultSchedule('mx1.example.com'), defaultSchedule('mx2.example.com'));
    assert.equal(scheduleOf({ schedule: '5 4 * * *' }), '5 4 * * *');
    assert.equal(scheduleOf({}), defaultSchedule());
  });

  it('the next tick is the first match after now', () => {
    const before = Date.now();
    const minute = nextTick('* * * * *').getTime();
    assert.ok(minute > before && minute <= Date.now() + 60_000, new Date(minute).toISOString());
    assert.equal(minute % 60_000, 0);
    const yearly = nextTick('0 0 1 1 *');
    assert.equal(yearly.getMonth(), 0);
    assert.equal(yearly.getDate(), 1);
    assert.equal(yearly.getHours(), 0);
    assert.equal(yearly.getMinutes(), 0);
    assert.ok(yearly.getTime() > before && yearly.getTime() - before <= 366 * 86_400_000);
  });
});

// What the daemon process loads: the static imports (as emitted, so
// type-only imports do not count) from the CLI entry, plus the two modules
// main.ts imports for `mxcert run` (daemon/run.ts and config/config-path.ts).
// run.ts imports src/metrics dynamically, only when metrics are configured.
describe('the daemon process loads no heavy module', () => {
  function staticImports(file: string): string[] {
    const js = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    return [...js.matchAll(/^\s*(?:import|export)\s+(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  }

  it('outside Node itself, only pino', () => {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const todo = ['src/cli/main.ts', 'src/daemon/run.ts', 'src/config/config-path.ts'].map((f) => path.join(REPO, f));
    while (todo.length) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const spec of staticImports(file)) {
        if (spec.startsWith('.')) todo.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
        else if (!spec.startsWith('node:')) packages.add(spec);
      }
    }
    // pino itself is loaded when the daemon makes its logger (src/log.ts), no longer by an import.
    assert.deepEqual([...packages].filter((p) => p !== 'pino'), [], `modules: ${[...seen].map((f) => path.relative(REPO, f)).join(', ')}`);
  });
});
