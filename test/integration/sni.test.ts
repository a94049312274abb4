// One host, many customer names, each served its own certificate through
// SNI, on the real servers: Pebble issues three certificates (one of them
// dual-key, one with a wildcard), mxcert deploys them and writes Postfix's
// tls_server_sni_maps (postmap -F) and Dovecot's local_name include, and
// openssl -servername against the real Postfix (STARTTLS) and the real
// Dovecot (IMAP STARTTLS, IMAPS) must get each name's own certificate. A
// renewal changes what that one name serves without a Postfix reload; a
// postmap that fails (a full file system) leaves the old map serving.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, REPO, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { startDovecot, type DovecotEnv } from '../env/dovecot.js';
import { logTail, pollUntil, run } from '../env/proc.js';

const DOVECOT_RELOAD_HOOK = path.join(REPO, 'hooks', 'dovecot-reload');

type Probe = { port: number; starttls?: 'smtp' | 'imap'; servername: string; keyFamily?: 'ecdsa' | 'rsa' };

/** The leaf a server presents for `servername`, read with openssl (independent of mxcert). */
async function served(p: Probe): Promise<X509Certificate> {
  const sigalgs = p.keyFamily === 'rsa' ? ['-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256'] : p.keyFamily === 'ecdsa' ? ['-sigalgs', 'ECDSA+SHA256'] : [];
  const r = await run(
    'openssl',
    ['s_client', ...(p.starttls ? ['-starttls', p.starttls] : []), '-connect', `127.0.0.1:${p.port}`, '-servername', p.servername, ...sigalgs],
    { allowFailure: true, input: p.starttls === 'imap' || !p.starttls ? 'a LOGOUT\r\n' : 'QUIT\r\n', timeoutMs: 15_000 },
  );
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout);
  if (!m) throw new Error(`openssl s_client got no certificate from 127.0.0.1:${p.port} for ${p.servername}:\n${r.stdout}\n${r.stderr}`);
  return new X509Certificate(m[0]);
}

/** The leaf in a deployed combined or fullchain file. */
async function deployedLeaf(file: string): Promise<X509Certificate> {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(await readFile(file, 'utf8'));
  assert.ok(m, `no certificate in ${file}`);
  return new X509Certificate(m[0]);
}

const spki = (c: X509Certificate): string => c.publicKey.export({ type: 'spki', format: 'der' }).toString('hex');

/** Waits until the server presents `want` for the probe (new connections follow a table change or reload shortly). */
async function servesEventually(p: Probe, want: X509Certificate, what: string, logPath?: string): Promise<void> {
  await pollUntil(async () => ((await served(p)).raw.equals(want.raw) ? true : undefined), {
    deadlineMs: 15_000,
    intervalMs: 200,
    what,
    detail: () => `want serial ${want.serialNumber} from 127.0.0.1:${p.port} for ${p.servername}${logPath ? `\n${logTail(logPath)}` : ''}`,
  });
}

describe('SNI: many customer names on one host, on real Postfix and Dovecot', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let dovecot: DovecotEnv;
  let mapDir: string;
  let map: string;
  let include: string;
  let cfgPath: string;
  const out = (f: string) => path.join(sb.outDir, f);
  const NAMES = { alpha: 'alpha.example.test', bravo: 'bravo.example.test', charlie: 'charlie.example.test', wild: 'x.wild.example.test' };

  function config(hooks: string[][]): SandboxConfig {
    const c = sb.baseConfig();
    const base = c.certificates[0];
    const cert = (name: string, domains: string[], keys: string[], output: Record<string, string>) => ({
      ...base,
      name,
      domains,
      keys,
      output: { ...output, mode: '0600' },
      hooks: { deploy: hooks },
      // mxcert's own check asks Postfix for this certificate's first name through SNI.
      verify: { smtp: [`127.0.0.1:${sb.postfix.port}`], timeout: '15s' },
    });
    c.certificates = [
      cert('alpha', [NAMES.alpha], ['ecdsa-p256'], { combined: out('alpha-{keytype}.pem') }),
      cert('bravo', [NAMES.bravo], ['ecdsa-p256', 'rsa-2048'], { combined: out('bravo-{keytype}.pem') }),
      cert('charlie', [NAMES.charlie, '*.wild.example.test'], ['ecdsa-p256'], {
        combined: out('charlie-{keytype}.pem'),
        key: out('charlie-{keytype}.key'),
        fullchain: out('charlie-{keytype}.fullchain.pem'),
      }),
    ];
    c.sni = { postfix: { map, type: 'hash', configDir: sb.postfix.configDir }, dovecot: { include } };
    return c;
  }

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    // The map lives on a small file system of its own, so a test can fill it up.
    mapDir = path.join(sb.dir, 'postfix-sni');
    await mkdir(mapDir, { mode: 0o755 });
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', mapDir]);
    map = path.join(mapDir, 'mxcert-sni');
    const incDir = path.join(sb.dir, 'dovecot-conf.d');
    await mkdir(incDir, { mode: 0o755 });
    include = path.join(incDir, 'mxcert-sni.conf');
    cfgPath = await sb.writeConfig(config([]), path.join(sb.dir, 'sni.yaml'));
  });

  after(async () => {
    await dovecot?.stop();
    // smtpd keeps the map open: Postfix goes first, then the file system can go.
    await sb?.postfix.stop();
    if (mapDir) await run('umount', [mapDir], { allowFailure: true });
    await sb?.stop();
  });

  it('mxcert sni write before the first issuance: an empty map and include that Postfix and Dovecot load', async () => {
    const r = await sb.cli(['sni', 'write', '--format', 'text', '--config', cfgPath]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^postfix: hash:\S+mxcert-sni: 0 names from 0 certificates; rebuilt with postmap -F$/m);
    assert.match(r.stdout, /^dovecot: \S+mxcert-sni\.conf: 0 names from 0 certificates; written$/m);
    assert.match(r.stdout, /^note: postfix: certificate alpha has no combined file yet/m);
    for (const f of [map, `${map}.db`]) assert.equal((await stat(f)).mode & 0o777, 0o600, f);

    // What an administrator does once: point the MTAs at the files, then reload.
    await run('postconf', ['-c', sb.postfix.configDir, '-e', `tls_server_sni_maps = hash:${map}`]);
    // Postfix waits while main.cf looks freshly edited (mtime within 2 s); it is not.
    const past = new Date(Date.now() - 60_000);
    await utimes(path.join(sb.postfix.configDir, 'main.cf'), past, past);
    await sb.postfix.reload();
    dovecot = await startDovecot({ include });
  });

  it('renew issues three certificates; each name gets its own from Postfix and Dovecot (STARTTLS, IMAPS), the wildcard too', async () => {
    cfgPath = await sb.writeConfig(config([['/usr/bin/env', `DOVECOT_CONFIG=${dovecot.conf}`, DOVECOT_RELOAD_HOOK]]), cfgPath);
    const r = await sb.cli(['renew', '--force', '--format', 'json', '--config', cfgPath], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout.trim().split('\n').filter((l) => JSON.parse(l).status === 'renewed').length, 4, r.stdout);

    const text = await readFile(map, 'utf8');
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(lines, [
      `alpha.example.test ${out('alpha-ecdsa-p256.pem')}`,
      `bravo.example.test ${out('bravo-ecdsa-p256.pem')}, ${out('bravo-rsa-2048.pem')}`,
      `charlie.example.test ${out('charlie-ecdsa-p256.pem')}`,
      `.wild.example.test ${out('charlie-ecdsa-p256.pem')}`,
    ]);
    const inc = await readFile(include, 'utf8');
    assert.match(inc, new RegExp(`local_name "\\*\\.wild\\.example\\.test" \\{\\n  ssl_cert = <${out('charlie-ecdsa-p256.fullchain.pem')}\\n  ssl_key = <${out('charlie-ecdsa-p256.key')}\\n\\}`));
    assert.match(inc, new RegExp(`local_name "bravo\\.example\\.test" \\{\\n  ssl_cert = <${out('bravo-ecdsa-p256.pem')}\\n  ssl_key = <${out('bravo-ecdsa-p256.pem')}\\n  ssl_alt_cert = <${out('bravo-rsa-2048.pem')}\\n  ssl_alt_key = <${out('bravo-rsa-2048.pem')}\\n\\}`));

    const want = {
      alpha: await deployedLeaf(out('alpha-ecdsa-p256.pem')),
      bravo: await deployedLeaf(out('bravo-ecdsa-p256.pem')),
      bravoRsa: await deployedLeaf(out('bravo-rsa-2048.pem')),
      charlie: await deployedLeaf(out('charlie-ecdsa-p256.pem')),
    };
    assert.equal(new Set(Object.values(want).map((c) => c.serialNumber)).size, 4, 'four distinct certificates');
    assert.equal(new Set(Object.values(want).map(spki)).size, 4, 'four distinct keys');

    const checks: Array<[string, X509Certificate, 'ecdsa' | 'rsa' | undefined]> = [
      [NAMES.alpha, want.alpha, undefined],
      [NAMES.bravo, want.bravo, 'ecdsa'],
      [NAMES.bravo, want.bravoRsa, 'rsa'],
      [NAMES.charlie, want.charlie, undefined],
      [NAMES.wild, want.charlie, undefined],
    ];
    for (const [name, cert, keyFamily] of checks) {
      for (const p of [
        { port: sb.postfix.port, starttls: 'smtp' as const, servername: name, keyFamily },
        { port: dovecot.imapPort, starttls: 'imap' as const, servername: name, keyFamily },
        { port: dovecot.imapsPort, servername: name, keyFamily },
      ]) {
        await servesEventually(p, cert, `${name} (${keyFamily ?? 'any'}) on port ${p.port}`, dovecot.logPath);
        const got = await served(p);
        assert.equal(got.serialNumber, cert.serialNumber, `${name} on ${p.port}`);
        assert.equal(spki(got), spki(cert));
        assert.ok(got.checkHost(name), `${name}: the served leaf covers the name`);
      }
    }
    // A name in no table gets each server's default certificate.
    const postfixDefault = await served({ port: sb.postfix.port, starttls: 'smtp', servername: 'other.example.test' });
    assert.equal(postfixDefault.raw.equals((await deployedLeaf(sb.combinedPath())).raw), true);
    assert.equal((await served({ port: dovecot.imapPort, starttls: 'imap', servername: 'other.example.test' })).subject, 'CN=default.example.test');
  });

  it('renewing one certificate changes what that name serves, without reloading Postfix; the others stay', async () => {
    const before = {
      alpha: await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha }),
      charlie: await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.charlie }),
    };
    const reloads = (await readFile(sb.postfix.logPath, 'utf8')).match(/reload -- version/g)?.length ?? 0;
    const r = await sb.cli(['renew', '--force', '--cert', 'alpha', '--format', 'json', '--config', cfgPath], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const renewed = await deployedLeaf(out('alpha-ecdsa-p256.pem'));
    assert.notEqual(renewed.serialNumber, before.alpha.serialNumber);
    // mxcert's verify step already asked Postfix for alpha through SNI and got the new leaf; openssl agrees.
    await servesEventually({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha }, renewed, 'Postfix to serve the renewed alpha', sb.postfix.logPath);
    assert.equal((await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.charlie })).serialNumber, before.charlie.serialNumber);
    await servesEventually({ port: dovecot.imapPort, starttls: 'imap', servername: NAMES.alpha }, renewed, 'Dovecot to serve the renewed alpha', dovecot.logPath);
    assert.equal((await readFile(sb.postfix.logPath, 'utf8')).match(/reload -- version/g)?.length ?? 0, reloads, 'Postfix was not reloaded');
    assert.match(await readFile(sb.postfix.logPath, 'utf8'), /table hash:\S+mxcert-sni\(\d+,[^)]*\) has changed -- restarting/, 'smtpd saw the table change by itself');
  });

  it('a deploy hook fails after the map was rebuilt: the files go back and the map is rebuilt from them, so the old certificate is served', async () => {
    const servedBefore = await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha });
    // Fails its first run; on its second (the rollback's reload) it records
    // what Postfix serves for alpha at that moment, mid-pass.
    const hook = path.join(sb.dir, 'failing-reload');
    const runs = path.join(sb.dir, 'failing-reload.runs');
    const seen = path.join(sb.dir, 'served-at-rollback');
    await writeFile(
      hook,
      [
        '#!/bin/sh',
        `n=$(cat ${runs} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > ${runs}`,
        'if [ "$n" -eq 1 ]; then echo "reload refused" >&2; exit 1; fi',
        `openssl s_client -starttls smtp -connect 127.0.0.1:${sb.postfix.port} -servername ${NAMES.alpha} </dev/null 2>/dev/null | openssl x509 -noout -serial > ${seen}`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const c = config([[hook]]);
    const failing = await sb.writeConfig(c, path.join(sb.dir, 'sni-failing-hook.yaml'));
    const r = await sb.cli(['renew', '--force', '--cert', 'alpha', '--format', 'text', '--config', failing], { timeoutMs: 300_000 });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^alpha \(ecdsa-p256\): FAILED at hooks: hook \S+failing-reload exited with code 1: reload refused \(previous files restored\)$/m);
    // The map was rebuilt twice: with the new file before the hook, with the restored one after it.
    const rebuilt = r.stderr.split('\n').filter((l) => l.includes('SNI: Postfix map rebuilt')).length;
    assert.ok(rebuilt >= 2, r.stderr);
    assert.equal((await readFile(seen, 'utf8')).trim(), `serial=${servedBefore.serialNumber}`, 'right after the rollback, before the pass ended, Postfix served the restored certificate');
    const now = await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha });
    assert.equal(now.serialNumber, servedBefore.serialNumber, 'Postfix serves the restored certificate, not the one whose deploy failed');
    assert.equal((await deployedLeaf(out('alpha-ecdsa-p256.pem'))).serialNumber, servedBefore.serialNumber);
  });

  it('postmap fails (file system full): the live map is untouched and keeps serving, the files go back, the error names postmap', async () => {
    const servedBefore = await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha });
    const liveBefore = { source: await readFile(map), db: await readFile(`${map}.db`) };
    const fileBefore = await readFile(out('alpha-ecdsa-p256.pem'));
    // Leave room for the map's source text (one page), not for a database.
    const fs = await statfs(mapDir);
    const filler = path.join(mapDir, 'filler');
    await writeFile(filler, Buffer.alloc(Number(fs.bavail) * Number(fs.bsize) - 8192));
    try {
      const r = await sb.cli(['renew', '--force', '--cert', 'alpha', '--format', 'text', '--config', cfgPath], { timeoutMs: 300_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /^alpha \(ecdsa-p256\): FAILED at deploy: \/usr\/sbin\/postmap -c \S+ -F hash:\S+ exited with code 1: .*postmap: fatal: .*(No space left on device|ENOSPC|space).*the live SNI map is unchanged \(previous files restored\)$/m);
      assert.deepEqual(await readFile(map), liveBefore.source);
      assert.deepEqual(await readFile(`${map}.db`), liveBefore.db);
      assert.deepEqual(await readFile(out('alpha-ecdsa-p256.pem')), fileBefore, 'the previous combined file is back');
      assert.deepEqual((await readdir(mapDir)).sort(), ['filler', 'mxcert-sni', 'mxcert-sni.db'], 'no staging directory left behind');
      const now = await served({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha });
      assert.equal(now.serialNumber, servedBefore.serialNumber, 'Postfix still serves the certificate of the old map');
    } finally {
      await rm(filler, { force: true });
    }
    // Space again: the staged certificate is deployed (no new order) and served.
    const again = await sb.cli(['renew', '--force', '--cert', 'alpha', '--format', 'text', '--config', cfgPath], { timeoutMs: 300_000 });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const renewed = await deployedLeaf(out('alpha-ecdsa-p256.pem'));
    assert.notEqual(renewed.serialNumber, servedBefore.serialNumber);
    await servesEventually({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.alpha }, renewed, 'Postfix to serve alpha after the space came back');
  });

  it('the daemon: a certificate taken out of the config leaves both tables at the end of its pass, without a deploy', async () => {
    const c = config([]);
    c.certificates = c.certificates.filter((x: { name: string }) => x.name !== 'bravo');
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'sni-daemon.yaml'));
    const child = spawn(process.execPath, [CLI, 'run', '--config', cfg], { env: { ...process.env, MXCERT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await pollUntil(() => (stderr.includes('"msg":"next wake-up at ') ? true : undefined), { deadlineMs: 60_000, what: "the daemon's first pass to end", detail: () => stderr });
      assert.match(stderr, /"msg":"SNI: Postfix map rebuilt"/);
      assert.match(stderr, /"msg":"SNI: Dovecot include written"/);
      assert.doesNotMatch(stderr, /"msg":"renewing"/, 'nothing was due: the tables changed with the config alone');
      assert.doesNotMatch(await readFile(map, 'utf8'), /bravo/);
      assert.doesNotMatch(await readFile(include, 'utf8'), /bravo/);
      const fallback = await deployedLeaf(sb.combinedPath());
      await servesEventually({ port: sb.postfix.port, starttls: 'smtp', servername: NAMES.bravo }, fallback, 'Postfix to serve its default certificate for the removed name');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });
});
