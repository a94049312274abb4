// Turning DANE off on real BIND 9 (primary + secondary), Pebble and Postfix
// (docs/architecture.md, "Turning DANE off"): a certificate adopted with
// DANE whose dane: block is removed keeps its key while mxcert's records are
// published; `mxcert dane retire` takes them down (foreign records stay, and
// it refuses when what is left would not match what is served), waits until
// no server serves them and caches have expired, then frees the key, after
// which a renewal may use a new one; `mxcert delete` takes a certificate out
// of service. An independent watcher checks the invariant throughout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pollUntil, run } from '../env/proc.js';
import { assertWatched, DaneWatcher, tlsaAt } from '../support/dane-watcher.js';
import { bindRig, FOREIGN, foreignAdd, Rig, TTL } from '../support/dane-rig.js';
import { servedLeafPem } from '../support/sandbox.js';

const exists = (p: string) => access(p).then(() => true, () => false);

describe('turning DANE off: the key stays until mxcert dane retire; then delete', { timeout: 400_000 }, () => {
  let rig: Rig;
  let watcher: DaneWatcher;
  let noDane = '';
  const daneDirOf = () => path.join(rig.sb.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'dane');
  before(async () => {
    rig = await bindRig();
    const cfg = structuredClone(rig.cfgObj);
    delete cfg.certificates[0].dane;
    noDane = await rig.sb.writeConfig(cfg, path.join(rig.sb.dir, 'no-dane.yaml'));
  });
  after(async () => {
    await watcher?.stop();
    await rig?.sb.stop();
  });

  it('DANE removed from the config, renew --force: the current key is kept (a new one would break delivery) and the output says why', async () => {
    await rig.adopt();
    watcher = rig.watcher().start();
    const j0 = (await rig.journal())!;
    assert.equal(await rig.served(), j0.current.tlsa);
    const serial0 = new X509Certificate(await servedLeafPem(rig.sb.postfix.port)).serialNumber;
    const r = await rig.cli(['renew', '--force'], noDane);
    assert.equal(r.code, 0, rig.tail(1));
    assert.match(r.stdout, /"status":"renewed"/);
    // By observation: the renewed certificate is served, and the watcher has seen it.
    const since = await pollUntil(async () => (new X509Certificate(await servedLeafPem(rig.sb.postfix.port)).serialNumber !== serial0 ? Date.now() : undefined), { deadlineMs: 30_000, what: 'the renewed certificate to be served' });
    await pollUntil(async () => (watcher.samples.some((x) => x.kind === 'served' && x.t > since) ? true : undefined), { deadlineMs: 10_000, what: 'the watcher to see it' });
    assert.deepEqual(watcher.violations(), [], 'a DANE sender would refuse the host');
    assert.equal(await rig.served(), j0.current.tlsa, 'same key, new certificate');
    assert.ok(
      r.stdout.includes(`DANE is off in the config but mxcert's TLSA records for mx1 are still published at ${rig.owner}.; keeping the current key until you run \`mxcert dane retire --cert mx1\``),
      rig.tail(1),
    );
    const st = JSON.parse((await rig.cli(['status', '--json'], noDane)).stdout) as { certificates: Array<{ dane: { phase: string } | null }> };
    assert.equal(st.certificates[0]!.dane?.phase, 'STEADY', 'status still shows the DANE state');
    assert.match((await rig.cli(['tlsa'], noDane)).stdout, /mx1: DANE is off in the config, but mxcert's records may still be published until `mxcert dane retire --cert mx1`/);
  });

  it('mxcert dane retire refuses while DANE is still enabled, and when a record left behind would not match the served certificate', async () => {
    const enabled = await rig.cli(['dane', 'retire', '--cert', 'mx1']);
    assert.equal(enabled.code, 2, rig.tail(1));
    assert.match(enabled.stderr, /DANE is still enabled/);
    await foreignAdd(rig.sb, rig.owner, FOREIGN);
    await rig.drive(async () => ((await rig.published()).every((s) => s.includes(FOREIGN)) ? true : undefined), 'the foreign record on both servers', { cfg: noDane });
    const before = await rig.published();
    const refused = await rig.cli(['dane', 'retire', '--cert', 'mx1'], noDane);
    assert.equal(refused.code, 1, rig.tail(1));
    assert.match(refused.stderr, /removing mxcert's TLSA records would break delivery: .*none matches the certificate served for ecdsa-p256/);
    assert.deepEqual(await rig.published(), before, 'nothing removed');
    await run('nsupdate', ['-k', rig.sb.bind.tsig.keyFile], {
      input: `server 127.0.0.1 ${rig.sb.bind.primary.port}\nzone example.test\nupdate delete ${rig.owner} TLSA 3 1 1 ${FOREIGN}\nsend\n`,
    });
  });

  it('mxcert dane retire: mxcert’s records leave every server, a DANE-TA record for the served chain stays, the key is freed; the next renewal may use a new key', async () => {
    const j0 = (await rig.journal())!;
    // An operator's DANE-TA record for the CA's intermediate: it still
    // authenticates the served chain once mxcert's records are gone.
    const chain = (await readFile(rig.sb.combinedPath().replace(/\.pem$/, '.fullchain.pem'), 'utf8')).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
    const ta = createHash('sha256').update(new X509Certificate(chain[1]!).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
    await run('nsupdate', ['-k', rig.sb.bind.tsig.keyFile], {
      input: `server 127.0.0.1 ${rig.sb.bind.primary.port}\nzone example.test\nupdate add ${rig.owner} ${TTL} TLSA 2 1 1 ${ta}\nsend\n`,
    });
    const ours = [j0.current.tlsa, j0.next.tlsa];
    await rig.drive(async () => ((await rig.published()).every((s) => s.length === 2 && ours.every((h) => s.includes(h))) ? true : undefined), 'only our 3 1 1 records (and the TA) on both servers', { cfg: noDane });
    const started = Date.now();
    const r = await rig.cli(['dane', 'retire', '--cert', 'mx1'], noDane);
    assert.equal(r.code, 0, rig.tail(1));
    assert.match(r.stdout, /mx1: withdrew mxcert's TLSA records \(2\) from /);
    assert.match(r.stdout, /mx1: retired: no authoritative server serves mxcert's TLSA records and caches have expired/);
    for (const s of [rig.sb.bind.primary, rig.sb.bind.secondary!]) {
      assert.deepEqual(await tlsaAt(s, rig.owner), [], 'no 3 1 1 record of ours left');
      const all = await run('dig', [`@${s.host}`, '-p', String(s.port), '+norec', '+short', 'TLSA', rig.owner]);
      assert.match(all.stdout.replace(/\s+/g, '').toLowerCase(), new RegExp(`^211${ta}$`), 'the DANE-TA record stays');
    }
    assert.equal(await exists(daneDirOf()), false, 'journal and keys removed');
    const gone = Math.max(...watcher.samples.filter((x) => x.kind === 'dns' && x.hashes.some((h) => ours.includes(h))).map((x) => x.t));
    assert.ok(Date.now() - gone >= 2 * TTL * 1000, `freed ${Date.now() - gone} ms after a record of ours was last seen; caches hold it up to 2 × TTL`);
    assert.ok(gone >= started, 'the watcher saw our records until the retirement');

    const again = await rig.cli(['renew', '--force'], noDane);
    assert.equal(again.code, 0, rig.tail(1));
    assert.doesNotMatch(again.stdout, /DANE is off/);
    const fresh = await rig.drive(async () => {
      const h = await rig.served();
      return h !== j0.current.tlsa ? h : undefined;
    }, 'a new key to be served', { cfg: noDane });
    assert.ok(!ours.includes(fresh), 'a new key');
    await watcher.stop();
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });

  it('mxcert delete: retires the records of a certificate that has them, removes its state, and its output files when asked', async () => {
    // DANE on again: a fresh adoption of the key served now (its records are added next to the TA record).
    watcher = rig.watcher().start();
    await rig.drive(async () => ((await rig.journal())?.phase === 'STEADY' ? true : undefined), 'adoption to reach STEADY');
    const j = (await rig.journal())!;
    const combined = rig.sb.combinedPath();
    const unknown = await rig.cli(['delete', '--cert', 'nosuch']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no certificate named nosuch/);
    const r = await rig.cli(['delete', '--cert', 'mx1', '--remove-outputs']);
    assert.equal(r.code, 0, rig.tail(1));
    assert.match(r.stdout, /mx1: deleted its state and its output files/);
    assert.match(r.stderr, /warning: mx1 is still in .*: the next pass .* issues it again/);
    assert.equal(await exists(path.join(rig.sb.stateDir, 'certs', 'mx1')), false, 'state removed');
    assert.equal(await exists(combined), false, 'output removed on request');
    for (const s of [rig.sb.bind.primary, rig.sb.bind.secondary!]) {
      const left = await tlsaAt(s, rig.owner);
      assert.ok(!left.includes(j.current.tlsa) && !left.includes(j.next.tlsa), `our records withdrawn: ${left}`);
    }
    await watcher.stop();
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });
});
