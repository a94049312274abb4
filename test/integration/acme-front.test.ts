// The ACME front (test/support/acme-front.ts) against real Pebble and the real
// mxcert CLI: first that it is transparent (an issuance through it deploys and
// Postfix serves the result), then that each stand-in for what the Debian
// Pebble lacks — ARI, profiles, rate limits with Retry-After, alreadyReplaced —
// behaves as RFC 9773 / RFC 8555 describe it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { ariCertId, startAcmeFront, type AcmeFront } from '../support/acme-front.js';
import { pollUntil } from '../env/proc.js';

const ACME_ERROR = 'urn:ietf:params:acme:error:';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTPS request trusting only `ca`; global fetch cannot take a per-request CA. */
function request(url: string, ca: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: opts.method ?? 'GET', headers: opts.headers, ca, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function leafOf(combinedPem: string): X509Certificate {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(combinedPem);
  assert.ok(m, 'combined file holds a certificate');
  return new X509Certificate(m[0]);
}

async function waitServed(sb: Sandbox, expected: X509Certificate): Promise<void> {
  await pollUntil(
    async () => (new X509Certificate(await servedLeafPem(sb.postfix.port)).raw.equals(expected.raw) ? true : undefined),
    { deadlineMs: 10_000, what: `Postfix to serve serial ${expected.serialNumber}` },
  );
}

describe('acme-front in front of real Pebble, driven by the real mxcert CLI', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let front: AcmeFront;
  let frontCa: string;
  let cfg: string;

  /** mx1 on this sandbox, but talking to the front. */
  function frontConfig(): SandboxConfig {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.acme.directory = front.directoryUrl;
    c.acme.caBundle = front.caBundlePath;
    return c;
  }

  async function directory(): Promise<Record<string, unknown> & { meta?: Record<string, unknown> }> {
    const r = await request(front.directoryUrl, frontCa);
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as Record<string, unknown>;
  }

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    front = await startAcmeFront({ pebble: sb.pebble });
    frontCa = await readFile(front.caBundlePath, 'utf8');
    cfg = await sb.writeConfig(frontConfig(), path.join(sb.dir, 'front.yaml'));
  });
  after(async () => {
    await front?.stop();
    await sb?.stop();
  });

  it('serves Pebble’s directory with the front’s origin in every URL and nothing added', async () => {
    const viaFront = await directory();
    const direct = JSON.parse((await request(sb.pebble.directoryUrl, await readFile(sb.pebble.caBundlePath, 'utf8'))).body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(viaFront).sort(), Object.keys(direct).sort(), 'same resources as Pebble');
    for (const [k, v] of Object.entries(viaFront)) {
      if (typeof v === 'string') assert.ok(v.startsWith(`${front.origin}/`), `${k} = ${v} points at the front`);
    }
    assert.equal(viaFront.renewalInfo, undefined, 'no ARI unless a test turns it on');
    assert.equal(viaFront.meta?.profiles, undefined, 'no profiles unless a test sets them');
  });

  it('renew --force through the front: exit 0, the order is recorded, Postfix serves the certificate', async () => {
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const leaf = leafOf(await readFile(sb.combinedPath(), 'utf8'));
    assert.ok(leaf.subjectAltName?.includes('DNS:mx1.example.test'));
    assert.ok(leaf.verify(new X509Certificate(await sb.pebble.issuerIntermediatePem()).publicKey), 'issued by Pebble, untouched');
    await waitServed(sb, leaf);
    assert.deepEqual(front.orders, [{ identifiers: [{ type: 'dns', value: 'mx1.example.test' }] }], 'one newOrder, no replaces/profile');
    assert.equal(front.certDownloads, 1);
  });

  it('adds renewalInfo and meta.profiles to the directory when set, and removes them again', async () => {
    const profiles = { classic: '90-day certificates', shortlived: '6-day certificates' };
    front.setProfiles(profiles);
    front.enableAri();
    let d = await directory();
    assert.equal(d.renewalInfo, `${front.origin}/renewal-info`);
    assert.deepEqual(d.meta?.profiles, profiles);
    assert.ok(typeof d.meta?.termsOfService === 'string', "Pebble's own meta is kept");

    front.disableAri();
    front.setProfiles(undefined);
    d = await directory();
    assert.equal(d.renewalInfo, undefined);
    assert.equal(d.meta?.profiles, undefined);
  });

  it('renewalInfo: the window set for a CertID with Retry-After, "*" as fallback, 404 otherwise, failAri', async () => {
    const leafPem = leafOf(await readFile(sb.combinedPath(), 'utf8')).toString();
    const id = ariCertId(leafPem);
    const start = new Date(Date.now() - 60_000);
    const end = new Date(Date.now() + 3_600_000);
    front.setRenewalWindow(id, { start, end, explanationURL: 'https://ca.example.test/incident/1' }, 120);
    const d = await directory();
    assert.equal(d.renewalInfo, `${front.origin}/renewal-info`);

    let r = await request(`${d.renewalInfo as string}/${id}`, frontCa);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['retry-after'], '120');
    assert.deepEqual(JSON.parse(r.body), {
      suggestedWindow: { start: start.toISOString(), end: end.toISOString() },
      explanationURL: 'https://ca.example.test/incident/1',
    });

    r = await request(`${front.origin}/renewal-info/AAAA.BBBB`, frontCa);
    assert.equal(r.status, 404);
    assert.match(String(r.headers['content-type']), /application\/problem\+json/);

    const anyStart = new Date(Date.now() + 86_400_000);
    front.setRenewalWindow('*', { start: anyStart, end: new Date(anyStart.getTime() + 3_600_000) });
    r = await request(`${front.origin}/renewal-info/AAAA.BBBB`, frontCa);
    assert.equal(r.status, 200);
    assert.equal(r.headers['retry-after'], '3600', 'default Retry-After');
    assert.equal((JSON.parse(r.body) as { suggestedWindow: { start: string } }).suggestedWindow.start, anyStart.toISOString());
    r = await request(`${front.origin}/renewal-info/${id}`, frontCa);
    assert.equal((JSON.parse(r.body) as { suggestedWindow: { start: string } }).suggestedWindow.start, start.toISOString(), 'exact CertID wins over "*"');

    front.failAri(503);
    r = await request(`${front.origin}/renewal-info/${id}`, frontCa);
    assert.equal(r.status, 503);
    front.failAri(undefined);
    r = await request(`${front.origin}/renewal-info/${id}`, frontCa);
    assert.equal(r.status, 200);

    assert.deepEqual(front.ariRequests.slice(-6), [id, 'AAAA.BBBB', 'AAAA.BBBB', id, id, id]);

    // Off again: the directory no longer names it, so a later renew in this file works as without ARI.
    front.disableAri();
    assert.equal((await directory()).renewalInfo, undefined);
  });

  it('an order asking for an advertised profile carries it; Pebble ignores it and issues', async () => {
    front.setProfiles({ shortlived: 'short-lived certificates' });
    try {
      const c = frontConfig();
      c.acme.profile = 'shortlived';
      const withProfile = await sb.writeConfig(c, path.join(sb.dir, 'front-profile.yaml'));
      const before = front.orders.length;
      const r = await sb.cli(['renew', '--force', '--config', withProfile]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(front.orders.length, before + 1);
      assert.equal(front.orders.at(-1)?.profile, 'shortlived');
    } finally {
      front.setProfiles(undefined);
    }
  });

  it('rejectNextOrders: a 429 rateLimited with Retry-After fails the run naming [rateLimited]; the next run goes through', async () => {
    const before = await readFile(sb.combinedPath(), 'utf8');
    const ordersBefore = front.orders.length;
    front.rejectNextOrders(1, { type: `${ACME_ERROR}rateLimited`, detail: 'too many new orders for mx1.example.test', status: 429 }, 120);
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /\[rateLimited\]/);
    assert.match(r.stdout, /too many new orders for mx1\.example\.test/, 'the CA’s detail reaches the user');
    assert.equal(front.orders.length, ordersBefore + 1, 'the rejected order was recorded');
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), before, 'nothing deployed');

    const again = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.notEqual(await readFile(sb.combinedPath(), 'utf8'), before);
  });

  it('rejectOrdersWithReplaces: only a newOrder carrying replaces is refused, with a fresh nonce', async () => {
    // mxcert may not send `replaces` yet, so drive the endpoint with
    // hand-made JWSs: the front decodes payloads without verifying them, and
    // whatever it forwards, Pebble judges (and rejects: the signature is junk).
    const d = await directory();
    const newOrder = d.newOrder as string;
    const jws = (payload: object) =>
      JSON.stringify({
        protected: Buffer.from(JSON.stringify({ alg: 'ES256', kid: `${front.origin}/my-account/1`, nonce: 'x', url: newOrder })).toString('base64url'),
        payload: Buffer.from(JSON.stringify(payload)).toString('base64url'),
        signature: Buffer.from('not a signature').toString('base64url'),
      });
    const identifiers = [{ type: 'dns', value: 'mx1.example.test' }];
    front.rejectOrdersWithReplaces({ type: `${ACME_ERROR}alreadyReplaced`, detail: 'that certificate was already replaced', status: 409 });
    try {
      const post = (body: string) => request(newOrder, frontCa, { method: 'POST', headers: { 'content-type': 'application/jose+json' }, body });

      const refused = await post(jws({ identifiers, replaces: 'AAAA.BBBB' }));
      assert.equal(refused.status, 409);
      assert.match(String(refused.headers['content-type']), /application\/problem\+json/);
      assert.equal((JSON.parse(refused.body) as { type: string }).type, `${ACME_ERROR}alreadyReplaced`);
      assert.match(String(refused.headers['replay-nonce']), /^[\w-]+$/, 'a nonce the client can use next');

      const forwarded = await post(jws({ identifiers }));
      assert.notEqual((JSON.parse(forwarded.body) as { type?: string }).type, `${ACME_ERROR}alreadyReplaced`, 'Pebble answered, not the front');
      assert.ok(forwarded.status >= 400, `Pebble rejects the junk JWS (HTTP ${forwarded.status})`);

      assert.deepEqual(front.orders.slice(-2), [{ identifiers, replaces: 'AAAA.BBBB' }, { identifiers }]);
    } finally {
      front.rejectOrdersWithReplaces(undefined);
    }
  });

  it('a directory handing out an http:// newAccount: registration (with EAB) fails naming the URL, and nothing reaches it', async () => {
    // A plain http listener standing where the directory points: it must see nothing.
    const hits: string[] = [];
    const plain = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(500);
      res.end();
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const insecure = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/sign-me-up`;
    front.rewriteDirectoryUrl('newAccount', insecure);
    try {
      // A stateDir of its own: no stored account, so mxcert must register.
      const c = frontConfig();
      c.stateDir = path.join(sb.dir, 'state-http-newaccount');
      const eabKey = path.join(sb.dir, 'eab-http-newaccount.key');
      await writeFile(eabKey, randomBytes(32).toString('base64url'), { mode: 0o600 });
      c.acme.eab = { kid: 'kid-http-newaccount', hmacKeyFile: eabKey };
      const before = await readFile(sb.combinedPath(), 'utf8');
      const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'http-newaccount.yaml'))]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const refusal = `account registration failed: refusing ${insecure} (from the directory (newAccount)): ACME is https only (RFC 8555 §6.1); nothing was sent to it`;
      assert.ok(r.stdout.includes(refusal), `"${refusal}" in:\n${r.stdout}${r.stderr}`);
      assert.deepEqual(hits, [], 'no request (and so no JWS, no EAB) went out in clear');
      assert.equal(await readFile(sb.combinedPath(), 'utf8'), before, 'nothing deployed');
      // The account key is stored before registering (so a crash cannot orphan an account); its URL never is.
      const accounts = path.join(c.stateDir, 'accounts');
      const stored = await Promise.all((await readdir(accounts)).map(async (d) => JSON.parse(await readFile(path.join(accounts, d, 'account.json'), 'utf8')) as { url?: string }));
      assert.equal(stored.length, 1, 'the key was stored for this directory');
      assert.equal(stored[0]?.url, undefined, 'no account URL stored');
    } finally {
      front.rewriteDirectoryUrl('newAccount', undefined);
      plain.closeAllConnections();
      await new Promise<void>((r) => plain.close(() => r()));
    }
  });
});
