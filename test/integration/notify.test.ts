// Failure notification end to end: a renewal that fails because the
// CA is down runs `hooks.failure`, and the shipped hooks/notify-mail hands the
// message to the sandbox's real Postfix (sendmail -C DIR), which delivers it
// into a local mailbox. And the daemon's warning: a certificate that reaches
// the last fifth of its lifetime without a renewal is reported once more,
// with MXCERT_EVENT=warning.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { openSync } from 'node:fs';
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, REPO, startSandbox, type Sandbox } from '../support/sandbox.js';
import { enableLocalMailbox, type LocalMailbox } from '../support/mailbox.js';
import { logTail, pollUntil, run } from '../env/proc.js';

const NOTIFY_MAIL = path.join(REPO, 'hooks', 'notify-mail');

describe('failure notification through notify-mail and a real Postfix', { timeout: 180_000 }, () => {
  let sb: Sandbox;
  let mailbox: LocalMailbox;
  before(async () => {
    sb = await startSandbox();
    mailbox = await enableLocalMailbox(sb.postfix);
  });
  after(async () => {
    await sb?.stop();
  });

  it('a renewal failing at the CA runs the failure hook, and the mail is delivered to root@localhost', async () => {
    const cfg = sb.baseConfig();
    // Pebble's CA bundle lives in its temp dir, which goes away with it.
    const caBundle = path.join(sb.dir, 'pebble-ca.pem');
    await copyFile(cfg.acme.caBundle, caBundle);
    cfg.acme.caBundle = caBundle;
    // POSTFIX_CONFIG_DIR makes notify-mail call `sendmail -C DIR` for the private instance.
    cfg.certificates[0].hooks.failure = [['/usr/bin/env', `POSTFIX_CONFIG_DIR=${sb.postfix.configDir}`, NOTIFY_MAIL, 'root@localhost']];
    const file = await sb.writeConfig(cfg);

    await sb.pebble.stop();
    const renew = await sb.cli(['renew', '--config', file]);
    assert.equal(renew.code, 1, renew.stdout + renew.stderr);
    const status = JSON.parse((await sb.cli(['status', '--json', '--config', file])).stdout) as {
      certificates: Array<{ lastResult: string; lastError: string }>;
    };
    const error = status.certificates[0]!.lastError;
    assert.equal(status.certificates[0]!.lastResult, 'failure');
    assert.match(error, /^obtain: /);

    const box = await mailbox.waitFor(/^Subject: mxcert failure: mx1 \(ecdsa-p256\)/m);
    // Delivered by Postfix's local(8), not just written by the hook.
    assert.match(box, /^From root@mx1\.example\.test /m);
    assert.match(box, /^Delivered-To: root@localhost$/m);
    assert.match(box, /^To: root@localhost$/m);
    assert.match(box, /^Auto-Submitted: auto-generated$/m);
    assert.match(box, /^Names: mx1\.example\.test$/m);
    assert.ok(box.includes(error), `the mailbox has the error text ${JSON.stringify(error)}:\n${box}`);
    assert.match(renew.stderr, /failure hook|renewal failed/);
  });

  it('a pass that fails as a whole (before any certificate: the profile check cannot reach the CA) mails too', async () => {
    const cfg = sb.baseConfig();
    const caBundle = path.join(sb.dir, 'pebble-ca.pem');
    cfg.acme.caBundle = caBundle;
    // With a profile configured, the CA's profiles are checked once before any order.
    cfg.acme.profile = 'shortlived';
    cfg.certificates[0].hooks.failure = [['/usr/bin/env', `POSTFIX_CONFIG_DIR=${sb.postfix.configDir}`, NOTIFY_MAIL, 'root@localhost']];
    const file = await sb.writeConfig(cfg, path.join(sb.dir, 'profile.yaml'));
    // Pebble is still stopped from the previous test.
    const renew = await sb.cli(['renew', '--config', file]);
    assert.notEqual(renew.code, 0, renew.stdout + renew.stderr);
    const box = await mailbox.waitFor(/^renewal pass failed: .+$/m);
    assert.match(box, /^Names: mx1\.example\.test$/m);
  });
});

describe('expiry warning from the daemon (last fifth of the lifetime, no renewal)', { timeout: 300_000 }, () => {
  let sb: Sandbox;
  let mailbox: LocalMailbox;
  let daemon: ChildProcess | undefined;
  before(async () => {
    // 20-second certificates: renewal is due at ~10 s, the warning at 16 s.
    sb = await startSandbox({ pebble: { validitySeconds: 20 } });
    mailbox = await enableLocalMailbox(sb.postfix);
  });
  after(async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    await sb?.stop();
  });

  it('mails one failure per failed attempt and one warning per certificate version', async () => {
    const cfg = sb.baseConfig();
    const caBundle = path.join(sb.dir, 'pebble-ca.pem');
    await copyFile(cfg.acme.caBundle, caBundle);
    cfg.acme.caBundle = caBundle;
    cfg.schedule = '0 0 1 1 *';
    cfg.certificates[0].hooks.failure = [['/usr/bin/env', `POSTFIX_CONFIG_DIR=${sb.postfix.configDir}`, NOTIFY_MAIL, 'root@localhost']];
    const file = await sb.writeConfig(cfg);

    const renew = await sb.cli(['renew', '--config', file]);
    assert.equal(renew.code, 0, renew.stdout + renew.stderr);
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(await readFile(sb.combinedPath(), 'utf8'))![0];
    const leaf = new X509Certificate(pem);
    const notBefore = Date.parse(leaf.validFrom);
    const notAfter = Date.parse(leaf.validTo);
    const warnAt = notAfter - (notAfter - notBefore) / 5;
    await sb.pebble.stop();

    const log = path.join(sb.dir, 'daemon.log');
    const fd = openSync(log, 'a');
    daemon = spawn(process.execPath, [CLI, 'run', '--config', file], { stdio: ['ignore', fd, fd], env: { ...process.env, MXCERT_LOG_LEVEL: 'debug' } });
    const logText = () => readFile(log, 'utf8').catch(() => '');

    // The daemon's timer tries at the due instant and fails: a failure mail.
    await mailbox.waitFor(/^Subject: mxcert failure: mx1 \(ecdsa-p256\)/m, { deadlineMs: 60_000 });

    // Past the last-fifth instant, a pass (SIGHUP forces one) warns.
    await pollUntil(() => (Date.now() >= warnAt ? true : undefined), { deadlineMs: 30_000, what: 'the last fifth of the lifetime' });
    daemon.kill('SIGHUP');
    const box = await mailbox.waitFor(/^Subject: mxcert warning: mx1 \(ecdsa-p256\)/m, { deadlineMs: 30_000 });
    assert.match(box, /in the last fifth of its lifetime/);
    assert.match(box, /last error: obtain: /);
    assert.match(await logText(), /"level":40[^\n]*in the last fifth of its lifetime/);

    // Once per version: another pass sends no second warning.
    const before = (await logText()).split('\n').length;
    daemon.kill('SIGHUP');
    await pollUntil(
      async () => ((await logText()).split('\n').slice(before - 1).some((l) => /"why":"reload"/.test(l) && /pass finished/.test(l)) ? true : undefined),
      { deadlineMs: 30_000, what: 'a second pass after SIGHUP', detail: () => logTail(log, 20) },
    );
    const warnings = ((await mailbox.read()).match(/^Subject: mxcert warning:/gm) ?? []).length;
    assert.equal(warnings, 1, 'one warning per certificate version');

    // The backoff ends a minute after the first failure (schedule/renewal-time.ts:
    // attempts are never closer than a minute): a second failed attempt.
    const failedAttempts = async () => ((await logText()).match(/"msg":"renewal failed"/g) ?? []).length;
    await pollUntil(async () => ((await failedAttempts()) >= 2 ? true : undefined), {
      deadlineMs: 120_000,
      what: "the daemon's second attempt at the end of its backoff",
      detail: () => logTail(log, 20),
    });

    daemon.kill('SIGTERM');
    const code = await new Promise((r) => (daemon!.exitCode !== null ? r(daemon!.exitCode) : daemon!.once('exit', r)));
    assert.equal(code, 0);

    // Every message handed to Postfix is delivered once its queue is empty; then count.
    await pollUntil(
      async () => (/Mail queue is empty/.test((await run('postqueue', ['-c', sb.postfix.configDir, '-p'], { allowFailure: true })).stdout) ? true : undefined),
      { deadlineMs: 30_000, what: 'the sandbox Postfix to deliver everything queued' },
    );
    const attempts = await failedAttempts();
    const all = await mailbox.read();
    const failures = (all.match(/^Subject: mxcert failure: mx1 \(ecdsa-p256\)/gm) ?? []).length;
    assert.ok(attempts >= 2, `${attempts} failed attempts`);
    assert.equal(failures, attempts, `one failure mail per failed attempt (${attempts} attempts in the log, ${failures} mails)`);
    assert.equal((all.match(/^Subject: mxcert warning:/gm) ?? []).length, 1, 'still one warning for this version');
  });
});
