// Broken configs: a corpus of broken config files (types, unknown
// keys, bad durations, unreachable paths, loose secret modes, duplicate
// names, conflicting outputs, bad cron, bad key types, missing publisher
// secret files, …). For each, both `mxcert config check` and `mxcert renew
// --force` must exit 2 and print a line `YAML.PATH: message` for the expected
// path, and nothing on disk may change: the stateDir is not created, the
// output directory and everything else under the test's root stay as they
// were (names, modes, sizes, mtimes, contents).
//
// No servers are needed: a config error must stop mxcert before it talks to
// anyone (acme.directory points at a port where nothing listens, so a run
// that got further would fail differently, with exit 1).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { run } from '../env/proc.js';
import { CliLog } from './support/cli-log.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Cfg = Record<string, any>;

interface Case {
  what: string;
  /** Change the valid base config (or return YAML text to write instead). */
  mutate: (c: Cfg) => void | string | Promise<void | string>;
  /** The YAML path a problem line must start with. */
  path: string;
  /** What that line must also say. */
  message?: RegExp;
  /** Extra environment for both runs. */
  env?: NodeJS.ProcessEnv;
}

describe('faults: a corpus of broken configs', { timeout: 600_000 }, () => {
  let root: string;
  let world: string;
  let configs: string;
  let stateDir: string;
  let outDir: string;
  let secrets: string;
  let caPem: string;
  let tsigFile: string;
  const log = new CliLog();
  const tsigSecret = randomBytes(32).toString('base64');
  const eabKey = randomBytes(32).toString('base64url');

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mxcert-faults-config-'));
    // Everything a run could touch lives under `world`; the config files go beside it.
    world = path.join(root, 'world');
    configs = path.join(root, 'configs');
    stateDir = path.join(world, 'state');
    outDir = path.join(world, 'out');
    secrets = path.join(world, 'secrets');
    for (const d of [world, configs, outDir, secrets]) await mkdir(d, { recursive: true, mode: 0o700 });
    // Runs start in a directory of their own, so a relative path in a broken config lands nowhere that matters.
    log.cwd = configs;
    // Existing output files, as on a host that already has certificates.
    await writeFile(path.join(outDir, 'mx1-ecdsa-p256.pem'), '-----BEGIN PRIVATE KEY-----\nold\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    await writeFile(path.join(outDir, 'mx1-ecdsa-p256.fullchain.pem'), 'old fullchain\n', { mode: 0o600 });
    caPem = path.join(world, 'ca.pem');
    await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', path.join(root, 'ca.key'),
      '-out', caPem, '-days', '2', '-subj', '/CN=mxcert faults config CA']);
    tsigFile = path.join(secrets, 'tsig.secret');
    await writeFile(tsigFile, tsigSecret, { mode: 0o600 });
    await writeFile(path.join(secrets, 'eab.key'), eabKey, { mode: 0o600 });
  });
  after(async () => {
    if (root && !process.env.MXCERT_TEST_KEEP) await rm(root, { recursive: true, force: true });
  });

  /** A valid config: the corpus is this with one thing broken. Each case has its own stateDir. */
  function base(state = stateDir): Cfg {
    return {
      stateDir: state,
      schedule: '17 * * * *',
      acme: { directory: 'https://127.0.0.1:9/dir', email: 'postmaster@example.test', caBundle: caPem, trustAnchors: caPem },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.test'],
          keys: ['ecdsa-p256'],
          challenge: {
            type: 'dns-01',
            dns: {
              provider: 'rfc2136',
              server: '127.0.0.1',
              port: 5353,
              zone: 'example.test',
              tsig: { name: 'mxcert-update', algorithm: 'hmac-sha256', secretFile: tsigFile },
              ttl: 5,
              propagationTimeout: '30s',
            },
          },
          output: { combined: path.join(outDir, 'mx1-{keytype}.pem'), fullchain: path.join(outDir, 'mx1-{keytype}.fullchain.pem'), mode: '0600' },
          hooks: { deploy: ['/bin/true'], timeout: '10s' },
          verify: { smtp: ['127.0.0.1:25'], timeout: '15s' },
        },
      ],
    };
  }
  const cert = (c: Cfg, i = 0): Cfg => c.certificates[i];
  const second = (c: Cfg): Cfg => {
    const copy = structuredClone(cert(c)) as Cfg;
    copy.name = 'mx2';
    copy.domains = ['mx2.example.test'];
    copy.output = { combined: path.join(outDir, 'mx2-{keytype}.pem') };
    c.certificates.push(copy);
    return copy;
  };
  /** A secret file with this content and mode, under `secrets`. */
  async function secretFile(name: string, content: string, mode: number): Promise<string> {
    const f = path.join(secrets, name);
    await writeFile(f, content, { mode });
    await chmod(f, mode);
    return f;
  }
  const dane = (publisher: Cfg): Cfg => ({ enabled: true, endpoints: [{ host: 'mx1.example.test', port: 25 }], publisher, keyLifetime: '90d', minHold: '1h' });

  const CASES: Case[] = [
    // --- unknown keys
    { what: 'unknown top-level key', mutate: (c) => void (c.stateDri = '/x'), path: 'stateDri', message: /unknown key "stateDri"; did you mean "stateDir"\?/ },
    { what: 'unknown key in acme', mutate: (c) => void (c.acme.contact = ['mailto:a@b']), path: 'acme.contact', message: /unknown key/ },
    { what: 'unknown key in tsig', mutate: (c) => void (cert(c).challenge.dns.tsig.secret_file = tsigFile), path: 'certificates[0].challenge.dns.tsig.secret_file', message: /unknown key/ },
    { what: 'unknown key in hooks', mutate: (c) => void (cert(c).hooks.post = ['/bin/true']), path: 'certificates[0].hooks.post', message: /unknown key/ },
    { what: 'unknown key in verify', mutate: (c) => void (cert(c).verify.smpt = ['127.0.0.1:25']), path: 'certificates[0].verify.smpt', message: /did you mean "smtp"/ },
    // --- types
    { what: 'stateDir not absolute', mutate: (c) => void (c.stateDir = 'var/lib/mxcert'), path: 'stateDir', message: /absolute/ },
    { what: 'stateDir a number', mutate: (c) => void (c.stateDir = 42), path: 'stateDir', message: /expected string, got number/ },
    { what: 'certificates empty', mutate: (c) => void (c.certificates = []), path: 'certificates', message: /must not be empty/ },
    { what: 'certificates a mapping', mutate: (c) => void (c.certificates = { mx1: cert(c) }), path: 'certificates', message: /expected list/ },
    { what: 'acme.directory not a URL', mutate: (c) => void (c.acme.directory = 'acme.example.test/dir'), path: 'acme.directory', message: /URL/ },
    { what: 'acme.directory over plain http', mutate: (c) => void (c.acme.directory = 'http://127.0.0.1:9/dir'), path: 'acme.directory', message: /must be an https:\/\/ URL: ACME runs over HTTPS only \(RFC 8555 §6\.1\)/ },
    { what: 'acme.email not an address', mutate: (c) => void (c.acme.email = 'postmaster'), path: 'acme.email', message: /email/ },
    { what: 'acme.ari a string', mutate: (c) => void (c.acme.ari = 'yes'), path: 'acme.ari', message: /expected boolean/ },
    { what: 'acme.termsOfServiceAgreed a string', mutate: (c) => void (c.acme.termsOfServiceAgreed = 'yes'), path: 'acme.termsOfServiceAgreed', message: /expected boolean/ },
    { what: 'acme.profile a number', mutate: (c) => void (c.acme.profile = 7), path: 'acme.profile', message: /expected string/ },
    { what: 'acme.staging over plain http', mutate: (c) => void (c.acme.staging = 'http://127.0.0.1:9/dir'), path: 'acme.staging', message: /must be an https:\/\/ URL/ },
    { what: 'acme.preferredChain empty', mutate: (c) => void (c.acme.preferredChain = ''), path: 'acme.preferredChain' },
    { what: 'a certificate’s fleet flag a string', mutate: (c) => void (cert(c).fleet = 'yes'), path: 'certificates[0].fleet', message: /expected boolean/ },
    {
      what: 'fleet.member not among fleet.members',
      mutate: async (c) =>
        void (c.fleet = { member: 'mx1', members: ['mx2', 'mx3'], etcd: { endpoints: ['http://127.0.0.1:9'], prefix: '/mxcert/example.test/' }, keyEncryption: { keyFile: await secretFile('fleet.key', `${randomBytes(32).toString('hex')}\n`, 0o600) } }),
      path: 'fleet.member',
      message: /"mx1" is not in fleet\.members \(mx2, mx3\)/,
    },
    { what: 'sni without postfix or dovecot', mutate: (c) => void (c.sni = {}), path: 'sni', message: /give postfix, dovecot or both/ },
    { what: 'usage names something a certificate is not for', mutate: (c) => void (cert(c).usage = ['smtp']), path: 'certificates[0].usage[0]', message: /server.*client/ },
    { what: 'reuseKey a string', mutate: (c) => void (cert(c).reuseKey = 'true'), path: 'certificates[0].reuseKey', message: /expected boolean/ },
    { what: 'certificate name with a space', mutate: (c) => void (cert(c).name = 'mx 1'), path: 'certificates[0].name' },
    { what: 'domains empty', mutate: (c) => void (cert(c).domains = []), path: 'certificates[0].domains', message: /must not be empty/ },
    { what: 'domain not a DNS name', mutate: (c) => void (cert(c).domains = ['mx1..example.test']), path: 'certificates[0].domains[0]', message: /DNS name/ },
    { what: 'challenge type unknown', mutate: (c) => void (cert(c).challenge.type = 'tls-alpn-01'), path: 'certificates[0].challenge.type', message: /"dns-01", "http-01"/ },
    { what: 'dns port out of range', mutate: (c) => void (cert(c).challenge.dns.port = 70000), path: 'certificates[0].challenge.dns.port', message: /at most 65535/ },
    { what: 'dns ttl negative', mutate: (c) => void (cert(c).challenge.dns.ttl = -5), path: 'certificates[0].challenge.dns.ttl' },
    { what: 'http-01 listen and webroot both', mutate: (c) => void (cert(c).challenge = { type: 'http-01', http: { listen: '127.0.0.1:80', webroot: outDir } }), path: 'certificates[0].challenge.http', message: /exactly one of listen or webroot/ },
    { what: 'http-01 listen without port', mutate: (c) => void (cert(c).challenge = { type: 'http-01', http: { listen: 'localhost' } }), path: 'certificates[0].challenge.http.listen', message: /host:port/ },
    { what: 'verify.smtp without port', mutate: (c) => void (cert(c).verify.smtp = ['127.0.0.1']), path: 'certificates[0].verify.smtp[0]', message: /host:port/ },
    { what: 'hook path relative', mutate: (c) => void (cert(c).hooks.deploy = ['postfix-reload']), path: 'certificates[0].hooks.deploy[0]' },
    { what: 'output mode unquoted (YAML reads 600)', mutate: (c) => void (cert(c).output.mode = 600), path: 'certificates[0].output.mode', message: /quote octal modes/ },
    { what: 'output mode not octal', mutate: (c) => void (cert(c).output.mode = '0999'), path: 'certificates[0].output.mode', message: /octal/ },
    { what: 'metrics.listen without host', mutate: (c) => void (c.metrics = { listen: '9469' }), path: 'metrics.listen' },
    // --- bad durations
    { what: 'propagationTimeout in words', mutate: (c) => void (cert(c).challenge.dns.propagationTimeout = '10 minutes'), path: 'certificates[0].challenge.dns.propagationTimeout', message: /not a duration/ },
    { what: 'hooks.timeout negative', mutate: (c) => void (cert(c).hooks.timeout = '-5s'), path: 'certificates[0].hooks.timeout', message: /not a duration/ },
    { what: 'passTimeout under a second', mutate: (c) => void (c.passTimeout = '500ms'), path: 'passTimeout', message: /at least 1s/ },
    { what: 'passTimeout in words', mutate: (c) => void (c.passTimeout = 'an hour'), path: 'passTimeout', message: /not a duration/ },
    { what: 'verify.timeout in weeks', mutate: (c) => void (cert(c).verify.timeout = '1w'), path: 'certificates[0].verify.timeout', message: /not a duration/ },
    { what: 'dane.keyLifetime in words', mutate: (c) => void (cert(c).dane = { ...dane({ provider: 'hook', command: '/bin/true', nameservers: ['127.0.0.1:53'] }), keyLifetime: 'ninety days' }), path: 'certificates[0].dane.keyLifetime', message: /not a duration/ },
    // --- bad cron
    { what: 'schedule minute 61', mutate: (c) => void (c.schedule = '61 * * * *'), path: 'schedule', message: /cron/ },
    { what: 'schedule in words', mutate: (c) => void (c.schedule = 'every hour'), path: 'schedule', message: /cron/ },
    // --- bad key types
    { what: 'key type rsa-1024', mutate: (c) => void (cert(c).keys = ['rsa-1024']), path: 'certificates[0].keys[0]', message: /"ecdsa-p256"/ },
    { what: 'keys a string', mutate: (c) => void (cert(c).keys = 'ecdsa-p256'), path: 'certificates[0].keys', message: /expected list/ },
    { what: 'the same key type twice', mutate: (c) => void (cert(c).keys = ['ecdsa-p256', 'ecdsa-p256']), path: 'certificates[0].keys[1]', message: /ecdsa-p256/ },
    { what: 'TSIG algorithm unknown', mutate: (c) => void (cert(c).challenge.dns.tsig.algorithm = 'hmac-sha3'), path: 'certificates[0].challenge.dns.tsig.algorithm' },
    // --- unreachable paths
    { what: 'caBundle missing', mutate: (c) => void (c.acme.caBundle = path.join(world, 'nope.pem')), path: 'acme.caBundle', message: /no such file/ },
    { what: 'trustAnchors holds no PEM', mutate: async (c) => void (c.acme.trustAnchors = await secretFile('not-pem.txt', 'hello\n', 0o644)), path: 'acme.trustAnchors', message: /no PEM certificate/ },
    { what: 'mtaSts.caBundle missing', mutate: (c) => void (cert(c).mtaSts = { domain: 'example.test', caBundle: path.join(world, 'no-mta-sts-ca.pem') }), path: 'certificates[0].mtaSts.caBundle', message: /no such file/ },
    { what: 'webroot missing', mutate: (c) => void (cert(c).challenge = { type: 'http-01', http: { webroot: path.join(world, 'www') } }), path: 'certificates[0].challenge.http.webroot', message: /no such file/ },
    { what: 'TSIG secret file missing', mutate: (c) => void (cert(c).challenge.dns.tsig.secretFile = path.join(secrets, 'nope')), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /no such file/ },
    { what: 'TSIG secret file is a directory', mutate: (c) => void (cert(c).challenge.dns.tsig.secretFile = secrets), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /not a regular file/ },
    { what: 'output directory missing', mutate: (c) => void (cert(c).output.combined = path.join(world, 'no-such-dir', 'mx1.pem')), path: 'certificates[0].output.combined', message: /no-such-dir/ },
    { what: 'deploy hook missing', mutate: (c) => void (cert(c).hooks.deploy = [path.join(world, 'no-such-hook')]), path: 'certificates[0].hooks.deploy[0]', message: /no-such-hook/ },
    // --- loose secret modes
    { what: 'TSIG secret readable by group', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('tsig-0640', tsigSecret, 0o640)), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /readable by group \(mode 0640\); use 0600/ },
    { what: 'TSIG secret writable by others', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('tsig-0602', tsigSecret, 0o602)), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /writable by others/ },
    { what: 'EAB key file readable by others', mutate: async (c) => void (c.acme.eab = { kid: 'kid-1', hmacKeyFile: await secretFile('eab-0644', eabKey, 0o644) }), path: 'acme.eab.hmacKeyFile', message: /readable by others \(mode 0644\)/ },
    // --- secrets missing or malformed
    { what: 'TSIG secret not base64', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('tsig-junk', 'not base64 at all!', 0o600)), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /not valid base64/ },
    { what: 'TSIG key file for another key name', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('tsig-other.key', `key "other-key" { algorithm hmac-sha256; secret "${tsigSecret}"; };\n`, 0o600)), path: 'certificates[0].challenge.dns.tsig.name', message: /"mxcert-update" is not the key in .*tsig-other\.key, which is for key "other-key"/ },
    { what: 'certbot credentials file for another algorithm', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('certbot-sha512.ini', `dns_rfc2136_name = mxcert-update\ndns_rfc2136_secret = ${tsigSecret}\ndns_rfc2136_algorithm = HMAC-SHA512\n`, 0o600)), path: 'certificates[0].challenge.dns.tsig.algorithm', message: /hmac-sha256 differs from .*certbot-sha512\.ini, which uses hmac-sha512/ },
    { what: 'certbot credentials file without a secret', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('certbot-nosecret.ini', 'dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_name = mxcert-update\n', 0o600)), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /certbot credentials file has no dns_rfc2136_secret/ },
    { what: 'certbot credentials file readable by others', mutate: async (c) => void (cert(c).challenge.dns.tsig.secretFile = await secretFile('certbot-0644.ini', `dns_rfc2136_name = mxcert-update\ndns_rfc2136_secret = ${tsigSecret}\ndns_rfc2136_algorithm = HMAC-SHA256\n`, 0o644)), path: 'certificates[0].challenge.dns.tsig.secretFile', message: /readable by others \(mode 0644\); use 0600/ },
    { what: 'TSIG with no secret at all', mutate: (c) => void delete cert(c).challenge.dns.tsig.secretFile, path: 'certificates[0].challenge.dns.tsig.secretFile', message: /required/ },
    { what: 'TSIG secretEnv not set', mutate: (c) => void (cert(c).challenge.dns.tsig = { ...cert(c).challenge.dns.tsig, secretFile: undefined, secretEnv: 'FAULTS_NO_SUCH_VAR' }), path: 'certificates[0].challenge.dns.tsig.secretEnv', message: /FAULTS_NO_SUCH_VAR is not set/ },
    { what: 'EAB without any key', mutate: (c) => void (c.acme.eab = { kid: 'kid-1' }), path: 'acme.eab.hmacKey', message: /required/ },
    { what: 'EAB key inline and from a file', mutate: (c) => void (c.acme.eab = { kid: 'kid-1', hmacKey: eabKey, hmacKeyFile: path.join(secrets, 'eab.key') }), path: 'acme.eab.hmacKeyFile', message: /only one of/ },
    { what: 'the EAB key pasted into acme.email', mutate: (c) => void (c.acme.email = eabKey), path: 'acme.email', message: /email/ },
    { what: 'the TSIG secret pasted into secretEnv', mutate: (c) => void (cert(c).challenge.dns.tsig = { ...cert(c).challenge.dns.tsig, secretFile: undefined, secretEnv: tsigSecret }), path: 'certificates[0].challenge.dns.tsig.secretEnv' },
    // --- missing publisher secret files (DANE)
    { what: 'pdns API key file missing', mutate: (c) => void (cert(c).dane = dane({ provider: 'pdns', url: 'http://127.0.0.1:8081', zone: 'example.test', apiKeyFile: path.join(secrets, 'pdns.key') })), path: 'certificates[0].dane.publisher.apiKeyFile', message: /no such file/ },
    { what: 'pdns API over plain http to a remote host', mutate: async (c) => void (cert(c).dane = dane({ provider: 'pdns', url: 'http://192.0.2.53:8081', zone: 'example.test', apiKeyFile: await secretFile('pdns-remote.key', 'k', 0o600) })), path: 'certificates[0].dane.publisher.url', message: /plain http:\/\/ is allowed only to loopback .*not to 192\.0\.2\.53/ },
    { what: 'pdns API key given neither way', mutate: (c) => void (cert(c).dane = dane({ provider: 'pdns', url: 'http://127.0.0.1:8081', zone: 'example.test' })), path: 'certificates[0].dane.publisher.apiKeyFile', message: /required/ },
    { what: 'rfc2136 publisher TSIG file missing', mutate: (c) => void (cert(c).dane = dane({ provider: 'rfc2136', server: '127.0.0.1', zone: 'example.test', tsig: { name: 'k', secretFile: path.join(secrets, 'dane-tsig') } })), path: 'certificates[0].dane.publisher.tsig.secretFile', message: /no such file/ },
    { what: 'DANE publisher provider unknown', mutate: (c) => void (cert(c).dane = dane({ provider: 'route53', zone: 'example.test' })), path: 'certificates[0].dane.publisher.provider' },
    { what: 'DANE extra record malformed', mutate: (c) => void (cert(c).dane = { ...dane({ provider: 'hook', command: '/bin/true', nameservers: ['127.0.0.1:53'] }), extraRecords: ['3 1 1 nothex'] }), path: 'certificates[0].dane.extraRecords[0]' },
    // --- duplicate names, conflicting outputs
    { what: 'duplicate certificate names', mutate: (c) => void (second(c).name = 'mx1'), path: 'certificates[1].name', message: /duplicate name "mx1" \(also certificates\[0\]\.name\)/ },
    { what: 'two certificates write the same combined file', mutate: (c) => void (second(c).output.combined = cert(c).output.combined), path: 'certificates[1].output.combined', message: /conflicting output: .* also written by certificates\[0\]\.output\.combined/ },
    { what: 'combined and fullchain are the same file', mutate: (c) => void (cert(c).output.fullchain = cert(c).output.combined), path: 'certificates[0].output.fullchain', message: /conflicting output/ },
    { what: 'two key types, no {keytype} in the path', mutate: (c) => void Object.assign(cert(c), { keys: ['ecdsa-p256', 'rsa-2048'], output: { combined: path.join(outDir, 'mx1.pem') } }), path: 'certificates[0].output.combined', message: /must contain \{keytype\}/ },
    { what: 'unknown placeholder in an output path', mutate: (c) => void (cert(c).output.combined = path.join(outDir, '{domain}.pem')), path: 'certificates[0].output.combined', message: /unknown placeholder \{domain\}/ },
    { what: 'output path names a directory', mutate: (c) => void (cert(c).output.combined = `${outDir}/`), path: 'certificates[0].output.combined', message: /not a directory/ },
    // --- YAML itself
    {
      what: 'a key given twice in the YAML',
      mutate: (c) => stringify(c).replace(/^stateDir: .*$/m, (l) => `${l}\n${l}`),
      path: '',
      message: /line 2.*(duplicate|unique)|(duplicate|unique).*line 2/i,
    },
  ];

  /** Names, types, modes, sizes, mtimes and content hashes of everything under `dir`. */
  async function tree(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const walk = async (d: string): Promise<void> => {
      for (const name of (await readdir(d)).sort()) {
        const p = path.join(d, name);
        const st = await lstat(p);
        const rel = path.relative(dir, p);
        if (st.isDirectory()) {
          out[rel] = `dir ${(st.mode & 0o7777).toString(8)} ${st.mtimeMs}`;
          await walk(p);
        } else {
          const hash = st.isFile() ? createHash('sha256').update(await readFile(p)).digest('hex') : 'other';
          out[rel] = `${(st.mode & 0o7777).toString(8)} ${st.size} ${st.mtimeMs} ${hash}`;
        }
      }
    };
    await walk(dir);
    return out;
  }

  it('the base config is valid (so each case breaks exactly one thing)', async () => {
    const cfg = path.join(configs, 'base.yaml');
    await writeFile(cfg, stringify(base()), { mode: 0o600 });
    const r = await log.cli(['config', 'check', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('breaks every section of the config schema at least once', async () => {
    // The sections as the published JSON Schema has them (generated from src/config/schema.ts):
    // top-level keys, acme's keys and a certificate's keys. A new section without a broken case fails here.
    type Node = { $ref?: string; properties?: Record<string, Node>; items?: Node };
    const schema = JSON.parse(await readFile(fileURLToPath(new URL('../../config/mxcert.schema.json', import.meta.url)), 'utf8')) as Node;
    const deref = (n: Node): Node => (n.$ref ? deref(n.$ref.split('/').slice(1).reduce((o: Cfg, k) => o[k] as Cfg, schema as Cfg) as Node) : n);
    const top = deref(schema).properties!;
    const sections = [
      ...Object.keys(top),
      ...Object.keys(deref(top.acme!).properties!).map((k) => `acme.${k}`),
      ...Object.keys(deref(deref(top.certificates!).items!).properties!).map((k) => `certificates.${k}`),
    ];
    assert.ok(sections.length > 20 && sections.includes('certificates.challenge'), sections.join(', '));
    const broken = CASES.map((k) => k.path.replace(/\[\d+\]/g, ''));
    const untouched = sections.filter((sec) => !broken.some((p) => p === sec || p.startsWith(`${sec}.`)));
    assert.deepEqual(untouched, [], 'config sections no broken case targets');
    assert.equal(new Set(CASES.map((c) => c.what)).size, CASES.length, 'case names are unique');
  });

  for (const [i, k] of CASES.entries()) {
    it(`${k.what} → exit 2 naming ${k.path || '(the file)'}`, async () => {
      // Its own stateDir, so a case that wrongly gets through cannot hide the next one's problems.
      const caseState = path.join(world, `state-${i}`);
      const c = base(caseState);
      const mutated = await k.mutate(c);
      const cfg = path.join(configs, `case-${String(i).padStart(2, '0')}.yaml`);
      await writeFile(cfg, typeof mutated === 'string' ? mutated : stringify(c), { mode: 0o600 });
      const before = await tree(world);
      // Both commands at once: neither may write anything, so they cannot disturb each other.
      const commands = [['config', 'check'], ['renew', '--force']];
      const runs = await Promise.all(commands.map((args) => log.cli([...args, '--config', cfg], { env: k.env, timeoutMs: 30_000 })));
      for (const [j, r] of runs.entries()) {
        const args = commands[j]!;
        const out = `${r.stdout}${r.stderr}`;
        assert.equal(r.code, 2, `mxcert ${args.join(' ')}: exit ${r.code}\n${out}`);
        const lines = r.stderr.split('\n');
        const prefix = k.path ? `${k.path}: ` : `${cfg}: `;
        const hit = lines.find((l) => l.startsWith(prefix) || (!k.path && l.startsWith('(config): ')));
        assert.ok(hit, `mxcert ${args.join(' ')}: a line starting with "${prefix}" in:\n${r.stderr}`);
        if (k.message) assert.match(hit, k.message, `mxcert ${args.join(' ')}`);
      }
      await assert.rejects(access(caseState), 'stateDir not created');
      assert.deepEqual(await tree(world), before, 'nothing on disk changed');
    });
  }

  it('an output path that is a symlink, or in a group-writable directory → exit 2 naming the output', async () => {
    const loose = path.join(world, 'loose-out');
    await mkdir(loose, { mode: 0o775 });
    await chmod(loose, 0o775);
    const target = path.join(world, 'elsewhere.pem');
    await writeFile(target, 'not ours\n', { mode: 0o600 });
    const link = path.join(outDir, 'linked.pem');
    await symlink(target, link);
    try {
      for (const [what, combined] of [['group-writable directory', path.join(loose, 'mx1.pem')], ['symlink', link]] as const) {
        const caseState = path.join(world, `state-${what.replace(/\W+/g, '-')}`);
        const c = base(caseState);
        cert(c).output = { combined };
        const cfg = path.join(configs, `output-${what.replace(/\W+/g, '-')}.yaml`);
        await writeFile(cfg, stringify(c), { mode: 0o600 });
        const before = await tree(world);
        for (const args of [['config', 'check'], ['renew', '--force']]) {
          const r = await log.cli([...args, '--config', cfg], { timeoutMs: 30_000 });
          assert.equal(r.code, 2, `${what}, mxcert ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
          assert.match(r.stderr, /^certificates\[0\]\.output\.combined: /m, `${what}, mxcert ${args.join(' ')}`);
          await assert.rejects(access(caseState), 'stateDir not created');
        }
        assert.deepEqual(await tree(world), before, `${what}: nothing on disk changed`);
      }
    } finally {
      await rm(link, { force: true });
    }
  });

  it('who may own and write the config, hooks and output directories → exit 2 naming the YAML path (or the file)', async () => {
    const isRoot = process.geteuid?.() === 0;
    const RULE = 'it and every directory above it must be owned by root and writable by no one else';
    const loose = path.join(root, 'loose');
    await mkdir(loose);
    await chmod(loose, 0o777);
    const evilHook = path.join(loose, 'reload');
    await writeFile(evilHook, '#!/bin/sh\n');
    await chmod(evilHook, 0o777);
    if (isRoot) await chown(evilHook, 65534, 65534);
    const theirOut = path.join(world, 'their-tls');
    await mkdir(theirOut, { mode: 0o755 });
    if (isRoot) await chown(theirOut, 65534, 65534);
    const linkedOut = path.join(world, 'tls-link');
    await symlink(outDir, linkedOut);

    type SecCase = { what: string; mutate: (c: Cfg) => void; mode?: number; owner?: number; dir?: string; prefix: string; message: RegExp };
    const cases: SecCase[] = [
      { what: 'inline EAB key in a 0644 config', mutate: (c) => void (c.acme.eab = { kid: 'kid-1', hmacKey: eabKey }), mode: 0o644, prefix: 'acme.eab.hmacKey: ', message: /inline secret, and the config file is readable by others \(mode 0644\)/ },
      { what: 'config writable by group', mutate: () => undefined, mode: 0o664, prefix: '(config): ', message: /refusing config file .* is writable by group or others \(mode 0664\)/ },
      { what: 'config in a 0777 directory', mutate: () => undefined, dir: loose, prefix: '(config): ', message: new RegExp(`directory ${loose} is writable by group or others \\(mode 0777\\); ${RULE}`) },
      { what: 'hook 0777 in a 0777 directory', mutate: (c) => void (cert(c).hooks.deploy = [evilHook]), prefix: 'certificates[0].hooks.deploy[0]: ', message: new RegExp(`refusing hook ${evilHook}: directory ${loose} is writable`) },
      { what: 'output directory through a symlink', mutate: (c) => void (cert(c).output = { combined: path.join(linkedOut, 'mx1.pem') }), prefix: 'certificates[0].output.combined: ', message: /is a symlink .*give the real path/ },
    ];
    if (isRoot) {
      cases.push(
        { what: 'config owned by nobody', mutate: () => undefined, owner: 65534, prefix: '(config): ', message: /is owned by uid 65534 \(nobody\), not root/ },
        { what: 'output directory owned by nobody', mutate: (c) => void (cert(c).output = { combined: path.join(theirOut, 'mx1.pem') }), prefix: 'certificates[0].output.combined: ', message: new RegExp(`directory ${theirOut} is owned by uid 65534 \\(nobody\\)`) },
      );
    }
    for (const [i, k] of cases.entries()) {
      const caseState = path.join(world, `state-sec-${i}`);
      const c = base(caseState);
      k.mutate(c);
      const cfg = path.join(k.dir ?? configs, `sec-${i}.yaml`);
      await writeFile(cfg, stringify(c), { mode: k.mode ?? 0o600 });
      await chmod(cfg, k.mode ?? 0o600);
      if (k.owner !== undefined) await chown(cfg, k.owner, k.owner);
      const before = await tree(world);
      for (const args of [['config', 'check'], ['renew', '--force']]) {
        const r = await log.cli([...args, '--config', cfg], { timeoutMs: 30_000 });
        assert.equal(r.code, 2, `${k.what}, mxcert ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
        const hit = r.stderr.split('\n').find((l) => l.startsWith(k.prefix));
        assert.ok(hit, `${k.what}, mxcert ${args.join(' ')}: a line starting with "${k.prefix}" in:\n${r.stderr}`);
        assert.match(hit, k.message, `${k.what}, mxcert ${args.join(' ')}`);
        await assert.rejects(access(caseState), 'stateDir not created');
      }
      assert.deepEqual(await tree(world), before, `${k.what}: nothing on disk changed`);
    }
  });

  it('secrets: neither the TSIG secret nor the EAB HMAC key appears in any log line of this file', () => {
    log.assertNoSecrets({ 'TSIG secret': tsigSecret, 'EAB HMAC key': eabKey });
  });
});
