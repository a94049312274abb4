// withExtraTrust (src/util/tls-trust.ts): a private CA's server is trusted,
// with the configured bundle and only with it; several certificates in one
// bundle all count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { withExtraTrust } from '../../src/util/tls-trust.js';
import { makeIntermediate, makeLeaf, makePki, makeRoot } from './pki-fixtures.js';

const run = promisify(execFile);

async function handshake(server: tls.Server, secureContext?: tls.SecureContext): Promise<'ok' | string> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'mx1.example.test', ...(secureContext ? { secureContext } : {}) }, () => {
      s.end();
      resolve('ok');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('a server under a private root: refused with the system roots alone, accepted with the root added', async () => {
  const now = new Date();
  const pki = await makePki(now);
  const other = await makeRoot('someone else', now);
  const server = tls.createServer({ key: pki.leaf.keyPem, cert: pki.leaf.pem + pki.intermediate.pem });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    assert.notEqual(await handshake(server), 'ok', 'system roots do not know the test root');
    assert.notEqual(await handshake(server, withExtraTrust(other.pem)), 'ok', 'an unrelated root does not help');
    assert.equal(await handshake(server, withExtraTrust(pki.root.pem)), 'ok');
    assert.equal(await handshake(server, withExtraTrust(other.pem + pki.root.pem)), 'ok', 'every certificate of a bundle is added');
  } finally {
    server.close();
  }
});

test('the default root store is kept: a root Node already trusts still counts next to the added one', async () => {
  // The default store is Node's bundled roots, or with --use-openssl-ca
  // OpenSSL's (SSL_CERT_FILE): the same code path builds the copy that
  // addCACert extends. A child whose default store is a second test root
  // must trust both servers. (NODE_EXTRA_CA_CERTS is not part of that copy,
  // as it is not part of tls.rootCertificates, the documented route.)
  const now = new Date();
  const a = await makePki(now);
  // Distinct names: OpenSSL picks issuers by name.
  const bRoot = await makeRoot('second test root', now);
  const bInter = await makeIntermediate('second test intermediate', bRoot, now);
  const b = { root: bRoot, intermediate: bInter, leaf: await makeLeaf(bInter, now) };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tls-trust-'));
  const servers = [a, b].map((p) => tls.createServer({ key: p.leaf.keyPem, cert: p.leaf.pem + p.intermediate.pem }));
  try {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    const extraFile = path.join(dir, 'extra.pem');
    await writeFile(extraFile, b.root.pem);
    const ports = servers.map((s) => (s.address() as AddressInfo).port);
    const script = `
      import tls from 'node:tls';
      import { withExtraTrust } from ${JSON.stringify(new URL('../../src/util/tls-trust.ts', import.meta.url).href)};
      const ctx = withExtraTrust(${JSON.stringify(a.root.pem)});
      const out = [];
      for (const port of ${JSON.stringify(ports)}) {
        out.push(await new Promise((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port, servername: 'mx1.example.test', secureContext: ctx }, () => { s.end(); resolve('ok'); });
          s.on('error', (e) => resolve(e.code ?? e.message));
        }));
      }
      console.log(JSON.stringify(out));`;
    const r = await run(process.execPath, ['--use-openssl-ca', '--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, SSL_CERT_FILE: extraFile } });
    assert.deepEqual(JSON.parse(r.stdout.trim()), ['ok', 'ok'], r.stderr);
  } finally {
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
  }
});
