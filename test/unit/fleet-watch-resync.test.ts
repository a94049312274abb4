// The fleet watch's reconnect (src/fleet/watch.ts): when the stream comes
// back, the snapshot is read again; a read that fails then (etcd3 may still
// hold the endpoint in its circuit breaker) is retried until it works, and
// the watch reports connected again. The etcd client is a stand-in here,
// because a real etcd cannot be made to fail exactly that one read; the
// same path runs on a real 3-node cluster in
// test/integration/fleet-etcd.test.ts ("keeps delivering after all of etcd
// was stopped and started again").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { watchFleet } from '../../src/fleet/watch.js';
import type { FleetStore } from '../../src/fleet/store.js';

function standIn() {
  const stream = Object.assign(new EventEmitter(), { cancel: async () => undefined });
  const reads = { ok: 0, failed: 0, toFail: 0 };
  const exec = async () => {
    if (reads.toFail > 0) {
      reads.toFail--;
      reads.failed++;
      throw new Error('circuit breaker open');
    }
    reads.ok++;
    return { kvs: [], header: { revision: '5' } };
  };
  const store = {
    etcd: {
      ns: { getAll: () => ({ prefix: () => ({ options: () => ({ exec }) }) }) },
      call: (_what: string, fn: (o: unknown) => Promise<unknown>) => fn({}),
      watch: () => stream,
    },
    relative: (k: Buffer) => k.toString(),
  } as unknown as FleetStore;
  return { stream, reads, store };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('fleet watch: reconnect', () => {
  it('a snapshot read that fails right after the stream is back is retried, and the watch reports connected again', async () => {
    const { stream, reads, store } = standIn();
    const states: string[] = [];
    const w = watchFleet(store, { prefix: '', onChange: () => undefined, onState: (s) => states.push(s), retryMs: 10 });
    try {
      await w.ready;
      stream.emit('connected');
      stream.emit('disconnected', new Error('stream broke'));
      reads.toFail = 2;
      stream.emit('connected');
      await until(() => states.at(-1) === 'connected' && states.length === 3, `connected again (states: ${states.join(', ')})`);
      assert.deepEqual(states, ['connected', 'disconnected', 'connected']);
      assert.equal(reads.failed, 2, 'both failing reads were made');
      assert.equal(reads.ok, 2, 'the first snapshot and the one after the reconnect');
    } finally {
      w.close();
    }
  });
});
