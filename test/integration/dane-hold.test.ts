// The hold (docs/architecture.md, "DANE rollover", The hold) on real BIND
// 9 (primary + secondary), Postfix and Pebble: it covers the TTL the RRset
// had before mxcert's update (BIND rewrites the whole RRset's TTL to that of
// the record just added), and it starts when the last authoritative server
// was seen serving the record. An independent watcher checks the invariant
// with each RRset's own TTL.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dig, type DnsServerAddr } from '../env/bind.js';
import { pollUntil } from '../env/proc.js';
import { assertWatched, findViolations, type DaneWatcher } from '../support/dane-watcher.js';
import { bindRig, FOREIGN, foreignAdd, holdTransfers, Rig, TTL } from '../support/dane-rig.js';
import { tlsaAt } from '../support/dane-watcher.js';

/** The last time before `hash` was first served that the watcher saw a server return a non-empty RRset without it (ms). */
function lastSeenWithout(w: DaneWatcher, hash: string, server?: DnsServerAddr): number {
  const name = server && `${server.host}:${server.port}`;
  const first = w.firstServed(hash) ?? Infinity;
  return Math.max(0, ...w.samples.filter((s) => s.kind === 'dns' && s.t < first && s.hashes.length > 0 && !s.hashes.includes(hash) && (!name || s.server === name)).map((s) => s.t));
}

describe('the hold covers the TTL the RRset had before our update (BIND rewrites the RRset’s TTL)', { timeout: 300_000 }, () => {
  let rig: Rig;
  const FOREIGN_TTL = 8;
  before(async () => {
    rig = await bindRig();
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('a foreign record with TTL 8, ours with TTL 2: the current key is served 2 × 8 s after its record was everywhere; the old record goes ≥ 8 s after the swap', async () => {
    await foreignAdd(rig.sb, rig.owner, FOREIGN, FOREIGN_TTL);
    await pollUntil(async () => ((await rig.published()).every((s) => s.includes(FOREIGN)) ? true : undefined), { deadlineMs: 10_000, what: 'the foreign record on both servers' });
    const placeholder = await rig.served();
    const watcher = rig.watcher().start();
    let c = '';
    let n = '';
    try {
      await rig.adopt();
      c = await rig.served();
      assert.notEqual(c, placeholder);
      const sets = await rig.published();
      n = sets[0]!.find((h) => h !== c && h !== FOREIGN)!;
      // The TTL rewrite happened: BIND now serves the whole RRset with our TTL.
      assert.match(await dig(rig.sb.bind.primary, ['+noall', '+answer', 'TLSA', rig.owner]), new RegExp(`\\s${TTL}\\s+IN\\s+TLSA`), 'RRset TTL rewritten to 2');
      const j0 = (await rig.journal())!;
      assert.equal((await rig.cli(['rollover', '--cert', 'mx1'])).code, 0, rig.tail(1));
      await rig.completeRollover({ 'ecdsa-p256': j0 });
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    const mine = watcher.samples.filter((x) => !(x.kind === 'served' && x.hashes[0] === placeholder));
    assert.deepEqual(findViolations(mine, TTL), [], 'invariant, with each RRset’s own TTL');
    const firstC = watcher.firstServed(c)!;
    const withoutC = lastSeenWithout(watcher, c);
    assert.ok(firstC - withoutC >= 2 * FOREIGN_TTL * 1000, `current key served ${firstC - withoutC} ms after an RRset without it (TTL ${FOREIGN_TTL}) was last seen; the hold is 2 × ${FOREIGN_TTL} s`);
    const firstN = watcher.firstServed(n)!;
    const oldGone = Math.min(...watcher.samples.filter((x) => x.kind === 'dns' && x.hashes.length > 0 && !x.hashes.includes(c) && x.t > firstN).map((x) => x.t));
    assert.ok(oldGone - firstN >= FOREIGN_TTL * 1000, `old record removed ${oldGone - firstN} ms after the swap; RETIRE_OLD waits at least ${FOREIGN_TTL} s`);
  });
});

describe('t_visible is when the last server was seen serving the record (a secondary that catches up 5 s later)', { timeout: 300_000 }, () => {
  let rig: Rig;
  before(async () => {
    rig = await bindRig();
  });
  after(async () => {
    await rig?.sb.stop();
  });

  it('adoption over a foreign record: the hold starts when the secondary serves ours, not when the pass began', async () => {
    const { sb } = rig;
    await foreignAdd(sb, rig.owner, FOREIGN);
    await pollUntil(async () => ((await rig.published()).every((s) => s.includes(FOREIGN)) ? true : undefined), { deadlineMs: 20_000, what: 'the foreign record on both servers' });
    const placeholder = await rig.served();
    const watcher = rig.watcher().start();
    let c = '';
    try {
      // The secondary lags (it keeps serving its old copy: transfers are
      // refused) when mxcert publishes, and catches up 5 s later while the
      // same pass still polls for visibility.
      const release = await holdTransfers(sb);
      const first = rig.pass();
      await pollUntil(async () => ((await tlsaAt(sb.bind.primary, rig.owner)).length === 3 ? true : undefined), { deadlineMs: 30_000, what: 'mxcert’s records on the primary' });
      await new Promise((r) => setTimeout(r, 5000));
      await release();
      await first;
      await rig.adopt();
      c = await rig.served();
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    const mine = watcher.samples.filter((x) => !(x.kind === 'served' && x.hashes[0] === placeholder));
    assert.deepEqual(findViolations(mine, TTL), []);
    const secondaryWithout = lastSeenWithout(watcher, c, sb.bind.secondary!);
    const primaryHad = Math.min(...watcher.samples.filter((x) => x.kind === 'dns' && x.server === `${sb.bind.primary.host}:${sb.bind.primary.port}` && x.hashes.includes(c)).map((x) => x.t));
    assert.ok(secondaryWithout - primaryHad >= 2000, `the secondary lagged (${secondaryWithout - primaryHad} ms), or this test proves nothing`);
    const j = (await rig.journal())!;
    assert.ok(Date.parse(j.nextVisibleAt!) >= secondaryWithout, `t_visible ${j.nextVisibleAt} is after the secondary was last seen without the record (${new Date(secondaryWithout).toISOString()})`);
    assert.ok(watcher.firstServed(c)! - secondaryWithout >= 2 * TTL * 1000, 'served 2 × TTL after the secondary was last seen without it');
  });
});
