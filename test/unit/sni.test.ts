// The pure parts of the SNI tables: which names and files, in which order,
// rendered how (Postfix map source, Dovecot local_name blocks), which paths
// each MTA could not read back, the config's YAML paths, and the rebuild
// coalescing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { certificateSchema, configSchema, type CertificateConfig } from '../../src/config/schema.js';
import { sniPathProblems } from '../../src/config/sni-checks.js';
import { compareDnsNames, sniSources } from '../../src/deploy/sni-names.js';
import { postfixMapPathProblem, postfixSniEntries, postfixSniKey, renderPostfixSniMap } from '../../src/deploy/sni-postfix-map.js';
import { dovecotPathProblem, dovecotSniEntries, renderDovecotSniConf } from '../../src/deploy/sni-dovecot-conf.js';
import { postmapArgv } from '../../src/deploy/sni-postfix.js';
import { SingleFlight } from '../../src/util/single-flight.js';
import { examineConfig } from '../../src/config/load.js';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

function cert(name: string, domains: string[], output: Record<string, string>, extra: Record<string, unknown> = {}): CertificateConfig {
  return certificateSchema.parse({
    name,
    domains,
    challenge: { type: 'http-01', http: { listen: '127.0.0.1:80' } },
    output,
    ...extra,
  });
}

const all = () => true;
const body = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#'));

describe('SNI names', () => {
  it('orders names by labels from the right: a domain, its wildcard key, then its hosts, customer by customer', () => {
    const names = ['mail.example.org', 'b.example.com', '.example.com', 'example.com', 'a.b.example.com', 'example.org', 'mx.a.example.com'];
    assert.deepEqual([...names].sort(compareDnsNames), [
      'example.com',
      '.example.com',
      'mx.a.example.com',
      'b.example.com',
      'a.b.example.com',
      'example.org',
      'mail.example.org',
    ]);
  });

  it("Postfix's lookup key: lower case, no trailing dot, a wildcard as its parent with a leading dot", () => {
    assert.equal(postfixSniKey('Mail.Example.COM.'), 'mail.example.com');
    assert.equal(postfixSniKey('*.Example.com'), '.example.com');
  });

  it('leaves out client-only certificates: they never answer a ClientHello', () => {
    const sources = sniSources([
      cert('srv', ['a.example.com'], { combined: '/t/a.pem' }),
      cert('cli', ['relay.example.com'], { combined: '/t/c.pem' }, { usage: ['client'] }),
      cert('both', ['b.example.com'], { combined: '/t/b.pem' }, { usage: ['client', 'server'] }),
    ]);
    assert.deepEqual(sources.map((s) => s.cert), ['srv', 'both']);
  });
});

describe('Postfix map source', () => {
  const certs = [
    cert('alpha', ['mail.alpha.example', '*.alpha.example'], { combined: '/etc/postfix/tls/alpha-{keytype}.pem' }, { keys: ['ecdsa-p256', 'rsa-2048'] }),
    cert('bravo', ['MX.Bravo.example.', 'mail.alpha.example'], { combined: '/etc/postfix/tls/{name}.pem' }),
    cert('dove', ['imap.example'], { key: '/k.pem', fullchain: '/f.pem' }),
  ];

  it('every name of every certificate with a combined file, each key type listed, in name order; the first certificate keeps a shared name', () => {
    const { entries, notes } = postfixSniEntries(sniSources(certs), all);
    const text = renderPostfixSniMap(entries);
    assert.deepEqual(body(text), [
      '.alpha.example /etc/postfix/tls/alpha-ecdsa-p256.pem, /etc/postfix/tls/alpha-rsa-2048.pem',
      'mail.alpha.example /etc/postfix/tls/alpha-ecdsa-p256.pem, /etc/postfix/tls/alpha-rsa-2048.pem',
      'mx.bravo.example /etc/postfix/tls/bravo.pem',
    ]);
    assert.match(text, /^# Postfix tls_server_sni_maps, written by mxcert/);
    assert.ok(text.endsWith('\n'));
    assert.deepEqual(notes, [
      { level: 'warn', text: "postfix: mail.alpha.example is a name of certificates alpha and bravo; it is served alpha's (the first in the config)" },
    ]);
  });

  it('a certificate not deployed yet is left out with a note; a missing key type leaves the others', () => {
    const present = (p: string) => p !== '/etc/postfix/tls/bravo.pem' && p !== '/etc/postfix/tls/alpha-rsa-2048.pem';
    const { entries, notes } = postfixSniEntries(sniSources(certs), present);
    assert.deepEqual(body(renderPostfixSniMap(entries)), [
      '.alpha.example /etc/postfix/tls/alpha-ecdsa-p256.pem',
      'mail.alpha.example /etc/postfix/tls/alpha-ecdsa-p256.pem',
    ]);
    assert.deepEqual(notes.map((n) => n.level), ['info']);
    assert.match(notes[0]!.text, /^postfix: certificate bravo has no combined file yet \(\/etc\/postfix\/tls\/bravo\.pem\)/);
  });

  it('nothing deployed: a map with only its header, which postmap builds as an empty table', () => {
    assert.deepEqual(body(renderPostfixSniMap(postfixSniEntries(sniSources(certs), () => false).entries)), []);
  });

  it('refuses a path postmap would split (whitespace, comma) or a control character', () => {
    assert.match(postfixMapPathProblem('/etc/postfix/tls/a b.pem')!, /whitespace or a comma/);
    assert.match(postfixMapPathProblem('/etc/postfix/tls/a,b.pem')!, /whitespace or a comma/);
    assert.match(postfixMapPathProblem('/etc/postfix/tls/a\u0007.pem')!, /whitespace|control/);
    assert.equal(postfixMapPathProblem('/etc/postfix/tls/a#b$c%.pem'), undefined);
    assert.throws(() => renderPostfixSniMap([{ key: 'a.example', cert: 'a', files: ['/x y.pem'] }]), /SNI map entry for a\.example: "\/x y\.pem" contains whitespace/);
  });

  it('postmap runs as an argv, -c only for a non-default instance', () => {
    assert.deepEqual(postmapArgv({ postmap: '/usr/sbin/postmap', type: 'lmdb' }, '/etc/postfix/.m.1.abc.d/m'), ['/usr/sbin/postmap', '-F', 'lmdb:/etc/postfix/.m.1.abc.d/m']);
    assert.deepEqual(postmapArgv({ postmap: '/usr/sbin/postmap', type: 'hash', configDir: '/etc/postfix-out' }, '/s'), ['/usr/sbin/postmap', '-c', '/etc/postfix-out', '-F', 'hash:/s']);
  });
});

describe('Dovecot local_name include', () => {
  it('key and fullchain when both exist, else the combined file for both; a second key type as ssl_alt_*; wildcards kept', () => {
    const certs = [
      cert('a', ['b.example', '*.w.example'], { combined: '/c/a-{keytype}.pem', key: '/c/a-{keytype}.key', fullchain: '/c/a-{keytype}.full.pem' }, { keys: ['ecdsa-p256', 'rsa-2048'] }),
      cert('b', ['A.example'], { combined: '/c/b.pem' }),
    ];
    // The RSA key file is not there yet: that key type falls back to its combined file.
    const present = (p: string) => p !== '/c/a-rsa-2048.key';
    const { entries, notes } = dovecotSniEntries(sniSources(certs), present);
    assert.deepEqual(notes, []);
    const text = renderDovecotSniConf(entries);
    const block = (name: string) => [
      `local_name "${name}" {`,
      '  ssl_cert = </c/a-ecdsa-p256.full.pem',
      '  ssl_key = </c/a-ecdsa-p256.key',
      '  ssl_alt_cert = </c/a-rsa-2048.pem',
      '  ssl_alt_key = </c/a-rsa-2048.pem',
      '}',
    ];
    assert.deepEqual(body(text), [
      'local_name "a.example" {',
      '  ssl_cert = </c/b.pem',
      '  ssl_key = </c/b.pem',
      '}',
      ...block('b.example'),
      ...block('*.w.example'),
    ]);
    assert.match(text, /^# Dovecot SNI: one local_name block per name/);
  });

  it('more than two key types: the first two, and a warning', () => {
    const c = cert('a', ['a.example'], { combined: '/c/{keytype}.pem' }, { keys: ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] });
    const { entries, notes } = dovecotSniEntries(sniSources([c]), all);
    assert.deepEqual(entries[0]!.alt, { cert: '/c/ecdsa-p384.pem', key: '/c/ecdsa-p384.pem' });
    assert.equal(notes.length, 1);
    assert.match(notes[0]!.text, /two key types per name .*; rsa-2048 left out/);
  });

  it("paths are written as they are (Dovecot 2.3 has no quoting after '<'); those it would misread are refused", () => {
    for (const ok of ['/etc/ssl/a b.pem', '/etc/ssl/q"a.pem', "/etc/ssl/q'a.pem", '/etc/ssl/%d$x{y}.pem']) assert.equal(dovecotPathProblem(ok), undefined, ok);
    assert.match(dovecotPathProblem('/etc/ssl/a#b.pem')!, /'#'.*comment/);
    assert.match(dovecotPathProblem('/etc/ssl/ab.pem ')!, /ends with whitespace/);
    assert.match(dovecotPathProblem('/etc/ssl/a\nssl_key = </etc/shadow')!, /control character/);
    const entry = { name: 'a.example', cert: 'a', main: { cert: '/x#y.pem', key: '/k.pem' } };
    assert.throws(() => renderDovecotSniConf([entry]), /Dovecot SNI entry for a\.example: .*'#'/);
    assert.throws(() => renderDovecotSniConf([{ ...entry, name: 'a" {\n', main: { cert: '/c', key: '/k' } }]), /not a DNS name/);
  });
});

describe('sni config', () => {
  const base = {
    acme: { directory: 'https://acme.example/dir' },
    certificates: [{ name: 'a', domains: ['a.example'], challenge: { type: 'http-01', http: { listen: '127.0.0.1:80' } }, output: { combined: '/t/a.pem' } }],
  };
  const issues = (sni: unknown) => {
    const r = configSchema.safeParse({ ...base, sni });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('defaults: hash, /usr/sbin/postmap', () => {
    const r = configSchema.parse({ ...base, sni: { postfix: { map: '/etc/postfix/mxcert-sni' } } });
    assert.deepEqual(r.sni, { postfix: { map: '/etc/postfix/mxcert-sni', type: 'hash', postmap: '/usr/sbin/postmap' } });
  });

  it('errors name the YAML path', () => {
    assert.deepEqual(issues({ postfix: { map: '/etc/postfix/sni', type: 'btree' } }).map((i) => i.split(':')[0]), ['sni.postfix.type']);
    assert.deepEqual(issues({ postfix: { map: '/etc/postfix/sni.db' } }), ['sni.postfix.map: name the source file without .db/.lmdb/.cdb: postmap adds the suffix']);
    assert.deepEqual(issues({ postfix: { map: 'sni' } }), ['sni.postfix.map: must be an absolute path']);
    assert.deepEqual(issues({ dovecot: { include: '/etc/dovecot/conf.d/{name}.conf' } }), ['sni.dovecot.include: no placeholders here: one table serves every certificate']);
    assert.deepEqual(issues({ dovecot: { include: '/x.conf', typo: 1 } }).map((i) => i.split(':')[0]), ['sni.dovecot']);
    assert.deepEqual(issues({}), ['sni: give postfix, dovecot or both']);
  });

  it("paths a table would name but its MTA could not read back, at the output's YAML path", () => {
    const certs = [
      cert('ok', ['ok.example'], { combined: '/t/ok.pem' }),
      cert('bad', ['bad.example'], { combined: '/t/has space/{keytype}.pem', key: '/t/k#1.pem', fullchain: '/t/f.pem' }),
    ].map((c, index) => ({ index, cert: c }));
    const sni = { postfix: { map: '/etc/postfix/sni', type: 'hash' as const, postmap: '/usr/sbin/postmap' }, dovecot: { include: '/etc/dovecot/conf.d/sni.conf' } };
    const problems = sniPathProblems(sni, certs);
    assert.deepEqual(problems.map((p) => p.path), ['certificates[1].output.combined', 'certificates[1].output.key']);
    assert.match(problems[0]!.message, /whitespace or a comma.*\(sni\)$/);
    assert.match(problems[1]!.message, /'#'.*\(sni\)$/);
    // Dovecot alone does not mind the space.
    assert.deepEqual(sniPathProblems({ dovecot: sni.dovecot }, certs).map((p) => p.path), ['certificates[1].output.key']);
  });

  it('a table no certificate could fill is a problem', () => {
    const certs = [{ index: 0, cert: cert('k', ['k.example'], { key: '/t/k.pem', cert: '/t/c.pem' }) }];
    const problems = sniPathProblems({ postfix: { map: '/etc/postfix/sni', type: 'hash', postmap: '/usr/sbin/postmap' }, dovecot: { include: '/i.conf' } }, certs);
    assert.deepEqual(problems.map((p) => p.path), ['sni.postfix', 'sni.dovecot']);
  });
});

describe('SingleFlight (rebuilds shared by concurrent deploys)', () => {
  function gate() {
    let open!: () => void;
    let fail!: (e: Error) => void;
    const p = new Promise<void>((res, rej) => ((open = res), (fail = rej)));
    return { p, open, fail };
  }

  it('one run at a time; requests during a run share exactly one run after it', async () => {
    const gates = [gate(), gate(), gate()];
    let runs = 0;
    let active = 0;
    let maxActive = 0;
    const flight = new SingleFlight(async () => {
      const g = gates[runs++]!;
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        await g.p;
      } finally {
        active--;
      }
    });
    const first = flight.request();
    const second = flight.request();
    const third = flight.request();
    assert.equal(second, third, 'requests during a run join the same next run');
    assert.equal(runs, 1);
    gates[0]!.open();
    await first;
    // The queued run starts after the first ended, and serves the later requests.
    await new Promise((r) => setImmediate(r));
    assert.equal(runs, 2);
    const fourth = flight.request();
    assert.notEqual(fourth, second, 'a request during the second run waits for a third');
    gates[1]!.open();
    await second;
    gates[2]!.open();
    await fourth;
    assert.equal(runs, 3);
    assert.equal(maxActive, 1);
  });

  it('a failed run fails its own callers only; the next run still happens', async () => {
    const gates = [gate(), gate()];
    let runs = 0;
    const flight = new SingleFlight(() => gates[runs++]!.p);
    const first = flight.request();
    const second = flight.request();
    gates[0]!.fail(new Error('postmap exited with code 1'));
    await assert.rejects(first, /postmap exited/);
    await new Promise((r) => setImmediate(r));
    gates[1]!.open();
    await second;
    assert.equal(runs, 2);
    // Idle again: a new request starts a run at once.
    const g = gate();
    const flight2 = new SingleFlight(() => g.p);
    const p = flight2.request();
    g.open();
    await p;
  });
});

describe('sni in the loaded config (what `mxcert config check` prints)', () => {
  it('problems from the schema and from the disk, at their YAML paths, together with the rest', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-sni-config-'));
    try {
      await mkdir(path.join(dir, 'out'), { mode: 0o700 });
      const file = path.join(dir, 'config.yaml');
      const config = {
        stateDir: path.join(dir, 'state'),
        acme: { directory: 'https://acme.example/dir' },
        certificates: [
          { name: 'a', domains: ['a.example'], challenge: { type: 'http-01', http: { listen: '127.0.0.1:80' } }, output: { combined: path.join(dir, 'out', 'a b.pem') } },
        ],
        sni: { postfix: { map: path.join(dir, 'no-such-dir', 'sni'), postmap: '/usr/sbin/postmap' }, dovecot: { include: path.join(dir, 'out', 'sni.conf') } },
      };
      await writeFile(file, stringify(config), { mode: 0o600 });
      const r = await examineConfig(file, { env: {} });
      assert.deepEqual(
        r.problems.map((p) => p.path),
        ['certificates[0].output.combined', 'sni.postfix.map'],
        JSON.stringify(r.problems),
      );
      assert.match(r.problems[0]!.message, /contains whitespace or a comma.*\(sni\)$/);
      assert.match(r.problems[1]!.message, /no-such-dir does not exist/);

      // A schema error elsewhere: the sni block is still checked.
      await writeFile(file, stringify({ ...config, certificates: [{ ...config.certificates[0], outptu: {} }] }), { mode: 0o600 });
      const broken = await examineConfig(file, { env: {} });
      assert.deepEqual(broken.problems.map((p) => p.path), ['certificates[0].outptu', 'sni.postfix.map'], JSON.stringify(broken.problems));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

