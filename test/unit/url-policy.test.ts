// Which URLs may carry API traffic (src/util/url-policy.ts) and how the
// config reports the ones that may not: ACME https only (RFC 8555 §6.1),
// the PowerDNS API https or plain http to loopback only; each problem on its
// YAML path.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { isLoopbackUrlHost, urlProblem } from '../../src/util/url-policy.js';

describe('urlProblem', () => {
  it('https is fine for both policies', () => {
    for (const url of ['https://acme.example.net/directory', 'https://127.0.0.1:14000/dir', 'https://[2001:db8::1]/x']) {
      assert.equal(urlProblem(url, { loopbackHttp: false }), undefined, url);
      assert.equal(urlProblem(url, { loopbackHttp: true }), undefined, url);
    }
  });

  it('ACME policy: plain http is refused even to loopback', () => {
    for (const url of ['http://acme.example.net/directory', 'http://127.0.0.1:14000/dir', 'http://localhost/dir']) {
      assert.equal(urlProblem(url, { loopbackHttp: false }), 'must be an https:// URL; plain http is refused', url);
    }
  });

  it('API policy: plain http to 127.0.0.0/8, ::1 (any spelling), ::ffff:127.x and localhost only', () => {
    for (const url of ['http://127.0.0.1:8081', 'http://127.8.9.10:8081', 'http://127.1/', 'http://[::1]:8081', 'http://[0:0:0:0:0:0:0:1]/', 'http://[::ffff:127.0.0.1]/', 'http://LOCALHOST:8081']) {
      assert.equal(urlProblem(url, { loopbackHttp: true }), undefined, url);
    }
    for (const url of ['http://10.0.0.5:8081', 'http://192.0.2.1/', 'http://[::2]/', 'http://[::ffff:10.0.0.1]/', 'http://pdns.example.net:8081', 'http://mx1.localhost:8081', 'http://localhost.example.net/']) {
      assert.match(urlProblem(url, { loopbackHttp: true }) ?? 'accepted', /^plain http:\/\/ is allowed only to loopback \(127\.0\.0\.0\/8, ::1, localhost\), not to \S+: the API key would cross the network in clear; use https:\/\/$/, url);
    }
  });

  it('other schemes and non-URLs', () => {
    assert.equal(urlProblem('ftp://example.net/x', { loopbackHttp: true }), 'must be an https:// URL, not ftp:');
    assert.equal(urlProblem('example.net:8081', { loopbackHttp: true }), 'must be an https:// URL, not example.net:');
    assert.equal(urlProblem('not a url', { loopbackHttp: true }), 'not a URL');
  });

  it('isLoopbackUrlHost takes URL hostnames, brackets and all', () => {
    assert.equal(isLoopbackUrlHost('[::1]'), true);
    assert.equal(isLoopbackUrlHost('127.0.0.1'), true);
    assert.equal(isLoopbackUrlHost('128.0.0.1'), false);
    assert.equal(isLoopbackUrlHost('[::ffff:7f00:1]'), true);
  });
});

describe('loadConfig: https-only rules on their YAML paths', () => {
  let dir: string;
  let out: string;
  let secretFile: string;
  let n = 0;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-url-policy-'));
    out = path.join(dir, 'out');
    await mkdir(out, { mode: 0o700 });
    secretFile = path.join(dir, 'secret');
    await writeFile(secretFile, 'c2VjcmV0LXNlY3JldC1zZWNyZXQ=', { mode: 0o600 });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function config(directory: string, pdnsUrl?: string): object {
    return {
      acme: { directory },
      certificates: [
        {
          name: 'mx1',
          domains: ['mx1.example.com'],
          challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: '127.0.0.1', zone: 'example.com', tsig: { name: 'mxcert', secretFile } } },
          output: { combined: `${out}/mx1-{keytype}.pem` },
          ...(pdnsUrl
            ? {
                dane: {
                  enabled: true,
                  endpoints: [{ host: 'mx1.example.com', port: 25 }],
                  publisher: { provider: 'pdns', url: pdnsUrl, zone: 'example.com', apiKeyFile: secretFile },
                },
              }
            : {}),
        },
      ],
    };
  }

  async function load(cfg: object): Promise<string[]> {
    const file = path.join(dir, `config-${++n}.yaml`);
    await writeFile(file, stringify(cfg), { mode: 0o600 });
    try {
      await loadConfig(file, { env: {} });
      return [];
    } catch (err) {
      assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
  }

  it('acme.directory over plain http is refused, also on loopback', async () => {
    for (const url of ['http://acme.example.net/directory', 'http://127.0.0.1:14000/dir']) {
      assert.deepEqual(await load(config(url)), ['acme.directory: must be an https:// URL: ACME runs over HTTPS only (RFC 8555 §6.1)'], url);
    }
  });

  it('a pdns publisher over plain http to a remote host is refused; to loopback it loads', async () => {
    assert.deepEqual(await load(config('https://acme.example.net/directory', 'http://192.0.2.53:8081')), [
      'certificates[0].dane.publisher.url: plain http:// is allowed only to loopback (127.0.0.0/8, ::1, localhost), not to 192.0.2.53: the API key would cross the network in clear; use https://',
    ]);
    assert.deepEqual(await load(config('https://acme.example.net/directory', 'http://127.0.0.1:8081')), []);
    assert.deepEqual(await load(config('https://acme.example.net/directory', 'https://pdns.example.net:8443')), []);
  });

  it('a URL that is no URL gets one problem, not two', async () => {
    assert.deepEqual(await load(config('acme.example.net/directory')), ['acme.directory: must be a URL']);
  });
});
