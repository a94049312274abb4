// hooks/dovecot-reload against a real Dovecot (Debian's dovecot-core and
// dovecot-imapd): a private instance in a temp dir serves IMAP STARTTLS from
// the key and fullchain files mxcert writes; `mxcert renew --force` on the
// sandbox (real Pebble, BIND) deploys a new certificate and runs the shipped
// hook, and openssl then reads the new certificate from Dovecot. The packaged
// instance in /etc/dovecot is never touched; the test's Dovecot is stopped by
// its PID.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO, startSandbox, type Sandbox } from '../support/sandbox.js';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, run, stopPid, trackPid, waitForTcpPort } from '../env/proc.js';

const DOVECOT_RELOAD_HOOK = path.join(REPO, 'hooks', 'dovecot-reload');

/** The leaf Dovecot serves after IMAP STARTTLS, read with openssl. */
async function imapLeaf(port: number): Promise<X509Certificate> {
  const r = await run('openssl', ['s_client', '-starttls', 'imap', '-connect', `127.0.0.1:${port}`, '-servername', 'mx1.example.test'], {
    allowFailure: true,
    input: 'a LOGOUT\r\n',
    timeoutMs: 15_000,
  });
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout);
  if (!m) throw new Error(`openssl s_client -starttls imap got no certificate from 127.0.0.1:${port}:\n${r.stdout}\n${r.stderr}`);
  return new X509Certificate(m[0]);
}

describe('hooks/dovecot-reload with a real Dovecot', { timeout: 300_000 }, () => {
  let sb: Sandbox;
  let dir: string;
  let conf: string;
  let port: number;
  let pid: number | undefined;

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-dovecot-'));
    registerTempDir(dir);
    // Dovecot's unprivileged login processes must reach the sockets in base_dir.
    await chmod(dir, 0o755);
    const priv = path.join(dir, 'private');
    await mkdir(priv, { mode: 0o700 });
    for (const d of ['run', 'state', 'home']) await mkdir(path.join(dir, d));

    // Placeholder files, as on a host where Dovecot ran before mxcert: the
    // same paths mxcert will replace.
    const key = path.join(priv, 'mx1.key');
    const fullchain = path.join(priv, 'mx1.fullchain.pem');
    await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', key, '-out', fullchain,
      '-days', '2', '-subj', '/CN=mx1.example.test', '-addext', 'subjectAltName=DNS:mx1.example.test']);
    await chmod(key, 0o600);

    port = await freePort();
    conf = path.join(dir, 'dovecot.conf');
    await writeFile(
      conf,
      [
        `base_dir = ${dir}/run`,
        `state_dir = ${dir}/state`,
        `log_path = ${dir}/dovecot.log`,
        'protocols = imap',
        'listen = 127.0.0.1',
        'ssl = required',
        `ssl_cert = <${fullchain}`,
        `ssl_key = <${key}`,
        'ssl_dh = </usr/share/dovecot/dh.pem',
        'passdb {',
        '  driver = static',
        '  args = password=unused',
        '}',
        'userdb {',
        '  driver = static',
        `  args = uid=nobody gid=nogroup home=${dir}/home`,
        '}',
        'mail_location = maildir:~/Maildir',
        'service imap-login {',
        '  inet_listener imap {',
        '    address = 127.0.0.1',
        `    port = ${port}`,
        '  }',
        '  inet_listener imaps {',
        '    port = 0',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    await run('/usr/sbin/dovecot', ['-c', conf]);
    const pidFile = path.join(dir, 'run', 'master.pid');
    pid = await pollUntil(async () => Number((await readFile(pidFile, 'utf8')).trim()) || undefined, {
      deadlineMs: 10_000,
      what: 'Dovecot master.pid',
      detail: () => logTail(path.join(dir, 'dovecot.log')),
    });
    trackPid(pid, 'dovecot');
    await waitForTcpPort('127.0.0.1', port, 10_000);
  });

  after(async () => {
    if (pid) await stopPid(pid);
    if (dir) await removeTempDir(dir);
    await sb?.stop();
  });

  it('mxcert renew writes key + fullchain, runs dovecot-reload, and Dovecot serves the new certificate over STARTTLS', async () => {
    const before = await imapLeaf(port);
    assert.equal(before.issuer, before.subject, 'the placeholder (self-signed) is served first');

    const c = sb.baseConfig({ challenge: 'dns-01' });
    const cert = c.certificates[0];
    // Separate key and fullchain, as config/postfix-dovecot.example.yaml has them for Dovecot.
    cert.output = { key: path.join(dir, 'private', 'mx1.key'), fullchain: path.join(dir, 'private', 'mx1.fullchain.pem'), mode: '0600' };
    // The hook as shipped; DOVECOT_CONFIG points it at this instance, like a
    // host with a non-default dovecot.conf would.
    cert.hooks = { deploy: [['/usr/bin/env', `DOVECOT_CONFIG=${conf}`, DOVECOT_RELOAD_HOOK]] };
    cert.verify = {};
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'dovecot.yaml'))]);
    assert.equal(r.code, 0, r.stdout + r.stderr);

    const deployed = new X509Certificate(await readFile(path.join(dir, 'private', 'mx1.fullchain.pem'), 'utf8'));
    assert.notEqual(deployed.issuer, deployed.subject, 'a CA-issued certificate was deployed');
    // `doveadm reload` returns before the new login processes are up; new
    // connections get the new certificate shortly after.
    const served = await pollUntil(async () => {
      const leaf = await imapLeaf(port);
      return leaf.raw.equals(deployed.raw) ? leaf : undefined;
    }, { deadlineMs: 15_000, intervalMs: 200, what: 'Dovecot to serve the deployed certificate', detail: () => logTail(path.join(dir, 'dovecot.log')) });
    assert.equal(served.serialNumber, deployed.serialNumber);
    assert.ok(served.checkHost('mx1.example.test'), 'the served leaf covers the IMAP host name');
    assert.doesNotThrow(() => process.kill(pid!, 0), 'the same Dovecot master still runs (reloaded, not restarted)');
    assert.match(await readFile(path.join(dir, 'dovecot.log'), 'utf8'), /SIGHUP received - reloading configuration/, 'Dovecot logged the reload');
  });
});
