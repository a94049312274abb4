// The pending-cleanup ledger (src/store/cleanup-ledger.ts) on real files: an
// entry per response really put out, once however often it is reported, gone
// once removed; a legacy file is read and deduplicated.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CleanupLedger, PENDING_CLEANUPS_FILE, readPendingCleanups } from '../../src/store/cleanup-ledger.js';
import type { ChallengeInput } from '../../src/obtain/solver.js';

const KEY = JSON.stringify({ type: 'dns-01', server: '127.0.0.1', port: 53, zone: 'example.test', tsig: 'k' });
const ch = (id: string, value: string): ChallengeInput => ({ identifier: id, token: `tok-${value}`, value });
const owner = (id: string) => `_acme-challenge.${id}.`;
const quietLog = { info: () => undefined, warn: () => undefined };

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-ledger-'));
  try {
    await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('cleanup ledger', () => {
  it('one entry per (config, owner, value), 0600; removed entries leave, and the file with the last one', () =>
    withDir(async (dir) => {
      const ledger = new CleanupLedger(dir, () => new Date('2026-12-07T14:00:00Z'));
      const j = ledger.journal(KEY, 'dns-01');
      await j.added(ch('mx1.example.test', 'v1'), owner('mx1.example.test'));
      await j.added(ch('mx1.example.test', 'v1'), owner('MX1.example.test'));
      await j.added(ch('mx2.example.test', 'v2'), owner('mx2.example.test'));
      const file = path.join(dir, PENDING_CLEANUPS_FILE);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const entries = await readPendingCleanups(dir);
      assert.deepEqual(entries.map((e) => [e.owner, e.challenge.value, e.since, e.attempts]), [
        [owner('mx1.example.test'), 'v1', '2026-12-07T14:00:00.000Z', 0],
        [owner('mx2.example.test'), 'v2', '2026-12-07T14:00:00.000Z', 0],
      ]);
      await j.removed(ch('mx1.example.test', 'v1'));
      assert.deepEqual((await readPendingCleanups(dir)).map((e) => e.challenge.value), ['v2']);
      await j.removed(ch('mx2.example.test', 'v2'));
      await assert.rejects(stat(file), { code: 'ENOENT' });
    }));

  it('concurrent reports from units running side by side are all kept', () =>
    withDir(async (dir) => {
      const j = new CleanupLedger(dir, () => new Date()).journal(KEY, 'dns-01');
      await Promise.all(Array.from({ length: 20 }, (_, i) => j.added(ch(`mx${i}.example.test`, `v${i}`), owner(`mx${i}.example.test`))));
      assert.equal((await readPendingCleanups(dir)).length, 20);
    }));

  it('retry: an entry leaves once its removal succeeds; one that fails stays with its error and attempt count', () =>
    withDir(async (dir) => {
      const ledger = new CleanupLedger(dir, () => new Date());
      const j = ledger.journal(KEY, 'dns-01');
      await j.added(ch('ok.example.test', 'a'), owner('ok.example.test'));
      await j.added(ch('down.example.test', 'b'), owner('down.example.test'));
      const gone = JSON.stringify({ type: 'dns-01', server: 'old', port: 53, zone: 'old.test', tsig: 'k' });
      await ledger.journal(gone, 'dns-01').added(ch('x.old.test', 'c'), owner('x.old.test'));
      const cleanupFor = (key: string) =>
        key === KEY
          ? async (c: ChallengeInput) => {
              if (c.value === 'b') throw new Error('cannot reach 127.0.0.1:53');
            }
          : undefined;
      await ledger.retry(cleanupFor, quietLog);
      await ledger.retry(cleanupFor, quietLog);
      const left = await readPendingCleanups(dir);
      assert.deepEqual(left.map((e) => [e.challenge.value, e.attempts, e.lastError ?? null]), [
        ['b', 2, 'cannot reach 127.0.0.1:53'],
        ['c', 0, null], // its challenge config is gone: kept for the operator, not retried
      ]);
    }));

  it('reads the earlier layout ({ key: [challenge…] }), duplicates folded, owners derived', () =>
    withDir(async (dir) => {
      const legacy = { [KEY]: [ch('mx3.elsewhere.test', 'v'), ch('mx3.elsewhere.test', 'v'), ch('*.example.test', 'w')] };
      await writeFile(path.join(dir, PENDING_CLEANUPS_FILE), JSON.stringify(legacy), { mode: 0o600 });
      const entries = await readPendingCleanups(dir);
      assert.deepEqual(entries.map((e) => [e.type, e.owner, e.challenge.value]), [
        ['dns-01', '_acme-challenge.mx3.elsewhere.test.', 'v'],
        ['dns-01', '_acme-challenge.example.test.', 'w'],
      ]);
      // The first change rewrites it in the current layout.
      const ledger = new CleanupLedger(dir, () => new Date());
      await ledger.retry(() => async () => undefined, quietLog);
      await assert.rejects(readFile(path.join(dir, PENDING_CLEANUPS_FILE)), { code: 'ENOENT' });
    }));
});
