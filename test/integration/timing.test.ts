// Renewal timing on real servers: ARI, profiles, rate limits and
// persisted backoff. The Debian Pebble has no ARI, no profiles and never
// rate-limits, so these run through the ACME front (test/support/acme-front.ts),
// a small proxy in front of the real Pebble that adds exactly those.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { ariCertId, startAcmeFront, type AcmeFront } from '../support/acme-front.js';
import { assertStatusSchema } from '../support/status-schema.js';
import { pollUntil } from '../env/proc.js';

interface StatusJson {
  certificates: Array<{
    serial: string | null;
    nextRenewal: string;
    nextRenewalReason: string;
    ari: { windowStart: string; windowEnd: string; chosen: string; nextCheck: string } | null;
    backoffUntil: string | null;
    consecutiveFailures: number;
    lastResult: string | null;
  }>;
}

describe('renewal timing: ARI, profiles, rate limits, backoff (real Pebble behind the ACME front)', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let front: AcmeFront;
  let cfgObj: SandboxConfig;
  let cfg: string;

  const leaf = async () => {
    const text = await readFile(sb.combinedPath(), 'utf8');
    return new X509Certificate(text.slice(text.indexOf('-----BEGIN CERTIFICATE-----')));
  };
  const status = async (): Promise<StatusJson['certificates'][number]> => {
    const r = await sb.cli(['status', '--json', '--config', cfg]);
    const doc = JSON.parse(r.stdout) as StatusJson;
    assertStatusSchema(doc);
    return doc.certificates[0]!;
  };
  const writeCfg = async (mutate?: (c: SandboxConfig) => void) => {
    const c = structuredClone(cfgObj);
    mutate?.(c);
    return sb.writeConfig(c, path.join(sb.dir, 'timing.yaml'));
  };

  before(async () => {
    // Two-minute certificates: the no-ARI fallback (half the lifetime for
    // short certificates) is then one minute away, not days.
    sb = await startSandbox({ pebble: { validitySeconds: 120 } });
    front = await startAcmeFront({ pebble: sb.pebble });
    cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    cfgObj.acme.directory = front.directoryUrl;
    cfgObj.acme.caBundle = front.caBundlePath;
    cfg = await writeCfg();
  });
  after(async () => {
    await front?.stop();
    await sb?.stop();
  });

  it('ARI: picks an instant inside the window, persists it, does not ask again before Retry-After', async () => {
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const cur = await leaf();
    const certId = ariCertId(cur.toString());
    const start = new Date(Date.now() + 30_000);
    const end = new Date(Date.now() + 50_000);
    front.setRenewalWindow(certId, { start, end }, 3600);

    const r1 = await sb.cli(['renew', '--config', cfg]);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.match(r1.stdout, /"status":"not-due"/);
    assert.deepEqual(front.ariRequests.filter((id) => id === certId).length, 1, 'asked the CA once, for our CertID');
    const s1 = await status();
    assert.equal(s1.nextRenewalReason, 'ari-window');
    assert.ok(s1.ari, 'status shows the ARI window');
    const chosen = new Date(s1.ari.chosen).getTime();
    assert.ok(chosen >= start.getTime() && chosen <= end.getTime(), 'chosen instant inside the window');
    assert.equal(new Date(s1.nextRenewal).getTime(), chosen);

    // A second run (a new process: a restart) keeps the instant and does not refetch.
    const r2 = await sb.cli(['renew', '--config', cfg]);
    assert.equal(r2.code, 0);
    assert.equal((await status()).ari!.chosen, s1.ari.chosen);
    assert.equal(front.ariRequests.filter((id) => id === certId).length, 1, 'Retry-After honoured');
    assert.equal((await leaf()).serialNumber, cur.serialNumber, 'nothing renewed');
  });

  it('ARI: a window in the past renews now, and the new order carries "replaces" with the old CertID', async () => {
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const old = await leaf();
    const oldId = ariCertId(old.toString());
    front.setRenewalWindow(oldId, { start: new Date(Date.now() - 60_000), end: new Date(Date.now() - 30_000) }, 3600);
    const ordersBefore = front.orders.length;
    const r = await sb.cli(['renew', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /"status":"renewed".*"reason":"ari-window"/);
    assert.notEqual((await leaf()).serialNumber, old.serialNumber);
    const order = front.orders.slice(ordersBefore).at(-1)!;
    assert.equal(order.replaces, oldId);
  });

  it('ARI: "alreadyReplaced" is retried once without "replaces"', async () => {
    const old = await leaf();
    const oldId = ariCertId(old.toString());
    front.setRenewalWindow(oldId, { start: new Date(Date.now() - 60_000), end: new Date(Date.now() - 30_000) }, 3600);
    front.rejectOrdersWithReplaces({ type: 'urn:ietf:params:acme:error:alreadyReplaced', detail: 'already replaced', status: 409 });
    try {
      const before = front.orders.length;
      const r = await sb.cli(['renew', '--config', cfg]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const seen = front.orders.slice(before);
      assert.equal(seen.length, 2);
      assert.equal(seen[0]!.replaces, oldId);
      assert.equal(seen[1]!.replaces, undefined);
      assert.notEqual((await leaf()).serialNumber, old.serialNumber);
    } finally {
      front.rejectOrdersWithReplaces(undefined);
    }
  });

  it('profiles: sent when offered; an unknown one is a config error naming the offered ones; nothing written', async () => {
    front.setProfiles({ shortlived: 'six-day certificates', classic: 'ninety days' });
    try {
      const ok = await writeCfg((c) => (c.acme.profile = 'shortlived'));
      const before = front.orders.length;
      const r = await sb.cli(['renew', '--force', '--config', ok]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(front.orders.slice(before).at(-1)!.profile, 'shortlived');

      const unchanged = await readFile(sb.combinedPath(), 'utf8');
      const bad = await writeCfg((c) => (c.acme.profile = 'tlsserver'));
      const r2 = await sb.cli(['renew', '--force', '--config', bad]);
      assert.equal(r2.code, 2, r2.stdout + r2.stderr);
      assert.match(r2.stderr, /acme\.profile: the CA does not offer profile "tlsserver"; it offers: shortlived, classic/);
      assert.equal(await readFile(sb.combinedPath(), 'utf8'), unchanged);

      front.setProfiles(undefined);
      const r3 = await sb.cli(['renew', '--force', '--config', ok]);
      assert.equal(r3.code, 2);
      assert.match(r3.stderr, /acme\.profile: the CA advertises no profiles/);
    } finally {
      front.setProfiles(undefined);
      await writeCfg();
    }
  });

  it('rateLimited with a Retry-After of a year: failure recorded, the wait capped for a 2-minute certificate; a restart neither forgets the backoff nor asks the CA again', async () => {
    front.rejectNextOrders(1, { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates', status: 429 }, 31_536_000);
    const before = front.orders.length;
    const t0 = Date.now();
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    const t1 = Date.now();
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /\[rateLimited\]/);
    const s = await status();
    assert.equal(s.lastResult, 'failure');
    assert.equal(s.nextRenewalReason, 'backoff');
    // Honoured up to the cap for this lifetime: a quarter of the time left,
    // with a floor of one minute (never a year: the certificate would expire).
    const until = new Date(s.backoffUntil ?? 0).getTime();
    assert.ok(until >= t0 + 60_000 && until <= t1 + 60_000, `Retry-After capped at a minute: ${s.backoffUntil}`);

    const again = await sb.cli(['renew', '--config', cfg]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /"status":"not-due".*"reason":"backoff"/);
    assert.equal(front.orders.length, before + 1, 'no new order during the backoff');

    // A Retry-After beyond any date (10^14 s) is recorded as a failure with a
    // capped backoff, not an "Invalid time value" that loses the failure.
    front.rejectNextOrders(1, { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates', status: 429 }, 99_999_999_999_999);
    const t2 = Date.now();
    const absurd = await sb.cli(['renew', '--force', '--config', cfg]);
    const t3 = Date.now();
    assert.equal(absurd.code, 1, absurd.stdout + absurd.stderr);
    assert.match(absurd.stdout, /\[rateLimited\]/);
    assert.doesNotMatch(absurd.stdout + absurd.stderr, /Invalid time value/);
    const s2 = await status();
    assert.equal(s2.consecutiveFailures, 2);
    const until2 = new Date(s2.backoffUntil ?? 0).getTime();
    assert.ok(until2 >= t2 + 60_000 && until2 <= t3 + 60_000, `capped: ${s2.backoffUntil}`);

    // --force ignores backoff (never validation) and a success clears it.
    const forced = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    const after = await status();
    assert.equal(after.backoffUntil, null);
    assert.equal(after.consecutiveFailures, 0);
  });

  it('an ARI outage never blocks a due renewal: the fallback (half of a 2-minute lifetime) applies', async () => {
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const issued = await leaf();
    front.failAri(500);
    try {
      const s = await status();
      assert.equal(s.nextRenewalReason, 'lifetime-fraction');
      // Poll the one-shot the way a timer would, until it renews on its own.
      const renewed = await pollUntil(
        async () => {
          const r = await sb.cli(['renew', '--config', cfg]);
          assert.notEqual(r.code, 1, r.stdout + r.stderr);
          const now = await leaf();
          return now.serialNumber !== issued.serialNumber ? r : undefined;
        },
        { deadlineMs: 110_000, intervalMs: 2_000, what: 'the fallback renewal' },
      );
      assert.match(renewed.stdout, /"reason":"lifetime-fraction"/);
      assert.match(renewed.stderr, /ARI lookup failed/);
      const renewedAfter = Date.now() - new Date(issued.validFrom).getTime();
      assert.ok(renewedAfter >= 59_000, `not before half the lifetime (${renewedAfter} ms)`);
    } finally {
      front.failAri(undefined);
    }
  });
});
