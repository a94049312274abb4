import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument, stringify } from 'yaml';
import { checkConfig } from '../../src/config/check.js';
import { loadConfig, readSecret, resolveConfigPath } from '../../src/config/load.js';
import { expandOutputPath } from '../../src/deploy/output-paths.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';

// Distinctive so a leak into any message is unmistakable.
const SECRET = 'c2VjcmV0LW11c3Qtbm90LWxlYWstOTQxNw==';
const BIND_SECRET = 'YmluZC1zZWNyZXQtbXVzdC1ub3QtbGVhaw==';

let dir: string;
let n = 0;
/** A real output directory (0700): the loader checks that output directories exist. */
const OUT = path.join(tmpdir(), `mxcert-config-out-${process.pid}`);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-config-'));
  await mkdir(OUT, { recursive: true, mode: 0o700 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(OUT, { recursive: true, force: true });
});

async function writeSecret(content: string, mode = 0o600): Promise<string> {
  const file = path.join(dir, `secret-${++n}`);
  await writeFile(file, content, { mode });
  await chmod(file, mode); // the umask may have dropped bits the test needs
  return file;
}

type Obj = Record<string, any>;

/** A minimal valid config: one dns-01 certificate with a 0600 TSIG secret. */
async function baseConfig(): Promise<Obj> {
  return {
    acme: { directory: 'https://acme.example.test/directory', email: 'postmaster@example.com' },
    certificates: [cert('mx1', await writeSecret(SECRET))],
  };
}

function cert(name: string, secretFile: string): Obj {
  return {
    name,
    domains: [`${name}.example.com`],
    challenge: {
      type: 'dns-01',
      dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.com', tsig: { name: 'mxcert', secretFile } },
    },
    output: { combined: `${OUT}/${name}-{keytype}.pem` },
  };
}

async function writeConfig(content: Obj | string): Promise<string> {
  const file = path.join(dir, `config-${++n}.yaml`);
  await writeFile(file, typeof content === 'string' ? content : stringify(content));
  return file;
}

/** Load a config that must fail; returns its problems as `PATH: MESSAGE` lines. */
async function problemsOf(content: Obj | string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  const err = await loadConfig(await writeConfig(content), { env }).then(
    () => assert.fail('expected a ConfigError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
  assert.ok(err.problems.length > 0);
  return err.problems.map((p: ConfigProblem) => `${p.path}: ${p.message}`);
}

function hasLine(lines: string[], prefix: string): void {
  assert.ok(
    lines.some((l) => l.startsWith(prefix)),
    `no problem starting with ${JSON.stringify(prefix)} in:\n${lines.join('\n')}`,
  );
}

describe('loadConfig: valid files', () => {
  it('loads a minimal config and applies the defaults', async () => {
    const file = await writeConfig(await baseConfig());
    const cfg = await loadConfig(path.relative(process.cwd(), file), { env: {} });
    assert.equal(cfg.source, file, 'source is the absolute path');
    assert.equal(cfg.stateDir, '/var/lib/mxcert');
    assert.equal(cfg.acme.ari, true);
    const c = cfg.certificates[0]!;
    assert.deepEqual(c.keys, ['ecdsa-p256']);
    assert.equal(c.output.mode, '0600');
    assert.equal(c.reuseKey, false);
    assert.deepEqual(c.hooks.deploy, []);
    assert.equal(c.hooks.timeout, 60_000);
    assert.deepEqual(c.verify.smtp, []);
    assert.equal(c.challenge.type, 'dns-01');
    if (c.challenge.type === 'dns-01') {
      assert.equal(c.challenge.dns.port, 53);
      assert.equal(c.challenge.dns.tsig.algorithm, 'hmac-sha256');
      assert.equal(c.challenge.dns.propagationTimeout, 120_000);
    }
  });

  it('accepts two key types when every output path has {keytype}', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].keys = ['ecdsa-p256', 'rsa-2048'];
    cfg.certificates[0].output.key = `${OUT}/{name}.{keytype}.key`;
    const loaded = await loadConfig(await writeConfig(cfg), { env: {} });
    assert.deepEqual(loaded.certificates[0]!.keys, ['ecdsa-p256', 'rsa-2048']);
  });

  it('accepts secretEnv when the variable is set, and DANE without complaint', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].challenge.dns.tsig = { name: 'mxcert', secretEnv: 'MX_TSIG' };
    cfg.certificates[0].dane = { enabled: true, endpoints: [{ host: 'mx1.example.com', port: 25 }], keyLifetime: '30d' };
    const loaded = await loadConfig(await writeConfig(cfg), { env: { MX_TSIG: SECRET } });
    assert.equal(loaded.certificates[0]!.dane?.enabled, true);
    assert.equal(loaded.certificates[0]!.dane?.keyLifetime, 30 * 86_400_000);
  });

  it('dane.validatingResolver must be an IP and port: mxcert does not resolve the resolver', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].dane = { enabled: true, endpoints: [{ host: 'mx1.example.com', port: 25 }], validatingResolver: '127.0.0.1:53' };
    const ok = await loadConfig(await writeConfig(cfg), { env: {} });
    assert.equal(ok.certificates[0]!.dane?.validatingResolver, '127.0.0.1:53');
    cfg.certificates[0].dane.validatingResolver = '[::1]:5353';
    await loadConfig(await writeConfig(cfg), { env: {} });
    cfg.certificates[0].dane.validatingResolver = 'resolver.example.com:53';
    hasLine(await problemsOf(cfg), 'certificates[0].dane.validatingResolver: must be an IP address and port');
  });

  it('accepts an http-01 webroot that exists', async () => {
    const webroot = path.join(dir, 'webroot');
    await mkdir(webroot, { recursive: true });
    const cfg = await baseConfig();
    cfg.certificates[0].challenge = { type: 'http-01', http: { webroot } };
    const loaded = await loadConfig(await writeConfig(cfg), { env: {} });
    assert.equal(loaded.certificates[0]!.challenge.type, 'http-01');
  });
});

describe('loadConfig: schema problems name their YAML path', () => {
  it('unknown top-level key: path of the key itself', async () => {
    const cfg = await baseConfig();
    cfg.stateDirr = '/var/lib/x';
    const lines = await problemsOf(cfg);
    assert.deepEqual(lines, ['stateDirr: unknown key "stateDirr"; did you mean "stateDir"?']);
  });

  it('unknown nested key: path of the key inside the certificate', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].outptu = { combined: '/x.pem' };
    const lines = await problemsOf(cfg);
    assert.deepEqual(lines, ['certificates[0].outptu: unknown key "outptu"; did you mean "output"?']);
  });

  it('unknown key deep in a discriminated union, plus the field it was meant to be', async () => {
    const cfg = await baseConfig();
    const tsig = cfg.certificates[0].challenge.dns.tsig;
    tsig.secretfile = tsig.secretFile;
    delete tsig.secretFile;
    const lines = await problemsOf(cfg);
    hasLine(lines, 'certificates[0].challenge.dns.tsig.secretfile: unknown key "secretfile"; did you mean "secretFile"?');
    hasLine(lines, 'certificates[0].challenge.dns.tsig.secretFile: required');
  });

  it('missing required field: acme.directory', async () => {
    const cfg = await baseConfig();
    delete cfg.acme.directory;
    assert.deepEqual(await problemsOf(cfg), ['acme.directory: required']);
  });

  it('missing required section: acme', async () => {
    const cfg = await baseConfig();
    delete cfg.acme;
    assert.deepEqual(await problemsOf(cfg), ['acme: required']);
  });

  it('wrong type: port given as a string', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].challenge.dns.port = '53';
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].challenge.dns.port: expected number, got string']);
  });

  it('wrong type on a union names every accepted type', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].hooks = { timeout: true };
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].hooks.timeout: expected string or number, got boolean']);
  });

  it('bad duration', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].challenge.dns.propagationTimeout = '2 weeks';
    const lines = await problemsOf(cfg);
    assert.equal(lines.length, 1);
    hasLine(lines, 'certificates[0].challenge.dns.propagationTimeout: not a duration');
  });

  it('bad key type: path of the list entry, allowed values named', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].keys = ['ecdsa-p256', 'rsa-1024'];
    const lines = await problemsOf(cfg);
    assert.equal(lines.length, 1);
    hasLine(lines, 'certificates[0].keys[1]: must be one of ');
    for (const k of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'rsa-1024']) assert.match(lines[0]!, new RegExp(k));
  });

  it('bad challenge type: names the allowed types', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].challenge.type = 'dns01';
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].challenge.type: must be one of "dns-01", "http-01", got "dns01"']);
  });

  it('unquoted octal mode gets a hint', async () => {
    const yaml = stringify(await baseConfig()).replace('combined:', 'mode: 0600\n      combined:');
    const lines = await problemsOf(yaml);
    assert.deepEqual(lines, ['certificates[0].output.mode: expected string, got number; quote octal modes, e.g. "0600"']);
  });

  it('relative output path', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].output.combined = 'tls/mx1.pem';
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].output.combined: must be an absolute path']);
  });

  it('empty domain list', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].domains = [];
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].domains: must not be empty']);
  });
});

describe('loadConfig: files and syntax', () => {
  it('YAML syntax error names line and column', async () => {
    const text = 'acme:\n  directory: https://acme.example.test/dir\ncertificates:\n  - name: [mx1\n    domains: x\n';
    const lines = await problemsOf(text);
    assert.equal(lines.length >= 1, true);
    assert.match(lines[0]!, /^: YAML syntax error at line \d+, column \d+: /);
    assert.match(lines.join('\n'), /line [45]\b/);
  });

  it('duplicate YAML keys are a syntax error, not a silent override', async () => {
    const lines = await problemsOf('acme:\n  directory: https://a.example/\nacme:\n  directory: https://b.example/\n');
    assert.match(lines[0]!, /line 3, column 1/);
  });

  it('missing config file: one problem with an empty path naming the file', async () => {
    const missing = path.join(dir, 'nope.yaml');
    const err = await loadConfig(missing).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.problems, [{ path: '', message: `cannot read config file ${missing}: no such file or directory` }]);
  });

  it('empty config file', async () => {
    const lines = await problemsOf('# nothing here\n');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^: config file .* is empty$/);
  });
});

describe('loadConfig: secrets', () => {
  const tsigPath = 'certificates[0].challenge.dns.tsig.secretFile';

  it('TSIG secret file readable by others (0644) is refused with the exact message', async () => {
    const cfg = await baseConfig();
    await chmod(cfg.certificates[0].challenge.dns.tsig.secretFile, 0o644);
    assert.deepEqual(await problemsOf(cfg), [`${tsigPath}: file is readable by others (mode 0644); use 0600`]);
  });

  it('TSIG secret file readable by group (0640) is refused', async () => {
    const cfg = await baseConfig();
    await chmod(cfg.certificates[0].challenge.dns.tsig.secretFile, 0o640);
    assert.deepEqual(await problemsOf(cfg), [`${tsigPath}: file is readable by group (mode 0640); use 0600`]);
  });

  it('TSIG secret file with 0400 is fine', async () => {
    const cfg = await baseConfig();
    await chmod(cfg.certificates[0].challenge.dns.tsig.secretFile, 0o400);
    await loadConfig(await writeConfig(cfg), { env: {} });
  });

  it('missing secret file', async () => {
    const cfg = await baseConfig();
    const missing = path.join(dir, 'no-such.key');
    cfg.certificates[0].challenge.dns.tsig.secretFile = missing;
    assert.deepEqual(await problemsOf(cfg), [`${tsigPath}: cannot read ${missing}: no such file or directory`]);
  });

  it('secret file that is a directory', async () => {
    const cfg = await baseConfig();
    const d = path.join(dir, `keydir-${++n}`);
    await mkdir(d, { mode: 0o700 });
    cfg.certificates[0].challenge.dns.tsig.secretFile = d;
    assert.deepEqual(await problemsOf(cfg), [`${tsigPath}: ${d} is not a regular file`]);
  });

  it('empty or non-base64 TSIG secret file', async () => {
    const cfg = await baseConfig();
    cfg.certificates.push(cert('mx2', await writeSecret('not base64 at all!')));
    cfg.certificates[0].challenge.dns.tsig.secretFile = await writeSecret('\n');
    const lines = await problemsOf(cfg);
    assert.deepEqual(lines, [
      `${tsigPath}: file is empty`,
      'certificates[1].challenge.dns.tsig.secretFile: TSIG secret is not valid base64',
    ]);
  });

  it('secretEnv unset or empty', async () => {
    const cfg = await baseConfig();
    cfg.certificates.push(cert('mx2', 'x'));
    cfg.certificates[0].challenge.dns.tsig = { name: 'k', secretEnv: 'TSIG_UNSET' };
    cfg.certificates[1].challenge.dns.tsig = { name: 'k', secretEnv: 'TSIG_EMPTY' };
    assert.deepEqual(await problemsOf(cfg, { TSIG_EMPTY: '  ' }), [
      'certificates[0].challenge.dns.tsig.secretEnv: environment variable TSIG_UNSET is not set',
      'certificates[1].challenge.dns.tsig.secretEnv: environment variable TSIG_EMPTY is empty',
    ]);
  });

  it('EAB hmacKeyFile is held to the same rule; EAB without any key is reported', async () => {
    const cfg = await baseConfig();
    cfg.acme.eab = { kid: 'kid-1', hmacKeyFile: await writeSecret('aG1hYw', 0o604) };
    assert.deepEqual(await problemsOf(cfg), ['acme.eab.hmacKeyFile: file is readable by others (mode 0604); use 0600']);
    cfg.acme.eab = { kid: 'kid-1' };
    assert.deepEqual(await problemsOf(cfg), ['acme.eab.hmacKey: required (or hmacKeyFile, hmacKeyEnv)']);
  });

  it('never puts secret contents into error messages', async () => {
    const cfg = await baseConfig();
    // A leaky secret file, a broken BIND block, an inline EAB key of the wrong
    // type next to a typo, and a bad value under a secret-looking key.
    await chmod(cfg.certificates[0].challenge.dns.tsig.secretFile, 0o644);
    cfg.certificates.push(cert('mx2', await writeSecret(`key "other" { algorithm hmac-sha256; secrt "${BIND_SECRET}"; };\n`)));
    cfg.acme.eab = { kid: 'k', hmacKey: SECRET, hmacKeyy: SECRET };
    cfg.certificates[1].challenge.dns.tsig.algorithm = SECRET;
    cfg.certificates[1].challenge.dns.propagationTimeout = SECRET;
    const file = await writeConfig(cfg);
    const err = await loadConfig(file, { env: { X: SECRET } }).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    const all = [err.message, ...err.problems.map((p) => p.path + p.message)].join('\n');
    assert.ok(err.problems.length >= 2, all);
    assert.ok(!all.includes(SECRET), `secret leaked:\n${all}`);
    assert.ok(!all.includes(BIND_SECRET), `BIND secret leaked:\n${all}`);
    // Ensure the checks ran at all, so the absence above means something.
    assert.match(all, /acme\.eab\.hmacKeyy/);
    assert.match(all, /certificates\[1\]\.challenge\.dns\.tsig\.algorithm: must be one of /);
    assert.match(all, /certificates\[1\]\.challenge\.dns\.propagationTimeout: not a duration: \(value not shown\)/);
  });

  it('secret file in a broken YAML file is not echoed either', async () => {
    const err = await loadConfig(await writeConfig(`acme:\n  eab: { kid: k, hmacKey: "${SECRET}" \n  x: [\n`)).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.ok(!err.message.includes(SECRET), err.message);
  });
});

describe('loadConfig: cross-certificate and file checks', () => {
  it('duplicate certificate names: path of the later one', async () => {
    const cfg = await baseConfig();
    const second = cert('mx1', cfg.certificates[0].challenge.dns.tsig.secretFile);
    second.output.combined = `${OUT}/other-{keytype}.pem`;
    cfg.certificates.push(second);
    assert.deepEqual(await problemsOf(cfg), ['certificates[1].name: duplicate name "mx1" (also certificates[0].name)']);
  });

  it('two certificates writing the same file', async () => {
    const cfg = await baseConfig();
    const second = cert('mx2', cfg.certificates[0].challenge.dns.tsig.secretFile);
    second.output.combined = `${OUT}/mx1-{keytype}.pem`;
    cfg.certificates.push(second);
    assert.deepEqual(await problemsOf(cfg), [
      `certificates[1].output.combined: conflicting output: ${OUT}/mx1-ecdsa-p256.pem is also written by certificates[0].output.combined`,
    ]);
  });

  it('two output kinds of one certificate writing the same file, even spelled differently', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].output.fullchain = `${OUT}/../${path.basename(OUT)}/mx1-ecdsa-p256.pem`;
    assert.deepEqual(await problemsOf(cfg), [
      `certificates[0].output.fullchain: conflicting output: ${OUT}/mx1-ecdsa-p256.pem is also written by certificates[0].output.combined`,
    ]);
  });

  it('several key types but an output path without {keytype}', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].keys = ['ecdsa-p256', 'rsa-2048'];
    cfg.certificates[0].output = { combined: `${OUT}/mx1-{keytype}.pem`, cert: `${OUT}/{name}.crt` };
    const lines = await problemsOf(cfg);
    assert.equal(lines.length, 1, lines.join('\n'));
    hasLine(lines, 'certificates[0].output.cert: must contain {keytype}');
  });

  it('unknown placeholder in an output path', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].output.combined = `${OUT}/{nmae}-{keytype}.pem`;
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].output.combined: unknown placeholder {nmae}; use {keytype} or {name}']);
  });

  it('missing http-01 webroot and acme.caBundle', async () => {
    const cfg = await baseConfig();
    cfg.acme.caBundle = path.join(dir, 'no-ca.pem');
    cfg.certificates[0].challenge = { type: 'http-01', http: { webroot: path.join(dir, 'no-webroot') } };
    const lines = await problemsOf(cfg);
    assert.deepEqual(lines, [
      `acme.caBundle: cannot read ${path.join(dir, 'no-ca.pem')}: no such file or directory`,
      `certificates[0].challenge.http.webroot: directory ${path.join(dir, 'no-webroot')}: no such file or directory`,
    ]);
  });

  it('mtaSts.caBundle: missing, a directory, or without a certificate', async () => {
    const cfg = await baseConfig();
    cfg.certificates.push(cert('mx2', await writeSecret(SECRET)), cert('mx3', await writeSecret(SECRET)));
    const notPem = path.join(dir, 'mta-sts-not-pem.txt');
    await writeFile(notPem, 'hello\n');
    cfg.certificates[0].mtaSts = { domain: 'example.com', caBundle: path.join(dir, 'no-mta-sts-ca.pem') };
    cfg.certificates[1].mtaSts = { domain: 'example.com', caBundle: dir };
    cfg.certificates[2].mtaSts = { domain: 'example.com', caBundle: notPem };
    assert.deepEqual(await problemsOf(cfg), [
      `certificates[0].mtaSts.caBundle: cannot read ${path.join(dir, 'no-mta-sts-ca.pem')}: no such file or directory`,
      'certificates[1].mtaSts.caBundle: not a regular file',
      'certificates[2].mtaSts.caBundle: no PEM certificate in file',
    ]);
  });

  it('mtaSts.caBundle that exists and holds a certificate is accepted', async () => {
    const cfg = await baseConfig();
    const ca = path.join(dir, 'mta-sts-ca.pem');
    await writeFile(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    cfg.certificates[0].mtaSts = { domain: 'example.com', caBundle: ca };
    const loaded = await loadConfig(await writeConfig(cfg), { env: {} });
    assert.equal(loaded.certificates[0]!.mtaSts?.caBundle, ca);
  });

  it('reports every problem at once, in file order, schema and semantic alike', async () => {
    const cfg = await baseConfig();
    const leaky = await writeSecret(SECRET, 0o644);
    cfg.certificates.push(cert('mx2', leaky)); // semantic problem in a valid certificate
    cfg.certificates[0].challenge.dns.port = 'fifty-three'; // schema problem
    cfg.certificates[0].keys = ['ecdsa-p256', 'dsa'];
    cfg.bogus = true; // comes last in the file
    delete cfg.acme.directory;
    const lines = await problemsOf(cfg);
    // `keys` was added last, so it sits below `challenge` in the file; the
    // schema would list it first.
    assert.deepEqual(lines, [
      'acme.directory: required',
      'certificates[0].challenge.dns.port: expected number, got string',
      'certificates[0].keys[1]: must be one of "ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096", got "dsa"',
      'certificates[1].challenge.dns.tsig.secretFile: file is readable by others (mode 0644); use 0600',
      'bogus: unknown key "bogus"',
    ]);
  });
});

describe('loadConfig: ownership and modes (the config, hooks, output directories)', () => {
  const isRoot = process.geteuid?.() === 0;
  const RULE = 'it and every directory above it must be owned by root and writable by no one else';

  async function configWithMode(content: Obj, mode: number, where = dir): Promise<string> {
    const file = path.join(where, `config-${++n}.yaml`);
    await writeFile(file, stringify(content), { mode });
    await chmod(file, mode);
    return file;
  }
  async function problemsAt(file: string): Promise<string[]> {
    const err = await loadConfig(file, { env: {} }).then(() => assert.fail('expected a ConfigError'), (e: unknown) => e);
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }

  it('an inline acme.eab.hmacKey in a config group or others can read is refused at its YAML path; 0600 is fine', async () => {
    const cfg = await baseConfig();
    cfg.acme.eab = { kid: 'kid-1', hmacKey: SECRET };
    assert.deepEqual(await problemsAt(await configWithMode(cfg, 0o644)), [
      'acme.eab.hmacKey: an inline secret, and the config file is readable by others (mode 0644); use hmacKeyFile (mode 0600) or hmacKeyEnv, or make the config 0600',
    ]);
    hasLine(await problemsAt(await configWithMode(cfg, 0o640)), 'acme.eab.hmacKey: an inline secret, and the config file is readable by group (mode 0640)');
    const ok = await loadConfig(await configWithMode(cfg, 0o600));
    assert.equal(ok.acme.eab?.hmacKey, SECRET);
    // Without an inline secret a 0644 config is fine.
    delete cfg.acme.eab;
    await loadConfig(await configWithMode(cfg, 0o644));
  });

  it('a secret-looking hook publisher variable in a readable config is refused too', async () => {
    const cfg = await baseConfig();
    cfg.certificates[0].dane = { enabled: true, publisher: { provider: 'hook', command: '/bin/true', nameservers: ['127.0.0.1:53'], env: { NSUPDATE_SERVER: '127.0.0.1', DNS_API_TOKEN: SECRET } } };
    const lines = await problemsAt(await configWithMode(cfg, 0o644));
    assert.deepEqual(lines, ['certificates[0].dane.publisher.env.DNS_API_TOKEN: looks like a secret, and the config file is readable by others (mode 0644); pass the hook a file name instead, or make the config 0600']);
    assert.ok(!lines.join('\n').includes(SECRET));
  });

  it('a config that group or others can write is refused, naming the file and its mode', async () => {
    const cfg = await baseConfig();
    const file = await configWithMode(cfg, 0o664);
    assert.deepEqual(await problemsAt(file), [`: refusing config file ${file}: ${file} is writable by group or others (mode 0664); ${RULE}`]);
  });

  it('a config owned by another user, or in a directory others can write, is refused', { skip: !isRoot && 'needs root to chown' }, async () => {
    const cfg = await baseConfig();
    const theirs = await configWithMode(cfg, 0o600);
    await chown(theirs, 65534, 65534);
    assert.deepEqual(await problemsAt(theirs), [`: refusing config file ${theirs}: ${theirs} is owned by uid 65534 (nobody), not root; ${RULE}`]);
    const open = path.join(dir, 'open-etc');
    await mkdir(open);
    await chmod(open, 0o777);
    const inOpen = await configWithMode(cfg, 0o600, open);
    assert.deepEqual(await problemsAt(inOpen), [`: refusing config file ${inOpen}: directory ${open} is writable by group or others (mode 0777); ${RULE}`]);
  });

  it('a hook of mode 0777 owned by nobody in a 0777 directory is refused at its YAML path', async () => {
    const open = path.join(dir, 'open-hooks');
    await mkdir(open);
    await chmod(open, 0o777);
    const hook = path.join(open, 'reload');
    await writeFile(hook, '#!/bin/sh\n');
    await chmod(hook, 0o777);
    if (isRoot) await chown(hook, 65534, 65534);
    const cfg = await baseConfig();
    cfg.certificates[0].hooks = { deploy: ['/bin/true', [hook, 'arg']], failure: [hook] };
    cfg.certificates[0].dane = { enabled: true, publisher: { provider: 'hook', command: [hook], nameservers: ['127.0.0.1:53'] } };
    const why = `refusing hook ${hook}: directory ${open} is writable by group or others (mode 0777); ${RULE}`;
    assert.deepEqual(await problemsOf(cfg), [
      `certificates[0].hooks.deploy[1]: ${why}`,
      `certificates[0].hooks.failure[0]: ${why}`,
      `certificates[0].dane.publisher.command: ${why}`,
    ]);
  });

  it('an output directory owned by nobody, or reached through a symlink, is refused at its YAML path', { skip: !isRoot && 'needs root to chown' }, async () => {
    const theirs = path.join(dir, 'their-tls');
    await mkdir(theirs, { mode: 0o755 });
    await chown(theirs, 65534, 65534);
    const linked = path.join(dir, 'tls-link');
    await symlink(OUT, linked);
    const cfg = await baseConfig();
    cfg.certificates[0].output = { combined: path.join(theirs, 'mx1.pem'), fullchain: path.join(linked, 'mx1.fullchain.pem') };
    assert.deepEqual(await problemsOf(cfg), [
      `certificates[0].output.combined: refusing output directory ${theirs}: directory ${theirs} is owned by uid 65534 (nobody), not root; ${RULE}`,
      `certificates[0].output.fullchain: refusing output directory ${linked}: ${linked} is a symlink (to ${OUT}); give the real path, mxcert does not follow links here`,
    ]);
  });
});

describe('checkConfig', () => {
  it('returns the config when it is valid', async () => {
    const r = await checkConfig(await writeConfig(await baseConfig()), { env: {} });
    assert.equal(r.ok, true);
    if (r.ok) assert.equal(r.config.certificates[0]!.name, 'mx1');
  });

  it('returns the problems instead of throwing', async () => {
    const cfg = await baseConfig();
    delete cfg.acme.directory;
    const r = await checkConfig(await writeConfig(cfg), { env: {} });
    assert.deepEqual(r, { ok: false, problems: [{ path: 'acme.directory', message: 'required' }] });
  });
});

describe('readSecret', () => {
  it('reads a plain secret file, trimmed', async () => {
    assert.equal(await readSecret({ secretFile: await writeSecret(`  ${SECRET}\n\n`) }), SECRET);
  });

  it('extracts the secret from a BIND key block', async () => {
    const file = await writeSecret(`# made by tsig-keygen\nkey "mxcert" {\n\talgorithm hmac-sha256;\n\tsecret "${BIND_SECRET}";\n};\n`);
    assert.equal(await readSecret({ secretFile: file }), BIND_SECRET);
  });

  it('picks the named block when a file holds several', async () => {
    const file = await writeSecret(`key "a" { algorithm hmac-sha256; secret "${SECRET}"; };\nkey b. { algorithm hmac-sha256; secret "${BIND_SECRET}"; };\n`);
    assert.equal(await readSecret({ secretFile: file, name: 'b' }), BIND_SECRET);
    assert.equal(await readSecret({ secretFile: file, name: 'a' }), SECRET);
    await assert.rejects(readSecret({ secretFile: file, name: 'c' }), (e: unknown) => e instanceof ConfigError && !e.message.includes(SECRET));
  });

  it('reads from the environment, trimmed', async () => {
    assert.equal(await readSecret({ secretEnv: 'S' }, { S: ` ${SECRET}\n` }), SECRET);
    await assert.rejects(readSecret({ secretEnv: 'S' }, {}), /environment variable S is not set/);
  });

  it('refuses a group-readable file without revealing its contents', async () => {
    const file = await writeSecret(SECRET, 0o640);
    await assert.rejects(readSecret({ secretFile: file }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /file is readable by group \(mode 0640\); use 0600/);
      assert.ok(!e.message.includes(SECRET));
      return true;
    });
  });
});

describe('path helpers', () => {
  it('expandOutputPath fills every {keytype} and {name}', () => {
    assert.equal(expandOutputPath('/etc/tls/{name}/{name}-{keytype}.pem', { keytype: 'rsa-2048', name: 'mx1' }), '/etc/tls/mx1/mx1-rsa-2048.pem');
    assert.equal(expandOutputPath('/etc/tls/fixed.pem', { keytype: 'rsa-2048', name: 'mx1' }), '/etc/tls/fixed.pem');
  });

  it('resolveConfigPath: --config, then $MXCERT_CONFIG, then the default', () => {
    assert.equal(resolveConfigPath('/cli.yaml', { MXCERT_CONFIG: '/env.yaml' }), '/cli.yaml');
    assert.equal(resolveConfigPath(undefined, { MXCERT_CONFIG: '/env.yaml' }), '/env.yaml');
    assert.equal(resolveConfigPath(undefined, {}), '/etc/mxcert/config.yaml');
  });
});

describe('YAML anchors and aliases at hosting scale', () => {
  it('a 1,000-certificate config sharing one challenge block through an anchor loads', async () => {
    const secretFile = await writeSecret(SECRET);
    const challenge = cert('x', secretFile).challenge;
    const certificates = Array.from({ length: 1000 }, (_, i) => ({ ...cert(`c${i}`, secretFile), challenge }));
    const text = stringify({ acme: (await baseConfig()).acme, certificates });
    // stringify writes the shared object once with an anchor and aliases it 999 times.
    assert.equal(text.match(/\*a\d+/g)?.length, 999, 'the config under test really uses aliases');
    const cfg = await loadConfig(await writeConfig(text));
    assert.equal(cfg.certificates.length, 1000);
    assert.equal(cfg.certificates[999]!.challenge.type, 'dns-01');
  });

  it('merge keys (<<: *first) share settings between hand-written certificates', async () => {
    const secretFile = await writeSecret(SECRET);
    const lines = [
      'acme: { directory: "https://acme.example.test/directory", email: postmaster@example.com }',
      'certificates:',
      '  - &first',
      '    name: m0',
      '    domains: [m0.example.com]',
      `    output: { combined: "${OUT}/m0-{keytype}.pem" }`,
      '    challenge:',
      '      type: dns-01',
      `      dns: { provider: rfc2136, server: 127.0.0.1, zone: example.com, tsig: { name: mxcert, secretFile: ${secretFile} } }`,
    ];
    for (let i = 1; i < 300; i++) {
      lines.push(`  - <<: *first`, `    name: m${i}`, `    domains: [m${i}.example.com]`, `    output: { combined: "${OUT}/m${i}-{keytype}.pem" }`);
    }
    const cfg = await loadConfig(await writeConfig(lines.join('\n')));
    assert.equal(cfg.certificates.length, 300);
    const last = cfg.certificates[299]!;
    assert.equal(last.name, 'm299');
    assert.deepEqual(last.domains, ['m299.example.com']);
    assert.equal(last.challenge.type, 'dns-01', 'the challenge block came through the merge key');
  });

  it('a 1,000-certificate config with `<<: *defaults` merge keys and aliases loads, every certificate complete', async () => {
    const secretFile = await writeSecret(SECRET);
    const lines = [
      'acme: { directory: "https://acme.example.test/directory", email: postmaster@example.com }',
      'certificates:',
      '  - &defaults',
      '    name: m0000',
      '    domains: [m0000.example.com]',
      '    keys: &keys [ecdsa-p256, rsa-2048]',
      '    challenge:',
      '      type: dns-01',
      `      dns: { provider: rfc2136, server: 127.0.0.1, zone: example.com, tsig: { name: mxcert, secretFile: ${secretFile} } }`,
      `    output: { combined: "${OUT}/{name}-{keytype}.pem" }`,
    ];
    for (let i = 1; i < 1000; i++) {
      const n = `m${String(i).padStart(4, '0')}`;
      lines.push('  - <<: *defaults', `    name: ${n}`, `    domains: [${n}.example.com]`, '    keys: *keys');
    }
    const text = lines.join('\n');
    assert.equal(text.match(/<<: \*defaults$/gm)?.length, 999);
    assert.equal(text.match(/keys: \*keys$/gm)?.length, 999);
    // The parser's own limit (100) would refuse it: this config is past it.
    assert.throws(() => parseDocument(text, { merge: true }).toJS(), /Excessive alias count/);

    const cfg = await loadConfig(await writeConfig(text));
    assert.equal(cfg.certificates.length, 1000);
    assert.equal(new Set(cfg.certificates.map((c) => c.name)).size, 1000);
    const last = cfg.certificates[999]!;
    assert.equal(last.name, 'm0999');
    assert.deepEqual(last.domains, ['m0999.example.com'], 'its own names, not the merged ones');
    assert.deepEqual(last.keys, ['ecdsa-p256', 'rsa-2048'], 'the aliased key list');
    assert.equal(last.challenge.type, 'dns-01', 'the challenge block came through the merge key');
    assert.equal(expandOutputPath(last.output.combined!, { keytype: 'rsa-2048', name: last.name }), `${OUT}/m0999-rsa-2048.pem`);
  });

  it('an alias bomb is still refused with a YAML error', async () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    let prev = 'a';
    for (const name of ['b', 'c', 'd', 'e', 'f', 'g', 'h']) {
      lines.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(', ')}]`);
      prev = name;
    }
    const err = await loadConfig(await writeConfig(lines.join('\n'))).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConfigError);
    assert.match(err.problems[0]!.message, /YAML error: Excessive alias count/);
  });
});
