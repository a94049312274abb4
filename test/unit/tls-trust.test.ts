// withExtraTrust (src/util/tls-trust.ts): a private CA's server is trusted,
// with the configured bundle and only with it; several certificates in one
// bundle all count; Node's bundled roots stay trusted next to it; the
// context is built through the documented `ca` option alone (no private
// SecureContext method) and once per bundle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { withExtraTrust } from '../../src/util/tls-trust.js';
import { makePki, makeRoot } from './pki-fixtures.js';
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

type CreateSecureContext = typeof tls.createSecureContext;

/** Runs `fn` with tls.createSecureContext replaced by `wrap(original)`, restored afterwards. */
async function withPatchedCreateSecureContext<T>(wrap: (original: CreateSecureContext) => CreateSecureContext, fn: () => Promise<T>): Promise<T> {
  const original = tls.createSecureContext;
  tls.createSecureContext = wrap(original);
  try {
    return await fn();
  } finally {
    tls.createSecureContext = original;
  }
}

test('trust needs no private Node API: with SecureContext#context.addCACert broken, the added root still works', async () => {
  // Stands for a Node release that changes or drops the native method
  // behind `ca`: every context handed out has an addCACert that throws.
  const now = new Date();
  const pki = await makePki(now);
  const server = tls.createServer({ key: pki.leaf.keyPem, cert: pki.leaf.pem + pki.intermediate.pem });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const ctx = await withPatchedCreateSecureContext(
      (original) => (options) => {
        const made = original(options);
        (made as unknown as { context: { addCACert: (pem: string) => void } }).context.addCACert = () => {
          throw new Error('private SecureContext#context.addCACert called');
        };
        return made;
      },
      async () => withExtraTrust(pki.root.pem),
    );
    assert.equal(await handshake(server, ctx), 'ok');
  } finally {
    server.close();
  }
});

test("Node's bundled roots stay trusted next to the bundle: the context's `ca` is every tls.rootCertificates entry plus the bundle", async () => {
  const root = await makeRoot('roots-kept test root', new Date());
  const seen: Array<tls.SecureContextOptions | undefined> = [];
  await withPatchedCreateSecureContext(
    (original) => (options) => {
      seen.push(options);
      return original(options);
    },
    async () => withExtraTrust(root.pem),
  );
  assert.equal(seen.length, 1, 'one context built');
  const ca = seen[0]?.ca;
  assert.ok(Array.isArray(ca), `ca is a list (got ${typeof ca})`);
  const given = new Set(ca.map((c) => String(c)));
  const missing = tls.rootCertificates.filter((r) => !given.has(r));
  assert.equal(missing.length, 0, `${missing.length} of ${tls.rootCertificates.length} bundled roots left out`);
  assert.ok(ca.some((c) => String(c).includes(root.pem.trim())), 'the bundle is in ca');
});

test('one context per bundle content: built once and shared, a different bundle gets its own', async () => {
  const now = new Date();
  const [a, b] = [await makeRoot('cache test root a', now), await makeRoot('cache test root b', now)];
  let built = 0;
  const [a1, a2, b1] = await withPatchedCreateSecureContext(
    (original) => (options) => {
      built++;
      return original(options);
    },
    async () => [withExtraTrust(a.pem), withExtraTrust(`${a.pem}`), withExtraTrust(b.pem)],
  );
  assert.equal(a1, a2, 'the same bundle gives the same context');
  assert.notEqual(a1, b1);
  assert.equal(built, 2, 'two bundles, two contexts built');
});
