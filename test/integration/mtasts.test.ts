// MTA-STS and MX checks end to end on real servers: `mxcert renew --force`
// against real Pebble, BIND 9 and Postfix, with
// - an MTA-STS policy served over HTTPS on loopback by a node https server
//   whose certificate comes from a local CA (makeLoopbackPki; 127.0.0.1 in
//   its SANs, so `policyUrl` points at https://127.0.0.1:PORT/... and
//   `caBundle` at that CA), and
// - the `_mta-sts.example.test` TXT record (nsupdate with the sandbox TSIG
//   key) and the domain's MX record (the TSIG key may only change TXT and
//   TLSA, so the MX goes into the zone file: rndc freeze, edit, thaw) in the
//   sandbox BIND, which mxcert asks directly (`dnsServer`).
// The renewal must succeed whatever the policy says; the warnings must
// appear exactly when the certificate or the MX set disagree with it.
//
// And `usage: [server, client]`: the warning about the missing clientAuth
// EKU must appear exactly when Pebble's leaf lacks it. Pebble 2.4.0 (Debian
// 12's package) issues leaves with BOTH serverAuth and clientAuth
// (ca.go: ExtKeyUsage ServerAuth + ClientAuth), so against it the warning
// must NOT appear; the absent case (Let's Encrypt since 2026) is covered by
// test/unit/usage.test.ts with generated leaves.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { makeLoopbackPki, type LoopbackPki } from '../env/pki.js';
import { dig, type BindEnv } from '../env/bind.js';
import { pollUntil, run } from '../env/proc.js';

const ZONE = 'example.test';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

interface LogLine {
  level: number;
  msg: string;
  cert?: string;
  problem?: string;
  names?: string[];
  [k: string]: unknown;
}

function logLines(stderr: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // not a log line
    }
  }
  return out;
}

const warnings = (stderr: string, re: RegExp) => logLines(stderr).filter((l) => l.level === 40 && re.test(l.msg));

/** Add MX records to the zone file: the TSIG key may not update MX, so do what an operator does with rndc. */
async function addMx(bind: BindEnv, exchanges: string[]): Promise<void> {
  const file = path.join(bind.dir, 'primary', `${bind.zone}.db`);
  await bind.rndc(['freeze', bind.zone]);
  try {
    const text = await readFile(file, 'utf8');
    let bumped = false;
    // `@ IN SOA ns1. hostmaster. ( SERIAL ...`: a higher serial so the thaw reloads it.
    const next = text.replace(/(IN\s+SOA\s+\S+\s+\S+\s+\(\s*)(\d+)/, (_m, head: string, serial: string) => {
      bumped = true;
      return `${head}${Number(serial) + 1}`;
    });
    assert.ok(bumped, `SOA serial not found in ${file}:\n${text}`);
    await writeFile(file, next + exchanges.map((x, i) => `@ IN MX ${10 * (i + 1)} ${x}.\n`).join(''));
  } finally {
    await bind.rndc(['thaw', bind.zone]);
  }
  await pollUntil(
    async () => {
      const out = await dig(bind.primary, ['+short', 'MX', bind.zone]);
      return exchanges.every((x) => out.includes(`${x}.`)) ? true : undefined;
    },
    { deadlineMs: 15_000, intervalMs: 100, what: `BIND to serve MX ${exchanges.join(', ')}` },
  );
}

async function nsupdate(bind: BindEnv, commands: string[]): Promise<void> {
  await run('nsupdate', ['-k', bind.tsig.keyFile], {
    input: [`server ${bind.primary.host} ${bind.primary.port}`, `zone ${bind.zone}`, ...commands, 'send', ''].join('\n'),
  });
}

describe('MTA-STS and client-usage warnings after mxcert renew --force (real Pebble + BIND + Postfix)', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let pki: LoopbackPki;
  let server: https.Server;
  let policyUrl: string;
  /** What the policy server answers with; each test sets it. */
  let policy = '';
  let policyRequests = 0;

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    const pkiDir = path.join(sb.dir, 'mta-sts-pki');
    await mkdir(pkiDir, { mode: 0o700 });
    pki = await makeLoopbackPki(pkiDir, 'mxcert MTA-STS test CA');
    server = https.createServer({ cert: await readFile(pki.certPath), key: await readFile(pki.keyPath) }, (req, res) => {
      if (req.url === '/.well-known/mta-sts.txt' && req.method === 'GET') {
        policyRequests++;
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(policy);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    policyUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/mta-sts.txt`;

    await addMx(sb.bind, ['mx1.example.test']);
    await nsupdate(sb.bind, [`update add _mta-sts.${ZONE} 5 TXT "v=STSv1; id=20260101T000000"`]);
  });

  after(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server?.closeAllConnections();
    await sb?.stop();
  });

  function config(extra: SandboxConfig = {}): SandboxConfig {
    const cfg = sb.baseConfig({ challenge: 'dns-01' });
    Object.assign(cfg.certificates[0], {
      mtaSts: { domain: ZONE, policyUrl, caBundle: pki.caCertPath, dnsServer: `${sb.bind.primary.host}:${sb.bind.primary.port}` },
      ...extra,
    });
    return cfg;
  }

  async function renew(cfg: SandboxConfig): Promise<{ stderr: string; stdout: string }> {
    const file = await sb.writeConfig(cfg);
    const before = policyRequests;
    const r = await sb.cli(['renew', '--force', '--config', file], { env: { MXCERT_LOG_LEVEL: 'info' } });
    assert.equal(r.code, 0, `the renewal succeeds whatever MTA-STS says\n${r.stdout}${r.stderr}`);
    assert.ok(logLines(r.stderr).some((l) => l.msg === 'renewed and verified'), r.stderr);
    if (cfg.certificates[0].mtaSts) assert.equal(policyRequests, before + 1, 'the policy was fetched once');
    return r;
  }

  it('the sandbox DNS serves what the check reads: MX mx1.example.test and the _mta-sts TXT record', async () => {
    assert.match(await dig(sb.bind.primary, ['+short', 'MX', ZONE]), /^10 mx1\.example\.test\.$/m);
    assert.match(await dig(sb.bind.primary, ['+short', 'TXT', `_mta-sts.${ZONE}`]), /"v=STSv1; id=20260101T000000"/);
  });

  it('a covering policy (mx: mx1.example.test): no MTA-STS warning, an "agree" line', async () => {
    policy = 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n';
    const r = await renew(config());
    assert.deepEqual(warnings(r.stderr, /MTA-STS/), [], r.stderr);
    const agree = logLines(r.stderr).find((l) => l.msg === 'MTA-STS: policy, MX set and certificate agree');
    assert.ok(agree, r.stderr);
    assert.equal(agree.cert, 'mx1');
    assert.deepEqual(agree['mx'], ['mx1.example.test']);
    assert.equal(agree['id'], '20260101T000000');
  });

  it('a covering wildcard policy (mx: *.example.test, CRLF line ends): no MTA-STS warning', async () => {
    policy = 'version: STSv1\r\nmode: testing\r\nmx: *.example.test\r\nmax_age: 604800\r\n';
    const r = await renew(config());
    assert.deepEqual(warnings(r.stderr, /MTA-STS/), [], r.stderr);
    assert.ok(logLines(r.stderr).some((l) => l.msg === 'MTA-STS: policy, MX set and certificate agree'), r.stderr);
  });

  it('a non-covering policy (mx: mx9.example.test): the renewal succeeds and both disagreements are warned about', async () => {
    policy = 'version: STSv1\nmode: enforce\nmx: mx9.example.test\nmax_age: 86400\n';
    const r = await renew(config());
    const notCovered = warnings(r.stderr, /^MTA-STS: the certificate \(mx1\.example\.test\) does not cover the policy's mx pattern mx9\.example\.test$/);
    assert.equal(notCovered.length, 1, r.stderr);
    assert.equal(notCovered[0]!.cert, 'mx1', 'the warning names the certificate');
    assert.equal(notCovered[0]!.problem, 'mx-not-covered');
    assert.deepEqual(notCovered[0]!.names, ['mx9.example.test']);
    const notInPolicy = warnings(r.stderr, /^MTA-STS: MX host mx1\.example\.test of example\.test matches no mx pattern of the policy: senders will not deliver there$/);
    assert.equal(notInPolicy.length, 1, r.stderr);
    assert.equal(notInPolicy[0]!.problem, 'mx-not-in-policy');
    assert.equal(warnings(r.stderr, /MTA-STS/).length, 2, r.stderr);
  });

  it('an invalid policy, a missing TXT record and an untrusted policy host are warnings, never failures', async () => {
    policy = 'version: STSv1\nmode: enforce\nmax_age: 86400\n';
    await nsupdate(sb.bind, [`update delete _mta-sts.${ZONE} TXT`]);
    try {
      const r = await renew(config());
      assert.equal(warnings(r.stderr, /^MTA-STS: https:\/\/127\.0\.0\.1:\d+\/\.well-known\/mta-sts\.txt: mode enforce without any "mx" line/).length, 1, r.stderr);
      assert.equal(warnings(r.stderr, /^MTA-STS: no TXT record at _mta-sts\.example\.test/).length, 1, r.stderr);
    } finally {
      await nsupdate(sb.bind, [`update add _mta-sts.${ZONE} 5 TXT "v=STSv1; id=20260101T000000"`]);
    }

    // Without caBundle the local CA is not trusted: the fetch fails (TLS), the renewal does not.
    policy = 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n';
    const cfg = config();
    delete cfg.certificates[0].mtaSts.caBundle;
    const file = await sb.writeConfig(cfg);
    const r = await sb.cli(['renew', '--force', '--config', file], { env: { MXCERT_LOG_LEVEL: 'info' } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const fetchFailed = warnings(r.stderr, /^MTA-STS: GET https:\/\/127\.0\.0\.1:\d+\/\.well-known\/mta-sts\.txt: .*(certificate|issuer)/i);
    assert.equal(fetchFailed.length, 1, r.stderr);
    assert.equal(fetchFailed[0]!.problem, 'policy-fetch-failed');
  });

  it('usage: [server, client] warns about a missing clientAuth EKU exactly when the issued leaf lacks it (Pebble 2.4 includes it)', async () => {
    policy = 'version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n';
    const r = await renew(config({ usage: ['server', 'client'] }));
    const combined = await readFile(sb.combinedPath(), 'utf8');
    const leafPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(combined)![0];
    const ekus = new X509Certificate(leafPem).keyUsage ?? [];
    const hasClientAuth = ekus.includes(EKU_CLIENT_AUTH);
    const clientWarnings = warnings(r.stderr, /^certificate mx1 lacks the clientAuth extended key usage/);
    assert.equal(clientWarnings.length, hasClientAuth ? 0 : 1, `EKUs of the issued leaf: ${ekus.join(', ')}\n${r.stderr}`);
    // Which case this Pebble produces: Debian's Pebble 2.4.0 puts serverAuth
    // and clientAuth in every leaf, so no warning here. If a newer Pebble
    // drops clientAuth, the line above then checks the warning instead.
    assert.ok(hasClientAuth, `Pebble 2.4.0 is expected to include clientAuth; the leaf has ${ekus.join(', ')}`);

    // usage absent (default [server]): never a client warning.
    const plain = await renew(config());
    assert.deepEqual(warnings(plain.stderr, /clientAuth/), []);
  });
});
