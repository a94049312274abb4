// The expiry warning on a made-up stateDir: fires in the last fifth of the
// lifetime, once per certificate version, through the failure hooks with
// MXCERT_EVENT=warning.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

// An owner-only output directory: the loader checks that output directories exist and are not loose.
const OUT_DIR = path.join(tmpdir(), `mxcert-unit-out-${process.pid}`);
mkdirSync(OUT_DIR, { recursive: true, mode: 0o700 });
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { warnAboutAgingCertificates, warningInstant } from '../../src/notify/expiry-warning.js';
import { StateStore } from '../../src/store/state-store.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-warning-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('expiry warning', () => {
  it('is due with a fifth of the lifetime left', () => {
    assert.equal(warningInstant(new Date('2030-01-01T00:00:00Z'), new Date('2030-04-01T00:00:00Z')).toISOString(), '2030-03-14T00:00:00.000Z');
  });

  it('runs the failure hooks once per version with MXCERT_EVENT=warning', async () => {
    const secretFile = path.join(dir, 'tsig');
    await writeFile(secretFile, 'c2VjcmV0', { mode: 0o600 });
    await chmod(secretFile, 0o600);
    const record = path.join(dir, 'calls');
    const hook = path.join(dir, 'hook');
    await writeFile(hook, `#!/bin/sh\nprintf '%s|%s|%s|%s\\n' "$MXCERT_EVENT" "$MXCERT_CERT_NAME" "$MXCERT_KEY_TYPE" "$MXCERT_ERROR" >> ${record}\n`, { mode: 0o755 });
    const file = path.join(dir, 'config.yaml');
    await writeFile(
      file,
      stringify({
        stateDir: path.join(dir, 'state'),
        acme: { directory: 'https://acme.example.test/directory', email: 'postmaster@example.com' },
        certificates: [
          {
            name: 'mx1',
            domains: ['mx1.example.com'],
            challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.com', tsig: { name: 'mxcert', secretFile } } },
            output: { combined: `${OUT_DIR}/mx1-{keytype}.pem` },
            hooks: { failure: [[hook, 'postmaster@example.com']] },
          },
        ],
      }),
    );
    const cfg = await loadConfig(file);
    const store = new StateStore(cfg.stateDir);
    await store.ensure();
    const save = (serial: string, notBefore: string, notAfter: string) =>
      store.saveVersion('mx1', 'ecdsa-p256', {
        keyPem: 'key',
        leafPem: 'leaf',
        intermediatesPem: [],
        meta: { serial, notBefore, notAfter, names: ['mx1.example.com'], issuer: 'CN=CA', spkiSha256: '00', keyType: 'ecdsa-p256', issuedAt: notBefore },
      });
    const v1 = await save('01', '2030-01-01T00:00:00.000Z', '2030-04-01T00:00:00.000Z');
    await store.writeState('mx1', 'ecdsa-p256', {
      current: v1,
      consecutiveFailures: 4,
      last: { at: '2030-03-13T00:00:00.000Z', result: 'failure', step: 'obtain', error: 'obtain: connect ECONNREFUSED 192.0.2.1:443' },
    });
    const log = createLogger({ level: 'silent' });
    const calls = () => readFile(record, 'utf8').then((t) => t.trim().split('\n'), () => [] as string[]);

    await warnAboutAgingCertificates(cfg, store, new Date('2030-03-13T23:59:59Z'), log);
    assert.deepEqual(await calls(), [], 'not yet in the last fifth');

    await warnAboutAgingCertificates(cfg, store, new Date('2030-03-14T00:00:00Z'), log);
    const [first, ...rest] = await calls();
    assert.equal(rest.length, 0);
    assert.match(first!, /^warning\|mx1\|ecdsa-p256\|certificate mx1 \(ecdsa-p256, serial 01\) expires at 2030-04-01 00:00:00Z \(in 18 days\)/);
    assert.match(first!, /4 failed attempts since the last success; last error: obtain: connect ECONNREFUSED 192\.0\.2\.1:443$/);

    await warnAboutAgingCertificates(cfg, store, new Date('2030-03-20T00:00:00Z'), log);
    assert.equal((await calls()).length, 1, 'once per version, across passes');

    // A new version (renewed late) gets its own warning when it ages in turn.
    const v2 = await save('02', '2030-03-25T00:00:00.000Z', '2030-06-23T00:00:00.000Z');
    await store.writeState('mx1', 'ecdsa-p256', { current: v2, consecutiveFailures: 0, last: { at: '2030-03-25T00:00:00.000Z', result: 'success' } });
    await warnAboutAgingCertificates(cfg, store, new Date('2030-03-26T00:00:00Z'), log);
    assert.equal((await calls()).length, 1);
    await warnAboutAgingCertificates(cfg, store, new Date('2030-06-24T00:00:00Z'), log);
    const all = await calls();
    assert.equal(all.length, 2);
    assert.match(all[1]!, /^warning\|mx1\|ecdsa-p256\|certificate mx1 \(ecdsa-p256, serial 02\) expired at 2030-06-23 00:00:00Z and has not been renewed: it is in the last fifth of its lifetime$/);

    // The check reads the version's metadata only (it runs for every unit
    // after every pass): a version whose key and certificate files are gone
    // is still warned about, from its dates.
    const v3 = await save('03', '2030-07-01T00:00:00.000Z', '2030-09-29T00:00:00.000Z');
    await store.writeState('mx1', 'ecdsa-p256', { current: v3, consecutiveFailures: 0, last: { at: '2030-07-01T00:00:00.000Z', result: 'success' } });
    for (const f of ['key.pem', 'cert.pem', 'chain.pem']) await rm(path.join(store.certDir('mx1', 'ecdsa-p256'), 'versions', v3, f));
    await warnAboutAgingCertificates(cfg, store, new Date('2030-09-20T00:00:00Z'), log);
    const third = await calls();
    assert.equal(third.length, 3);
    assert.match(third[2]!, /^warning\|mx1\|ecdsa-p256\|certificate mx1 \(ecdsa-p256, serial 03\) expires at 2030-09-29 00:00:00Z/);
  });
});
