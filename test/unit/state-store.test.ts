// The state store on real files: a staged version appears whole, every file
// 0600, nothing half-written left next to it; the synchronous readers that
// `mxcert status` uses give the same answers as the asynchronous ones.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StateError } from '../../src/errors.js';
import { StateStore } from '../../src/store/state-store.js';

let dir: string;
let store: StateStore;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-store-'));
  store = new StateStore(path.join(dir, 'state'));
  await store.ensure();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const version = (serial: string, issuedAt: string) => ({
  keyPem: `KEY ${serial}\n`,
  leafPem: `LEAF ${serial}\n`,
  intermediatesPem: ['INT 1\n', 'INT 2\n'],
  meta: { serial, notBefore: issuedAt, notAfter: '2031-01-01T00:00:00.000Z', names: ['mx1.example.com'], issuer: 'CN=CA', spkiSha256: '00', keyType: 'ecdsa-p256', issuedAt },
});

describe('a staged version', () => {
  it('appears whole, every file 0600, and replaces the one before', async () => {
    const first = await store.saveStaged('mx1', 'ecdsa-p256', version('0a01', '2030-01-01T00:00:00.000Z'));
    const id = await store.saveStaged('mx1', 'ecdsa-p256', version('0a02', '2030-01-02T00:00:00.000Z'));
    assert.notEqual(id, first);
    const stagedDir = path.join(store.certDir('mx1', 'ecdsa-p256'), 'staged');
    assert.deepEqual(await readdir(stagedDir), [id], 'only the newest, and no temporary directory');
    const files = (await readdir(path.join(stagedDir, id))).sort();
    assert.deepEqual(files, ['cert.pem', 'chain.pem', 'key.pem', 'meta.json'], 'no temporary file inside');
    for (const f of files) assert.equal((await stat(path.join(stagedDir, id, f))).mode & 0o777, 0o600, `${f} is 0600`);
    assert.equal((await stat(path.join(stagedDir, id))).mode & 0o777, 0o700);

    const loaded = await store.loadStaged('mx1', 'ecdsa-p256');
    assert.equal(loaded?.keyPem, 'KEY 0a02\n');
    assert.equal(loaded?.leafPem, 'LEAF 0a02\n');
    assert.deepEqual(loaded?.intermediatesPem, []); // not PEM certificates: splitCerts finds none
    assert.equal(await readFile(path.join(stagedDir, id, 'chain.pem'), 'utf8'), 'INT 1\nINT 2\n');
    assert.deepEqual(loaded?.meta, { ...version('0a02', '2030-01-02T00:00:00.000Z').meta, id });
    assert.deepEqual(store.loadStagedMetaSync('mx1', 'ecdsa-p256'), loaded?.meta);
    assert.deepEqual(await store.loadStagedMeta('mx1', 'ecdsa-p256'), loaded?.meta);

    await store.promoteStaged('mx1', 'ecdsa-p256', id);
    assert.equal(store.loadStagedMetaSync('mx1', 'ecdsa-p256'), undefined);
    assert.deepEqual(store.loadMetaSync('mx1', 'ecdsa-p256', id), loaded?.meta);
    assert.deepEqual(await store.loadMeta('mx1', 'ecdsa-p256', id), loaded?.meta);
  });

  it('an unfinished one (a dot-name left by a killed run) is not taken for staged', async () => {
    const stagedDir = path.join(store.certDir('mx2', 'ecdsa-p256'), 'staged');
    await mkdir(path.join(stagedDir, '.2030-01-01T000000000Z-0a03.999999.tmp'), { recursive: true });
    await writeFile(path.join(stagedDir, '.2030-01-01T000000000Z-0a03.999999.tmp', 'meta.json'), '{}');
    assert.equal(store.loadStagedMetaSync('mx2', 'ecdsa-p256'), undefined);
    assert.equal(await store.loadStagedMeta('mx2', 'ecdsa-p256'), undefined);
  });
});

describe('the readers status uses', () => {
  it('read what the asynchronous ones read, defaults included', async () => {
    assert.deepEqual(store.readStateSync('none', 'rsa-2048'), { consecutiveFailures: 0 });
    assert.deepEqual(store.readStateSync('none', 'rsa-2048'), await store.readState('none', 'rsa-2048'));
    assert.equal(store.loadMetaSync('none', 'rsa-2048', 'x'), undefined);
    assert.equal(store.loadStagedMetaSync('none', 'rsa-2048'), undefined);
    const st = { current: 'v1', consecutiveFailures: 2, last: { at: '2030-01-01T00:00:00.000Z', result: 'failure' as const, step: 'obtain', error: 'x' } };
    await store.writeState('mx3', 'rsa-2048', st);
    assert.deepEqual(store.readStateSync('mx3', 'rsa-2048'), st);
    assert.deepEqual(await store.readState('mx3', 'rsa-2048'), st);
  });

  it('a state file that is not JSON is an error naming the file, in both', async () => {
    await mkdir(store.certDir('mx4', 'rsa-2048'), { recursive: true });
    await writeFile(path.join(store.certDir('mx4', 'rsa-2048'), 'state.json'), '{ torn');
    const named = (err: unknown) => err instanceof StateError && /cannot read .*mx4\/rsa-2048\/state\.json/.test(err.message);
    assert.throws(() => store.readStateSync('mx4', 'rsa-2048'), named);
    await assert.rejects(store.readState('mx4', 'rsa-2048'), named);
  });
});
