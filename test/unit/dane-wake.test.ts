// When the daemon next wakes for a DANE rollover (src/daemon/wake.ts
// daneWakeAt): the end of the hold once a rotation is due, RETIRE one TTL
// after the swap, the key's rotation time; never "now" in a loop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { daneWakeAt } from '../../src/daemon/wake.js';
import { StateStore } from '../../src/store/state-store.js';
import type { CertificateConfig } from '../../src/config/schema.js';

const NOW = new Date('2026-11-23T00:00:00Z');
const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString();
const DAY = 86_400_000;

describe('daneWakeAt', () => {
  let dir: string;
  let store: StateStore;
  const cert = {
    name: 'mx1',
    keys: ['ecdsa-p256'],
    dane: { enabled: true, keyLifetime: 90 * DAY, minHold: 0, publisher: { ttl: 60 } },
  } as unknown as CertificateConfig;
  const journal = async (j: object) => {
    const d = path.join(store.certDir('mx1', 'ecdsa-p256'), 'dane');
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, 'journal.json'), JSON.stringify({ version: 1, current: { id: 'c', tlsa: 'aa', createdAt: at(-DAY) }, next: { id: 'n', tlsa: 'bb', createdAt: at(-DAY) }, updatedAt: at(0), ...j }));
  };
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-wake-'));
    store = new StateStore(dir);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('nothing for a certificate without DANE or without a journal', async () => {
    assert.equal(await daneWakeAt(store, { ...cert, dane: undefined } as CertificateConfig, 'ecdsa-p256', NOW), undefined);
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), undefined);
  });

  it('STEADY: at the key rotation time; with a rollover requested, at the end of the hold', async () => {
    await journal({ phase: 'STEADY', holdUntil: at(-1000) });
    const rotation = await daneWakeAt(store, cert, 'ecdsa-p256', NOW);
    assert.ok(rotation! >= NOW.getTime() + 89 * DAY - 1000 && rotation! <= NOW.getTime() + 89 * DAY + 1000, `rotation wake ${new Date(rotation!).toISOString()}`);
    await journal({ phase: 'STEADY', holdUntil: at(30_000), rollover: { requestedAt: at(0), emergency: false } });
    const hold = (await daneWakeAt(store, cert, 'ecdsa-p256', NOW))!;
    assert.ok(hold >= NOW.getTime() + 30_000 && hold < NOW.getTime() + 31_000, `hold wake ${new Date(hold).toISOString()}`);
  });

  it('RETIRE (a journal of an earlier version): one TTL after the swap', async () => {
    await journal({ phase: 'RETIRE', swappedAt: at(-10_000) });
    const w = (await daneWakeAt(store, cert, 'ecdsa-p256', NOW))!;
    assert.ok(w >= NOW.getTime() + 50_000 && w < NOW.getTime() + 51_000, new Date(w).toISOString());
  });

  it('RETIRE_OLD: at retireAfter (the larger TTL after the swap)', async () => {
    await journal({ phase: 'RETIRE_OLD', swappedAt: at(-10_000), retireAfter: at(70_000) });
    const w = (await daneWakeAt(store, cert, 'ecdsa-p256', NOW))!;
    assert.ok(w >= NOW.getTime() + 70_000 && w < NOW.getTime() + 71_000, new Date(w).toISOString());
  });

  it('DANE off in the config: nothing moves on its own, except a retirement, which wakes when the keys may be freed', async () => {
    const off = { ...cert, dane: undefined } as CertificateConfig;
    await journal({ phase: 'STEADY' });
    assert.equal(await daneWakeAt(store, off, 'ecdsa-p256', NOW), undefined);
    await journal({ phase: 'RELEASE', retire: { startedAt: at(-5000), owners: [], records: [], releaseAt: at(40_000) } });
    const w = (await daneWakeAt(store, off, 'ecdsa-p256', NOW))!;
    assert.ok(w >= NOW.getTime() + 40_000 && w < NOW.getTime() + 41_000, new Date(w).toISOString());
    await journal({ phase: 'AWAIT_GONE', retire: { startedAt: at(-5000), owners: [], records: [] } });
    assert.ok((await daneWakeAt(store, off, 'ecdsa-p256', NOW))! > NOW.getTime(), 'looks again later, never a busy loop');
  });

  it('a deadline already passed (something without a deadline holds it back): later, not now', async () => {
    await journal({ phase: 'AWAIT_VISIBLE' });
    const w = (await daneWakeAt(store, cert, 'ecdsa-p256', NOW))!;
    assert.ok(w > NOW.getTime(), 'never a busy loop');
  });
});
