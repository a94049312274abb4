// certbot's dns-rfc2136 credentials INI as a TSIG secretFile: parsed like
// certbot parses it (ConfigObj), the secret taken from dns_rfc2136_secret,
// the same 0600 rule as any secret file, and `config check` flags a key file
// (certbot INI or BIND block) that names another key or algorithm than tsig.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { isCertbotCredentials, normalizeTsigAlgorithm, parseCertbotCredentials, sameKeyName } from '../../src/config/certbot-credentials.js';
import { ConfigObjSyntaxError, parseConfigObj } from '../../src/config/configobj.js';
import { loadConfig, readSecret } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const SECRET = 'Y2VydGJvdC1zZWNyZXQtbXVzdC1ub3QtbGVhay0xMjM0NTY3OA==';

/** As the certbot documentation shows it and as people write it. */
const CERTBOT_INI = `# Target DNS server (IPv4 or IPv6 address, not a hostname)
dns_rfc2136_server = 192.0.2.1
# Target DNS port
dns_rfc2136_port = 53
# TSIG key name
dns_rfc2136_name = keyname.
# TSIG key secret
dns_rfc2136_secret = ${SECRET}
# TSIG key algorithm
dns_rfc2136_algorithm = HMAC-SHA512
`;

let dir: string;
let n = 0;
const OUT = path.join(tmpdir(), `mxcert-certbot-cred-out-${process.pid}`);
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-certbot-cred-'));
  await mkdir(OUT, { recursive: true, mode: 0o700 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(OUT, { recursive: true, force: true });
});

async function file(content: string, mode = 0o600): Promise<string> {
  const f = path.join(dir, `f-${++n}`);
  await writeFile(f, content, { mode });
  await chmod(f, mode);
  return f;
}

/** Problems of a one-certificate config whose tsig is `tsig`, as `PATH: MESSAGE`. */
async function problems(tsig: Record<string, unknown>): Promise<string[]> {
  const cfg = {
    acme: { directory: 'https://acme.example.test/directory' },
    certificates: [
      {
        name: 'mx1',
        domains: ['mx1.example.com'],
        challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '192.0.2.1', zone: 'example.com', tsig } },
        output: { combined: `${OUT}/mx1.pem` },
      },
    ],
  };
  try {
    await loadConfig(await file(stringify(cfg), 0o600), { env: {} });
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    const lines = e.problems.map((p) => `${p.path}: ${p.message}`);
    assert.ok(!lines.join('\n').includes(SECRET), 'the secret is never in a message');
    return lines;
  }
}

describe('parseConfigObj (certbot INI dialect)', () => {
  it('reads sections, subsections, lists, quotes and comments', () => {
    const c = parseConfigObj(`# renew_before_expiry = 30 days
version = 2.1.0
cert = /etc/letsencrypt/live/mx1/cert.pem
[renewalparams]
webroot_path = /var/www/a, "/var/www/b,c",
pref_challs = http-01,
renew_hook = "echo a, b"   # a comment
manual_auth_hook = '''/usr/local/bin/auth "x"'''
empty =
[[webroot_map]]
mx1.example.com = /var/www/a
"weird name" = /var/www/b,c
`);
    assert.equal(c.values['version'], '2.1.0');
    assert.equal(c.values['renew_before_expiry'], undefined, 'comments are comments');
    const rp = c.sections['renewalparams']!;
    assert.deepEqual(rp.values['webroot_path'], ['/var/www/a', '/var/www/b,c']);
    assert.deepEqual(rp.values['pref_challs'], ['http-01']);
    assert.equal(rp.values['renew_hook'], 'echo a, b');
    assert.equal(rp.values['manual_auth_hook'], '/usr/local/bin/auth "x"');
    assert.equal(rp.values['empty'], '');
    assert.equal(rp.sections['webroot_map']!.values['mx1.example.com'], '/var/www/a');
    assert.deepEqual(rp.sections['webroot_map']!.values['weird name'], ['/var/www/b', 'c']);
  });

  it('names the line of a syntax error and not its text', () => {
    assert.throws(
      () => parseConfigObj('a = 1\nthis line has no equals sign leaky-token-4711\n'),
      (e: unknown) => e instanceof ConfigObjSyntaxError && e.line === 2 && !e.message.includes('leaky-token-4711'),
    );
    assert.throws(() => parseConfigObj('a = "unterminated\n'), /line 1: unterminated quote/);
    assert.throws(() => parseConfigObj('[[orphan]]\n'), /line 1: subsection without a parent/);
  });
});

describe('certbot rfc2136 credentials', () => {
  it('parses the fields certbot reads', () => {
    assert.ok(isCertbotCredentials(CERTBOT_INI));
    assert.ok(!isCertbotCredentials(SECRET));
    assert.ok(!isCertbotCredentials(`key "k" { algorithm hmac-sha256; secret "${SECRET}"; };`));
    const r = parseCertbotCredentials(CERTBOT_INI);
    assert.deepEqual(r, { ok: true, value: { server: '192.0.2.1', port: '53', name: 'keyname.', secret: SECRET, algorithm: 'HMAC-SHA512' } });
  });

  it('algorithm names compare case-insensitively, key names as DNS names', () => {
    assert.equal(normalizeTsigAlgorithm('HMAC-SHA256'), 'hmac-sha256');
    assert.equal(normalizeTsigAlgorithm('hmac-sha256.'), 'hmac-sha256');
    assert.ok(sameKeyName('KeyName.', 'keyname'));
    assert.ok(!sameKeyName('keyname', 'other'));
  });

  it('readSecret takes dns_rfc2136_secret from a certbot credentials file', async () => {
    assert.equal(await readSecret({ secretFile: await file(CERTBOT_INI), name: 'keyname' }), SECRET);
    // A quoted value and spaces around `=`, as ConfigObj allows.
    assert.equal(await readSecret({ secretFile: await file(`dns_rfc2136_secret="${SECRET}"\ndns_rfc2136_name=k\n`) }), SECRET);
  });

  it('a certbot credentials file without a secret is refused, without echoing the file', async () => {
    const f = await file('dns_rfc2136_server = 192.0.2.1\ndns_rfc2136_name = keyname\n');
    await assert.rejects(readSecret({ secretFile: f }), (e: unknown) => e instanceof ConfigError && /has no dns_rfc2136_secret/.test(e.message));
  });

  it('the 0600 rule holds for a certbot credentials file', async () => {
    const f = await file(CERTBOT_INI, 0o644);
    await assert.rejects(readSecret({ secretFile: f }), /readable by others \(mode 0644\); use 0600/);
  });

  it('config check accepts a certbot file whose key and algorithm match tsig (HMAC-SHA512 = hmac-sha512)', async () => {
    assert.deepEqual(await problems({ name: 'keyname', algorithm: 'hmac-sha512', secretFile: await file(CERTBOT_INI) }), []);
  });

  it('config check flags a certbot file for another key name, at tsig.name', async () => {
    const f = await file(CERTBOT_INI);
    assert.deepEqual(await problems({ name: 'mxcert', algorithm: 'hmac-sha512', secretFile: f }), [
      `certificates[0].challenge.dns.tsig.name: "mxcert" is not the key in ${f}, which is for key "keyname."; use the name the DNS server knows`,
    ]);
  });

  it('config check flags a certbot file for another algorithm, at tsig.algorithm', async () => {
    const f = await file(CERTBOT_INI);
    assert.deepEqual(await problems({ name: 'keyname', secretFile: f }), [
      `certificates[0].challenge.dns.tsig.algorithm: hmac-sha256 differs from ${f}, which uses hmac-sha512`,
    ]);
  });

  it('a certbot file without an algorithm means HMAC-MD5, as certbot signs then', async () => {
    const f = await file(`dns_rfc2136_server = 192.0.2.1\ndns_rfc2136_name = keyname\ndns_rfc2136_secret = ${SECRET}\n`);
    assert.deepEqual(await problems({ name: 'keyname', algorithm: 'hmac-md5', secretFile: f }), []);
    const lines = await problems({ name: 'keyname', secretFile: f });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^certificates\[0\]\.challenge\.dns\.tsig\.algorithm: hmac-sha256 differs from .*, which uses hmac-md5 \(the file names no dns_rfc2136_algorithm; certbot then signs with HMAC-MD5\)$/);
  });

  it('config check flags a BIND key file for another key name or algorithm', async () => {
    const f = await file(`key "mx-update" {\n\talgorithm hmac-sha384;\n\tsecret "${SECRET}";\n};\n`);
    assert.deepEqual(await problems({ name: 'mx-update.', algorithm: 'hmac-sha384', secretFile: f }), []);
    assert.deepEqual(await problems({ name: 'other', algorithm: 'hmac-sha384', secretFile: f }), [
      `certificates[0].challenge.dns.tsig.name: "other" is not the key in ${f}, which is for key "mx-update"; use the name the DNS server knows`,
    ]);
    assert.deepEqual(await problems({ name: 'mx-update', secretFile: f }), [
      `certificates[0].challenge.dns.tsig.algorithm: hmac-sha256 differs from ${f}, which uses hmac-sha384`,
    ]);
  });

  it('a bare secret file states no name or algorithm and is not flagged', async () => {
    assert.deepEqual(await problems({ name: 'anything', algorithm: 'hmac-sha512', secretFile: await file(SECRET) }), []);
  });
});
