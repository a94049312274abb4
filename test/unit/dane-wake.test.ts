// When the daemon next wakes for a DANE rollover (src/daemon/wake.ts
// daneWakeAt): the end of the hold once a rotation is due, RETIRE one TTL
// after the swap, the key's rotation time; never "now" in a loop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { daneWakeAt, nextWake, nextWakeAt } from '../../src/daemon/wake.js';
import { fallbackRenewalTime, jitterFor } from '../../src/schedule/renewal-time.js';
import { StateStore } from '../../src/store/state-store.js';
import { configFingerprint } from '../../src/schedule/config-fingerprint.js';
import type { CertificateConfig, Config } from '../../src/config/schema.js';

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

  it('exact instants: the deadline plus 20 ms; a deadline at or before now, 10 s on', async () => {
    await journal({ phase: 'STEADY' });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), NOW.getTime() - DAY + 90 * DAY + 20);
    await journal({ phase: 'STEADY', holdUntil: at(30_000), rollover: { requestedAt: at(0), emergency: false } });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), NOW.getTime() + 30_020);
    await journal({ phase: 'RETIRE', swappedAt: at(-10_000) });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), NOW.getTime() + 50_020);
    // Without a publisher TTL, RETIRE waits the default hour.
    const noTtl = { ...cert, dane: { ...cert.dane!, publisher: undefined } } as unknown as CertificateConfig;
    assert.equal(await daneWakeAt(store, noTtl, 'ecdsa-p256', NOW), NOW.getTime() - 10_000 + 3_600_000 + 20);
    await journal({ phase: 'AWAIT_VISIBLE', holdUntil: at(0) });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), NOW.getTime() + 10_000, 'due exactly now: looked at again in 10 s');
    await journal({ phase: 'AWAIT_VISIBLE', holdUntil: at(1) });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), NOW.getTime() + 21);
  });

  it('a journal with a phase this version does not know: no wake; a RELEASE without its retirement state: looked at again in 10 s', async () => {
    await journal({ phase: 'DANCING', holdUntil: at(30_000) });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), undefined);
    await journal({ phase: 'RELEASE' });
    assert.equal(await daneWakeAt(store, cert, 'ecdsa-p256', NOW), NOW.getTime() + 10_000);
  });

  it('DANE switched off: no wake, even with a journal left from before', async () => {
    await journal({ phase: 'RETIRE', swappedAt: at(-10_000) });
    const off = { ...cert, dane: { ...cert.dane!, enabled: false } } as unknown as CertificateConfig;
    assert.equal(await daneWakeAt(store, off, 'ecdsa-p256', NOW), undefined);
  });
});

describe('nextWakeAt: the earliest renewal, ARI check or DANE step over every certificate and key type', () => {
  let dir: string;
  let store: StateStore;
  const plain = (name: string, keys: string[]) => ({ name, domains: [`${name}.example.test`], keys, hooks: {} }) as unknown as CertificateConfig;
  const config = (...certificates: CertificateConfig[]) => ({ acme: { directory: 'https://ca.example.test/dir' }, certificates }) as unknown as Config;
  const issue = async (name: string, keyType: string, notBefore: number, lifeMs: number) => {
    const id = await store.saveVersion(name, keyType, {
      keyPem: 'k',
      leafPem: 'c',
      intermediatesPem: [],
      meta: { serial: `0${notBefore}`, notBefore: at(notBefore), notAfter: at(notBefore + lifeMs), names: [`${name}.example.test`], issuer: 'CN=CA', spkiSha256: '00', keyType, issuedAt: at(notBefore) },
    });
    await store.writeState(name, keyType, { current: id, consecutiveFailures: 0 });
    return fallbackRenewalTime({ notBefore: new Date(at(notBefore)), notAfter: new Date(at(notBefore + lifeMs)) }, jitterFor(`${name}/${keyType}`)).getTime();
  };
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-wake-next-'));
    store = new StateStore(dir);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('nothing configured: never', async () => {
    assert.equal(await nextWakeAt(config(), store, NOW), undefined);
  });

  it('nothing issued yet: now', async () => {
    assert.equal(await nextWakeAt(config(plain('new', ['ecdsa-p256'])), store, NOW), NOW.getTime());
  });

  it('the earliest plan over certificates and key types; an earlier ARI check; an earlier DANE step', async () => {
    const a = await issue('a', 'ecdsa-p256', -DAY, 90 * DAY);
    const b = await issue('b', 'ecdsa-p256', -DAY, 30 * DAY);
    const bRsa = await issue('b', 'rsa-2048', -DAY, 20 * DAY);
    assert.ok(bRsa < b && b < a);
    const cfg = config(plain('a', ['ecdsa-p256']), plain('b', ['ecdsa-p256', 'rsa-2048']));
    assert.equal(await nextWakeAt(cfg, store, NOW), bRsa);
    // The stored certificate counts, not a forced renewal: only its metadata is read.
    assert.equal(await nextWakeAt(config(plain('a', ['ecdsa-p256'])), store, NOW), a);

    const state = await store.readState('a', 'ecdsa-p256');
    await store.writeState('a', 'ecdsa-p256', { ...state, ari: { certId: 'x', windowStart: at(50 * DAY), windowEnd: at(51 * DAY), chosen: at(50 * DAY), fetchedAt: at(0), nextCheck: at(3_600_000) } });
    assert.equal(await nextWakeAt(cfg, store, NOW), NOW.getTime() + 3_600_000);

    const daneCert = { ...plain('b', ['ecdsa-p256', 'rsa-2048']), dane: { enabled: true, keyLifetime: 90 * DAY, minHold: 0, publisher: { ttl: 60 } } } as unknown as CertificateConfig;
    const d = path.join(store.certDir('b', 'rsa-2048'), 'dane');
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, 'journal.json'), JSON.stringify({ version: 1, phase: 'RETIRE', swappedAt: at(0), current: { id: 'c', tlsa: 'aa', createdAt: at(-DAY) }, next: { id: 'n', tlsa: 'bb', createdAt: at(-DAY) }, updatedAt: at(0) }));
    assert.equal(await nextWakeAt(config(plain('a', ['ecdsa-p256']), daneCert), store, NOW), NOW.getTime() + 60_020);
  });

  it('says what is due then, for the daemon’s log; of two at the same instant, the first in the config', async () => {
    const a = await issue('w1', 'ecdsa-p256', -DAY, 90 * DAY);
    assert.deepEqual(await nextWake(config(plain('w1', ['ecdsa-p256'])), store, NOW), { at: a, why: 'w1 (ecdsa-p256): renewal (lifetime-fraction)' });
    assert.deepEqual(await nextWake(config(plain('w2', ['rsa-2048']), plain('w3', ['ecdsa-p256'])), store, NOW), { at: NOW.getTime(), why: 'w2 (rsa-2048): renewal (missing)' });
    const state = await store.readState('w1', 'ecdsa-p256');
    await store.writeState('w1', 'ecdsa-p256', { ...state, ari: { certId: 'x', windowStart: at(50 * DAY), windowEnd: at(51 * DAY), chosen: at(50 * DAY), fetchedAt: at(0), nextCheck: at(3_600_000) } });
    assert.deepEqual(await nextWake(config(plain('w1', ['ecdsa-p256'])), store, NOW), { at: NOW.getTime() + 3_600_000, why: 'w1 (ecdsa-p256): ARI check' });
    const daneCert = { ...plain('w1', ['ecdsa-p256']), dane: { enabled: true, keyLifetime: 90 * DAY, minHold: 0, publisher: { ttl: 60 } } } as unknown as CertificateConfig;
    const d = path.join(store.certDir('w1', 'ecdsa-p256'), 'dane');
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, 'journal.json'), JSON.stringify({ version: 1, phase: 'RETIRE_OLD', swappedAt: at(0), current: { id: 'c', tlsa: 'aa', createdAt: at(-DAY) }, next: { id: 'n', tlsa: 'bb', createdAt: at(-DAY) }, updatedAt: at(0) }));
    assert.deepEqual(await nextWake(config(daneCert), store, NOW), { at: NOW.getTime() + 60_020, why: 'w1 (ecdsa-p256): DANE rollover step' });
  });

  it('a backoff under the config it failed with; none once the config has changed since', async () => {
    const cfg = config(plain('c', ['ecdsa-p256']));
    const cert = cfg.certificates[0]!;
    const last = { at: at(-1000), result: 'failure' as const, error: 'x' };
    // One failure: the first backoff step (one minute) from the last attempt.
    await store.writeState('c', 'ecdsa-p256', { consecutiveFailures: 1, last: { ...last, configFingerprint: configFingerprint(cfg.acme, cert, 'ecdsa-p256') } });
    assert.equal(await nextWakeAt(cfg, store, NOW), NOW.getTime() - 1000 + 60_000);
    await store.writeState('c', 'ecdsa-p256', { consecutiveFailures: 1, last: { ...last, configFingerprint: 'another config' } });
    assert.equal(await nextWakeAt(cfg, store, NOW), NOW.getTime(), 'nothing issued and the config changed since the failure: now');
  });
});
