// ACME faults, on real Pebble + BIND + Postfix:
// - Pebble rejecting 50% (with EAB required) and 30% of good nonces with
//   badNonce: ≥ 9/10 and 10/10 separate `mxcert renew --force` runs succeed
//   (renew.test.ts already does 3 runs at 30%; this is the statistics).
// - Pebble SIGKILLed in the middle of an order: the run stops waiting on the
//   dns-01 propagation check at a DNS gate the test holds (a real mid-order
//   instant, no guessed sleep), Pebble dies, the gate opens, mxcert finds the
//   CA gone. That attempt must fail cleanly (exit 1 naming the unreachable CA,
//   nothing deployed, the challenge TXT removed, the lock released, Postfix
//   still serving the old certificate); once a new Pebble is up on the same
//   address the next attempt must succeed.
// The tampering proxy cases of the issue are in test/integration/tampered-chain.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { startPebble, type PebbleEnv } from '../env/pebble.js';
import { dig } from '../env/bind.js';
import { pollUntil } from '../env/proc.js';
import { CliLog } from './support/cli-log.js';
import { startDnsGate, type DnsGate } from './support/dns-gate.js';
import { startRestartablePebble, type RestartablePebble } from './support/restartable-pebble.js';
import { combinedLeaf, combinedProblem } from './support/pem.js';

const CHALLENGE = '_acme-challenge.mx1.example.test';

describe('faults: ACME', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  const log = new CliLog();
  const eabKeys: string[] = [];

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
  });
  after(async () => {
    await sb?.stop();
  });

  /** The sandbox config pointed at another CA, with its own stateDir. */
  async function configFor(ca: { directoryUrl: string; caBundlePath: string }, anchors: string, name: string, tweak?: (c: SandboxConfig) => void): Promise<string> {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.acme.directory = ca.directoryUrl;
    c.acme.caBundle = ca.caBundlePath;
    c.acme.trustAnchors = anchors;
    c.stateDir = path.join(sb.dir, `state-${name}`);
    tweak?.(c);
    return sb.writeConfig(c, path.join(sb.dir, `${name}.yaml`));
  }

  async function servedSerial(): Promise<string> {
    return new X509Certificate(await servedLeafPem(sb.postfix.port)).serialNumber;
  }

  /** `runs` forced renewals; returns how many succeeded, each checked on disk and on the wire. */
  async function issueRepeatedly(pebble: PebbleEnv, cfg: string, runs: number, env?: NodeJS.ProcessEnv): Promise<{ ok: number; failures: string[] }> {
    let ok = 0;
    const failures: string[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await log.cli(['renew', '--force', '--config', cfg], { env });
      if (r.code !== 0) {
        assert.equal(r.code, 1, `run ${i}: a failure is exit 1\n${r.stdout}${r.stderr}`);
        failures.push(r.stdout.trim().split('\n').at(-1) ?? '');
        continue;
      }
      const text = await readFile(sb.combinedPath(), 'utf8');
      assert.equal(combinedProblem(text), undefined, `run ${i}: combined file`);
      const leaf = combinedLeaf(text);
      assert.ok(leaf.verify(new X509Certificate(await pebble.issuerIntermediatePem()).publicKey), `run ${i}: issued by this Pebble`);
      assert.equal(await servedSerial(), leaf.serialNumber, `run ${i}: Postfix serves it`);
      ok++;
    }
    return { ok, failures };
  }

  it('Pebble rejecting 50% of nonces, EAB required: at least 9 of 10 issuances succeed', async (t) => {
    const pebble = await startPebble({ dnsServer: sb.bind.primary, httpPort: sb.httpPort, nonceReject: 50, eab: true, validitySeconds: 3600 });
    try {
      eabKeys.push(pebble.eabHmacKey!);
      const keyFile = path.join(sb.dir, 'eab-50.key');
      await writeFile(keyFile, pebble.eabHmacKey!, { mode: 0o600 });
      const cfg = await configFor(pebble, await sb.anchorsFor(pebble, 'nonce50'), 'nonce50', (c) => {
        c.acme.eab = { kid: pebble.eabKid, hmacKeyFile: keyFile };
      });
      const { ok, failures } = await issueRepeatedly(pebble, cfg, 10);
      t.diagnostic(`${ok}/10 succeeded`);
      assert.ok(ok >= 9, `${ok}/10 succeeded; failures:\n${failures.join('\n')}`);
    } finally {
      await pebble.stop();
    }
  });

  it('Pebble rejecting 30% of nonces, EAB required: 10 of 10 issuances succeed', async (t) => {
    const pebble = await startPebble({ dnsServer: sb.bind.primary, httpPort: sb.httpPort, nonceReject: 30, eab: true, validitySeconds: 3600 });
    try {
      eabKeys.push(pebble.eabHmacKey!);
      // The key inline in the config file this time.
      const cfg = await configFor(pebble, await sb.anchorsFor(pebble, 'nonce30'), 'nonce30', (c) => {
        c.acme.eab = { kid: pebble.eabKid, hmacKey: pebble.eabHmacKey };
      });
      const { ok, failures } = await issueRepeatedly(pebble, cfg, 10);
      t.diagnostic(`${ok}/10 succeeded`);
      assert.equal(ok, 10, `${ok}/10 succeeded; failures:\n${failures.join('\n')}`);
    } finally {
      await pebble.stop();
    }
  });

  describe('Pebble killed mid-order', () => {
    let rp: RestartablePebble;
    let gate: DnsGate;
    let anchors: string;
    let cfg: string;
    const hmacKey = randomBytes(32).toString('base64url');

    before(async () => {
      eabKeys.push(hmacKey);
      rp = await startRestartablePebble({ dnsServer: sb.bind.primary, httpPort: sb.httpPort, validitySeconds: 3600, eab: { kid: 'faults-kid', hmacKey } });
      gate = await startDnsGate(sb.bind.primary);
      anchors = path.join(sb.dir, 'restartable-roots.pem');
      await writeFile(anchors, await rp.issuerRootPem(), { mode: 0o644 });
      cfg = await configFor(rp, anchors, 'crash', (c) => {
        // The gate counts as one more authoritative server: while it is held,
        // mxcert waits in its propagation check with the order pending.
        c.certificates[0].challenge.dns.nameservers.push(gate.address);
        c.certificates[0].challenge.dns.propagationTimeout = '60s';
        c.acme.eab = { kid: 'faults-kid', hmacKeyEnv: 'FAULTS_EAB_HMAC' };
      });
    });
    after(async () => {
      await gate?.stop();
      await rp?.stop();
    });

    const env = { FAULTS_EAB_HMAC: hmacKey };
    let oldSerial: string;

    it('that attempt fails cleanly: exit 1 naming the unreachable CA, nothing deployed, TXT removed, lock released', async () => {
      const first = await log.cli(['renew', '--force', '--config', cfg], { env });
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const old = await readFile(sb.combinedPath(), 'utf8');
      oldSerial = combinedLeaf(old).serialNumber;
      assert.equal(await servedSerial(), oldSerial);

      gate.hold();
      const seen = gate.queries.length;
      const started = Date.now();
      const renew = log.spawn(['renew', '--force', '--config', cfg], { env });
      let r;
      try {
        // The TXT is in the zone and mxcert is waiting for every server to serve it.
        await pollUntil(() => (gate.queries.slice(seen).some((q) => q.name === CHALLENGE && q.type === 'TXT') ? true : undefined), {
          deadlineMs: 60_000,
          what: 'mxcert to wait on the dns-01 propagation check',
        });
        assert.match(await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE]), /"/, 'the challenge TXT is published');
        await rp.kill();
        gate.release();
        r = await renew.done;
      } finally {
        gate.release();
        renew.child.kill('SIGKILL');
        await renew.done;
      }
      const took = Date.now() - started;

      assert.equal(r.code, 1, r.stdout + r.stderr);
      const line = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { status: string; step: string; error: string };
      assert.equal(line.status, 'failed');
      assert.equal(line.step, 'obtain');
      assert.match(line.error, new RegExp(`cannot reach ${rp.directoryUrl.replace('/dir', '').replace(/[.]/g, '\\.')}.*ECONNREFUSED`), 'names the CA and why');
      assert.ok(took < 45_000, `fails promptly once the CA is gone (${took} ms)`);
      assert.equal(await readFile(sb.combinedPath(), 'utf8'), old, 'nothing deployed');
      assert.equal(await servedSerial(), oldSerial, 'Postfix still serves the old certificate');
      assert.equal((await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE])).trim(), '', 'challenge TXT removed');
      await assert.rejects(access(path.join(sb.dir, 'state-crash', 'lock')), 'lock released');
    });

    it('Pebble restarted on the same address (it forgot every account, new root): the next attempt succeeds', async () => {
      assert.ok(oldSerial, 'the previous test ran');
      // A new Pebble on the same address. It forgot every account and has a new root.
      await rp.start();
      await writeFile(anchors, (await readFile(anchors, 'utf8')) + (await rp.issuerRootPem()), { mode: 0o644 });
      const next = await log.cli(['renew', '--force', '--config', cfg], { env });
      assert.equal(next.code, 0, next.stdout + next.stderr);
      const now = await readFile(sb.combinedPath(), 'utf8');
      assert.equal(combinedProblem(now), undefined);
      assert.notEqual(combinedLeaf(now).serialNumber, oldSerial);
      assert.equal(await servedSerial(), combinedLeaf(now).serialNumber);
      assert.equal((await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE])).trim(), '', 'no challenge TXT left');
    });
  });

  it('secrets: the TSIG secret and the EAB HMAC keys appear in no log line of any run above', () => {
    assert.ok(eabKeys.length >= 3);
    const secrets: Record<string, string> = { 'TSIG secret': sb.bind.tsig.secret };
    eabKeys.forEach((k, i) => (secrets[`EAB HMAC key ${i}`] = k));
    log.assertNoSecrets(secrets);
    assert.match(log.text(), /"level":20/, 'debug lines were logged');
  });
});
