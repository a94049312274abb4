// import-certbot's translation (src/config/certbot-import.ts): renewal
// configs as certbot 2.1 writes them (copied from real runs, paths changed)
// plus the facts the CLI reads → YAML that mxcert's schema accepts, with the
// right names, key types, challenges, hooks and outputs, comments for what
// does not translate, and warnings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse, parseDocument } from 'yaml';
import { importCertbot, registeredDomainGuess, zoneCandidates, type CertbotImportInput, type CertbotLineage } from '../../src/config/certbot-import.js';
import { translateHook } from '../../src/config/certbot-hooks.js';
import { configSchema } from '../../src/config/schema.js';

const SECRET = 'dGhpcy1pcy10aGUtdHNpZy1zZWNyZXQtZG8tbm90LWxlYWs=';
const CRED = '/etc/letsencrypt/rfc2136.ini';
const CRED_TEXT = `dns_rfc2136_server = 192.0.2.53\ndns_rfc2136_port = 5353\ndns_rfc2136_name = certbot-key.\ndns_rfc2136_secret = ${SECRET}\ndns_rfc2136_algorithm = HMAC-SHA256\n`;

const head = (name: string) => `# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/${name}
cert = /etc/letsencrypt/live/${name}/cert.pem
privkey = /etc/letsencrypt/live/${name}/privkey.pem
chain = /etc/letsencrypt/live/${name}/chain.pem
fullchain = /etc/letsencrypt/live/${name}/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 6b393a958c1cdd3622410d8bd56ed3bc
`;
const tail = `config_dir = /etc/letsencrypt
work_dir = /var/lib/letsencrypt
logs_dir = /var/log/letsencrypt
server = https://acme-v02.api.letsencrypt.org/directory
`;

const DNS_CONF = `${head('mx1.example.com')}rsa_key_size = 3072
key_type = rsa
renew_hook = /usr/local/sbin/reload-mail
${tail}authenticator = dns-rfc2136
dns_rfc2136_propagation_seconds = 30
dns_rfc2136_credentials = ${CRED}
`;

const WEBROOT_CONF = `${head('mx2.example.com')}key_type = ecdsa
elliptic_curve = secp384r1
renew_hook = /usr/local/sbin/reload-mail --quiet
${tail}authenticator = webroot
webroot_path = /var/www/html,
[[webroot_map]]
mx2.example.com = /var/www/html
`;

const MANUAL_CONF = `${head('manual.example.com')}pref_challs = http-01,
renew_hook = systemctl reload postfix && echo done
${tail}authenticator = manual
manual_auth_hook = /usr/local/bin/auth.sh
key_type = ecdsa
`;

function dnsLineage(over: Partial<CertbotLineage> = {}): CertbotLineage {
  return {
    name: 'mx1.example.com',
    confPath: '/etc/letsencrypt/renewal/mx1.example.com.conf',
    confText: DNS_CONF,
    cert: { names: ['mx1.example.com', 'smtp.example.com'], key: 'rsa-3072' },
    credentials: { path: CRED, text: CRED_TEXT, mode: 0o600 },
    zones: { 'mx1.example.com': 'example.com', 'smtp.example.com': 'example.com' },
    privkey: { mode: 0o600, uid: 0, gid: 0, owner: 'root', group: 'root' },
    ...over,
  };
}

function webrootLineage(over: Partial<CertbotLineage> = {}): CertbotLineage {
  return {
    name: 'mx2.example.com',
    confPath: '/etc/letsencrypt/renewal/mx2.example.com.conf',
    confText: WEBROOT_CONF,
    cert: { names: ['mx2.example.com'], key: 'ecdsa-p384' },
    ...over,
  };
}

function run(lineages: CertbotLineage[], over: Partial<CertbotImportInput> = {}) {
  const r = importCertbot({
    configDir: '/etc/letsencrypt',
    outputDir: '/etc/mxcert/live',
    lineages,
    resolveCommand: (n) => ({ systemctl: '/usr/bin/systemctl', postfix: '/usr/sbin/postfix' })[n],
    ...over,
  });
  assert.ok(!r.yaml.includes(SECRET), 'the TSIG secret never appears in the output');
  const doc = parseDocument(r.yaml);
  assert.deepEqual(doc.errors, [], 'the output is YAML');
  return { ...r, value: parse(r.yaml) as { certificates: Record<string, any>[]; acme: Record<string, unknown>; stateDir: string } };
}

/** The comments with wrapped lines joined again, for matching sentences. */
const flat = (yaml: string) => yaml.replace(/\n\s*# {3}/g, ' ');

/** The output is a valid config (schema), apart from what the admin must add. */
function assertValid(value: unknown): void {
  const r = configSchema.safeParse(value);
  assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues, null, 2));
}

describe('importCertbot', () => {
  it('dns-rfc2136: names from the certificate, key type, TSIG from the credentials file, hook, outputs', () => {
    const r = run([dnsLineage()]);
    assertValid(r.value);
    assert.equal(r.value.acme.directory, 'https://acme-v02.api.letsencrypt.org/directory');
    assert.deepEqual(r.value.certificates, [
      {
        name: 'mx1.example.com',
        domains: ['mx1.example.com', 'smtp.example.com'],
        keys: ['rsa-3072'],
        challenge: {
          type: 'dns-01',
          dns: {
            provider: 'rfc2136',
            server: '192.0.2.53',
            port: 5353,
            zone: 'example.com',
            tsig: { name: 'certbot-key', algorithm: 'hmac-sha256', secretFile: CRED },
          },
        },
        output: {
          key: '/etc/mxcert/live/mx1.example.com/privkey.pem',
          cert: '/etc/mxcert/live/mx1.example.com/cert.pem',
          chain: '/etc/mxcert/live/mx1.example.com/chain.pem',
          fullchain: '/etc/mxcert/live/mx1.example.com/fullchain.pem',
          combined: '/etc/mxcert/live/mx1.example.com/combined.pem',
          mode: '0600',
          publicMode: '0644',
        },
        hooks: { deploy: ['/usr/local/sbin/reload-mail'] },
      },
    ]);
    assert.deepEqual(r.imported, ['mx1.example.com']);
    assert.deepEqual(r.skipped, []);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.todo, ['install -d -m 0755 /etc/mxcert/live/mx1.example.com']);
    assert.match(r.yaml, /zone: example\.com # found as certbot finds it/);
    assert.match(r.yaml, /certbot slept 30 s after the update/);
    assert.match(r.yaml, /# Before mxcert config check, run:\n#   install -d -m 0755 \/etc\/mxcert\/live\/mx1\.example\.com\n/);
    assert.match(r.yaml, /systemctl disable --now certbot\.timer/);
    assert.match(flat(r.yaml), /with verify: \{ smtp: \["127\.0\.0\.1:25"\] \} mxcert does/);
  });

  it('an unreadable renewal config is reported, not guessed at', () => {
    const r = run([dnsLineage({ confText: '', error: 'EACCES' }), webrootLineage()]);
    assert.deepEqual(r.skipped, ['mx1.example.com']);
    assert.deepEqual(r.imported, ['mx2.example.com']);
    assert.match(r.warnings.join('\n'), /mx1\.example\.com: not imported: cannot read \/etc\/letsencrypt\/renewal\/mx1\.example\.com\.conf: EACCES/);
  });

  it('dns-rfc2136 without SOA answers: the registered domain, marked as a guess, with a warning', () => {
    const r = run([dnsLineage({ zones: undefined })]);
    assert.equal(r.value.certificates[0]!.challenge.dns.zone, 'example.com');
    assert.match(r.yaml, /# GUESS \(the registered domain of mx1\.example\.com\)/);
    assert.deepEqual(r.warnings, ['mx1.example.com: zone "example.com" is a guess; check it']);
  });

  it('names in two zones: one zone is emitted and the split is asked for', () => {
    const r = run([dnsLineage({ zones: { 'mx1.example.com': 'example.com', 'smtp.example.com': 'smtp.example.com' } })]);
    assert.match(r.yaml, /the names are in different zones/);
    assert.match(r.warnings.join('\n'), /names in 2 zones \(example\.com, smtp\.example\.com\); split the certificate by zone/);
  });

  it('a credentials file without an algorithm gives hmac-md5 (certbot\'s default), with a note', () => {
    const text = CRED_TEXT.replace(/^dns_rfc2136_algorithm.*\n/m, '');
    const r = run([dnsLineage({ credentials: { path: CRED, text, mode: 0o600 } })]);
    assert.equal(r.value.certificates[0]!.challenge.dns.tsig.algorithm, 'hmac-md5');
    assert.match(r.yaml, /algorithm: hmac-md5 # the credentials file names no algorithm: certbot signed with HMAC-MD5/);
  });

  it('a credentials file others can read: a chmod to do and a warning', () => {
    const r = run([dnsLineage({ credentials: { path: CRED, text: CRED_TEXT, mode: 0o644 } })]);
    assert.ok(r.todo.includes(`chmod 600 ${CRED}`));
    assert.match(r.warnings.join('\n'), /rfc2136\.ini is mode 0644; mxcert refuses a secret file others can access/);
  });

  it('an unreadable or incomplete credentials file comments the lineage out', () => {
    const unreadable = run([dnsLineage({ credentials: { path: CRED, error: 'EACCES' } })]);
    assert.deepEqual(unreadable.skipped, ['mx1.example.com']);
    assert.match(unreadable.warnings.join('\n'), /not imported: cannot read the credentials file \/etc\/letsencrypt\/rfc2136\.ini: EACCES/);
    const noName = run([dnsLineage({ credentials: { path: CRED, text: CRED_TEXT.replace(/^dns_rfc2136_name.*\n/m, ''), mode: 0o600 } })]);
    assert.match(noName.warnings.join('\n'), /lacks dns_rfc2136_name/);
    assert.equal(noName.value.certificates.length, 0);
  });

  it('webroot: http-01 with the webroot, ECDSA P-384, a hook with an argument as argv', () => {
    const r = run([webrootLineage()]);
    assertValid(r.value);
    const c = r.value.certificates[0]!;
    assert.deepEqual(c.challenge, { type: 'http-01', http: { webroot: '/var/www/html' } });
    assert.deepEqual(c.keys, ['ecdsa-p384']);
    assert.deepEqual(c.hooks, { deploy: [['/usr/local/sbin/reload-mail', '--quiet']] });
  });

  it('webroot_map with several directories: the common one, a note and a warning', () => {
    const conf = WEBROOT_CONF.replace('mx2.example.com = /var/www/html\n', 'mx2.example.com = /var/www/html\nwww.example.com = /srv/www\nexample.com = /var/www/html\n');
    const r = run([webrootLineage({ confText: conf, cert: { names: ['mx2.example.com', 'www.example.com', 'example.com'], key: 'ecdsa-p384' } })]);
    assert.equal(r.value.certificates[0]!.challenge.http.webroot, '/var/www/html');
    assert.match(r.yaml, /certbot served www\.example\.com from other directories \(\/srv\/www\)/);
    assert.match(r.warnings.join('\n'), /names use 2 webroots; imported \/var\/www\/html for all/);
  });

  it('standalone: the built-in responder on certbot\'s port', () => {
    const conf = WEBROOT_CONF.replace(/authenticator = webroot[\s\S]*$/, 'authenticator = standalone\nhttp01_port = 8080\n');
    const r = run([webrootLineage({ confText: conf })]);
    assertValid(r.value);
    assert.deepEqual(r.value.certificates[0]!.challenge, { type: 'http-01', http: { listen: '[::]:8080' } });
  });

  it('a manual lineage is commented out whole, with the reason; the rest stays valid', () => {
    const manual: CertbotLineage = { name: 'manual.example.com', confPath: '/etc/letsencrypt/renewal/manual.example.com.conf', confText: MANUAL_CONF, cert: { names: ['manual.example.com'], key: 'ecdsa-p256' } };
    const r = run([dnsLineage(), manual, webrootLineage()]);
    assertValid(r.value);
    assert.deepEqual(r.imported, ['mx1.example.com', 'mx2.example.com']);
    assert.deepEqual(r.skipped, ['manual.example.com']);
    assert.match(r.yaml, /# NOT IMPORTED: the manual authenticator \(auth hook \/usr\/local\/bin\/auth\.sh\) has no mxcert equivalent/);
    assert.match(r.yaml, /^ {2}# {3}- name: manual\.example\.com$/m);
    assert.match(r.yaml, /^ {2}# {5}challenge: TODO \(see above\)$/m);
    assert.ok(r.warnings.some((w) => w.startsWith('manual.example.com: not imported: the manual authenticator')));
    // Only the imported lineages' directories are to-dos.
    assert.deepEqual(r.todo, ['install -d -m 0755 /etc/mxcert/live/mx1.example.com', 'install -d -m 0755 /etc/mxcert/live/mx2.example.com']);
  });

  it('an unknown DNS plugin or a missing [renewalparams] is not imported', () => {
    const cf = DNS_CONF.replace('authenticator = dns-rfc2136', 'authenticator = dns-cloudflare');
    const r = run([dnsLineage({ confText: cf }), webrootLineage({ confText: 'version = 2.1.0\n' })]);
    assert.deepEqual(r.skipped, ['mx1.example.com', 'mx2.example.com']);
    assert.match(r.warnings.join('\n'), /certbot plugin "dns-cloudflare" has no mxcert equivalent/);
    assert.match(r.warnings.join('\n'), /has no \[renewalparams\] section/);
  });

  it('a shell-syntax hook is left out with a comment and a warning; bare names are resolved on PATH', () => {
    const conf = DNS_CONF.replace('renew_hook = /usr/local/sbin/reload-mail', 'renew_hook = systemctl reload postfix && systemctl reload dovecot');
    const r = run([dnsLineage({ confText: conf })], { hookDirs: { deploy: ['/etc/letsencrypt/renewal-hooks/deploy/01-copy'], pre: [], post: [] } });
    assertValid(r.value);
    assert.deepEqual(r.value.certificates[0]!.hooks, { deploy: ['/etc/letsencrypt/renewal-hooks/deploy/01-copy'] });
    assert.match(flat(r.yaml), /# NOT IMPORTED: certbot --deploy-hook "systemctl reload postfix && systemctl reload dovecot": certbot runs hooks through a shell/);
    assert.match(r.warnings.join('\n'), /deploy hook "systemctl reload postfix && systemctl reload dovecot" not imported: .*put the command in an executable script/);

    const plain = DNS_CONF.replace('renew_hook = /usr/local/sbin/reload-mail', 'renew_hook = systemctl reload postfix');
    const p = run([dnsLineage({ confText: plain })]);
    assert.deepEqual(p.value.certificates[0]!.hooks, { deploy: [['/usr/bin/systemctl', 'reload', 'postfix']] });
    assert.match(p.yaml, /"systemctl" found at \/usr\/bin\/systemctl; mxcert ships hooks\/postfix-reload/);
  });

  it('directory hooks run first and a lineage hook that is one of them is not listed twice (certbot\'s order)', () => {
    const conf = DNS_CONF.replace('renew_hook = /usr/local/sbin/reload-mail', 'renew_hook = /etc/letsencrypt/renewal-hooks/deploy/02-reload');
    const r = run([dnsLineage({ confText: conf })], { hookDirs: { deploy: ['/etc/letsencrypt/renewal-hooks/deploy/01-copy', '/etc/letsencrypt/renewal-hooks/deploy/02-reload'], pre: [], post: [] } });
    assert.deepEqual(r.value.certificates[0]!.hooks.deploy, ['/etc/letsencrypt/renewal-hooks/deploy/01-copy', '/etc/letsencrypt/renewal-hooks/deploy/02-reload']);
  });

  it('key types: certbot\'s defaults, the certificate when the config says nothing, unsupported ones mapped with a warning', () => {
    const key = (confText: string, cert = 'ecdsa-p256') => run([webrootLineage({ confText, cert: { names: ['mx2.example.com'], key: cert } })]);
    const noCurve = key(WEBROOT_CONF.replace('elliptic_curve = secp384r1\n', ''));
    assert.deepEqual(noCurve.value.certificates[0]!.keys, ['ecdsa-p256']);
    const rsaDefault = key(WEBROOT_CONF.replace('key_type = ecdsa\nelliptic_curve = secp384r1\n', 'key_type = rsa\n'), 'rsa-2048');
    assert.deepEqual(rsaDefault.value.certificates[0]!.keys, ['rsa-2048']);
    const old = key(WEBROOT_CONF.replace('key_type = ecdsa\nelliptic_curve = secp384r1\n', ''), 'rsa-4096');
    assert.deepEqual(old.value.certificates[0]!.keys, ['rsa-4096'], 'no key_type (certbot 1.x): the live certificate\'s key');
    const big = key(WEBROOT_CONF.replace('key_type = ecdsa\nelliptic_curve = secp384r1\n', 'key_type = rsa\nrsa_key_size = 8192\n'), 'rsa-8192');
    assert.deepEqual(big.value.certificates[0]!.keys, ['rsa-4096']);
    assert.match(big.warnings.join('\n'), /key rsa-8192 is not supported; imported as rsa-4096/);
    const p521 = key(WEBROOT_CONF.replace('secp384r1', 'secp521r1'), 'ecdsa-secp521r1');
    assert.deepEqual(p521.value.certificates[0]!.keys, ['ecdsa-p384']);
    const changed = key(WEBROOT_CONF, 'rsa-2048');
    assert.match(changed.yaml, /the live certificate has a rsa-2048 key; certbot's next renewal would have used ecdsa-p384/);
  });

  it('reuse_key becomes reuseKey with a DANE warning; pre/post hooks and must_staple are noted', () => {
    const conf = WEBROOT_CONF.replace('key_type = ecdsa', 'reuse_key = True\nmust_staple = True\npre_hook = systemctl stop nginx\npost_hook = systemctl start nginx\nkey_type = ecdsa');
    const r = run([webrootLineage({ confText: conf })]);
    assertValid(r.value);
    assert.equal(r.value.certificates[0]!.reuseKey, true);
    assert.match(r.warnings.join('\n'), /reuse_key: mxcert's first renewal makes a new key; update TLSA records/);
    assert.match(r.warnings.join('\n'), /pre\/post hooks not imported/);
    assert.match(r.yaml, /OCSP Must-Staple/);
  });

  it('a group-readable private key keeps its group and mode', () => {
    const r = run([dnsLineage({ privkey: { mode: 0o640, uid: 0, gid: 110, group: 'Debian-exim' } })]);
    assertValid(r.value);
    assert.equal(r.value.certificates[0]!.output.mode, '0640');
    assert.equal(r.value.certificates[0]!.output.group, 'Debian-exim');
  });

  it('MTA lines naming certbot\'s files are listed with their replacement', () => {
    const r = run([dnsLineage()], {
      mtaReferences: [
        { file: '/etc/postfix/main.cf', line: 27, text: 'smtpd_tls_cert_file=/etc/letsencrypt/live/mx1.example.com/fullchain.pem' },
        { file: '/etc/postfix/main.cf', line: 28, text: 'smtpd_tls_key_file=/etc/letsencrypt/live/mx1.example.com/privkey.pem' },
        { file: '/etc/dovecot/conf.d/10-ssl.conf', line: 12, text: 'ssl_cert = </etc/letsencrypt/live/other.example.com/fullchain.pem' },
      ],
    });
    assert.match(r.yaml, /\/etc\/postfix\/main\.cf:27: smtpd_tls_cert_file=\/etc\/letsencrypt\/live\/mx1\.example\.com\/fullchain\.pem\n\s+#\s+-> smtpd_tls_cert_file=\/etc\/mxcert\/live\/mx1\.example\.com\/fullchain\.pem/);
    assert.match(r.yaml, /-> smtpd_tls_key_file=\/etc\/mxcert\/live\/mx1\.example\.com\/privkey\.pem/);
    assert.match(r.yaml, /smtpd_tls_chain_files = \/etc\/mxcert\/live\/mx1\.example\.com\/combined\.pem/);
    assert.doesNotMatch(r.yaml, /other\.example\.com/, 'another lineage\'s line is not this one\'s');
  });

  it('lineages on different CAs: the common directory, a note and a warning for the odd one', () => {
    const staging = WEBROOT_CONF.replace('https://acme-v02.api.letsencrypt.org/directory', 'https://acme-staging-v02.api.letsencrypt.org/directory');
    const third = webrootLineage({ name: 'mx3', confPath: '/etc/letsencrypt/renewal/mx3.conf', confText: WEBROOT_CONF });
    const r = run([dnsLineage(), webrootLineage({ confText: staging }), third]);
    assert.equal(r.value.acme.directory, 'https://acme-v02.api.letsencrypt.org/directory');
    assert.match(r.warnings.join('\n'), /mx2\.example\.com: certbot used the CA https:\/\/acme-staging-v02/);
  });

  it('a private CA gets the caBundle/trustAnchors note; names without a certificate come from the config', () => {
    const conf = WEBROOT_CONF.replace('https://acme-v02.api.letsencrypt.org/directory', 'https://127.0.0.1:14000/dir').replace('[renewalparams]', 'domains = mx2.example.com, mail.example.com\n[renewalparams]');
    const r = run([webrootLineage({ confText: conf, cert: { error: 'ENOENT' } })]);
    assertValid(r.value);
    assert.deepEqual(r.value.certificates[0]!.domains, ['mx2.example.com', 'mail.example.com']);
    assert.match(r.yaml, /from the renewal config's domains \(the live certificate could not be read: ENOENT\)/);
    assert.match(flat(r.yaml), /set acme\.caBundle to that file/);
  });

  it('lineage names that are not mxcert names are made valid and unique', () => {
    const r = run([webrootLineage({ name: 'mx2 example' }), webrootLineage({ name: 'mx2-example' })]);
    assertValid(r.value);
    assert.deepEqual(r.imported, ['mx2-example', 'mx2-example-2']);
  });
});

describe('certbot hooks → argv', () => {
  const resolve = (n: string) => (n === 'systemctl' ? '/usr/bin/systemctl' : undefined);
  it('a plain path, plain words, a bare name on PATH', () => {
    assert.deepEqual(translateHook('/usr/local/bin/reload'), { argv: ['/usr/local/bin/reload'] });
    assert.deepEqual(translateHook('  /usr/local/bin/reload  --all mx1.example.com '), { argv: ['/usr/local/bin/reload', '--all', 'mx1.example.com'] });
    assert.deepEqual(translateHook('systemctl restart opendkim', resolve), { argv: ['/usr/bin/systemctl', 'restart', 'opendkim'], note: '"systemctl" found at /usr/bin/systemctl' });
  });
  it('anything a shell would interpret is refused, not guessed', () => {
    for (const cmd of ['a && b', '/x "quoted arg"', '/x $RENEWED_LINEAGE', '/x > /tmp/log', '/x; /y', '/x | /y', '/x *.pem', '~/bin/x', 'FOO=1 /x', '/x `id`', '/x\\ y']) {
      const t = translateHook(cmd, resolve);
      assert.ok('problem' in t, cmd);
      assert.match(t.problem, /without a shell/, cmd);
    }
  });
  it('a relative path or a name not on PATH is refused', () => {
    assert.match((translateHook('bin/reload', resolve) as { problem: string }).problem, /relative path/);
    assert.match((translateHook('nosuchcmd reload', resolve) as { problem: string }).problem, /not on this host's PATH/);
  });
});

describe('zones', () => {
  it('candidates are certbot\'s guesses for _acme-challenge.NAME, most specific first', () => {
    assert.deepEqual(zoneCandidates('mx1.example.com'), ['_acme-challenge.mx1.example.com', 'mx1.example.com', 'example.com']);
    assert.deepEqual(zoneCandidates('*.example.com'), ['_acme-challenge.example.com', 'example.com']);
  });
  it('the registered-domain guess', () => {
    assert.equal(registeredDomainGuess('mx1.example.com'), 'example.com');
    assert.equal(registeredDomainGuess('a.b.example.co.uk'), 'example.co.uk');
    assert.equal(registeredDomainGuess('*.example.org'), 'example.org');
  });
});
