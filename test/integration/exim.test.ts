// hooks/exim-reload against a real Exim 4 (Debian's exim4-daemon-light,
// unpacked beside Postfix, see test/env/exim.ts): a private daemon serves
// STARTTLS from the key and fullchain files mxcert writes, in the layout
// config/exim.example.yaml recommends (key 0640 root:Debian-exim, fullchain
// 0644). `mxcert renew --force` on the sandbox (real Pebble, BIND) deploys a
// new certificate and runs the shipped hook; openssl then reads the new
// certificate from Exim. The daemon is stopped by its PID.
//
// Exim 4.94+ on Linux also reloads preloaded TLS files by itself, about 5 s
// after their directory changes, so "Exim serves the new certificate" alone
// would pass with a hook that does nothing: the tests also check that the
// daemon logged the SIGHUP and re-executed itself.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO, servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { eximBinary, startExim, type EximEnv } from '../env/exim.js';
import { logTail, pidAlive, pollUntil, registerTempDir, removeTempDir, run } from '../env/proc.js';

const EXIM_RELOAD_HOOK = path.join(REPO, 'hooks', 'exim-reload');

const count = (text: string, needle: string) => text.split(needle).length - 1;

describe('hooks/exim-reload with a real Exim', { timeout: 300_000 }, () => {
  let sb: Sandbox;
  let exim: EximEnv;
  let dir: string;
  let key: string;
  let fullchain: string;
  let eximGid: number;

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-exim-tls-'));
    registerTempDir(dir);
    // Like /etc/exim4: traversable by Debian-exim, which reads the files.
    await chmod(dir, 0o755);
    const tls = path.join(dir, 'tls');
    await mkdir(tls, { mode: 0o755 });
    key = path.join(tls, 'mx1.key');
    fullchain = path.join(tls, 'mx1.fullchain.pem');
    // A self-signed placeholder at the paths mxcert will replace, as on a host
    // where Exim ran before mxcert.
    await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', key, '-out', fullchain,
      '-days', '2', '-subj', '/CN=mx1.example.test', '-addext', 'subjectAltName=DNS:mx1.example.test']);
    // eximBinary() creates Debian-exim if it is missing; the daemon loads the
    // key as that user, so the placeholder needs the same owner and mode.
    await eximBinary();
    eximGid = Number((await run('getent', ['group', 'Debian-exim'])).stdout.split(':')[2]);
    await chown(key, 0, eximGid);
    await chmod(key, 0o640);
    exim = await startExim({ certificate: fullchain, privateKey: key });
  });

  after(async () => {
    await exim?.stop();
    if (dir) await removeTempDir(dir);
    await sb?.stop();
  });

  /** mx1 with config/exim.example.yaml's output and hook, aimed at this Exim. */
  function eximConfig(eximConfigFile: string): SandboxConfig {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    const cert = c.certificates[0];
    cert.output = { key, fullchain, mode: '0640', publicMode: '0644', owner: 'root', group: 'Debian-exim' };
    // The hook as shipped. EXIM, EXIM_CONFIG and EXIM_PID_FILE point it at this
    // instance, like a host with a non-default exim binary, config and pid file.
    cert.hooks = {
      deploy: [['/usr/bin/env', `EXIM=${exim.binary}`, `EXIM_CONFIG=${eximConfigFile}`, `EXIM_PID_FILE=${exim.pidFile}`, EXIM_RELOAD_HOOK]],
    };
    cert.verify = { smtp: [`127.0.0.1:${exim.port}`], serverName: 'mx1.example.test', timeout: '15s' };
    return c;
  }

  async function servedLeaf(): Promise<X509Certificate> {
    return new X509Certificate(await servedLeafPem(exim.port));
  }

  it('mxcert renew writes key + fullchain, runs exim-reload, and Exim serves the new certificate over STARTTLS', async () => {
    const placeholder = await servedLeaf();
    assert.equal(placeholder.issuer, placeholder.subject, 'the placeholder (self-signed) is served first');
    const logBefore = await exim.mainLog();

    const cfg = await sb.writeConfig(eximConfig(exim.configPath), path.join(sb.dir, 'exim.yaml'));
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);

    const st = JSON.parse((await sb.cli(['status', '--json', '--config', cfg])).stdout) as { certificates: Array<{ serial: string }> };
    const recorded = st.certificates[0]!.serial;
    const deployed = new X509Certificate(await readFile(fullchain, 'utf8'));
    assert.equal(deployed.serialNumber.toLowerCase(), recorded, 'the fullchain holds the certificate mxcert recorded');
    assert.notEqual(deployed.issuer, deployed.subject, 'a CA-issued certificate was deployed');

    // The layout README recommends for Exim: Exim (as Debian-exim) reads the key through its group.
    const keyStat = await stat(key);
    assert.equal(keyStat.mode & 0o777, 0o640);
    assert.equal(keyStat.uid, 0);
    assert.equal(keyStat.gid, eximGid);
    assert.equal((await stat(fullchain)).mode & 0o777, 0o644);

    const served = await pollUntil(async () => {
      const leaf = await servedLeaf();
      return leaf.raw.equals(deployed.raw) ? leaf : undefined;
    }, { deadlineMs: 15_000, intervalMs: 200, what: 'Exim to serve the deployed certificate', detail: () => logTail(exim.mainLogPath) });
    assert.equal(served.serialNumber.toLowerCase(), recorded, 'Exim serves the serial mxcert recorded');
    assert.notEqual(served.serialNumber, placeholder.serialNumber);
    assert.ok(served.checkHost('mx1.example.test'), 'the served leaf covers the SMTP host name');

    // The hook made the daemon re-execute itself (SIGHUP), in place.
    const log = (await exim.mainLog()).slice(logBefore.length);
    assert.match(log, new RegExp(`pid ${exim.pid}: SIGHUP received: re-exec daemon`), `Exim logged the SIGHUP:\n${log}`);
    assert.match(log, new RegExp(`daemon started: pid=${exim.pid},`), 'the re-executed daemon started again');
    assert.ok(pidAlive(exim.pid), 'the same Exim daemon still runs (reloaded, not restarted)');
  });

  it('a configuration exim -bV rejects: the hook does not SIGHUP (the re-executed daemon would die), mxcert restores the files', async () => {
    const good = await servedLeaf();
    const keyBefore = await readFile(key, 'utf8');
    const chainBefore = await readFile(fullchain, 'utf8');
    // The daemon's own config broken, as an operator might leave it: a SIGHUP
    // now would make Exim re-read it and exit.
    const goodConf = await readFile(exim.configPath, 'utf8');
    await writeFile(exim.configPath, 'tls_advertise_hostz = *\n' + goodConf);
    try {
      const hupsBefore = count(await exim.mainLog(), 'SIGHUP received');
      const cfg = await sb.writeConfig(eximConfig(exim.configPath), path.join(sb.dir, 'exim-broken.yaml'));
      const r = await sb.cli(['renew', '--force', '--config', cfg]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /'exim -bV' failed/);

      assert.equal(await readFile(key, 'utf8'), keyBefore, 'key restored');
      assert.equal(await readFile(fullchain, 'utf8'), chainBefore, 'fullchain restored');
      assert.equal(count(await exim.mainLog(), 'SIGHUP received'), hupsBefore, 'no SIGHUP was sent');
      assert.ok(pidAlive(exim.pid), 'Exim still runs');
      assert.ok((await servedLeaf()).raw.equals(good.raw), 'Exim still serves the previous certificate');
    } finally {
      await writeFile(exim.configPath, goodConf);
    }
  });
});
