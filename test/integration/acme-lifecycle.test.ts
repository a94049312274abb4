// Lifecycle commands on real servers (Pebble 2.4 with an alternate root,
// BIND, Postfix, and the acme-front where Pebble lacks something):
// - revoke (RFC 8555 §7.6): Pebble's management API reports the serial
//   revoked with the reason; status shows it; the next pass replaces it with
//   a fresh key even under reuseKey; keyCompromise on DANE asks for the
//   emergency rollover, and the next pass serves the next key;
// - account show / update / rollover-key (§7.3.2, §7.3.5), including the
//   recovery of a rollover interrupted between the CA's answer and the store;
// - acme.preferredChain (§7.4.2 alternates) against PEBBLE_ALTERNATE_ROOTS;
// - a failed order's pending authorizations deactivated (§7.5.2);
// - a CA that requires a contact address (front) and acme.email unset.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import https from 'node:https';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { startAcmeFront, type AcmeFront } from '../support/acme-front.js';
import { pollUntil } from '../env/proc.js';
import { accountKeyFromPem, keyChangeInnerJws, newAccountKeyPem, signJws } from '../../src/acme/jws.js';

const ACME_ERROR = 'urn:ietf:params:acme:error:';

function certsOf(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}

function cnOf(dn: string): string | undefined {
  return dn.split('\n').find((l) => l.startsWith('CN='))?.slice(3);
}

/** RFC 7638 thumbprint of a private key's public half, computed here, not by mxcert. */
function thumbprint(keyPem: string): string {
  const j = createPublicKey(keyPem).export({ format: 'jwk' }) as Record<string, string>;
  const canonical = JSON.stringify({ crv: j.crv, kty: j.kty, x: j.x, y: j.y });
  return createHash('sha256').update(canonical).digest('base64url');
}

function httpsRequest(url: string, ca: string, o: { method?: string; body?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: o.method ?? 'GET', ca, timeout: 5000, headers: o.body ? { 'content-type': 'application/jose+json' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('lifecycle commands on real Pebble, BIND and Postfix', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  let front: AcmeFront;
  let pebbleCa: string;

  const accountDir = async (stateDir: string): Promise<string> => {
    const subs = await readdir(path.join(stateDir, 'accounts'));
    assert.equal(subs.length, 1, `one account directory: ${subs.join(', ')}`);
    return path.join(stateDir, 'accounts', subs[0]!);
  };
  const combinedLeaf = async () => certsOf(await readFile(sb.combinedPath(), 'utf8'))[0]!;
  const combinedKey = async () => {
    const text = await readFile(sb.combinedPath(), 'utf8');
    return createPublicKey(text.slice(0, text.indexOf('-----BEGIN CERTIFICATE-----'))).export({ type: 'spki', format: 'der' }).toString('hex');
  };
  const statusRow = async (cfg: string) => {
    const r = await sb.cli(['status', '--json', '--config', cfg]);
    return (JSON.parse(r.stdout) as { certificates: Array<Record<string, any>> }).certificates[0]!; // eslint-disable-line @typescript-eslint/no-explicit-any
  };

  /** POST-as-GET `url` signed here with `keyPem` and kid `kid` (a fresh nonce from Pebble). */
  async function postAsGet(url: string, keyPem: string, kid: string): Promise<{ status: number; body: string }> {
    const dir = JSON.parse((await httpsRequest(sb.pebble.directoryUrl, pebbleCa)).body) as { newNonce: string };
    const nonce = (await httpsRequest(dir.newNonce, pebbleCa, { method: 'HEAD' })).headers['replay-nonce'] as string;
    const jws = signJws(accountKeyFromPem(keyPem), { url, nonce, kid, payload: '' });
    return httpsRequest(url, pebbleCa, { method: 'POST', body: JSON.stringify(jws) });
  }

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600, alternateRoots: 1 } });
    front = await startAcmeFront({ pebble: sb.pebble });
    pebbleCa = await readFile(sb.pebble.caBundlePath, 'utf8');
  });
  after(async () => {
    await front?.stop();
    await sb?.stop();
  });

  it('a CA that requires a contact address: without acme.email the error says to set it; with it, registration works', async () => {
    front.requireContact({ type: `${ACME_ERROR}invalidContact`, detail: 'this CA requires a contact address', status: 400 });
    try {
      const c = sb.baseConfig({ challenge: 'dns-01' });
      c.acme.directory = front.directoryUrl;
      c.acme.caBundle = front.caBundlePath;
      c.stateDir = path.join(sb.dir, 'state-contact');
      delete c.acme.email;
      const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'contact-none.yaml'))]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /the CA requires a contact address: set acme\.email/);
      c.acme.email = 'postmaster@example.test';
      const ok = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'contact.yaml'))]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    } finally {
      front.requireContact(undefined);
    }
  });

  it('a failed order: its pending authorization is deactivated at the CA, the valid one is left alone', async () => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.acme.directory = front.directoryUrl;
    c.acme.caBundle = front.caBundlePath;
    c.stateDir = path.join(sb.dir, 'state-deactivate');
    // mx1.other.test is outside the dns-01 zone: its challenge cannot be answered.
    c.certificates[0].domains = ['mx1.example.test', 'mx1.other.test'];
    const seen = front.authzUpdates.length;
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'deactivate.yaml'))]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /not in the configured zone/);
    const updates = front.authzUpdates.slice(seen);
    assert.equal(updates.length, 1, JSON.stringify(updates));
    assert.deepEqual(updates[0]!.payload, { status: 'deactivated' });
    assert.equal(updates[0]!.status, 200);
    assert.equal(updates[0]!.response?.status, 'deactivated', 'Pebble answers with the deactivated authorization');
    assert.equal(updates[0]!.response?.identifier?.value, 'mx1.other.test');
  });

  it('acme.preferredChain picks the alternate root; the deployed chain leads to it; no match keeps the default', async () => {
    const [root0, root1, int1] = await Promise.all([sb.pebble.rootPem(0), sb.pebble.rootPem(1), sb.pebble.intermediatePem(1)]);
    const alt = cnOf(new X509Certificate(root1).subject)!;
    assert.notEqual(alt, cnOf(new X509Certificate(root0).subject), 'two different roots');
    const anchors1 = path.join(sb.dir, 'root1.pem');
    await writeFile(anchors1, root1);
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-chain');
    c.acme.trustAnchors = anchors1;
    c.acme.preferredChain = alt;
    const r = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'chain.yaml'))]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const chain = certsOf(await readFile(path.join(sb.outDir, 'mx1-ecdsa-p256.fullchain.pem'), 'utf8'));
    assert.equal(chain.length, 2);
    assert.ok(chain[1]!.raw.equals(new X509Certificate(int1).raw), "the alternate chain's intermediate is deployed");
    assert.ok(chain[0]!.verify(chain[1]!.publicKey) && chain[1]!.verify(new X509Certificate(root1).publicKey), 'and it verifies up to the alternate root');

    c.acme.preferredChain = 'No Such Root';
    c.acme.trustAnchors = await sb.anchorsFor(sb.pebble, 'root0');
    const d = await sb.cli(['renew', '--force', '--config', await sb.writeConfig(c, path.join(sb.dir, 'chain-none.yaml'))]);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    const def = certsOf(await readFile(path.join(sb.outDir, 'mx1-ecdsa-p256.fullchain.pem'), 'utf8'));
    assert.ok(def[1]!.verify(new X509Certificate(root0).publicKey), 'no match: the default chain');
    assert.match(d.stderr, /no chain of the preferred issuer is offered/);
  });

  it('account show, update --email, rollover-key: the old key stops working, the new one works', async () => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-account');
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'account.yaml'));
    const none = await sb.cli(['account', 'show', '--config', cfg]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no ACME account is registered/);
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const dir = await accountDir(c.stateDir);
    const oldKey = await readFile(path.join(dir, 'key.pem'), 'utf8');
    const url = (JSON.parse(await readFile(path.join(dir, 'account.json'), 'utf8')) as { url: string }).url;

    const show = await sb.cli(['account', 'show', '--json', '--config', cfg]);
    assert.equal(show.code, 0, show.stderr);
    const info = JSON.parse(show.stdout) as { url: string; status: string; contact: string[]; thumbprint: string };
    assert.equal(info.url, url);
    assert.equal(info.status, 'valid');
    assert.deepEqual(info.contact, ['mailto:postmaster@example.test']);
    assert.equal(info.thumbprint, thumbprint(oldKey));
    assert.doesNotMatch(show.stdout + show.stderr, /PRIVATE KEY|"d":/, 'no secret printed');
    const text = await sb.cli(['account', 'show', '--config', cfg]);
    assert.match(text.stdout, new RegExp(`account: +${url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

    const upd = await sb.cli(['account', 'update', '--email', 'hostmaster@example.test', '--json', '--config', cfg]);
    assert.equal(upd.code, 0, upd.stdout + upd.stderr);
    const after = JSON.parse((await sb.cli(['account', 'show', '--json', '--config', cfg])).stdout) as { contact: string[] };
    assert.deepEqual(after.contact, ['mailto:hostmaster@example.test'], 'the CA has the new contact');
    assert.equal((await sb.cli(['account', 'update', '--email', 'not an address', '--config', cfg])).code, 2);

    const roll = await sb.cli(['account', 'rollover-key', '--config', cfg]);
    assert.equal(roll.code, 0, roll.stdout + roll.stderr);
    const newKey = await readFile(path.join(dir, 'key.pem'), 'utf8');
    assert.notEqual(newKey, oldKey);
    assert.equal((await stat(path.join(dir, 'key.pem'))).mode & 0o777, 0o600);
    assert.deepEqual((await readdir(dir)).sort(), ['account.json', 'key.pem'], 'no pending key left');
    const byOld = await postAsGet(url, oldKey, url);
    assert.ok(byOld.status >= 400, `the old key no longer signs for the account: HTTP ${byOld.status} ${byOld.body}`);
    const byNew = await postAsGet(url, newKey, url);
    assert.equal(byNew.status, 200, byNew.body);
    assert.equal((JSON.parse((await sb.cli(['account', 'show', '--json', '--config', cfg])).stdout) as { thumbprint: string }).thumbprint, thumbprint(newKey));
    const again = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.doesNotMatch(again.stderr, /ACME account registered/, 'same account, new key');
  });

  it('a key rollover interrupted after the CA accepted it is completed; one the CA never saw is dropped', async () => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-account');
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'account.yaml'));
    const dir = await accountDir(c.stateDir);
    const current = await readFile(path.join(dir, 'key.pem'), 'utf8');
    const url = (JSON.parse(await readFile(path.join(dir, 'account.json'), 'utf8')) as { url: string }).url;

    // The CA accepts a new key (sent here, as mxcert would), then "mxcert
    // dies" before storing it: only the pending file holds the new key.
    const accepted = newAccountKeyPem();
    const directory = JSON.parse((await httpsRequest(sb.pebble.directoryUrl, pebbleCa)).body) as { newNonce: string; keyChange: string };
    const nonce = (await httpsRequest(directory.newNonce, pebbleCa, { method: 'HEAD' })).headers['replay-nonce'] as string;
    const inner = keyChangeInnerJws(accountKeyFromPem(accepted), { url: directory.keyChange, accountUrl: url, oldKey: accountKeyFromPem(current) });
    const outer = signJws(accountKeyFromPem(current), { url: directory.keyChange, nonce, kid: url, payload: inner });
    const kc = await httpsRequest(directory.keyChange, pebbleCa, { method: 'POST', body: JSON.stringify(outer) });
    assert.equal(kc.status, 200, kc.body);
    await writeFile(path.join(dir, 'key-rollover.pem'), accepted, { mode: 0o600 });
    const show = await sb.cli(['account', 'show', '--json', '--config', cfg]);
    assert.equal(show.code, 0, show.stdout + show.stderr);
    assert.match(show.stderr, /finished an interrupted account key rollover/);
    assert.equal(await readFile(path.join(dir, 'key.pem'), 'utf8'), accepted);
    assert.deepEqual((await readdir(dir)).sort(), ['account.json', 'key.pem']);

    // A pending key the CA never accepted: dropped, the stored key stays.
    await writeFile(path.join(dir, 'key-rollover.pem'), newAccountKeyPem(), { mode: 0o600 });
    const show2 = await sb.cli(['account', 'show', '--json', '--config', cfg]);
    assert.equal(show2.code, 0, show2.stdout + show2.stderr);
    assert.match(show2.stderr, /dropped the key of an interrupted account key rollover/);
    assert.equal(await readFile(path.join(dir, 'key.pem'), 'utf8'), accepted);
    assert.deepEqual((await readdir(dir)).sort(), ['account.json', 'key.pem']);
    assert.equal((JSON.parse(show2.stdout) as { thumbprint: string }).thumbprint, thumbprint(accepted));
  });

  it('revoke --reason keyCompromise: Pebble reports it revoked, status shows it, the next pass replaces it with a new key', async () => {
    const c = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-revoke');
    c.certificates[0].reuseKey = true;
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'revoke.yaml'));
    assert.equal((await sb.cli(['renew', '--force', '--config', cfg])).code, 0);
    const leaf = await combinedLeaf();
    const key = await combinedKey();
    assert.equal((await sb.pebble.certStatus(leaf.serialNumber))?.Status, 'Valid');
    assert.equal((await sb.cli(['revoke', '--cert', 'mx1', '--reason', 'nonsense', '--config', cfg])).code, 2);
    assert.equal((await sb.cli(['revoke', '--cert', 'mx9', '--config', cfg])).code, 2);

    const r = await sb.cli(['revoke', '--cert', 'mx1', '--reason', 'keyCompromise', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /revoked \(keyCompromise\)/);
    const st = await sb.pebble.certStatus(leaf.serialNumber);
    assert.equal(st?.Status, 'Revoked');
    assert.equal(st?.Reason, 1, 'RFC 5280 keyCompromise');
    const row = await statusRow(cfg);
    assert.equal(row.nextRenewalReason, 'revoked');
    assert.equal(row.revoked?.reason, 'keyCompromise');
    assert.match((await sb.cli(['status', '--config', cfg])).stdout, /now \(revoked: keyCompromise\)/);

    const renew = await sb.cli(['renew', '--config', cfg]);
    assert.equal(renew.code, 0, renew.stdout + renew.stderr);
    assert.match(renew.stdout, /"status":"renewed"/);
    const next = await combinedLeaf();
    assert.notEqual(next.serialNumber, leaf.serialNumber);
    assert.notEqual(await combinedKey(), key, 'a compromised key is not reused, reuseKey or not');
    const after = await statusRow(cfg);
    assert.notEqual(after.nextRenewalReason, 'revoked');
    assert.equal(after.revoked, null);
    // Revoking again (superseded) is accepted; the CA's "already revoked" for the old one is not an error.
    const again = await sb.cli(['revoke', '--cert', 'mx1', '--reason', 'superseded', '--config', cfg]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal((await sb.pebble.certStatus(next.serialNumber))?.Reason, 4);
  });

  it('revoke --reason keyCompromise on a DANE certificate requests the emergency rollover; the next pass serves the next key', async () => {
    const c: SandboxConfig = sb.baseConfig({ challenge: 'dns-01' });
    c.stateDir = path.join(sb.dir, 'state-dane');
    const dns = c.certificates[0].challenge.dns;
    c.certificates[0].dane = {
      enabled: true,
      endpoints: [{ host: 'mx1.example.test', port: sb.postfix.port }],
      publisher: { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: 2, nameservers: dns.nameservers },
      keyLifetime: '90d',
      minHold: '1h',
    };
    const cfg = await sb.writeConfig(c, path.join(sb.dir, 'dane.yaml'));
    const steady = await pollUntil(
      async () => {
        const r = await sb.cli(['renew', '--config', cfg]);
        assert.notEqual(r.code, 1, r.stdout + r.stderr);
        const row = await statusRow(cfg);
        return row.dane?.phase === 'STEADY' ? row : undefined;
      },
      { deadlineMs: 60_000, intervalMs: 200, what: 'DANE adoption to reach STEADY' },
    );
    const spki = async () => createHash('sha256').update(new X509Certificate(await servedLeafPem(sb.postfix.port)).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
    assert.equal(await spki(), steady.dane.currentTlsa);

    const r = await sb.cli(['revoke', '--cert', 'mx1', '--reason', 'keyCompromise', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /emergency DANE rollover requested/);
    assert.equal((await statusRow(cfg)).dane?.rolloverRequested, true);
    // minHold is an hour: only the emergency path swaps now.
    await pollUntil(
      async () => {
        const p = await sb.cli(['renew', '--config', cfg]);
        assert.notEqual(p.code, 1, p.stdout + p.stderr);
        return (await spki()) === steady.dane.nextTlsa ? true : undefined;
      },
      { deadlineMs: 60_000, intervalMs: 200, what: 'Postfix to serve the former next key' },
    );
  });
});
