// Each failure domain throws its own MxcertError subclass, and keeps the
// `code` that state.json, `mxcert status --json` and the metrics labels carry.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../src/config/schema.js';
import { CsrError, MetricsError, MxcertError, StateError, VerifyError } from '../../src/errors.js';
import { createCsr } from '../../src/keys/csr.js';
import { silentLogger } from '../../src/log.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import { ensureStateDir } from '../../src/store/state-dir.js';
import { StateStore } from '../../src/store/state-store.js';
import { probeEndpoint } from '../../src/verify/starttls.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-error-classes-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `err` is a `cls` with `code`, and still an MxcertError. */
function isA(cls: new (...args: never[]) => MxcertError, code: string): (err: unknown) => boolean {
  return (err) => err instanceof cls && err instanceof MxcertError && err.code === code;
}

describe('error classes per failure domain', () => {
  it('state: a stateDir others can write, a state.json that is not JSON', async () => {
    const open = path.join(dir, 'open-state');
    await mkdir(open);
    await chmod(open, 0o777);
    await assert.rejects(ensureStateDir(open), isA(StateError, 'state'));
    const store = new StateStore(path.join(dir, 'state'));
    await mkdir(store.certDir('mx1', 'ecdsa-p256'), { recursive: true });
    await writeFile(path.join(store.certDir('mx1', 'ecdsa-p256'), 'state.json'), '{ not json');
    await assert.rejects(store.readState('mx1', 'ecdsa-p256'), isA(StateError, 'state'));
  });

  it('csr: no names', async () => {
    await assert.rejects(createCsr([], 'unused'), isA(CsrError, 'csr'));
  });

  it('metrics: a non-loopback listen address without allowNonLoopback', async () => {
    const config = { metrics: { listen: '192.0.2.1:9100', allowNonLoopback: false } } as unknown as Config;
    await assert.rejects(startMetricsServer(config, silentLogger), isA(MetricsError, 'metrics'));
  });

  it('verify: an SMTP server that refuses STARTTLS', async () => {
    const server = net.createServer((s) => {
      s.write('220 test ESMTP\r\n');
      s.on('data', () => s.write('250-test\r\n250 SIZE 1000\r\n'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as net.AddressInfo;
      await assert.rejects(probeEndpoint(`127.0.0.1:${port}`, { timeoutMs: 5000 }), (e: unknown) => isA(VerifyError, 'verify')(e) && /does not offer STARTTLS/.test((e as Error).message));
    } finally {
      server.close();
    }
  });
});
