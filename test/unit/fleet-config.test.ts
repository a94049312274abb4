// The fleet block of the config (docs/architecture.md, "Fleet"): shape,
// relations (member in members, `fleet: true` needs the block), the etcd URL
// policy, and the file rules for the fleet key, the etcd client key and the
// etcd password. Every problem names its YAML path; no secret is echoed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { etcdEndpointProblem } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { loadFleetKey } from '../../src/fleet/secret-files.js';

const KEY_HEX = randomBytes(32).toString('hex');
const PASSWORD = 'etcd-password-must-not-leak-5521';
const NOBODY = 65534;

let dir: string;
let OUT: string;
let n = 0;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-fleet-config-'));
  OUT = path.join(dir, 'out');
  await mkdir(OUT, { mode: 0o700 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(content: string | Buffer, mode = 0o600, name = `f-${++n}`): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, content, { mode });
  await chmod(p, mode);
  return p;
}

type Obj = Record<string, any>;

async function base(): Promise<Obj> {
  return {
    acme: { directory: 'https://acme.example.test/directory' },
    fleet: {
      member: 'mx-a',
      members: ['mx-a', 'mx-b', 'mx-c'],
      etcd: { endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379', 'https://10.0.0.3:2379'], prefix: '/mxcert/example.com/' },
      keyEncryption: { keyFile: await file(`${KEY_HEX}\n`) },
    },
    certificates: [
      {
        name: 'mx',
        fleet: true,
        domains: ['mx.example.com'],
        challenge: { type: 'http-01', http: { listen: '[::]:80' } },
        output: { combined: `${OUT}/mx-{keytype}.pem` },
      },
    ],
  };
}

async function load(cfg: Obj) {
  return loadConfig(await file(stringify(cfg), 0o600, `config-${++n}.yaml`), { env: {} });
}

async function problemsOf(cfg: Obj): Promise<string[]> {
  const err = await load(cfg).then(
    () => assert.fail('expected a ConfigError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, String(err));
  const lines = err.problems.map((p) => `${p.path}: ${p.message}`);
  for (const l of lines) {
    assert.ok(!l.includes(KEY_HEX) && !l.includes(PASSWORD), `a secret leaked into: ${l}`);
  }
  return lines;
}

function hasLine(lines: string[], prefix: string): void {
  assert.ok(lines.some((l) => l.startsWith(prefix)), `no problem starting with ${JSON.stringify(prefix)} in:\n${lines.join('\n')}`);
}

describe('fleet config: valid', () => {
  it('loads with its defaults; certificates are not fleet certificates unless marked', async () => {
    const cfg = await base();
    cfg.certificates.push({ ...cfg.certificates[0], name: 'local', fleet: undefined, output: { combined: `${OUT}/local.pem` } });
    const c = await load(cfg);
    assert.equal(c.fleet?.member, 'mx-a');
    assert.equal(c.fleet?.leaseTtl, 10_000);
    assert.equal(c.fleet?.etcd.dialTimeout, 5000);
    assert.equal(c.fleet?.etcd.requestTimeout, 5000);
    assert.equal(c.certificates[0]!.fleet, true);
    assert.equal(c.certificates[1]!.fleet, false);
  });

  it('a config without fleet has no fleet and its certificates are local', async () => {
    const cfg = await base();
    delete cfg.fleet;
    delete cfg.certificates[0].fleet;
    const c = await load(cfg);
    assert.equal(c.fleet, undefined);
    assert.equal(c.certificates[0]!.fleet, false);
  });

  it('TLS with a client certificate, or user and password; plain http to loopback', async () => {
    const cfg = await base();
    cfg.fleet.etcd.tls = {
      caFile: await file('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 0o644),
      certFile: await file('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 0o644),
      keyFile: await file('-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n'),
    };
    cfg.fleet.etcd.auth = { username: 'mxcert', passwordFile: await file(PASSWORD) };
    cfg.fleet.leaseTtl = '3s';
    const c = await load(cfg);
    assert.equal(c.fleet?.leaseTtl, 3000);
    cfg.fleet.etcd.endpoints = ['http://127.0.0.1:2379', 'http://[::1]:2379', 'http://localhost:2379'];
    delete cfg.fleet.etcd.tls;
    await load(cfg);
  });

  it('the fleet key as base64 of 32 bytes', async () => {
    const cfg = await base();
    cfg.fleet.keyEncryption.keyFile = await file(randomBytes(32).toString('base64'));
    await load(cfg);
  });
});

describe('fleet config: relations and names', () => {
  it('member must be one of members', async () => {
    const cfg = await base();
    cfg.fleet.member = 'mx-d';
    assert.deepEqual(await problemsOf(cfg), ['fleet.member: "mx-d" is not in fleet.members (mx-a, mx-b, mx-c)']);
  });

  it('member names are lower-case DNS labels, each listed once', async () => {
    const cfg = await base();
    cfg.fleet.members = ['mx-a', 'MX_B', 'mx-', 'a'.repeat(64), 'mx/c', 'mx-a'];
    const lines = await problemsOf(cfg);
    for (const i of [1, 2, 3, 4]) hasLine(lines, `fleet.members[${i}]: must be a DNS label`);
    hasLine(lines, 'fleet.members[5]: duplicate member "mx-a"');
  });

  it('fleet: true without the top-level fleet block', async () => {
    const cfg = await base();
    delete cfg.fleet;
    assert.deepEqual(await problemsOf(cfg), ['certificates[0].fleet: a fleet certificate needs the top-level fleet block (member, members, etcd, keyEncryption)']);
  });

  it('an invalid fleet block is reported as such, not also as a missing one', async () => {
    const cfg = await base();
    cfg.fleet.etcd.prefix = 'mxcert';
    const lines = await problemsOf(cfg);
    assert.deepEqual(lines, ['fleet.etcd.prefix: must start and end with "/" and hold segments of letters, digits, dot, dash, underscore (e.g. "/mxcert/example.com/")']);
  });

  it('prefix, lease TTL and timeouts', async () => {
    const cfg = await base();
    cfg.fleet.etcd.prefix = '/mxcert/example.com';
    cfg.fleet.leaseTtl = '1500ms';
    cfg.fleet.etcd.requestTimeout = '10ms';
    const lines = await problemsOf(cfg);
    hasLine(lines, 'fleet.etcd.prefix: must start and end with "/"');
    hasLine(lines, 'fleet.leaseTtl: must be whole seconds');
    hasLine(lines, 'fleet.etcd.requestTimeout: must be at least 100ms');
    cfg.fleet.etcd.prefix = '/mxcert/';
    cfg.fleet.leaseTtl = '1s';
    cfg.fleet.etcd.requestTimeout = '1s';
    assert.deepEqual(await problemsOf(cfg), ['fleet.leaseTtl: must be between 2s and 300s']);
  });

  it('unknown keys in the fleet block are errors with a suggestion', async () => {
    const cfg = await base();
    cfg.fleet.etcd.endpoint = cfg.fleet.etcd.endpoints;
    const lines = await problemsOf(cfg);
    hasLine(lines, 'fleet.etcd.endpoint: unknown key "endpoint"; did you mean "endpoints"?');
  });
});

describe('fleet config: etcd endpoints follow the URL policy', () => {
  it('https anywhere, plain http to loopback only, scheme://host:port and nothing else', () => {
    assert.equal(etcdEndpointProblem('https://10.0.0.1:2379'), undefined);
    assert.equal(etcdEndpointProblem('https://etcd1.example.com:2379/'), undefined);
    assert.equal(etcdEndpointProblem('http://127.0.0.2:2379'), undefined);
    assert.equal(etcdEndpointProblem('http://[::1]:2379'), undefined);
    assert.match(etcdEndpointProblem('http://10.0.0.1:2379')!, /plain http:\/\/ is allowed only to loopback .*not to 10\.0\.0\.1/);
    assert.match(etcdEndpointProblem('http://etcd.localhost:2379')!, /only to loopback/);
    assert.match(etcdEndpointProblem('ftp://10.0.0.1:2379')!, /must be an https:\/\/ URL, not ftp:/);
    assert.match(etcdEndpointProblem('https://10.0.0.1')!, /must name the port/);
    assert.match(etcdEndpointProblem('https://10.0.0.1:2379/v3')!, /no path/);
    assert.match(etcdEndpointProblem('https://u:p@10.0.0.1:2379')!, /must not hold credentials/);
    assert.match(etcdEndpointProblem('10.0.0.1:2379')!, /https:\/\/ URL|not a URL/);
  });

  it('in a config: the entry is named; mixed schemes and tls over http are refused', async () => {
    const cfg = await base();
    cfg.fleet.etcd.endpoints = ['https://10.0.0.1:2379', 'http://10.0.0.2:2379'];
    hasLine(await problemsOf(cfg), 'fleet.etcd.endpoints[1]: plain http:// is allowed only to loopback');
    cfg.fleet.etcd.endpoints = ['https://10.0.0.1:2379', 'http://127.0.0.1:2379'];
    assert.deepEqual(await problemsOf(cfg), ['fleet.etcd.endpoints: use https:// for every endpoint or for none']);
    cfg.fleet.etcd.endpoints = ['http://127.0.0.1:2379'];
    cfg.fleet.etcd.tls = { caFile: await file('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 0o644) };
    assert.deepEqual(await problemsOf(cfg), ['fleet.etcd.tls: tls needs https:// endpoints']);
  });
});

describe('fleet config: secret files', () => {
  it('the fleet key must hold exactly 32 bytes', async () => {
    const cfg = await base();
    cfg.fleet.keyEncryption.keyFile = await file(KEY_HEX.slice(0, 62));
    const lines = await problemsOf(cfg);
    assert.equal(lines.length, 1);
    hasLine(lines, `fleet.keyEncryption.keyFile: ${cfg.fleet.keyEncryption.keyFile}: must hold exactly 32 bytes as 64 hex digits or base64`);
  });

  it('a fleet block that fails the schema still has its files checked: every problem in one run', async () => {
    const cfg = await base();
    cfg.fleet.member = 'mx-z';
    cfg.fleet.keyEncryption.keyFile = await file(KEY_HEX, 0o644);
    cfg.fleet.etcd.auth = { username: 'mxcert', passwordFile: await file(PASSWORD, 0o604) };
    const lines = await problemsOf(cfg);
    hasLine(lines, 'fleet.member: "mx-z" is not in fleet.members');
    hasLine(lines, `fleet.keyEncryption.keyFile: ${cfg.fleet.keyEncryption.keyFile}: file is readable by others`);
    hasLine(lines, `fleet.etcd.auth.passwordFile: ${cfg.fleet.etcd.auth.passwordFile}: file is readable by others`);
    assert.equal(lines.length, 3, lines.join('\n'));
  });

  it('the fleet key may not be readable by group or others', async () => {
    const cfg = await base();
    cfg.fleet.keyEncryption.keyFile = await file(KEY_HEX, 0o644);
    hasLine(await problemsOf(cfg), `fleet.keyEncryption.keyFile: ${cfg.fleet.keyEncryption.keyFile}: file is readable by others (mode 0644); use 0600`);
    await chmod(cfg.fleet.keyEncryption.keyFile, 0o640);
    hasLine(await problemsOf(cfg), 'fleet.keyEncryption.keyFile: ' + `${cfg.fleet.keyEncryption.keyFile}: file is readable by group`);
  });

  it('the fleet key must be owned by root, in directories only root can write', async () => {
    const cfg = await base();
    const owned = await file(KEY_HEX);
    await chown(owned, NOBODY, NOBODY);
    cfg.fleet.keyEncryption.keyFile = owned;
    hasLine(await problemsOf(cfg), `fleet.keyEncryption.keyFile: refusing secret file ${owned}: ${owned} is owned by uid ${NOBODY}`);

    const open = path.join(dir, `open-${++n}`);
    await mkdir(open);
    await chmod(open, 0o777);
    const inOpen = path.join(open, 'fleet.key');
    await writeFile(inOpen, KEY_HEX, { mode: 0o600 });
    cfg.fleet.keyEncryption.keyFile = inOpen;
    hasLine(await problemsOf(cfg), `fleet.keyEncryption.keyFile: refusing secret file ${inOpen}: directory ${open} is writable by group or others`);
  });

  it('a missing fleet key file', async () => {
    const cfg = await base();
    cfg.fleet.keyEncryption.keyFile = path.join(dir, 'absent.key');
    assert.deepEqual(await problemsOf(cfg), [`fleet.keyEncryption.keyFile: ${path.join(dir, 'absent.key')} does not exist`]);
  });

  it('the etcd password file: mode rule, not empty', async () => {
    const cfg = await base();
    cfg.fleet.etcd.auth = { username: 'mxcert', passwordFile: await file(PASSWORD, 0o640) };
    hasLine(await problemsOf(cfg), 'fleet.etcd.auth.passwordFile: ');
    cfg.fleet.etcd.auth.passwordFile = await file('\n');
    assert.deepEqual(await problemsOf(cfg), [`fleet.etcd.auth.passwordFile: ${cfg.fleet.etcd.auth.passwordFile}: file is empty`]);
  });

  it('the etcd client key: mode rule and a PEM key; certFile and keyFile go together', async () => {
    const cfg = await base();
    cfg.fleet.etcd.tls = { certFile: await file('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 0o644) };
    assert.deepEqual(await problemsOf(cfg), ['fleet.etcd.tls.keyFile: certFile and keyFile go together']);
    cfg.fleet.etcd.tls.keyFile = await file('-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n', 0o604);
    hasLine(await problemsOf(cfg), `fleet.etcd.tls.keyFile: ${cfg.fleet.etcd.tls.keyFile}: file is readable by others`);
    cfg.fleet.etcd.tls.keyFile = await file('not a key');
    assert.deepEqual(await problemsOf(cfg), [`fleet.etcd.tls.keyFile: ${cfg.fleet.etcd.tls.keyFile}: no PEM private key in file`]);
    cfg.fleet.etcd.tls.keyFile = await file('-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n');
    cfg.fleet.etcd.tls.caFile = await file('no certificate here', 0o644);
    assert.deepEqual(await problemsOf(cfg), ['fleet.etcd.tls.caFile: no PEM certificate in file']);
  });

  it('loadFleetKey at run time: the key, or a ConfigError naming the YAML path and the file', async () => {
    const good = await file(`${KEY_HEX}\n`);
    const key = await loadFleetKey(good);
    assert.equal(key.bytes.toString('hex'), KEY_HEX);
    const bad = await file(KEY_HEX, 0o644);
    await assert.rejects(loadFleetKey(bad), (e: unknown) => e instanceof ConfigError && e.problems[0]!.path === 'fleet.keyEncryption.keyFile' && e.message.includes(bad) && !e.message.includes(KEY_HEX));
  });
});
