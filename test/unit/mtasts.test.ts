// MTA-STS (RFC 8461): policy and TXT parsing, mx pattern matching, coverage
// of the patterns by a certificate's names (wildcards both ways), the MX set
// comparison, and the check's reporting with fake DNS and fetch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import {
  certNameCovers,
  checkCoverage,
  compareMxSet,
  mxMatches,
  parsePolicy,
  parseStsTxt,
  unusedPatterns,
  type MtaStsPolicy,
} from '../../src/mtasts/policy.js';
import { checkMtaSts, checkMtaStsAfterRenewal, policyUrlFor, type DnsSource } from '../../src/mtasts/fetch.js';
import { certificateSchema } from '../../src/config/schema.js';

function policyOf(text: string): MtaStsPolicy {
  const r = parsePolicy(text);
  assert.ok(r.ok, r.ok ? '' : r.problems.join('; '));
  return r.value;
}

function problemsOf(text: string): string[] {
  const r = parsePolicy(text);
  assert.equal(r.ok, false, `expected ${JSON.stringify(text)} to be rejected`);
  return r.ok ? [] : r.problems;
}

describe('parsePolicy (RFC 8461 §3.2)', () => {
  it('parses the RFC example, CRLF line ends included', () => {
    const p = policyOf('version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n');
    assert.deepEqual(p, {
      version: 'STSv1',
      mode: 'enforce',
      mx: ['mail.example.com', '*.example.net', 'backupmx.example.com'],
      maxAge: 604800,
      extensions: {},
    });
  });

  it('accepts LF, no final newline, no space after the colon, trailing whitespace', () => {
    const p = policyOf('version:STSv1\nmode:testing \nmx:MX1.Example.COM.\nmax_age:86400');
    assert.equal(p.mode, 'testing');
    assert.deepEqual(p.mx, ['mx1.example.com'], 'lower-cased, trailing dot dropped');
    assert.equal(p.maxAge, 86400);
  });

  it('first value wins for repeated fields, mx repeats (duplicates once), extensions are kept and ignored', () => {
    const p = policyOf('version: STSv1\nmode: testing\nmode: enforce\nmx: a.example.com\nmx: a.example.com\nmax_age: 10\nmax_age: 20\nx-note: hello world\n');
    assert.equal(p.mode, 'testing');
    assert.equal(p.maxAge, 10);
    assert.deepEqual(p.mx, ['a.example.com']);
    assert.deepEqual(p.extensions, { 'x-note': 'hello world' });
  });

  it('mode none needs no mx line', () => {
    const p = policyOf('version: STSv1\nmode: none\nmax_age: 86400\n');
    assert.deepEqual(p.mx, []);
  });

  it('max_age bounds: 0 and 31557600 are fine, above is not', () => {
    assert.equal(policyOf('version: STSv1\nmode: none\nmax_age: 0\n').maxAge, 0);
    assert.equal(policyOf('version: STSv1\nmode: none\nmax_age: 31557600\n').maxAge, 31557600);
    assert.match(problemsOf('version: STSv1\nmode: none\nmax_age: 31557601\n').join(), /above the limit/);
  });

  it('rejects bad inputs, naming each problem', () => {
    assert.match(problemsOf('').join(), /missing "version/);
    assert.deepEqual(problemsOf('mode: enforce\nmx: a.example.com\nmax_age: 1\n'), ['missing "version: STSv1"']);
    assert.match(problemsOf('version: STSv2\nmode: enforce\nmx: a.example.com\nmax_age: 1\n').join(), /unsupported version "STSv2"/);
    assert.match(problemsOf('version: STSv1\nmode: strict\nmx: a.example.com\nmax_age: 1\n').join(), /bad mode "strict"/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx: a.example.com\n').join(), /missing "max_age"/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: -1\n').join(), /bad max_age/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 12345678901\n').join(), /bad max_age/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmax_age: 1\n').join(), /without any "mx" line/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx: a.*.example.com\nmax_age: 1\n').join(), /bad mx pattern "a\.\*\.example\.com"/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 1\n').join(), /bad mx pattern/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx: -bad-.example.com\nmax_age: 1\n').join(), /bad mx pattern/);
    assert.match(problemsOf('version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n').join(), /bad mx pattern ""/);
    assert.match(problemsOf('version: STSv1\nthis is not a field\nmode: none\nmax_age: 1\n').join(), /line 2: not "key: value"/);
    assert.match(problemsOf('version: STSv1\nbad key: x\nmode: none\nmax_age: 1\n').join(), /bad field name/);
    // An HTML error page served with 200 is not a policy.
    assert.ok(problemsOf('<html><body>Not here</body></html>\n').length >= 3);
  });
});

describe('parseStsTxt (RFC 8461 §3.1)', () => {
  it('finds the one v=STSv1 record among others and reads its id', () => {
    const r = parseStsTxt(['v=spf1 -all', 'v=STSv1; id=20160831085700Z;']);
    assert.ok(r.ok);
    assert.equal(r.value.id, '20160831085700Z');
    const r2 = parseStsTxt(['v=STSv1;id=abc123; ext=value']);
    assert.ok(r2.ok);
    assert.deepEqual(r2.value, { id: 'abc123', extensions: { ext: 'value' } });
  });

  it('rejects missing, duplicate and malformed records', () => {
    const none = parseStsTxt([]);
    assert.ok(!none.ok && /no TXT record/.test(none.problems[0]!));
    const other = parseStsTxt(['v=spf1 -all']);
    assert.ok(!other.ok && /no TXT record starting with "v=STSv1;"/.test(other.problems[0]!));
    const two = parseStsTxt(['v=STSv1; id=a', 'v=STSv1; id=b']);
    assert.ok(!two.ok && /exactly one/.test(two.problems[0]!));
    const noId = parseStsTxt(['v=STSv1;']);
    assert.ok(!noId.ok && /no "id="/.test(noId.problems.join()));
    const longId = parseStsTxt([`v=STSv1; id=${'a'.repeat(33)}`]);
    assert.ok(!longId.ok && /bad id/.test(longId.problems.join()));
    const badId = parseStsTxt(['v=STSv1; id=2016-08-31']);
    assert.ok(!badId.ok && /bad id/.test(badId.problems.join()));
    const junk = parseStsTxt(['v=STSv1; id=abc; nonsense']);
    assert.ok(!junk.ok && /bad field "nonsense"/.test(junk.problems.join()));
    // Case matters for the version tag (%s in the ABNF).
    assert.equal(parseStsTxt(['V=stsv1; id=abc']).ok, false);
    assert.equal(parseStsTxt(['v=STSv10; id=abc']).ok, false);
  });
});

describe('mx patterns and certificate names (RFC 8461 §4.1)', () => {
  it('a wildcard pattern matches exactly one left-most label', () => {
    assert.ok(mxMatches('mx1.example.com', '*.example.com'));
    assert.ok(mxMatches('MX1.Example.Com.', '*.example.com'));
    assert.ok(!mxMatches('example.com', '*.example.com'));
    assert.ok(!mxMatches('a.b.example.com', '*.example.com'));
    assert.ok(!mxMatches('mx1.example.org', '*.example.com'));
    assert.ok(mxMatches('mx1.example.com', 'mx1.example.com.'));
    assert.ok(!mxMatches('mx2.example.com', 'mx1.example.com'));
    assert.ok(certNameCovers('*.example.com', 'mx1.example.com'));
    assert.ok(!certNameCovers('*.example.com', 'a.mx.example.com'));
  });

  it('checkCoverage: exact names, wildcard certificate names, wildcard patterns', () => {
    const policy = { mx: ['mx1.example.com', 'mx2.example.com'] };
    assert.deepEqual(checkCoverage(['mx1.example.com', 'mx2.example.com'], policy), []);
    assert.deepEqual(checkCoverage(['mx1.example.com'], policy), ['mx2.example.com']);
    assert.deepEqual(checkCoverage(['MX1.EXAMPLE.COM.'], { mx: ['mx1.example.com'] }), [], 'case and trailing dot');
    // A wildcard certificate covers host-name patterns one label below it…
    assert.deepEqual(checkCoverage(['*.example.com'], policy), []);
    // …but not two labels below, nor the bare domain.
    assert.deepEqual(checkCoverage(['*.example.com'], { mx: ['a.mx.example.com', 'example.com'] }), ['a.mx.example.com', 'example.com']);
    // A wildcard pattern is served by the same wildcard or by a name it matches…
    assert.deepEqual(checkCoverage(['*.example.com'], { mx: ['*.example.com'] }), []);
    assert.deepEqual(checkCoverage(['mx1.example.com'], { mx: ['*.example.com'] }), []);
    // …not by a name it does not match, nor by a wildcard for another level.
    assert.deepEqual(checkCoverage(['mx1.example.org'], { mx: ['*.example.com'] }), ['*.example.com']);
    assert.deepEqual(checkCoverage(['*.mx.example.com'], { mx: ['*.example.com'] }), ['*.example.com']);
    assert.deepEqual(checkCoverage(['a.b.example.com'], { mx: ['*.example.com'] }), ['*.example.com']);
    assert.deepEqual(checkCoverage(['mx9.example.test'], { mx: ['mx1.example.test', '*.example.test'] }), ['mx1.example.test']);
    assert.deepEqual(checkCoverage([], { mx: ['mx1.example.com'] }), ['mx1.example.com']);
  });

  it('compareMxSet: MX hosts no pattern allows; unusedPatterns: patterns no MX host uses', () => {
    const policy = { mx: ['mx1.example.com', '*.backup.example.com'] };
    assert.deepEqual(compareMxSet(['mx1.example.com', 'b1.backup.example.com'], policy), []);
    assert.deepEqual(compareMxSet(['MX1.example.com.', 'mx2.example.com', 'mx2.example.com', 'a.b.backup.example.com'], policy), [
      'mx2.example.com',
      'a.b.backup.example.com',
    ]);
    assert.deepEqual(compareMxSet([], policy), []);
    assert.deepEqual(unusedPatterns(['mx1.example.com'], policy), ['*.backup.example.com']);
    assert.deepEqual(unusedPatterns(['mx1.example.com', 'x.backup.example.com'], policy), []);
  });
});

// ---------------------------------------------------------------------------
// The check, with fake DNS and fetch.

const GOOD_POLICY = 'version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 86400\n';

function fakeDns(records: { txt?: string[] | Error; mx?: string[] | Error }): DnsSource {
  const give = async (v: string[] | Error | undefined) => {
    if (v instanceof Error) throw v;
    return v ?? [];
  };
  return { txt: () => give(records.txt), mx: () => give(records.mx) };
}

describe('checkMtaSts', () => {
  const cfg = { domain: 'example.com' };

  it('default policy URL is https://mta-sts.DOMAIN/.well-known/mta-sts.txt; policyUrl overrides it', () => {
    assert.equal(policyUrlFor({ domain: 'example.com.' }), 'https://mta-sts.example.com/.well-known/mta-sts.txt');
    assert.equal(policyUrlFor({ domain: 'example.com', policyUrl: 'https://127.0.0.1:1/p' }), 'https://127.0.0.1:1/p');
  });

  it('no problems when everything agrees', async () => {
    let askedUrl = '';
    const r = await checkMtaSts(cfg, ['mx1.example.com', 'mx2.example.com'], {
      dns: fakeDns({ txt: ['v=STSv1; id=1'], mx: ['mx1.example.com', 'mx2.example.com'] }),
      fetchPolicy: async ({ url }) => ((askedUrl = url), GOOD_POLICY),
    });
    assert.deepEqual(r.problems, []);
    assert.equal(askedUrl, 'https://mta-sts.example.com/.well-known/mta-sts.txt');
    assert.equal(r.txt?.id, '1');
    assert.equal(r.policy?.mode, 'enforce');
  });

  it('reports uncovered patterns, MX hosts outside the policy, and a missing TXT record', async () => {
    const r = await checkMtaSts(cfg, ['mx1.example.com'], {
      dns: fakeDns({ txt: [], mx: ['mx1.example.com', 'mx3.example.com'] }),
      fetchPolicy: async () => GOOD_POLICY,
    });
    assert.deepEqual(r.problems.map((p) => p.kind).sort(), ['mx-not-covered', 'mx-not-in-policy', 'txt-missing']);
    assert.deepEqual(r.problems.find((p) => p.kind === 'mx-not-covered')?.names, ['mx2.example.com']);
    assert.deepEqual(r.problems.find((p) => p.kind === 'mx-not-in-policy')?.names, ['mx3.example.com']);
    assert.deepEqual(r.unusedPatterns, ['mx2.example.com']);
  });

  it('reports an invalid TXT record, an invalid policy, fetch and lookup failures, and no MX', async () => {
    const bad = await checkMtaSts(cfg, ['mx1.example.com'], {
      dns: fakeDns({ txt: ['v=STSv1; id=a', 'v=STSv1; id=b'], mx: ['.'] }),
      fetchPolicy: async () => 'version: STSv1\nmode: enforce\n',
    });
    assert.deepEqual(bad.problems.map((p) => p.kind).sort(), ['policy-invalid', 'txt-invalid']);
    const failing = await checkMtaSts(cfg, ['mx1.example.com'], {
      dns: fakeDns({ txt: new Error('SERVFAIL'), mx: new Error('timeout') }),
      fetchPolicy: async () => {
        throw new Error('connect ECONNREFUSED');
      },
    });
    assert.deepEqual(failing.problems.map((p) => p.kind).sort(), ['mx-lookup-failed', 'policy-fetch-failed', 'txt-lookup-failed']);
    const noMx = await checkMtaSts(cfg, ['mx1.example.com', 'mx2.example.com'], {
      dns: fakeDns({ txt: ['v=STSv1; id=1'], mx: [] }),
      fetchPolicy: async () => GOOD_POLICY,
    });
    assert.deepEqual(noMx.problems.map((p) => p.kind), ['no-mx']);
  });

  it('mode none: nothing compared', async () => {
    const r = await checkMtaSts(cfg, ['other.example.org'], {
      dns: fakeDns({ txt: ['v=STSv1; id=1'], mx: ['mx1.example.com'] }),
      fetchPolicy: async () => 'version: STSv1\nmode: none\nmax_age: 86400\n',
    });
    assert.deepEqual(r.problems, []);
  });

  it('after a renewal: logs one warning per problem, naming the certificate; nothing for a certificate without mtaSts', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const log = pino({ level: 'info' }, sink).child({ cert: 'mx1' });
    const cert = certificateSchema.parse({
      name: 'mx1',
      domains: ['mx1.example.com'],
      challenge: { type: 'http-01', http: { listen: '[::]:80' } },
      mtaSts: { domain: 'example.com' },
    });
    const deps = { dns: fakeDns({ txt: ['v=STSv1; id=1'], mx: ['mx1.example.com', 'mx2.example.com'] }), fetchPolicy: async () => GOOD_POLICY };
    await checkMtaStsAfterRenewal(cert, ['mx1.example.com'], log, deps);
    const warns = lines.filter((l) => l['level'] === 40);
    assert.equal(warns.length, 1, JSON.stringify(lines));
    assert.equal(warns[0]!['cert'], 'mx1');
    assert.equal(warns[0]!['problem'], 'mx-not-covered');
    assert.match(String(warns[0]!['msg']), /^MTA-STS: the certificate \(mx1\.example\.com\) does not cover the policy's mx pattern mx2\.example\.com$/);

    lines.length = 0;
    const plain = certificateSchema.parse({ name: 'mx1', domains: ['mx1.example.com'], challenge: { type: 'http-01', http: { listen: '[::]:80' } } });
    assert.equal(await checkMtaStsAfterRenewal(plain, ['mx1.example.com'], log, deps), undefined);
    assert.equal(lines.length, 0);
  });
});

describe('config: mtaSts and usage', () => {
  const base = { name: 'mx1', domains: ['mx1.example.com'], challenge: { type: 'http-01', http: { listen: '[::]:80' } } };
  it('usage defaults to [server]; mtaSts is optional', () => {
    const c = certificateSchema.parse(base);
    assert.deepEqual(c.usage, ['server']);
    assert.equal(c.mtaSts, undefined);
  });
  it('rejects a wildcard policy domain, a non-https policyUrl, a relative caBundle, a dnsServer without port, unknown keys', () => {
    for (const mtaSts of [
      { domain: '*.example.com' },
      { domain: 'example.com', policyUrl: 'http://mta-sts.example.com/.well-known/mta-sts.txt' },
      { domain: 'example.com', caBundle: 'ca.pem' },
      { domain: 'example.com', dnsServer: '127.0.0.1' },
      { domain: 'example.com', dns: '127.0.0.1:53' },
    ]) {
      assert.equal(certificateSchema.safeParse({ ...base, mtaSts }).success, false, JSON.stringify(mtaSts));
    }
    assert.equal(certificateSchema.safeParse({ ...base, usage: [] }).success, false);
    assert.equal(certificateSchema.safeParse({ ...base, usage: ['email'] }).success, false);
  });
});
