// More renewal options on real servers: External Account Binding (Pebble with
// EAB required), http-01 through a webroot served by a real web server
// (python3 -m http.server), a live check that fails (Postfix not reloaded)
// and rolls back, reuseKey, and the account being reused across runs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { startPebble } from '../env/pebble.js';
import { pollUntil, stopPid, waitForTcpPort } from '../env/proc.js';

const combinedParts = async (file: string) => {
  const text = await readFile(file, 'utf8');
  const keyPem = text.slice(0, text.indexOf('-----BEGIN CERTIFICATE-----'));
  return { text, keyPem, leaf: new X509Certificate(text.slice(text.indexOf('-----BEGIN CERTIFICATE-----'))) };
};
const spki = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');

describe('renew options on real servers', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
  });
  after(async () => {
    await sb?.stop();
  });

  it('External Account Binding: refused without it, issued with it; the account is stored and reused', async () => {
    const pebble = await startPebble({ dnsServer: sb.bind.primary, httpPort: sb.httpPort, eab: true });
    try {
      const c = sb.baseConfig({ challenge: 'dns-01' });
      c.stateDir = path.join(sb.dir, 'state-eab');
      c.acme.directory = pebble.directoryUrl;
      c.acme.caBundle = pebble.caBundlePath;
      c.acme.trustAnchors = await sb.anchorsFor(pebble, 'eab');
      const without = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'eab-none.yaml'))]);
      assert.equal(without.code, 1, without.stdout + without.stderr);
      assert.match(without.stdout + without.stderr, /externalAccountRequired|external account/i);

      c.acme.eab = { kid: pebble.eabKid, hmacKeyEnv: 'TEST_EAB_HMAC' };
      const cfg = await sb.writeConfig(c, path.join(sb.dir, 'eab.yaml'));
      const env = { TEST_EAB_HMAC: pebble.eabHmacKey! };
      const r = await sb.cli(['renew', '--force', '--config', cfg], { env });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(!(r.stdout + r.stderr).includes(pebble.eabHmacKey!), 'the HMAC key is never logged');
      const accounts = await readdir(path.join(c.stateDir, 'accounts'));
      assert.equal(accounts.length, 1);
      const acct = JSON.parse(await readFile(path.join(c.stateDir, 'accounts', accounts[0]!, 'account.json'), 'utf8')) as { url: string };
      assert.match(acct.url, /my-account/);
      // A second run reuses the account: no new registration is logged.
      const again = await sb.cli(['renew', '--force', '--config', cfg], { env });
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.doesNotMatch(again.stderr, /ACME account registered/);
    } finally {
      await pebble.stop();
    }
  });

  it('http-01 through a webroot served by a real web server', async () => {
    const webroot = path.join(sb.dir, 'www');
    await mkdir(webroot, { recursive: true });
    const web: ChildProcess = spawn('python3', ['-m', 'http.server', String(sb.httpPort), '--bind', '127.0.0.1', '--directory', webroot], { stdio: 'ignore' });
    try {
      await waitForTcpPort('127.0.0.1', sb.httpPort, 10_000);
      const c = sb.baseConfig({ challenge: 'http-01' });
      c.certificates[0].challenge.http = { webroot };
      // mx2 has never been validated, so Pebble cannot reuse an authorization.
      c.certificates[0].domains = ['mx2.example.test'];
      c.certificates[0].verify.serverName = 'mx2.example.test';
      const before = await readFile(sb.combinedPath(), 'utf8').catch(() => '');
      const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'webroot.yaml'))]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const { text, leaf } = await combinedParts(sb.combinedPath());
      assert.notEqual(text, before);
      assert.ok(leaf.subjectAltName?.includes('DNS:mx2.example.test'));
      assert.deepEqual(await readdir(path.join(webroot, '.well-known', 'acme-challenge')), [], 'challenge files removed');
    } finally {
      if (web.pid) await stopPid(web.pid);
    }
  });

  it('live verification fails when the MTA is not reloaded: previous files restored, exit 1', async () => {
    const good = sb.baseConfig({ challenge: 'dns-01' });
    assert.equal((await sb.cli(['renew', '--force', '--config', await sb.writeConfig(good)])).code, 0);
    const old = await combinedParts(sb.combinedPath());
    await pollUntil(async () => (new X509Certificate(await servedLeafPem(sb.postfix.port)).raw.equals(old.leaf.raw) ? true : undefined), { deadlineMs: 10_000, what: 'old cert served' });

    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.certificates[0].hooks.deploy = []; // nobody reloads Postfix
    c.certificates[0].verify.timeout = '2s';
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'noreload.yaml'))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /verify: .*not serving the new certificate/);
    assert.match(r.stdout, /previous files restored/);
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), old.text);
  });

  it('an unmodified certbot-style deploy hook works (RENEWED_LINEAGE, RENEWED_DOMAINS)', async () => {
    // The kind of hook people have in /etc/letsencrypt/renewal-hooks/deploy/.
    const out = path.join(sb.dir, 'certbot-hook-out');
    const hook = path.join(sb.dir, 'certbot-style-hook');
    await writeFile(
      hook,
      [
        '#!/bin/sh',
        'set -eu',
        `mkdir -p ${out}`,
        'cat "$RENEWED_LINEAGE/fullchain.pem" > ' + `${out}/fullchain.pem`,
        'cat "$RENEWED_LINEAGE/privkey.pem" > ' + `${out}/privkey.pem`,
        'test -s "$RENEWED_LINEAGE/cert.pem" && test -s "$RENEWED_LINEAGE/chain.pem"',
        'echo "$RENEWED_DOMAINS" > ' + `${out}/domains`,
        '',
      ].join('\n'),
      { mode: 0o700 },
    );
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.certificates[0].hooks.deploy.push(hook);
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'certbot.yaml'))]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await readFile(path.join(out, 'fullchain.pem'), 'utf8'), await readFile(path.join(sb.outDir, 'mx1-ecdsa-p256.fullchain.pem'), 'utf8'));
    const { keyPem } = await combinedParts(sb.combinedPath());
    assert.equal(spki(await readFile(path.join(out, 'privkey.pem'), 'utf8')), spki(keyPem));
    assert.equal((await readFile(path.join(out, 'domains'), 'utf8')).trim(), 'mx1.example.test');
  });

  it('reuseKey keeps the private key across renewals; the default makes a new one', async () => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    const cfg = await sb.writeConfig(c);
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const k1 = spki((await combinedParts(sb.combinedPath())).keyPem);
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const k2 = spki((await combinedParts(sb.combinedPath())).keyPem);
    assert.notEqual(k2, k1, 'fresh key by default');

    c.certificates[0].reuseKey = true;
    const reuse = await sb.writeConfig(c, path.join(sb.dir, 'reuse.yaml'));
    assert.equal((await sb.cli(['renew', '--force', '--config', reuse])).code, 0);
    const k3 = spki((await combinedParts(sb.combinedPath())).keyPem);
    assert.equal(k3, k2, 'same key with reuseKey');
  });
});
