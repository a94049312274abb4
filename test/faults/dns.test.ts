// DNS faults, on real BIND 9 + Pebble + Postfix:
// - The BIND primary stopped mid-challenge: mxcert has added the
//   _acme-challenge TXT and waits until every authoritative server serves it
//   (one of them is a DNS gate the test holds, so the instant is certain);
//   the primary is stopped with SIGTERM. The run must fail cleanly (exit 1,
//   naming the DNS server that does not answer, nothing deployed). When BIND
//   is back (on the same port, with its journal, so the stale TXT is still in
//   the zone) and a pass has run, no _acme-challenge TXT may remain.
// - A wrong TSIG secret: exit 1 with an error naming the TSIG problem
//   (BADSIG / NOTAUTH), the secret not printed. test/integration/dns01.test.ts
//   covers the solver alone; this is the CLI a postmaster sees.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { dig } from '../env/bind.js';
import { pollUntil } from '../env/proc.js';
import { CliLog } from './support/cli-log.js';
import { startDnsGate, type DnsGate } from './support/dns-gate.js';
import { primaryControl, type PrimaryControl } from './support/bind-primary.js';
import { combinedLeaf } from './support/pem.js';

const CHALLENGE = '_acme-challenge.mx1.example.test';

interface RenewLine {
  status: string;
  step?: string;
  error?: string;
}

/** The challenge TXT values the primary serves, sorted (BIND rotates RRset order). */
async function txtSet(server: { host: string; port: number }): Promise<string[]> {
  return (await dig(server, ['+short', 'TXT', CHALLENGE])).split('\n').map((l) => l.trim()).filter(Boolean).sort();
}

function lastResult(stdout: string): RenewLine {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{"cert"'));
  assert.ok(lines.length > 0, `a result line on stdout:\n${stdout}`);
  return JSON.parse(lines.at(-1)!) as RenewLine;
}

describe('faults: DNS', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let gate: DnsGate;
  let primary: PrimaryControl;
  const log = new CliLog();
  const wrongSecret = randomBytes(32).toString('base64');
  let goodCfg: string;

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    gate = await startDnsGate(sb.bind.primary);
    primary = await primaryControl(sb.bind);
    goodCfg = await sb.writeConfig(sb.baseConfig({ challenge: 'dns-01' }));
    const r = await log.cli(['renew', '--force', '--config', goodCfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  after(async () => {
    await gate?.stop();
    await primary?.dispose();
    await sb?.stop();
  });

  async function served(): Promise<string> {
    return new X509Certificate(await servedLeafPem(sb.postfix.port)).serialNumber;
  }

  it('BIND stopped mid-challenge: clean failure naming the silent server; the TXT is gone once BIND is back and a pass ran', async () => {
    const old = await readFile(sb.combinedPath(), 'utf8');
    const oldSerial = combinedLeaf(old).serialNumber;
    const c = sb.baseConfig({ challenge: 'dns-01' });
    // A fresh account: Pebble cannot hand back an already valid authorization,
    // so this order needs its challenge.
    c.stateDir = path.join(sb.dir, 'state-bind-down');
    c.certificates[0].challenge.dns.nameservers.push(gate.address);
    c.certificates[0].challenge.dns.propagationTimeout = '6s';
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'bind-down.yaml'));

    gate.hold();
    const seen = gate.queries.length;
    const renew = log.spawn(['renew', '--force', '--config', cfg]);
    let stopped = false;
    try {
      await pollUntil(() => (gate.queries.slice(seen).some((q) => q.name === CHALLENGE && q.type === 'TXT') ? true : undefined), {
        deadlineMs: 60_000,
        what: 'mxcert to wait on the dns-01 propagation check',
      });
      assert.match(await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE]), /"/, 'the challenge TXT is in the zone');
      await primary.stop();
      stopped = true;
      // From now on the gate forwards to a dead server: it cannot answer either.
      gate.release();
      const r = await renew.done;
      const out = r.stdout + r.stderr;
      assert.equal(r.code, 1, out);
      const res = lastResult(r.stdout);
      assert.equal(res.status, 'failed');
      assert.equal(res.step, 'obtain');
      const esc = (s: string) => s.replace(/[.[\]]/g, '\\$&');
      assert.match(
        res.error!,
        new RegExp(`TXT ${esc(CHALLENGE)}\\. not served by ${esc(gate.address)} after 6000 ms: ${esc(gate.address)} answered no answer`),
        'names the record, the server that does not serve it, and that it does not answer',
      );
      // The cleanup could not reach the primary either, and says so.
      const cleanup = r.stderr.split('\n').find((l) => l.includes('challenge cleanup failed'));
      assert.ok(cleanup, `a "challenge cleanup failed" line:\n${r.stderr}`);
      assert.match(cleanup, new RegExp(`cannot reach ${esc(`127.0.0.1:${sb.bind.primary.port}`)} to update example\\.test`));
      assert.equal(await readFile(sb.combinedPath(), 'utf8'), old, 'nothing deployed');
      assert.equal(await served(), oldSerial, 'Postfix still serves the old certificate');
    } finally {
      gate.release();
      renew.child.kill('SIGKILL');
      await renew.done;
      if (stopped) await primary.start();
    }

    const stale = (await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE])).trim();
    assert.notEqual(stale, '', 'BIND kept the TXT in its journal across the restart (else this test proves nothing)');

    // The TXT the server accepted is in the cleanup ledger, once, and status shows it.
    const ledger = path.join(c.stateDir, 'pending-cleanups.json');
    const entries = (JSON.parse(await readFile(ledger, 'utf8')) as { entries: Array<{ owner: string; challenge: { value: string }; attempts: number }> }).entries;
    assert.deepEqual(entries.map((e) => [e.owner, e.attempts]), [[`${CHALLENGE}.`, 0]], 'one entry, for the record added');
    assert.equal(`"${entries[0]!.challenge.value}"`, stale, 'for the value BIND still serves');
    const st = JSON.parse((await log.cli(['status', '--json', '--config', cfg])).stdout) as { pendingCleanups: Array<{ owner: string }>; certificates: Array<{ pendingCleanups: Array<{ owner: string }> }> };
    assert.deepEqual(st.pendingCleanups.map((e) => e.owner), [`${CHALLENGE}.`]);
    assert.deepEqual(st.certificates[0]!.pendingCleanups.map((e) => e.owner), [`${CHALLENGE}.`]);
    assert.match((await log.cli(['status', '--config', cfg])).stdout, new RegExp(`pending challenge cleanups \\(${ledger.replace(/[.]/g, '\\.')}\\): ${CHALLENGE.replace(/[.]/g, '\\.')}\\.`));

    // The next pass: same stateDir, BIND answering again (the gate, which
    // would forward now, left out to keep the pass plain).
    c.certificates[0].challenge.dns.nameservers = [`${sb.bind.primary.host}:${sb.bind.primary.port}`];
    const cfg2 = await sb.writeConfig(c, path.join(sb.dir, 'bind-back.yaml'));
    const again = await log.cli(['renew', '--force', '--config', cfg2]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const left = (await dig(sb.bind.primary, ['+short', 'TXT', CHALLENGE])).trim();
    assert.equal(left, '', `no _acme-challenge TXT may remain after BIND is back and a pass ran; left: ${left}`);
    await assert.rejects(readFile(ledger), { code: 'ENOENT' }, 'the ledger entry left with the record');
  });

  it('a wrong TSIG secret: exit 1, the error names the TSIG problem, no secret printed', async () => {
    const before = await readFile(sb.combinedPath(), 'utf8');
    const txtBefore = await txtSet(sb.bind.primary);
    const wrong = path.join(sb.dir, 'wrong-tsig.secret');
    await writeFile(wrong, wrongSecret, { mode: 0o600 });
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-wrong-tsig');
    c.certificates[0].challenge.dns.tsig.secretFile = wrong;
    const r = await log.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'wrong-tsig.yaml'))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const res = lastResult(r.stdout);
    assert.equal(res.step, 'obtain');
    assert.match(res.error!, /NOTAUTH\(BADSIG\)|BADSIG|NOTAUTH/, 'names the rcode / TSIG error');
    assert.match(res.error!, /TSIG/, 'says it is about TSIG');
    assert.match(res.error!, new RegExp(`127\\.0\\.0\\.1:${sb.bind.primary.port}`), 'names the server');
    for (const s of [wrongSecret, sb.bind.tsig.secret]) assert.ok(!(r.stdout + r.stderr).includes(s), 'no secret in the output');
    assert.equal(await readFile(sb.combinedPath(), 'utf8'), before, 'nothing deployed');
    // The update was refused, so nothing was added.
    assert.deepEqual(await txtSet(sb.bind.primary), txtBefore);
  });

  it('secrets: neither TSIG secret appears in any log line of this file', () => {
    log.assertNoSecrets({ 'TSIG secret': sb.bind.tsig.secret, 'wrong TSIG secret': wrongSecret });
  });
});
