// `mxcert import-certbot` on real certbot state: certbot 2.x (Debian package)
// issues from Pebble a dns-rfc2136 lineage (TSIG updates to the test BIND,
// credentials INI, deploy hook, RSA 3072), a webroot lineage (http-01 served by
// a real web server, ECDSA P-384, deploy hook with an argument) and a manual
// one, with a hook in renewal-hooks/deploy; Postfix serves the dns lineage's
// live files. The import's YAML, completed only where it says so, passes
// `mxcert config check`, and `mxcert renew --force` renews both lineages the
// way certbot did: the dns one through the imported TSIG settings with
// certbot's credentials INI as secretFile, the webroot one through the
// webroot; the hooks run, and Postfix, moved to the files the import names,
// serves the new certificate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, parseDocument } from 'yaml';
import { servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { pollUntil, run, stopPid, waitForTcpPort } from '../env/proc.js';

const POSTFIX = '/usr/sbin/postfix';

interface Issued {
  conf: string;
  live: string;
}

describe('import-certbot on real certbot state', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  let web: ChildProcess | undefined;
  let webLog = '';
  let le: string;
  let webroot: string;
  let credentials: string;
  let hookLog: string;
  let dnsHook: string;
  let webHook: string;
  let dirHook: string;
  let outDir: string;
  const certbotCerts: Record<string, X509Certificate> = {};

  /** `certbot certonly` as an admin runs it, every directory under the sandbox. */
  async function certbot(name: string, domain: string, args: string[]): Promise<Issued> {
    const r = await run(
      'certbot',
      ['certonly', '--non-interactive', '--agree-tos', '--register-unsafely-without-email', '--server', sb.pebble.directoryUrl,
        '--config-dir', le, '--work-dir', path.join(sb.dir, 'certbot-work'), '--logs-dir', path.join(sb.dir, 'certbot-logs'),
        '--cert-name', name, '-d', domain, ...args],
      // certbot trusts Pebble's HTTPS certificate through requests' bundle variable.
      { env: { ...process.env, REQUESTS_CA_BUNDLE: sb.pebble.caBundlePath }, allowFailure: true, timeoutMs: 180_000 },
    );
    assert.equal(r.code, 0, `certbot ${name}:\n${r.stdout}\n${r.stderr}`);
    const live = path.join(le, 'live', name);
    certbotCerts[name] = new X509Certificate(await readFile(path.join(live, 'cert.pem')));
    return { conf: path.join(le, 'renewal', `${name}.conf`), live };
  }

  before(async () => {
    sb = await startSandbox();
    le = path.join(sb.dir, 'letsencrypt');
    outDir = path.join(sb.dir, 'mxcert-live');
    webroot = path.join(sb.dir, 'www');
    await mkdir(webroot, { recursive: true });
    web = spawn('python3', ['-m', 'http.server', String(sb.httpPort), '--bind', '127.0.0.1', '--directory', webroot], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Its request log: which challenge files the CA fetched.
    web.stderr!.on('data', (d: Buffer) => (webLog += d.toString()));
    await waitForTcpPort('127.0.0.1', sb.httpPort, 10_000);

    // The credentials file as certbot's documentation has it (upper-case algorithm).
    credentials = path.join(sb.dir, 'certbot-rfc2136.ini');
    await writeFile(
      credentials,
      ['# certbot dns-rfc2136 credentials', `dns_rfc2136_server = ${sb.bind.primary.host}`, `dns_rfc2136_port = ${sb.bind.primary.port}`,
        `dns_rfc2136_name = ${sb.bind.tsig.name}`, `dns_rfc2136_secret = ${sb.bind.tsig.secret}`, 'dns_rfc2136_algorithm = HMAC-SHA256', ''].join('\n'),
      { mode: 0o600 },
    );
    // Deploy hooks as certbot users write them: they log what they got; the
    // dns lineage's one reloads Postfix, which serves that lineage.
    hookLog = path.join(sb.dir, 'hooks.log');
    dnsHook = path.join(sb.dir, 'reload-mail');
    await writeFile(dnsHook, `#!/bin/sh\nset -eu\necho "dns $RENEWED_LINEAGE $RENEWED_DOMAINS" >> ${hookLog}\nexec ${POSTFIX} -c ${sb.postfix.configDir} reload\n`, { mode: 0o755 });
    webHook = path.join(sb.dir, 'note-web');
    await writeFile(webHook, `#!/bin/sh\necho "web $1 $RENEWED_LINEAGE $RENEWED_DOMAINS" >> ${hookLog}\n`, { mode: 0o755 });
    await mkdir(path.join(le, 'renewal-hooks', 'deploy'), { recursive: true });
    dirHook = path.join(le, 'renewal-hooks', 'deploy', '50-record');
    await writeFile(dirHook, `#!/bin/sh\necho "dir $RENEWED_DOMAINS" >> ${hookLog}\n`, { mode: 0o755 });
    const manualAuth = path.join(sb.dir, 'manual-auth');
    await writeFile(manualAuth, `#!/bin/sh\nmkdir -p ${webroot}/.well-known/acme-challenge\nprintf %s "$CERTBOT_VALIDATION" > ${webroot}/.well-known/acme-challenge/$CERTBOT_TOKEN\n`, { mode: 0o755 });

    await certbot('mx1', 'mx1.example.test', ['--authenticator', 'dns-rfc2136', '--dns-rfc2136-credentials', credentials,
      // certbot cannot poll: it sleeps; 1 s is enough for the inline-signed zone (bench/clients.ts).
      '--dns-rfc2136-propagation-seconds', '1', '--key-type', 'rsa', '--rsa-key-size', '3072', '--deploy-hook', dnsHook]);
    await certbot('mx2', 'mx2.example.test', ['--webroot', '-w', webroot, '--key-type', 'ecdsa', '--elliptic-curve', 'secp384r1', '--deploy-hook', `${webHook} --flag`]);
    await certbot('handmade', 'mx2.example.test', ['--manual', '--preferred-challenges', 'http', '--manual-auth-hook', manualAuth, '--deploy-hook', `${webHook} manual && true`]);
    // The manual lineage has no cleanup hook: its challenge file stays unless removed.
    await rm(path.join(webroot, '.well-known', 'acme-challenge'), { recursive: true, force: true });

    // Postfix serves certbot's mx1 lineage from its live/ symlinks, as on a certbot host.
    await run('postconf', ['-c', sb.postfix.configDir, '-e', `smtpd_tls_chain_files = ${le}/live/mx1/privkey.pem, ${le}/live/mx1/fullchain.pem`]);
    await sb.postfix.reload();
    await pollUntil(async () => (new X509Certificate(await servedLeafPem(sb.postfix.port)).raw.equals(certbotCerts['mx1']!.raw) ? true : undefined), {
      deadlineMs: 15_000,
      what: "Postfix serving certbot's mx1 certificate",
    });
  });

  after(async () => {
    if (web?.pid) await stopPid(web.pid);
    await sb?.stop();
  });

  it('imports, passes config check, and renews both lineages as certbot did', async () => {
    const mainCf = path.join(sb.postfix.configDir, 'main.cf');
    const imp = await sb.cli(['import-certbot', '--config-dir', le, '--output-dir', outDir, '--mta-config', mainCf]);
    // The manual lineage is only a comment: exit 1.
    assert.equal(imp.code, 1, imp.stdout + imp.stderr);
    const yaml = imp.stdout;
    assert.ok(!yaml.includes(sb.bind.tsig.secret) && !imp.stderr.includes(sb.bind.tsig.secret), 'the TSIG secret is never printed');

    // What certbot had, as mxcert config.
    const value = parse(yaml) as { acme: { directory: string }; certificates: Record<string, any>[] };
    assert.equal(value.acme.directory, sb.pebble.directoryUrl);
    assert.deepEqual(value.certificates.map((c) => c.name), ['mx1', 'mx2']);
    const [mx1, mx2] = value.certificates as [Record<string, any>, Record<string, any>];
    assert.deepEqual(mx1.domains, ['mx1.example.test']);
    assert.deepEqual(mx1.keys, ['rsa-3072']);
    assert.deepEqual(mx1.challenge, {
      type: 'dns-01',
      dns: {
        provider: 'rfc2136',
        server: sb.bind.primary.host,
        port: sb.bind.primary.port,
        zone: sb.bind.zone,
        tsig: { name: sb.bind.tsig.name, algorithm: 'hmac-sha256', secretFile: credentials },
      },
    });
    assert.match(yaml, /zone: example\.test # found as certbot finds it/, 'the zone came from SOA queries, not a guess');
    assert.deepEqual(mx1.hooks, { deploy: [dirHook, dnsHook] });
    assert.deepEqual(mx2.domains, ['mx2.example.test']);
    assert.deepEqual(mx2.keys, ['ecdsa-p384']);
    assert.deepEqual(mx2.challenge, { type: 'http-01', http: { webroot } });
    assert.deepEqual(mx2.hooks, { deploy: [dirHook, [webHook, '--flag']] });
    for (const c of [mx1, mx2]) {
      for (const [k, f] of [['key', 'privkey.pem'], ['cert', 'cert.pem'], ['chain', 'chain.pem'], ['fullchain', 'fullchain.pem'], ['combined', 'combined.pem']] as const) {
        assert.equal(c.output[k], path.join(outDir, c.name, f));
      }
    }
    // The manual lineage: commented out with its reason; its shell hook reported.
    assert.match(yaml, /# NOT IMPORTED: the manual authenticator/);
    assert.match(yaml, /# {3}- name: handmade/);
    assert.match(imp.stderr, /handmade: not imported: the manual authenticator/);
    assert.match(imp.stderr, /handmade: deploy hook ".* manual && true" not imported: .*without a shell/);
    // The Postfix line that reads certbot's files, and what it must become.
    const fix = new RegExp(`^\\s*#\\s+${mainCf.replaceAll('/', '\\/')}:\\d+: smtpd_tls_chain_files = .*\\n\\s*#\\s+-> (smtpd_tls_chain_files = .*)$`, 'm').exec(yaml);
    assert.ok(fix, `no Postfix change listed in:\n${yaml}`);
    assert.equal(fix[1], `smtpd_tls_chain_files = ${outDir}/mx1/privkey.pem, ${outDir}/mx1/fullchain.pem`);

    // Complete what the import says: its commands, and the test CA's trust (a private CA).
    const todo = [...imp.stderr.matchAll(/^ {2}(install -d -m 0755 \S+)$/gm)].map((m) => m[1]!);
    assert.deepEqual(todo, [`install -d -m 0755 ${outDir}/mx1`, `install -d -m 0755 ${outDir}/mx2`]);
    for (const t of todo) {
      const [cmd, ...args] = t.split(' ');
      await run(cmd!, args);
    }
    assert.match(yaml, /not a public CA: if certbot trusted its HTTPS certificate through REQUESTS_CA_BUNDLE/);
    const doc = parseDocument(yaml);
    doc.set('stateDir', path.join(sb.dir, 'state-import'));
    doc.setIn(['acme', 'caBundle'], sb.pebble.caBundlePath);
    doc.setIn(['acme', 'trustAnchors'], path.join(sb.dir, 'pebble-roots.pem'));
    const cfg = path.join(sb.dir, 'imported.yaml');
    await writeFile(cfg, doc.toString(), { mode: 0o600 });

    const check = await sb.cli(['config', 'check', '--config', cfg]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /ok \(2 certificates\)/);

    // The MTA change the import listed, then the renewal.
    await run('postconf', ['-c', sb.postfix.configDir, '-e', fix[1]]);
    await writeFile(hookLog, '');
    const webLogBefore = webLog.length;
    const renew = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(renew.code, 0, renew.stdout + renew.stderr);

    const leaf1 = await checkOutputs('mx1', 'mx1.example.test');
    assert.equal(leaf1.publicKey.asymmetricKeyType, 'rsa');
    assert.equal(leaf1.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
    const leaf2 = await checkOutputs('mx2', 'mx2.example.test');
    assert.equal(leaf2.publicKey.asymmetricKeyType, 'ec');
    assert.equal(leaf2.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    // Each through its own challenge.
    assert.match(renew.stderr + renew.stdout, /dns-01 TXT served everywhere/);
    assert.match(webLog.slice(webLogBefore), /"GET \/\.well-known\/acme-challenge\/[\w-]+ HTTP\/1\.1" 200/, 'the CA fetched the http-01 file from the webroot');
    assert.deepEqual(await readdir(path.join(webroot, '.well-known', 'acme-challenge')), [], 'and mxcert removed it');

    // certbot's hooks ran, with a certbot-style RENEWED_LINEAGE that is mxcert's, not certbot's.
    const log = (await readFile(hookLog, 'utf8')).trim().split('\n').sort();
    assert.equal(log.length, 4, log.join('\n'));
    assert.deepEqual(log.filter((l) => l.startsWith('dir ')), ['dir mx1.example.test', 'dir mx2.example.test']);
    const dnsLine = log.find((l) => l.startsWith('dns '))!.split(' ');
    const webLine = log.find((l) => l.startsWith('web '))!.split(' ');
    assert.equal(dnsLine[2], 'mx1.example.test');
    assert.deepEqual([webLine[1], webLine[3]], ['--flag', 'mx2.example.test']);
    for (const lineage of [dnsLine[1]!, webLine[2]!]) {
      assert.ok(!lineage.startsWith(le), `RENEWED_LINEAGE ${lineage} is mxcert's`);
    }

    // Postfix, moved to the imported files and reloaded by certbot's hook, serves the renewal.
    await pollUntil(async () => (new X509Certificate(await servedLeafPem(sb.postfix.port)).raw.equals(leaf1.raw) ? true : undefined), {
      deadlineMs: 15_000,
      what: 'Postfix serving the renewed mx1 certificate',
    });
  });

  /** The five files are real files (not links), the key 0600, the leaf new and for `domain`. */
  async function checkOutputs(name: string, domain: string): Promise<X509Certificate> {
    const dir = path.join(outDir, name);
    for (const f of ['privkey.pem', 'cert.pem', 'chain.pem', 'fullchain.pem', 'combined.pem']) {
      const st = await lstat(path.join(dir, f));
      assert.ok(st.isFile(), `${f} is a regular file`);
      const want = f === 'privkey.pem' || f === 'combined.pem' ? 0o600 : 0o644;
      assert.equal(st.mode & 0o777, want, `${name}/${f} mode`);
    }
    const leaf = new X509Certificate(await readFile(path.join(dir, 'cert.pem')));
    assert.equal(leaf.subjectAltName, `DNS:${domain}`);
    assert.notEqual(leaf.serialNumber, certbotCerts[name]!.serialNumber, 'a new certificate, not certbot\'s');
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(await readFile(path.join(dir, 'privkey.pem')))));
    return leaf;
  }

  it('refuses a directory that is not certbot\'s with exit 2', async () => {
    const r = await sb.cli(['import-certbot', '--config-dir', path.join(sb.dir, 'nope')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read .*nope\/renewal: ENOENT \(is --config-dir certbot's config directory\?\)/);
    assert.equal(r.stdout, '');
  });

  it('warns when the credentials file is not 0600 and lists the chmod', async () => {
    await chmod(credentials, 0o644);
    try {
      const r = await sb.cli(['import-certbot', '--config-dir', le, '--output-dir', outDir, '--no-dns']);
      assert.match(r.stderr, new RegExp(`mx1: ${credentials.replaceAll('/', '\\/')} is mode 0644; mxcert refuses`));
      assert.match(r.stderr, new RegExp(`^ {2}chmod 600 ${credentials.replaceAll('/', '\\/')}$`, 'm'));
      assert.match(r.stdout, /# GUESS \(the registered domain of mx1\.example\.test\)/, '--no-dns guesses the zone');
    } finally {
      await chmod(credentials, 0o600);
    }
  });
});
