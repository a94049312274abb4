// Pure decisions around a failed renewal: the config fingerprint that lifts a
// backoff, the failure count it restarts, what `renew` says while backing
// off, and whether a staged certificate may be deployed instead of a new order.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.js';
import { configFingerprint } from '../../src/schedule/config-fingerprint.js';
import { nextFailureCount, notDueText, planFromState } from '../../src/schedule/plan.js';
import { stagedVerdict, type StagedInput } from '../../src/schedule/staged.js';
import type { CertState } from '../../src/store/state-store.js';

const DAY = 86_400_000;
const H = 3_600_000;
const M = 60_000;
const t0 = Date.UTC(2026, 11, 7, 12);
const d = (ms: number) => new Date(t0 + ms);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function parse(mut: (c: any) => void = () => undefined) {
  const raw = {
    stateDir: '/var/lib/mxcert',
    acme: { directory: 'https://ca.example/dir', eab: { kid: 'k1', hmacKey: 'inline-secret-one' } },
    certificates: [
      {
        name: 'mx1',
        domains: ['mx1.example.test', 'mx2.example.test'],
        keys: ['ecdsa-p256', 'rsa-2048'],
        challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.test', tsig: { name: 'k', secretFile: '/etc/mxcert/tsig.key' } } },
        output: { combined: '/etc/postfix/tls/mx1-{keytype}.pem' },
        hooks: { deploy: ['/usr/lib/mxcert/hooks/postfix-reload'], failure: ['/usr/local/bin/notify'] },
      },
    ],
  };
  mut(raw);
  const c = configSchema.parse(raw);
  return { acme: c.acme, cert: c.certificates[0]! };
}

const fp = (mut?: Parameters<typeof parse>[0], keyType = 'ecdsa-p256') => {
  const { acme, cert } = parse(mut);
  return configFingerprint(acme, cert, keyType);
};

describe('config fingerprint', () => {
  const base = fp();
  it('is stable and a SHA-256', () => {
    assert.equal(fp(), base);
    assert.match(base, /^[0-9a-f]{64}$/);
  });
  it('changes with what decides issuance and deployment', () => {
    const changed = {
      'a name removed': (c: any) => (c.certificates[0].domains = ['mx1.example.test']), // eslint-disable-line @typescript-eslint/no-explicit-any
      'the zone': (c: any) => (c.certificates[0].challenge.dns.zone = 'mx1.example.test'), // eslint-disable-line @typescript-eslint/no-explicit-any
      'the secret file path': (c: any) => (c.certificates[0].challenge.dns.tsig.secretFile = '/etc/mxcert/other.key'), // eslint-disable-line @typescript-eslint/no-explicit-any
      'a deploy hook': (c: any) => (c.certificates[0].hooks.deploy = ['/usr/lib/mxcert/hooks/dovecot-reload']), // eslint-disable-line @typescript-eslint/no-explicit-any
      'an output path': (c: any) => (c.certificates[0].output.combined = '/etc/postfix/tls/other-{keytype}.pem'), // eslint-disable-line @typescript-eslint/no-explicit-any
      'the ACME directory': (c: any) => (c.acme.directory = 'https://other.example/dir'), // eslint-disable-line @typescript-eslint/no-explicit-any
      'a resolved default (propagationTimeout)': (c: any) => (c.certificates[0].challenge.dns.propagationTimeout = '30s'), // eslint-disable-line @typescript-eslint/no-explicit-any
    };
    for (const [what, mut] of Object.entries(changed)) assert.notEqual(fp(mut), base, what);
    assert.notEqual(fp(undefined, 'rsa-2048'), base, 'each key type has its own');
  });
  it('does not change with what cannot change the outcome, nor with a secret value', () => {
    assert.equal(fp((c) => (c.certificates[0].hooks.failure = ['/usr/local/bin/page-someone'])), base, 'failure hooks');
    assert.equal(fp((c) => (c.certificates[0].keys = ['ecdsa-p256'])), base, 'the other key types');
    assert.equal(fp((c) => (c.acme.eab.hmacKey = 'inline-secret-two')), base, 'an inline secret is left out');
    assert.equal(fp((c) => (c.certificates[0].challenge.dns.propagationTimeout = '120s')), base, 'a default written out is the same config');
  });
  it('the order keys are written in does not matter (hook environments keep the order of the YAML)', () => {
    const env = (e: Record<string, string>) => fp((c) => (c.certificates[0].hooks.env = e));
    assert.equal(env({ POSTFIX_CONFIG_DIR: '/etc/postfix', LANG: 'C' }), env({ LANG: 'C', POSTFIX_CONFIG_DIR: '/etc/postfix' }));
    assert.notEqual(env({ LANG: 'C' }), base);
  });
  it('a secret value is never part of it, under any of the names a secret goes by, at any depth', () => {
    const { acme, cert } = parse();
    const withSecret = (name: string, value: string) =>
      configFingerprint(acme, { ...cert, challenge: { ...cert.challenge, dns: { ...(cert.challenge as { dns: object }).dns, [name]: value } } } as unknown as typeof cert, 'ecdsa-p256');
    for (const name of ['secret', 'apiKey', 'hmacKey']) assert.equal(withSecret(name, 'one'), withSecret(name, 'two'), name);
    assert.notEqual(withSecret('secretName', 'one'), withSecret('secretName', 'two'), 'a setting that only looks like one counts');
  });
});

describe('the failure count and the not-due text', () => {
  const failed = (count: number, fingerprint?: string): CertState => ({
    consecutiveFailures: count,
    last: { at: d(0).toISOString(), result: 'failure', error: 'hooks: x', ...(fingerprint ? { configFingerprint: fingerprint } : {}) },
  });
  it('counts on under the same config, restarts at 1 under a changed one', () => {
    assert.equal(nextFailureCount({ consecutiveFailures: 0 }, 'A'), 1);
    assert.equal(nextFailureCount(failed(3, 'A'), 'A'), 4);
    assert.equal(nextFailureCount(failed(3, 'A'), 'B'), 1);
    assert.equal(nextFailureCount(failed(3), 'B'), 4, 'unknown old fingerprint: keep counting');
  });
  it('planFromState lifts the backoff when the fingerprint differs, and says how many failures it backs off after', () => {
    const { cert } = parse();
    const p = planFromState(cert, 'ecdsa-p256', failed(3, 'A'), undefined, false, d(5 * M), 'A');
    assert.deepEqual(p, { due: false, reason: 'backoff', at: d(100 * M), failures: 3 });
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', failed(3, 'A'), undefined, false, d(5 * M), 'B'), { due: true, reason: 'missing', at: d(5 * M) });
  });
  it('a backoff says until when and that --force retries now', () => {
    assert.equal(
      notDueText({ due: false, reason: 'backoff', at: new Date('2026-12-07T14:00:00.000Z'), failures: 3 }),
      'not due: backing off after 3 failures until 2026-12-07 14:00:00Z (renew --force retries now)',
    );
    assert.match(notDueText({ due: false, reason: 'backoff', at: d(M), failures: 1 }), /after 1 failure until/);
    assert.equal(notDueText({ due: false, reason: 'lifetime-fraction', at: new Date('2027-01-01T00:00:00.000Z') }), 'not due; renews at 2027-01-01 00:00:00Z (lifetime-fraction)');
  });
});

describe('a staged certificate', () => {
  const names = ['mx1.example.test', 'mx2.example.test'];
  const ok: StagedInput = {
    staged: { notBefore: d(0), notAfter: d(90 * DAY), names },
    current: { notBefore: d(-60 * DAY), notAfter: d(30 * DAY) },
    wantedNames: names,
    keyMatches: true,
    jitter: 0,
    now: d(H),
  };
  const why = (over: Partial<StagedInput>) => {
    const v = stagedVerdict({ ...ok, ...over });
    return v.use ? 'use' : v.why;
  };
  it('is deployed while fresh, whatever the order of names', () => {
    assert.equal(why({}), 'use');
    assert.equal(why({ wantedNames: [...names].reverse() }), 'use');
    assert.equal(why({ current: undefined }), 'use', 'first issuance');
  });
  it('is used until it would be due for renewal itself (a third of its life left), then dropped', () => {
    assert.equal(why({ now: d(60 * DAY - M) }), 'use');
    assert.match(why({ now: d(60 * DAY) }), /due for renewal itself \(lifetime-fraction\)/);
  });
  it('is dropped when it does not fit the config or the moment', () => {
    assert.match(why({ wantedNames: ['mx1.example.test'] }), /names differ/);
    assert.match(why({ wantedNames: [...names, 'mx3.example.test'] }), /names differ/);
    assert.match(why({ keyMatches: false }), /key/);
    assert.match(why({ now: d(-M) }), /not valid now/);
    assert.match(why({ current: { notBefore: d(0), notAfter: d(90 * DAY) } }), /no newer/);
  });
  it('valid from its notBefore on, and no longer at its notAfter', () => {
    assert.equal(why({ now: d(0) }), 'use');
    assert.equal(why({ now: d(-1) }), 'it is not valid now');
    const short = { staged: { notBefore: d(0), notAfter: d(H), names }, current: undefined };
    assert.equal(why({ ...short, now: d(H) }), 'it is not valid now');
    assert.equal(why({ ...short, now: d(H + 1) }), 'it is not valid now');
  });
});
