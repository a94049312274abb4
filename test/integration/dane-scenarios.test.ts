// DANE rollover scenarios on real servers (docs/architecture.md, "DANE rollover"):
// a lagging secondary, kill -9 at phase boundaries and inside the swap, a
// failing live verification, the PowerDNS and hook publishers, and dual key
// types. Rollovers are started with `mxcert rollover --cert mx1` and driven
// by repeated `mxcert renew`, as a timer would. The invariant is checked by
// an independent watcher (STARTTLS to Postfix, DNS over TCP to every
// authoritative server); mxcert's journal is read only to know when to stop
// waiting or where to kill, never to decide whether the invariant held.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, POSTFIX_RELOAD_HOOK, startSandbox } from '../support/sandbox.js';
import { assertWatched, findViolations, spkiHash, tlsaAt, type KeyFamily } from '../support/dane-watcher.js';
import { dig } from '../env/bind.js';
import { startPdns, type PdnsEnv } from '../env/pdns.js';
import { startUnbound, type UnboundEnv } from '../env/unbound.js';
import { logTail, pollUntil, run, startDaemon, stopPid, type Daemon } from '../env/proc.js';
import { bindRig, daneBlock, exists, FOREIGN, foreignAdd, NSUPDATE_TLSA_HOOK, pause, preforkSmtpd, Rig, sameSet, TTL, WINDOW_MS, type Journal } from '../support/dane-rig.js';

describe('lagging secondary: no swap until every server has the next record', { timeout: 300_000 }, () => {
  let rig: Rig;
  before(async () => {
    rig = await bindRig();
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('holds the swap while the secondary is down, completes after it catches up, invariant observed', async () => {
    const { sb } = rig;
    await rig.adopt();
    const watcher = rig.watcher().start();
    try {
      const c0 = await rig.served();
      const [p0, s0] = await rig.published();
      assert.ok(sameSet(p0!, s0!) && p0!.length === 2 && p0!.includes(c0), `current + next on both servers: ${p0} / ${s0}`);
      const n0 = p0!.find((h) => h !== c0)!;

      // Rollover 1 (normal) up to the swap: Postfix now serves n0.
      assert.equal((await rig.cli(['rollover', '--cert', 'mx1'])).code, 0, rig.tail(1));
      await rig.drive(async () => ((await rig.journal())?.phase === 'RETIRE_OLD' ? true : undefined), 'the first swap');
      assert.equal(await rig.served(), n0, 'swapped to the former next key');
      const oldKeyFile = path.join(path.dirname(rig.journalPath()), 'keys', `${(await rig.journal())!.old!.id}.pem`);

      // The secondary goes away before the retire update: from now on the new
      // next key exists on the primary only.
      watcher.expectDown(sb.bind.secondary!);
      await sb.bind.stopSecondary!();
      const lagFrom = Date.now();
      await rig.drive(
        async () => ((await tlsaAt(sb.bind.primary, rig.owner)).includes(c0) ? undefined : true),
        'the retire update on the primary',
      );
      const p1 = await tlsaAt(sb.bind.primary, rig.owner);
      assert.equal(p1.length, 2, `primary: ${p1}`);
      assert.ok(p1.includes(n0) && !p1.includes(c0), `primary: ${p1}`);
      const n1 = p1.find((h) => h !== n0)!;

      // Rollover 2 requested while the secondary is still down, then passes
      // for well over the hold (2 × TTL) a swap would need.
      const requestedAt = Date.now();
      const r = await rig.cli(['rollover', '--cert', 'mx1']);
      assert.equal(r.code, 0, rig.tail(1));
      for (let passes = 0; passes < 2 || Date.now() - requestedAt < 3 * WINDOW_MS; passes++) {
        const p = await rig.pass();
        assert.match(p.stdout, /not yet visible everywhere/, rig.tail(1));
        await pause(200);
      }
      const lagTo = Date.now();

      // By observation: no swap happened.
      assert.equal(await rig.served(), n0, 'still serving n0 while the secondary lags');
      assert.deepEqual(
        [...new Set(watcher.servedBetween(lagFrom, lagTo).map((s) => s.hashes[0]))],
        [n0],
        'only n0 served during the lag',
      );
      assert.deepEqual(await tlsaAt(sb.bind.primary, rig.owner), p1, 'primary unchanged during the lag');
      // The retired key's file stays until every server confirmed the removal.
      assert.ok(await exists(oldKeyFile), 'old key file kept while the secondary has not confirmed the removal');

      const restartAt = Date.now();
      await sb.bind.startSecondary!();
      watcher.expectUp(sb.bind.secondary!);
      await rig.drive(
        async () => {
          const sets = await rig.published();
          return (await rig.served()) === n1 && sets.every((s) => s.includes(n1) && !s.includes(n0) && s.length === 2) ? true : undefined;
        },
        'rollover 2 to swap to n1 and retire n0 on both servers',
      );
      const firstN1 = watcher.firstServed(n1);
      assert.ok(firstN1 !== undefined, 'the watcher saw n1 served');
      assert.ok(
        firstN1 - restartAt >= WINDOW_MS,
        `n1 served ${firstN1 - restartAt} ms after the secondary came back; the hold is at least 2 × TTL = ${WINDOW_MS} ms`,
      );
      assert.equal(await exists(oldKeyFile), false, 'old key file deleted once every server confirmed the removal');
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
    const counts = watcher.counts();
    assert.ok((counts['served:any'] ?? 0) > 20 && (counts[`dns:127.0.0.1:${sb.bind.secondary!.port}`] ?? 0) > 10, JSON.stringify(counts));
  });
});

describe('kill -9 at phase boundaries and inside the swap', { timeout: 300_000 }, () => {
  let rig: Rig;
  before(async () => {
    rig = await bindRig();
  });
  after(async () => {
    await rig?.sb.stop();
  });

  /** Current and next key by observation: served key, and the other record on both servers. */
  async function observedKeys(): Promise<{ c: string; n: string }> {
    const c = await rig.served();
    const sets = await rig.published();
    assert.ok(sets.every((s) => sameSet(s, sets[0]!)) && sets[0]!.length === 2 && sets[0]!.includes(c), `current + next everywhere: ${JSON.stringify(sets)}`);
    return { c, n: sets[0]!.find((h) => h !== c)! };
  }

  async function assertRolled(from: { c: string; n: string }): Promise<void> {
    assert.equal(await rig.served(), from.n, 'serving the former next key');
    for (const s of await rig.published()) {
      assert.ok(s.includes(from.n) && !s.includes(from.c) && s.length === 2, `old record retired, new current + next published: ${s}`);
    }
  }

  it('SIGKILL when the journal turns SWAP, RETIRE_OLD, AWAIT_VISIBLE: each restart resumes, the rollover completes', async (t) => {
    await rig.adopt();
    const watcher = rig.watcher().start();
    try {
      const k = await observedKeys();
      const j0 = (await rig.journal())!;
      // SWAP: killed while ordering/deploying the certificate for the next key.
      const r = await rig.killAtPhase(['rollover', '--cert', 'mx1'], 'SWAP');
      let swapRuns = 1;
      if (!r.killed) {
        assert.equal(r.code, 0, rig.tail(1)); // waited for the hold
        swapRuns += await rig.killRenewAt('SWAP', ['STEADY']);
      }
      // RETIRE_OLD: killed right after the swap was verified and recorded.
      const retireRuns = await rig.killRenewAt('RETIRE_OLD', ['SWAP']);
      // AWAIT_VISIBLE: killed after the retire update, before every server
      // confirmed it. The secondary is held back for this pass: with it up,
      // AWAIT_VISIBLE lasts only the few ms a NOTIFY + IXFR take.
      watcher.expectDown(rig.sb.bind.secondary!);
      await rig.sb.bind.stopSecondary!();
      const awaitRuns = await rig.killRenewAt('AWAIT_VISIBLE', ['RETIRE_OLD']);
      await rig.sb.bind.startSecondary!();
      watcher.expectUp(rig.sb.bind.secondary!);
      t.diagnostic(`runs until killed: SWAP ${swapRuns}, RETIRE_OLD ${retireRuns}, AWAIT_VISIBLE ${awaitRuns}`);
      const j = (await rig.journal())!;
      assert.equal(j.current.tlsa, j0.next.tlsa, 'journal sanity');
      await rig.completeRollover({ 'ecdsa-p256': j0 });
      await assertRolled(k);
      const check = await rig.cli(['check']);
      assert.equal(check.code, 0, rig.tail(1));
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
    assert.ok(watcher.servedKeys().length >= 2, 'the watcher saw both keys served');
  });

  it('SIGKILL from inside the swap (a deploy hook kills mxcert after the reload): the restart completes the rollover', async () => {
    const marker = path.join(rig.sb.dir, 'killed-once');
    const killer = path.join(rig.sb.dir, 'kill-parent-once');
    await writeFile(killer, '#!/bin/sh\n[ -e "$1" ] && exit 0\n: > "$1"\nkill -9 "$PPID"\n');
    await chmod(killer, 0o755);
    const killCfgObj = structuredClone(rig.cfgObj);
    killCfgObj.certificates[0].hooks.deploy = [[POSTFIX_RELOAD_HOOK, rig.sb.postfix.configDir], [killer, marker]];
    const killCfg = await rig.sb.writeConfig(killCfgObj, path.join(rig.sb.dir, 'kill.yaml'));

    await rig.drive(async () => ((await rig.journal())?.phase === 'STEADY' ? true : undefined), 'STEADY');
    const watcher = rig.watcher().start();
    try {
      const k = await observedKeys();
      const j0 = (await rig.journal())!;
      // The rollover, then passes with the killing hook until it has fired once (that pass dies by SIGKILL).
      const died = await rig.runUntil(killCfg, async () => exists(marker), 'the deploy hook to fire');
      assert.equal(died.code, 1, 'the pass whose hook fired did not complete');
      assert.doesNotMatch(died.stdout, /"status"/, 'it died before reporting');
      assert.equal((await rig.journal())!.phase, 'SWAP', 'killed inside the swap');
      assert.equal(await rig.served(), k.n, 'killed after Postfix was reloaded onto the next key, before mxcert recorded it');
      // Restart with the same config (the hook is a no-op now).
      await rig.completeRollover({ 'ecdsa-p256': j0 }, killCfg);
      await assertRolled(k);
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });

  it('SIGKILL at SWAP, then the next record vanishes before the restart: the restart re-checks DNS and republishes instead of swapping', async () => {
    await rig.drive(async () => ((await rig.journal())?.phase === 'STEADY' ? true : undefined), 'STEADY');
    const watcher = rig.watcher().start();
    try {
      const k = await observedKeys();
      const j0 = (await rig.journal())!;
      const r = await rig.killAtPhase(['rollover', '--cert', 'mx1'], 'SWAP');
      if (!r.killed) {
        assert.equal(r.code, 0, rig.tail(1));
        await rig.killRenewAt('SWAP', ['STEADY']);
      }
      assert.equal(await rig.served(), k.c, 'killed before the swap reached Postfix');
      // While mxcert is down, someone deletes the next key's record.
      await run('nsupdate', ['-k', rig.sb.bind.tsig.keyFile], {
        input: `server 127.0.0.1 ${rig.sb.bind.primary.port}\nzone example.test\nupdate delete ${rig.owner} TLSA 3 1 1 ${k.n}\nsend\n`,
      });
      // No passes while it propagates: DNS only.
      await pollUntil(async () => ((await rig.published()).every((s) => !s.includes(k.n)) ? true : undefined), {
        deadlineMs: 10_000,
        what: 'the deletion to reach both servers',
      });
      await rig.completeRollover({ 'ecdsa-p256': j0 });
      await assertRolled(k);
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });
});

describe('failing live verification during a rollover', { timeout: 300_000 }, () => {
  let rig: Rig;
  before(async () => {
    rig = await bindRig();
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('no reload → exit 1, rolled back, old key served, old + next still published; fixed hook → rollover completes', async () => {
    const { sb } = rig;
    await rig.adopt();
    const noReload = structuredClone(rig.cfgObj);
    noReload.certificates[0].hooks.deploy = [];
    noReload.certificates[0].verify.timeout = '3s';
    const noReloadCfg = await sb.writeConfig(noReload, path.join(sb.dir, 'no-reload.yaml'));

    const watcher = rig.watcher().start();
    try {
      const c = await rig.served();
      const sets0 = await rig.published();
      const n = sets0[0]!.find((h) => h !== c)!;
      const j0 = (await rig.journal())!;
      // The rollover, then passes until the one that tries the swap (the first may still be in the hold).
      const failed = await rig.runUntil(noReloadCfg, async (r) => r.code === 1, 'the swap to be tried', () => preforkSmtpd(sb.postfix.port, 8));
      assert.match(failed.stdout, /"status":"failed","plan":.*"step":"verify"/, rig.tail(1));
      assert.match(failed.stdout, /previous files restored/);
      assert.equal(await rig.served(), c, 'the old key is still served');
      assert.deepEqual(watcher.servedKeys(), [c], 'Postfix never served the new key');
      for (const s of await rig.published()) {
        assert.ok(s.includes(c) && s.includes(n), `old and next records still published: ${s}`);
      }
      const combined = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(await readFile(sb.combinedPath(), 'utf8'))![0];
      assert.equal(spkiHash(combined), c, 'the deployed file is the old one again');
      // A failed swap honours the failure backoff while the config is
      // unchanged: the next timer pass does not order again (a broken reload
      // hook must not burn the CA's limits).
      const issuedBefore = rig.issued;
      const waiting = await rig.cli(['renew'], noReloadCfg);
      assert.equal(waiting.code, 0, rig.tail(1));
      assert.match(waiting.stdout, /backing off after a failure/, rig.tail(1));
      assert.equal(rig.issued, issuedBefore, 'no certificate ordered during the backoff');
      assert.equal(await rig.served(), c);
      // The hook is back: the config changed, so the backoff no longer holds,
      // and the certificate already issued for the next key (kept staged) is
      // deployed without a new order; the rollover completes.
      const retried = await rig.cli(['renew']);
      assert.equal(retried.code, 0, rig.tail(1));
      assert.equal(rig.issued, issuedBefore, 'the staged certificate is deployed, no new order');
      await rig.completeRollover({ 'ecdsa-p256': j0 });
      assert.equal(await rig.served(), n);
      for (const s of await rig.published()) assert.ok(s.includes(n) && !s.includes(c) && s.length === 2, `retired: ${s}`);
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });
});

describe('the same rollover through the PowerDNS publisher', { timeout: 300_000 }, () => {
  let rig: Rig;
  let pdns: PdnsEnv;
  before(async () => {
    const sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    rig = new Rig(sb);
    try {
      pdns = await startPdns({ zone: 'example.test', ttl: TTL, hosts: { mx1: '127.0.0.1' } });
    } catch (err) {
      await sb.stop();
      throw err;
    }
    rig.servers = [pdns.dns];
    // dns-01 stays on BIND (Pebble resolves there); DANE goes to PowerDNS.
    rig.cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    rig.cfgObj.certificates[0].dane = daneBlock(rig, {
      provider: 'pdns',
      url: pdns.apiUrl,
      zone: pdns.zone,
      apiKeyFile: pdns.apiKeyFile,
      ttl: TTL,
      nameservers: [`127.0.0.1:${pdns.dns.port}`],
      server: '127.0.0.1',
      port: pdns.dns.port,
      timeout: '10s',
    });
    rig.cfg = await sb.writeConfig(rig.cfgObj);
  });
  after(async () => {
    await pdns?.stop();
    await rig?.sb.stop();
  });

  it('adoption over a foreign RRset (publish, hold, then serve) → rollover → retire; foreign record survives', async () => {
    const patch = await pdns.api('PATCH', `/servers/localhost/zones/${pdns.zone}.`, {
      rrsets: [{ name: `${rig.owner}.`, type: 'TLSA', ttl: TTL, changetype: 'REPLACE', records: [{ content: `3 1 1 ${FOREIGN}`, disabled: false }] }],
    });
    assert.equal(patch.status, 204, JSON.stringify(patch.body));
    const placeholder = await rig.served();
    // Watching from before adoption: the placeholder Postfix starts with is
    // not mxcert's doing, everything mxcert serves is checked.
    const watcher = rig.watcher().start();
    try {
      await rig.adopt();
      const c = await rig.served();
      assert.notEqual(c, placeholder);
      const [set] = await rig.published();
      assert.ok(set!.length === 3 && set!.includes(FOREIGN) && set!.includes(c), `foreign + current + next: ${set}`);
      const n = set!.find((h) => h !== c && h !== FOREIGN)!;
      const j0 = (await rig.journal())!;
      assert.equal((await rig.cli(['rollover', '--cert', 'mx1'])).code, 0, rig.tail(1));
      await rig.completeRollover({ 'ecdsa-p256': j0 });
      assert.equal(await rig.served(), n);
      const [after] = await rig.published();
      assert.ok(after!.length === 3 && after!.includes(FOREIGN) && after!.includes(n) && !after!.includes(c), `after: ${after}`);
      // The API agrees with DNS (no disabled leftovers of ours).
      const zone = (await pdns.api('GET', `/servers/localhost/zones/${pdns.zone}.`)).body as { rrsets: Array<{ name: string; type: string; records: Array<{ content: string }> }> };
      const rr = zone.rrsets.find((x) => x.type === 'TLSA' && x.name === `${rig.owner}.`)!;
      assert.equal(rr.records.length, 3, JSON.stringify(rr));
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    const mine = watcher.samples.filter((s) => !(s.kind === 'served' && s.hashes[0] === placeholder));
    assert.deepEqual(findViolations(mine, TTL), []);
    assert.ok(watcher.servedKeys().length >= 3, 'placeholder, adopted key and rolled key all seen');
  });
});

describe('the same rollover through the hook publisher (hooks/nsupdate-tlsa)', { timeout: 300_000 }, () => {
  let rig: Rig;
  before(async () => {
    const sb = await startSandbox({ secondary: true, pebble: { validitySeconds: 3600 } });
    rig = new Rig(sb);
    // The hook's own output, which shows it published, is logged at debug level.
    rig.logLevel = 'debug';
    rig.servers = [sb.bind.primary, sb.bind.secondary!];
    rig.cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    rig.cfgObj.certificates[0].dane = daneBlock(rig, {
      provider: 'hook',
      command: [NSUPDATE_TLSA_HOOK],
      nameservers: rig.servers.map((s) => `${s.host}:${s.port}`),
      ttl: TTL,
      timeout: '30s',
      env: {
        NSUPDATE_KEYFILE: sb.bind.tsig.keyFile,
        NSUPDATE_SERVER: '127.0.0.1',
        NSUPDATE_PORT: String(sb.bind.primary.port),
        NSUPDATE_ZONE: sb.bind.zone,
      },
    });
    rig.cfg = await sb.writeConfig(rig.cfgObj);
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('adoption → rollover → retire on both BIND servers; foreign record survives', async () => {
    await rig.adopt();
    assert.match(rig.stderr.join('\n'), /nsupdate-tlsa: tlsa-publish at /, 'the hook published');
    const watcher = rig.watcher().start();
    try {
      await foreignAdd(rig.sb, rig.owner, FOREIGN);
      await pollUntil(async () => ((await rig.published()).every((s) => s.includes(FOREIGN)) ? true : undefined), {
        deadlineMs: 10_000,
        what: 'the foreign record on both servers',
      });
      const c = await rig.served();
      const sets = await rig.published();
      for (const s of sets) assert.ok(s.length === 3 && s.includes(c) && s.includes(FOREIGN), `current + next + foreign: ${s}`);
      const n = sets[0]!.find((h) => h !== c && h !== FOREIGN)!;
      const j0 = (await rig.journal())!;
      const logFrom = rig.log.length;
      assert.equal((await rig.cli(['rollover', '--cert', 'mx1'])).code, 0, rig.tail(1));
      await rig.completeRollover({ 'ecdsa-p256': j0 });
      assert.equal(await rig.served(), n);
      for (const s of await rig.published()) {
        assert.ok(s.length === 3 && s.includes(FOREIGN) && s.includes(n) && !s.includes(c), `after: ${s}`);
      }
      assert.match(rig.log.slice(logFrom).join('\n'), /nsupdate-tlsa: tlsa-retire at /, 'the hook retired the old record');
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
    assert.ok(watcher.servedKeys().length >= 2);
  });
});

describe('dual key types (ECDSA + RSA chains in Postfix)', { timeout: 300_000 }, () => {
  let rig: Rig;
  const KEYS = ['ecdsa-p256', 'rsa-2048'] as const;
  const FAMILY: Record<(typeof KEYS)[number], KeyFamily> = { 'ecdsa-p256': 'ecdsa', 'rsa-2048': 'rsa' };
  before(async () => {
    rig = await bindRig({ keys: [...KEYS] });
    await rig.sb.useDualChains();
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('both key types adopt and roll; current + next of both stay published; each served key always in the RRset', async () => {
    // Watched from the start: adoption is certificate-level, so no record is
    // published until both key types serve their current key, and the first
    // RRset any server returns already holds all four records.
    const watcher = rig.watcher(['ecdsa', 'rsa']).start();
    const j0: Record<string, Journal> = {};
    try {
      await rig.adopt([...KEYS]);
      for (const k of KEYS) j0[k] = (await rig.journal(k))!;
      for (const k of KEYS) assert.equal(await rig.served(FAMILY[k]), j0[k]!.current.tlsa, `${k}: Postfix serves the current key`);
      const all0 = KEYS.flatMap((k) => [j0[k]!.current.tlsa, j0[k]!.next.tlsa]);
      for (const s of await rig.published()) assert.ok(sameSet(s, all0), `both key types' current + next: ${s}`);

      assert.equal((await rig.cli(['rollover', '--cert', 'mx1'])).code, 0, rig.tail(1));
      await rig.completeRollover(j0);
      const j1: Record<string, Journal> = {};
      for (const k of KEYS) j1[k] = (await rig.journal(k))!;
      for (const k of KEYS) assert.equal(await rig.served(FAMILY[k]), j0[k]!.next.tlsa, `${k}: serving the former next key`);
      const all1 = KEYS.flatMap((k) => [j1[k]!.current.tlsa, j1[k]!.next.tlsa]);
      await rig.drive(
        async () => ((await rig.published()).every((s) => sameSet(s, all1)) ? true : undefined),
        'both servers to serve exactly the new current + next of both key types',
      );
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
    for (const k of KEYS) {
      // The placeholder Postfix served before adoption (no DANE then), then old, then new.
      const seen = watcher.servedKeys(FAMILY[k]).filter((h) => h === j0[k]!.current.tlsa || h === j0[k]!.next.tlsa);
      assert.deepEqual(seen, [j0[k]!.current.tlsa, j0[k]!.next.tlsa], `${k}: served exactly old then new`);
    }
    // Never fewer than current + next for each key type in any answer.
    for (const d of watcher.samples.filter((s) => s.kind === 'dns' && s.hashes.length > 0)) {
      assert.ok(d.hashes.length >= 4, `an RRset with fewer than 4 records at ${new Date(d.t).toISOString()} on ${d.server}: ${d.hashes}`);
    }
  });
});

describe('emergency rollover (mxcert rollover --emergency)', { timeout: 300_000 }, () => {
  let rig: Rig;
  const HOLD = '1h';
  before(async () => {
    rig = await bindRig();
    // A long minHold: a normal rollover cannot swap within this test.
    rig.cfgObj.certificates[0].dane.minHold = HOLD;
    rig.cfg = await rig.sb.writeConfig(rig.cfgObj);
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('a normal rollover holds for minHold; --emergency swaps to the published next key now, loudly; retire follows', async () => {
    const watcher = rig.watcher().start();
    try {
      await rig.adopt();
      const j0 = (await rig.journal())!;
      assert.equal(await rig.served(), j0.current.tlsa);

      const normal = await rig.cli(['rollover', '--cert', 'mx1']);
      assert.equal(normal.code, 0, rig.tail(1));
      assert.match(normal.stdout, /rotation due, holding until/, rig.tail(1));
      assert.equal(await rig.served(), j0.current.tlsa, 'the hold keeps the current key served');

      // The emergency skips the hold, not the 2 × TTL after the next record
      // became visible everywhere: wait (by observation) until every server
      // has served it for a whole window, so the watcher's verdict below is
      // about mxcert, not about this test's timing.
      const visibleEverywhere = Math.max(
        ...rig.servers.map((s) => watcher.samples.find((x) => x.kind === 'dns' && x.server === `${s.host}:${s.port}` && x.hashes.includes(j0.next.tlsa))?.t ?? Infinity),
      );
      assert.ok(Number.isFinite(visibleEverywhere), 'the watcher saw the next record on every server');
      await pollUntil(async () => (Date.now() > visibleEverywhere + WINDOW_MS ? true : undefined), { deadlineMs: WINDOW_MS + 5000, what: '2 × TTL after the next record was seen everywhere' });

      const em = await rig.cli(['rollover', '--cert', 'mx1', '--emergency']);
      assert.equal(em.code, 0, rig.tail(1));
      assert.match(em.stderr, /EMERGENCY rollover requested/, 'the request is logged as an emergency');
      assert.match(em.stderr, /EMERGENCY rollover: swapping without waiting for the hold/, 'the swap is logged as an emergency');
      assert.equal(await rig.served(), j0.next.tlsa, 'serving the former next key right away');
      const j1 = (await rig.journal())!;
      assert.equal(j1.current.tlsa, j0.next.tlsa);
      assert.equal(j1.rollover, undefined, 'the request is consumed by the swap');

      // Retire: the old record goes, the new next key is published.
      await rig.drive(
        async () => ((await rig.published()).every((s) => sameSet(s, [j1.current.tlsa, j1.next.tlsa])) ? true : undefined),
        'the old record retired and the new next key published on both servers',
      );
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });
});

describe('validating resolver: a swap waits for AD (dane.validatingResolver, real unbound)', { timeout: 300_000 }, () => {
  let rig: Rig;
  const resolvers: Partial<Record<'none' | 'wrong' | 'zone', UnboundEnv>> = {};
  before(async () => {
    rig = await bindRig();
    for (const anchor of ['none', 'wrong', 'zone'] as const) {
      resolvers[anchor] = await startUnbound({ zone: 'example.test', servers: rig.servers, anchor });
    }
  });
  after(async () => {
    for (const r of Object.values(resolvers)) await r?.stop();
    await rig?.sb.stop();
  });

  const useResolver = async (r: UnboundEnv): Promise<void> => {
    rig.cfgObj.certificates[0].dane.validatingResolver = `${r.host}:${r.port}`;
    rig.cfg = await rig.sb.writeConfig(rig.cfgObj);
  };

  it('no swap while the resolver cannot validate (no anchor: no AD; wrong anchor: SERVFAIL); with the zone’s anchor the rollover completes', async () => {
    // The resolvers themselves, asked independently: only the one with the
    // zone's key validates.
    const ask = (r: UnboundEnv) => dig(r, ['+rec', '+dnssec', 'mx1.example.test', 'A']);
    assert.match(await ask(resolvers.zone!), /;; flags:[^;]*\bad\b/, 'the anchored resolver sets AD');
    assert.doesNotMatch(await ask(resolvers.none!), /;; flags:[^;]*\bad\b/, 'no anchor: no AD');
    assert.match(await ask(resolvers.wrong!), /status: SERVFAIL/, 'a wrong anchor: bogus, SERVFAIL');

    await useResolver(resolvers.none!);
    const watcher = rig.watcher().start();
    try {
      await rig.adopt();
      const j0 = (await rig.journal())!;
      assert.equal((await rig.cli(['rollover', '--cert', 'mx1'])).code, 0, rig.tail(1));
      for (const [anchor, why] of [
        ['none', /rotation due, validating resolver 127\.0\.0\.1:\d+: \S+ TLSA not validated \(no AD bit\)/],
        ['wrong', /rotation due, validating resolver 127\.0\.0\.1:\d+: SERVFAIL for \S+ TLSA/],
      ] as const) {
        await useResolver(resolvers[anchor]!);
        // Right after adoption the hold still runs; once it has passed, the
        // resolver is what holds the swap back, for as long as passes go on
        // (here: 2 × the hold a swap would otherwise need).
        let from = 0;
        for (let passes = 0; !from || passes < 2 || Date.now() - from < 2 * WINDOW_MS; passes++) {
          const p = await rig.pass();
          if (!from && /rotation due, holding until/.test(p.stdout)) {
            assert.ok(passes < 100, `${anchor}: the hold never ended\n${rig.tail(1)}`);
          } else {
            assert.match(p.stdout, why, `${anchor}: ${rig.tail(1)}`);
            from ||= Date.now();
          }
          await pause(200);
        }
        assert.equal(await rig.served(), j0.current.tlsa, `${anchor}: no swap`);
        assert.equal((await rig.journal())!.phase, 'STEADY');
      }
      await useResolver(resolvers.zone!);
      await rig.completeRollover({ 'ecdsa-p256': j0 });
      assert.equal(await rig.served(), j0.next.tlsa, 'swapped once the resolver validated the next record');
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });
});

describe('mxcert rollover while the daemon runs: the daemon is nudged and swaps at the end of the hold', { timeout: 300_000 }, () => {
  let rig: Rig;
  let daemon: Daemon | undefined;
  const HOLD_S = 8;
  before(async () => {
    rig = await bindRig();
    rig.cfgObj.schedule = '0 0 1 1 *'; // no cron tick during the test: only timers and signals wake the daemon
    rig.cfgObj.certificates[0].dane.minHold = `${HOLD_S}s`;
    rig.cfg = await rig.sb.writeConfig(rig.cfgObj);
  });
  after(async () => {
    if (daemon) await stopPid(daemon.pid);
    await rig?.sb.stop();
  });

  it('the CLI pass holds; the daemon, told by SIGUSR1, swaps once the hold has passed; invariant observed', async () => {
    const logPath = path.join(rig.sb.dir, 'daemon.log');
    daemon = startDaemon({ name: 'mxcert run', command: process.execPath, args: [CLI, 'run', '--config', rig.cfg], cwd: rig.sb.dir, logPath, env: { ...process.env, MXCERT_LOG_LEVEL: 'debug' } });
    const watcher = rig.watcher().start();
    try {
      // The daemon's start-up pass adopts.
      const j0 = await pollUntil(async () => {
        const j = await rig.journal();
        return j?.phase === 'STEADY' ? j : undefined;
      }, { deadlineMs: 60_000, what: 'adoption by the daemon', detail: () => logTail(logPath) });
      assert.equal(await rig.served(), j0.current.tlsa);

      const r = await rig.cli(['rollover', '--cert', 'mx1', '--wait', '60']);
      assert.equal(r.code, 0, rig.tail(1));
      assert.match(r.stdout, /rotation due, holding until/, 'the CLI pass falls inside the hold');
      assert.match(r.stderr, /asked the running daemon to re-plan \(SIGUSR1\)/);
      assert.equal(await rig.served(), j0.current.tlsa, 'no swap during the hold');

      // Without the nudge the daemon would sleep until the certificate's own renewal time (~30 min).
      await pollUntil(async () => ((await rig.served()) === j0.next.tlsa ? true : undefined), {
        deadlineMs: HOLD_S * 1000 + 30_000,
        intervalMs: 250,
        what: 'the daemon to swap to the next key',
        detail: () => logTail(logPath, 30),
      });
      // "pass finished" (with its why) is logged at the end of the pass, after the swap is visible.
      await pollUntil(async () => (/"why":"signal"/.test(await readFile(logPath, 'utf8')) ? true : undefined), {
        deadlineMs: 60_000,
        what: 'the log of a pass triggered by the signal',
        detail: () => logTail(logPath, 30),
      });
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
  });
});
