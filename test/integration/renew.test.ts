// End to end on real servers: `mxcert renew --force` against real
// Pebble, real BIND 9 (inline-signed, TSIG updates, a secondary fed by zone
// transfer) and a real Postfix serving STARTTLS from the combined file. What
// Postfix serves is read back with openssl, not with mxcert's own probe.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { access, chmod, copyFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { servedLeafPem, startSandbox, POSTFIX_RELOAD_HOOK, type Sandbox } from '../support/sandbox.js';
import { startPebble } from '../env/pebble.js';
import { freePort, pollUntil } from '../env/proc.js';
import { dig } from '../env/bind.js';

function pemBlocks(text: string): Array<{ label: string; pem: string }> {
  return [...text.matchAll(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g)].map((m) => ({ label: m[1]!, pem: m[0] }));
}

function spki(pemOrKey: string): Buffer {
  return createPublicKey(pemOrKey).export({ type: 'spki', format: 'der' });
}

/** Asserts the documented shape (README, "Files on disk") of a combined file and returns its parts. */
async function checkCombined(file: string, issuerRootPem: string) {
  const st = await stat(file);
  assert.equal(st.mode & 0o777, 0o600, `${file} must be 0600`);
  const blocks = pemBlocks(await readFile(file, 'utf8'));
  assert.ok(blocks.length >= 3, 'key, leaf and at least one intermediate');
  assert.match(blocks[0]!.label, /PRIVATE KEY/, 'key first');
  assert.ok(blocks.slice(1).every((b) => b.label === 'CERTIFICATE'), 'then certificates only');
  const leaf = new X509Certificate(blocks[1]!.pem);
  const inter = new X509Certificate(blocks[2]!.pem);
  assert.ok(spki(blocks[0]!.pem).equals(leaf.publicKey.export({ type: 'spki', format: 'der' })), 'key matches leaf');
  assert.ok(leaf.checkIssued(inter) && leaf.verify(inter.publicKey), 'leaf issued by the next certificate');
  assert.ok(inter.verify(new X509Certificate(issuerRootPem).publicKey), 'intermediate verifies against Pebble root');
  assert.ok(leaf.subjectAltName?.includes('DNS:mx1.example.test'));
  return { keyPem: blocks[0]!.pem, leaf, raw: await readFile(file, 'utf8') };
}

async function waitServed(sb: Sandbox, expected: X509Certificate, keyFamily?: 'ecdsa' | 'rsa'): Promise<void> {
  await pollUntil(
    async () => {
      const served = new X509Certificate(await servedLeafPem(sb.postfix.port, { keyFamily }));
      return served.raw.equals(expected.raw) ? true : undefined;
    },
    { deadlineMs: 10_000, what: `Postfix to serve serial ${expected.serialNumber}` },
  );
}

describe('mxcert renew --force on real Pebble + BIND + Postfix', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  before(async () => {
    sb = await startSandbox({ secondary: true, pebble: { validitySeconds: 3600 } });
  });
  after(async () => {
    await sb?.stop();
  });

  it('dns-01 via RFC 2136 + TSIG: issues, writes a 0600 combined file, reloads Postfix, Postfix serves it', async () => {
    const cfg = await sb.writeConfig(sb.baseConfig({ challenge: 'dns-01' }));
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { leaf } = await checkCombined(sb.combinedPath(), await sb.pebble.issuerRootPem());
    // One-hour certificates from certificateValidityPeriod.
    const lifetime = new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime();
    assert.ok(lifetime <= 3700_000, `short lifetime, got ${lifetime} ms`);
    const fullchain = pemBlocks(await readFile(path.join(sb.outDir, 'mx1-ecdsa-p256.fullchain.pem'), 'utf8'));
    assert.equal(new X509Certificate(fullchain[0]!.pem).serialNumber, leaf.serialNumber, 'fullchain starts with the leaf');
    await waitServed(sb, leaf);
    // The challenge TXT records are gone from the zone afterwards: removed at
    // the primary before mxcert exits; the secondary follows by zone transfer.
    for (const server of [sb.bind.primary, sb.bind.secondary!]) {
      await pollUntil(
        async () => ((await dig(server, ['+norec', '+short', 'TXT', '_acme-challenge.mx1.example.test'])).trim() === '' ? true : undefined),
        { deadlineMs: server === sb.bind.primary ? 1000 : 10_000, what: `challenge TXT removed at ${server.host}:${server.port}` },
      );
    }
    const st = await sb.cli(['status', '--json', '--config', cfg]);
    assert.equal(st.code, 0, st.stderr);
    const status = JSON.parse(st.stdout) as { certificates: Array<{ serial: string; lastResult: string }> };
    assert.equal(status.certificates[0]!.serial, leaf.serialNumber.toLowerCase());
    assert.equal(status.certificates[0]!.lastResult, 'success');
  });

  it('http-01 with the built-in listener', async () => {
    const cfg = await sb.writeConfig(sb.baseConfig({ challenge: 'http-01' }));
    const before = await readFile(sb.combinedPath(), 'utf8').catch(() => '');
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const { leaf, raw } = await checkCombined(sb.combinedPath(), await sb.pebble.issuerRootPem());
    assert.notEqual(raw, before, 'a new certificate was written');
    await waitServed(sb, leaf);
  });

  it('dual key types: two combined files, Postfix serves each to a client of that family', async () => {
    const base = sb.baseConfig({ challenge: 'dns-01', keys: ['ecdsa-p256', 'rsa-2048'] });
    const cfg = await sb.writeConfig(base);
    // Postfix loads both chains, as an operator configures dual certificates
    // (an RSA placeholder stands in until mxcert writes the real one).
    await sb.useDualChains();
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const root = await sb.pebble.issuerRootPem();
    const ec = await checkCombined(sb.combinedPath('ecdsa-p256'), root);
    const rsa = await checkCombined(sb.combinedPath('rsa-2048'), root);
    assert.equal(createPublicKey(ec.keyPem).asymmetricKeyType, 'ec');
    assert.equal(createPublicKey(rsa.keyPem).asymmetricKeyType, 'rsa');
    assert.notEqual(ec.leaf.serialNumber, rsa.leaf.serialNumber);
    await waitServed(sb, ec.leaf, 'ecdsa');
    await waitServed(sb, rsa.leaf, 'rsa');
  });

  it('a deploy hook that exits 1: previous files restored, Postfix keeps the old certificate, exit 1', async () => {
    const good = await sb.writeConfig(sb.baseConfig({ challenge: 'dns-01' }));
    assert.equal((await sb.cli(['renew', '--force', '--config', good])).code, 0);
    const old = await checkCombined(sb.combinedPath(), await sb.pebble.issuerRootPem());
    await waitServed(sb, old.leaf);

    const failing = path.join(sb.dir, 'failing-hook');
    await writeFile(failing, '#!/bin/sh\necho "refusing on purpose" >&2\nexit 1\n', { mode: 0o700 });
    const cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    cfgObj.certificates[0].hooks.deploy = [[POSTFIX_RELOAD_HOOK, sb.postfix.configDir], failing];
    const bad = await sb.writeConfig(cfgObj, path.join(sb.dir, 'bad-hook.yaml'));
    const r = await sb.cli(['renew', '--force', '--config', bad]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /refusing on purpose|exited with code 1/);
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), old.raw, 'combined file restored byte for byte');
    assert.equal((await stat(sb.combinedPath())).mode & 0o777, 0o600);
    await waitServed(sb, old.leaf);
    const st = JSON.parse((await sb.cli(['status', '--json', '--config', bad])).stdout) as { certificates: Array<{ lastResult: string; lastError: string; serial: string }> };
    assert.equal(st.certificates[0]!.lastResult, 'failure');
    assert.equal(st.certificates[0]!.serial, old.leaf.serialNumber.toLowerCase(), 'state still names the old certificate');
  });

  it('Pebble rejecting 30% of nonces: issuance still succeeds (badNonce retried)', async () => {
    const pebble = await startPebble({ dnsServer: sb.bind.primary, httpPort: sb.httpPort, nonceReject: 30 });
    try {
      const cfgObj = sb.baseConfig({ challenge: 'dns-01' });
      cfgObj.acme.directory = pebble.directoryUrl;
      cfgObj.acme.caBundle = pebble.caBundlePath;
      cfgObj.acme.trustAnchors = await sb.anchorsFor(pebble, 'nonce');
      cfgObj.stateDir = path.join(sb.dir, 'state-nonce');
      const cfg = await sb.writeConfig(cfgObj, path.join(sb.dir, 'nonce.yaml'));
      for (let i = 0; i < 3; i++) {
        const r = await sb.cli(['renew', '--force', '--config', cfg]);
        assert.equal(r.code, 0, `attempt ${i}: ${r.stdout}${r.stderr}`);
        await checkCombined(sb.combinedPath(), await pebble.issuerRootPem());
      }
    } finally {
      await pebble.stop();
    }
  });

  it('a failed challenge: the ACME problem type reaches the user, nothing is deployed, failure hook runs', async () => {
    const before = await readFile(sb.combinedPath(), 'utf8');
    const cfgObj = sb.baseConfig({ challenge: 'http-01' });
    // Listen where Pebble does not connect: its VA gets "connection refused".
    // mx2 is never validated successfully, so Pebble (which reuses valid
    // authorizations half the time) cannot skip the challenge.
    cfgObj.certificates[0].domains = ['mx2.example.test'];
    cfgObj.certificates[0].challenge.http.listen = `127.0.0.1:${await freePort()}`;
    const marker = path.join(sb.dir, 'failure-hook.out');
    const hook = path.join(sb.dir, 'failure-hook');
    await writeFile(hook, `#!/bin/sh\nprintf '%s|%s|%s' "$MXCERT_EVENT" "$MXCERT_CERT_NAME" "$MXCERT_ERROR" > ${marker}\n`, { mode: 0o700 });
    cfgObj.certificates[0].hooks.failure = [hook];
    const cfg = await sb.writeConfig(cfgObj, path.join(sb.dir, 'bad-challenge.yaml'));
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /\[connection\]/, 'problem type urn:ietf:params:acme:error:connection named');
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), before, 'nothing deployed');
    const hookSaw = await readFile(marker, 'utf8');
    assert.match(hookSaw, /^failure\|mx1\|obtain: .*\[connection\]/);
  });

  it('a chain that does not lead to a trust anchor is refused: kept for inspection, never deployed', async () => {
    const before = await readFile(sb.combinedPath(), 'utf8');
    const cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    delete cfgObj.acme.trustAnchors; // system roots only: Pebble's root is not among them
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(cfgObj, path.join(sb.dir, 'no-anchor.yaml'))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /validate: signature: the chain does not lead to a trusted root/);
    assert.doesNotMatch(r.stdout, /caused by: signature/, 'the reason is said once');
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), before, 'nothing deployed');
    const failedDir = path.join(sb.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'failed');
    const kept = await readdir(failedDir);
    assert.ok(kept.length >= 1);
    const newest = kept.sort().at(-1)!;
    assert.match(await readFile(path.join(failedDir, newest, 'error.txt'), 'utf8'), /trusted root/);
    assert.match(await readFile(path.join(failedDir, newest, 'chain.pem'), 'utf8'), /BEGIN CERTIFICATE/);
  });

  it('a second renew while the lock is held exits 3 naming the holder', async () => {
    const cfg = await sb.writeConfig(sb.baseConfig({ challenge: 'dns-01' }));
    const lock = path.join(sb.stateDir, 'lock');
    // Held by this (live) test process.
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command: 'run' }), { mode: 0o600 });
    try {
      const before = await readFile(sb.combinedPath(), 'utf8');
      const r = await sb.cli(['renew', '--force', '--config', cfg]);
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`pid ${process.pid}`));
      assert.equal(await readFile(sb.combinedPath(), 'utf8'), before, 'nothing deployed');
    } finally {
      await rm(lock, { force: true });
    }
  });

  it('bad config: exit 2 with the YAML path, nothing written', async () => {
    const fresh = path.join(sb.dir, 'state-never');
    const cases: Array<[string, (c: Record<string, any>) => void | Promise<void>, RegExp]> = [
      ['unknown key', (c) => { c.certificates[0].outptu = {}; }, /certificates\[0\]\.outptu/],
      ['missing field', (c) => { delete c.acme.directory; }, /acme\.directory/],
      ['wrong type', (c) => { c.certificates[0].challenge.dns.port = 'fifty-three'; }, /certificates\[0\]\.challenge\.dns\.port/],
      [
        'loose secret-file mode',
        async (c) => {
          const loose = path.join(sb.dir, 'loose.key');
          await copyFile(sb.bind.tsig.secretFile, loose);
          await chmod(loose, 0o644);
          c.certificates[0].challenge.dns.tsig.secretFile = loose;
        },
        /certificates\[0\]\.challenge\.dns\.tsig\.secretFile: file is readable by others \(mode 0644\); use 0600/,
      ],
    ];
    for (const [what, mutate, expected] of cases) {
      const c = sb.baseConfig({ challenge: 'dns-01' });
      c.stateDir = fresh;
      await mutate(c);
      const cfg = await sb.writeConfig(c, path.join(sb.dir, 'broken.yaml'));
      for (const args of [['renew', '--force'], ['config', 'check']]) {
        const r = await sb.cli([...args, '--config', cfg]);
        assert.equal(r.code, 2, `${what} (${args.join(' ')}): ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, expected, what);
      }
      await assert.rejects(access(fresh), 'stateDir was not created');
    }
  });
});
