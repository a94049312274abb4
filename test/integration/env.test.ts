// Checks that the real-server test environment (test/env) behaves as the
// other integration tests assume: Pebble answers ACME, BIND serves a signed
// zone from primary and secondary and accepts TSIG updates that propagate,
// Postfix offers STARTTLS with the combined file, and stop() leaves no process.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startPebble, httpsGet, type PebbleEnv } from '../env/pebble.js';
import { startBind, querySoa, dig, type BindEnv } from '../env/bind.js';
import { startPostfix, type PostfixEnv } from '../env/postfix.js';
import { pidAlive, pollUntil, run } from '../env/proc.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  // Runs even when an assertion failed, so no server outlives the file.
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return text.match(re) ?? [];
}

test('pebble serves an ACME directory and its issuer root', async () => {
  const pebble: PebbleEnv = await startPebble({ eab: true, validitySeconds: 3600 });
  cleanups.push(() => pebble.stop());
  const ca = await readFile(pebble.caBundlePath, 'utf8');
  const res = await httpsGet(pebble.directoryUrl, ca);
  assert.equal(res.status, 200);
  const directory = JSON.parse(res.body) as Record<string, unknown>;
  assert.equal(typeof directory.newOrder, 'string');
  assert.equal(typeof directory.newNonce, 'string');
  assert.equal((directory.meta as { externalAccountRequired?: boolean }).externalAccountRequired, true);
  assert.ok(pebble.eabKid && pebble.eabHmacKey);
  assert.equal(pemBlocks(await pebble.issuerRootPem(), 'CERTIFICATE').length, 1);
  assert.ok(pemBlocks(await pebble.issuerIntermediatePem(), 'CERTIFICATE').length >= 1);

  await pebble.stop();
  assert.equal(pidAlive(pebble.pid), false);
});

test('bind primary and secondary serve the signed zone; TSIG updates propagate', async () => {
  const bind: BindEnv = await startBind({ secondary: true });
  cleanups.push(() => bind.stop());
  assert.ok(bind.secondary);

  for (const server of [bind.primary, bind.secondary]) {
    const soa = await querySoa(server, bind.zone);
    assert.equal(soa.status, 'NOERROR');
    assert.equal(soa.authoritative, true, `aa from port ${server.port}`);
    assert.equal(soa.signed, true, `RRSIG SOA from port ${server.port}`);
  }
  const a = await dig(bind.primary, ['+short', `mx1.${bind.zone}`, 'A']);
  assert.equal(a.trim(), '127.0.0.1');

  const secretFile = await readFile(bind.tsig.secretFile, 'utf8');
  assert.equal(secretFile, bind.tsig.secret);

  const owner = `_acme-challenge.mx1.${bind.zone}.`;
  const token = `token-${Date.now()}`;
  const update = (rr: string) =>
    run('nsupdate', ['-k', bind.tsig.keyFile], {
      input: `server ${bind.primary.host} ${bind.primary.port}\nzone ${bind.zone}\nupdate add ${rr}\nsend\n`,
      allowFailure: true,
    });
  const ok = await update(`${owner} 5 TXT "${token}"`);
  assert.equal(ok.code, 0, ok.stderr);

  // The update is acknowledged before the signed zone serves it: poll.
  for (const server of [bind.primary, bind.secondary]) {
    await pollUntil(
      async () => ((await dig(server, ['+short', owner, 'TXT'])).includes(token) ? true : undefined),
      { deadlineMs: 10_000, what: `TXT ${owner} on port ${server.port}` },
    );
  }

  // The policy allows only TXT and TLSA.
  const refused = await update(`other.${bind.zone}. 5 A 192.0.2.1`);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /REFUSED/);

  assert.match(await bind.rndc(['status']), /server is up and running/);

  // A stopped secondary misses updates; restarted, it catches up.
  await bind.stopSecondary!();
  const late = `late-${Date.now()}`;
  assert.equal((await update(`${owner} 5 TXT "${late}"`)).code, 0);
  await bind.startSecondary!();
  assert.ok((await dig(bind.secondary, ['+short', owner, 'TXT'])).includes(late));

  const namedPids = await Promise.all(['primary', 'secondary'].map(async (w) => {
    const pidFile = path.join(bind.dir, w, 'named.pid');
    return Number((await readFile(pidFile, 'utf8')).trim());
  }));
  await bind.stop();
  for (const pid of namedPids) assert.equal(pidAlive(pid), false, `named ${pid} gone`);
});

test('postfix offers STARTTLS with the placeholder certificate from the combined file', async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'mxcert-envtest-'));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  const combinedPath = path.join(work, 'combined.pem');
  const postfix: PostfixEnv = await startPostfix({ combinedPath, hostname: 'mx1.example.test' });
  cleanups.push(() => postfix.stop());

  const combined = await readFile(combinedPath, 'utf8');
  assert.ok(combined.indexOf('PRIVATE KEY') < combined.indexOf('BEGIN CERTIFICATE'), 'key before cert');
  const expected = pemBlocks(combined, 'CERTIFICATE')[0];
  assert.ok(expected);

  const probe = await run(
    'openssl',
    ['s_client', '-starttls', 'smtp', '-connect', `${postfix.host}:${postfix.port}`, '-servername', 'mx1.example.test'],
    { allowFailure: true, timeoutMs: 10_000 },
  );
  const served = pemBlocks(probe.stdout, 'CERTIFICATE')[0];
  assert.equal(served, expected, `served certificate\n${probe.stdout}${probe.stderr}`);

  await postfix.reload();

  const masterPid = Number((await readFile(path.join(path.dirname(postfix.configDir), 'queue', 'pid', 'master.pid'), 'utf8')).trim());
  assert.equal(pidAlive(masterPid), true);
  await postfix.stop();
  assert.equal(pidAlive(masterPid), false);
});
