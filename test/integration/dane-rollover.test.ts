// DANE rollover on real servers (docs/architecture.md, "DANE"): BIND primary + a
// secondary fed by zone transfer (inline-signed, TSIG updates), Postfix, Pebble.
// A watcher in this test observes, independently of mxcert (openssl for
// what Postfix serves, dig against each authoritative server for the TLSA
// RRset), and the invariant is checked over those observations:
//   at every instant, the key the MTA serves is in every TLSA RRset that any
//   authoritative server returned during the preceding 2 × TTL.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { access, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLI, servedLeafPem, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { assertWatched, DaneWatcher, servedHash, spkiHash, tlsaAt } from '../support/dane-watcher.js';
import { writeSelfSignedCombined } from '../env/pki.js';
import { assertStatusSchema } from '../support/status-schema.js';
import { pollUntil, run } from '../env/proc.js';

const TTL = 2;

/**
 * Alive, not a zombie, and no signal pending: a fatal signal sent to it is
 * either still pending or has already ended it, so this holds only for a
 * process nobody signalled (no waiting for an exit that may never come).
 */
function unsignalled(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1] ?? '';
  return !/^[ZX]/.test(field('State')) && /^0+$/.test(field('SigPnd')) && /^0+$/.test(field('ShdPnd'));
}

interface Journal {
  phase: string;
  current: { id: string; tlsa: string };
  next: { id: string; tlsa: string };
  old?: { id: string; tlsa: string };
  holdUntil?: string;
}

describe('DANE rollover on real BIND (primary + secondary), Postfix and Pebble', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let cfg: string;
  let owner: string;
  let cfgObj: SandboxConfig;
  const journalPath = () => path.join(sb.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'dane', 'journal.json');
  const journal = async (): Promise<Journal> => JSON.parse(await readFile(journalPath(), 'utf8')) as Journal;
  // Sorted: an RRset is a set, and servers rotate its order. A server that
  // does not answer usably fails the test instead of reading as empty.
  const published = () => Promise.all([sb.bind.primary, sb.bind.secondary!].map((s) => tlsaAt(s, owner)));
  const renew = async () => {
    const r = await sb.cli(['renew', '--config', cfg]);
    assert.notEqual(r.code, 1, r.stdout + r.stderr);
    return r;
  };

  before(async () => {
    sb = await startSandbox({ secondary: true, pebble: { validitySeconds: 3600 } });
    owner = `_${sb.postfix.port}._tcp.mx1.example.test`;
    cfgObj = sb.baseConfig({ challenge: 'dns-01' });
    const dns = cfgObj.certificates[0].challenge.dns;
    cfgObj.certificates[0].dane = {
      enabled: true,
      endpoints: [{ host: 'mx1.example.test', port: sb.postfix.port }],
      publisher: { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: TTL, nameservers: dns.nameservers },
      keyLifetime: '90d',
      minHold: '3s',
    };
    cfg = await sb.writeConfig(cfgObj);
  });
  after(async () => {
    await sb?.stop();
  });

  it('adoption with no RRset: deploy first, then publish current + next, visible on both servers', async () => {
    const r = await renew();
    assert.match(r.stdout, /"status":"renewed"/);
    assert.match(r.stdout, /deployed a certificate for the current key .* before publishing/);
    // A lagging secondary may leave it waiting; later passes (a timer) finish it.
    const j = await pollUntil(
      async () => {
        const cur = await journal();
        if (cur.phase === 'STEADY') return cur;
        await renew();
        return undefined;
      },
      { deadlineMs: 60_000, intervalMs: 200, what: 'adoption to reach STEADY' },
    );
    const [primary, secondary] = await published();
    for (const set of [primary!, secondary!]) {
      assert.ok(set.includes(j.current.tlsa) && set.includes(j.next.tlsa), `current + next published: ${set}\n${r.stdout}\n${r.stderr}`);
    }
    assert.equal(spkiHash(await servedLeafPem(sb.postfix.port)), j.current.tlsa, 'Postfix serves the current key');
    const tlsa = await sb.cli(['tlsa', '--config', cfg]);
    assert.equal(tlsa.code, 0);
    assert.match(tlsa.stdout, new RegExp(`${owner}\\. ${TTL} IN TLSA 3 1 1 ${j.current.tlsa} ; ecdsa-p256 current`));
    assert.match(tlsa.stdout, new RegExp(`3 1 1 ${j.next.tlsa} ; ecdsa-p256 next`));
    const check = await sb.cli(['check', '--config', cfg]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /mx1\.example\.test:\d+ \(127\.0\.0\.1\): ok/);
    const st = JSON.parse((await sb.cli(['status', '--json', '--config', cfg])).stdout) as { certificates: Array<{ dane: { phase: string; currentTlsa: string; holdUntil: string | null } | null }> };
    assertStatusSchema(st);
    assert.equal(st.certificates[0]!.dane?.phase, 'STEADY');
    assert.equal(st.certificates[0]!.dane?.currentTlsa, j.current.tlsa);
    assert.ok(st.certificates[0]!.dane?.holdUntil, 'hold deadline shown');
    const table = await sb.cli(['status', '--config', cfg]);
    assert.match(table.stdout, /DANE/);
    assert.match(table.stdout, /STEADY/);
    // A same-key renewal does not touch DNS.
    const before = await published();
    const forced = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.equal(spkiHash(await servedLeafPem(sb.postfix.port)), j.current.tlsa, 'same key after renewal');
    assert.deepEqual(await published(), before, 'RRsets unchanged');
  });

  it('a rollover keeps the served key in every RRset seen in the last 2 × TTL, and retires the old record', async () => {
    const j0 = await journal();
    const watcher = new DaneWatcher({ servers: [sb.bind.primary, sb.bind.secondary!], owner, smtpPort: sb.postfix.port, ttl: TTL });
    watcher.start();
    try {
      // A foreign record in the same RRset must survive everything mxcert does.
      const foreign = 'ab'.repeat(32);
      await run('nsupdate', ['-k', sb.bind.tsig.keyFile], {
        input: `server 127.0.0.1 ${sb.bind.primary.port}\nzone example.test\nupdate add ${owner} ${TTL} TLSA 3 1 1 ${foreign}\nsend\n`,
      });
      // A stale daemon.lock (no daemon runs; its PID now belongs to an
      // unrelated process that started later): rollover must not signal it.
      const unrelated = spawn('sleep', ['60'], { stdio: 'ignore' });
      let r;
      try {
        const stat = readFileSync(`/proc/${unrelated.pid}/stat`, 'utf8');
        const startTime = Number(stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[19]);
        await writeFile(
          path.join(sb.stateDir, 'daemon.lock'),
          JSON.stringify({
            pid: unrelated.pid, host: os.hostname(), since: new Date(Date.now() - 3_600_000).toISOString(), command: 'run',
            startTime: String(startTime - 100), bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), nonce: randomBytes(12).toString('hex'),
          }) + '\n',
        );
        r = await sb.cli(['rollover', '--cert', 'mx1', '--config', cfg]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.ok(unsignalled(unrelated.pid!), `the unrelated process runs and has no signal pending\n${r.stderr}`);
        assert.match(r.stderr, /no running mxcert daemon found/);
        assert.doesNotMatch(r.stderr, /SIGUSR1/);
      } finally {
        unrelated.kill('SIGKILL');
        await rm(path.join(sb.stateDir, 'daemon.lock'), { force: true });
      }
      // Drive it like a timer would, until the old record is retired.
      await pollUntil(
        async () => {
          await renew();
          const j = await journal();
          return j.current.tlsa === j0.next.tlsa && j.phase === 'STEADY' && !j.old ? j : undefined;
        },
        { deadlineMs: 60_000, intervalMs: 500, what: 'the rollover to finish' },
      );
      const j1 = await journal();
      await pollUntil(async () => ((await published()).every((s) => !s.includes(j0.current.tlsa)) ? true : undefined), { deadlineMs: 10_000, what: 'old record gone everywhere' });
      const sets = await published();
      for (const set of sets) {
        assert.ok(set.includes(j1.current.tlsa) && set.includes(j1.next.tlsa), 'new current + new next published');
        assert.ok(!set.includes(j0.current.tlsa), 'old record retired');
        assert.ok(set.includes(foreign), 'foreign record survived');
      }
      assert.equal(spkiHash(await servedLeafPem(sb.postfix.port)), j0.next.tlsa, 'now serving the former next key');
      const keys = await readdir(path.join(sb.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'dane', 'keys'));
      assert.ok(!keys.includes(`${j0.current.id}.pem`), 'old key file deleted after the removal was confirmed');
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
    assert.ok(watcher.servedKeys().length >= 2, 'the watcher saw both keys served');
  });

  it('kill -9 at random instants inside passes during a rollover: it resumes and the invariant holds', async (t) => {
    const j0 = await journal();
    const watcher = new DaneWatcher({ servers: [sb.bind.primary, sb.bind.secondary!], owner, smtpPort: sb.postfix.port, ttl: TTL });
    watcher.start();
    const lockFile = path.join(sb.stateDir, 'lock');
    const phasesAtKill: string[] = [];
    try {
      const req = await sb.cli(['rollover', '--cert', 'mx1', '--config', cfg]);
      assert.equal(req.code, 0, req.stdout + req.stderr);
      // Passes inside the hold only wait; kill the ones that do the work
      // (the journal is read only to know when that starts).
      const hold = Date.parse((await journal()).holdUntil ?? '');
      await pollUntil(async () => (!(Date.now() <= hold) ? true : undefined), { deadlineMs: 60_000, what: 'the hold to end' });
      // Each kill must land inside a pass: after the pass took the agent lock
      // (so it had started its work), while it still held it (not finished).
      let landed = 0;
      // Kill at a random instant within a pass's length, learnt from passes that finished first.
      let span = 1500;
      for (let attempt = 0; landed < 8; attempt++) {
        assert.ok(attempt < 40, `only ${landed} of ${attempt} kills landed inside a pass`);
        const p = spawn(process.execPath, [CLI, 'renew', '--config', cfg], { stdio: 'ignore' });
        // Listen from the start: a pass with nothing to do can finish before the kill.
        const exited = new Promise<NodeJS.Signals | null>((r) => p.once('exit', (_code, signal) => r(signal)));
        let done = false;
        void exited.then(() => (done = true));
        const started = await pollUntil(async () => (done ? false : (await access(lockFile).then(() => true, () => undefined))), { deadlineMs: 30_000, intervalMs: 5, what: 'the pass to take the lock' });
        if (!started) continue;
        const lockedAt = Date.now();
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * span)));
        p.kill('SIGKILL');
        const signal = await exited;
        const held = await access(lockFile).then(() => true, () => false);
        if (signal === 'SIGKILL' && held) {
          landed++;
          phasesAtKill.push((await journal()).phase);
        } else span = Math.max(20, 0.8 * (Date.now() - lockedAt));
      }
      t.diagnostic(`journal phase after each kill: ${phasesAtKill.join(', ')}`);
      assert.ok(phasesAtKill.some((p) => p !== 'STEADY'), `some kill landed mid-rollover: ${phasesAtKill.join(', ')}`);
      await pollUntil(
        async () => {
          await renew();
          const j = await journal();
          return j.current.tlsa === j0.next.tlsa && j.phase === 'STEADY' && !j.old ? j : undefined;
        },
        { deadlineMs: 60_000, intervalMs: 500, what: 'the interrupted rollover to finish' },
      );
      const check = await sb.cli(['check', '--config', cfg]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
    } finally {
      await watcher.stop();
    }
    assertWatched(watcher, TTL);
    assert.deepEqual(watcher.violations(), []);
    assert.ok(watcher.servedKeys().includes(j0.next.tlsa), 'the watcher saw the next key served');
  });

  it('mxcert check reports a mismatch when the served key is not in the RRset', async () => {
    const j = await journal();
    // Remove our current record behind mxcert's back.
    await run('nsupdate', ['-k', sb.bind.tsig.keyFile], {
      input: `server 127.0.0.1 ${sb.bind.primary.port}\nzone example.test\nupdate delete ${owner} TLSA 3 1 1 ${j.current.tlsa}\nsend\n`,
    });
    await pollUntil(async () => ((await published()).every((s) => !s.includes(j.current.tlsa)) ? true : undefined), { deadlineMs: 10_000, what: 'record removed' });
    const check = await sb.cli(['check', '--config', cfg]);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stdout, /MISMATCH: served key .* missing from/);
    // The next pass puts it back.
    await renew();
    await pollUntil(async () => ((await published()).every((s) => s.includes(j.current.tlsa)) ? true : undefined), { deadlineMs: 20_000, intervalMs: 300, what: 'record restored' });
  });

  it('output files replaced behind mxcert\'s back (another key served): check says MISMATCH, the next pass reconciles from the files and serves the current key again', async () => {
    // From a settled STEADY (an earlier rollover's RETIRE done), so the pass below has nothing else to do.
    await pollUntil(async () => {
      const jj = await journal();
      if (jj.phase === 'STEADY' && !jj.old) return true;
      await renew();
      return undefined;
    }, { deadlineMs: 60_000, intervalMs: 200, what: 'a settled STEADY' });
    const j = await journal();
    const dnsBefore = await published();
    // A crash between writing files and recording them, or an admin's
    // hand edit: the MTA now serves a key that no TLSA record names.
    await writeSelfSignedCombined(sb.combinedPath(), ['mx1.example.test'], sb.dir);
    await sb.postfix.reload();
    const foreign = await pollUntil(async () => {
      const h = await servedHash(sb.postfix.port);
      return h !== j.current.tlsa ? h : undefined;
    }, { deadlineMs: 15_000, what: 'Postfix to serve the replaced file' });
    assert.ok(!j.next || foreign !== j.next.tlsa);
    const check = await sb.cli(['check', '--config', cfg]);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stdout, /MISMATCH: serves serial .*deployed is .*; served key .* missing from/);

    const r = await renew();
    assert.match(r.stderr, /reconciling from the files/);
    assert.match(r.stdout, /renewed with the current key/);
    await pollUntil(async () => ((await servedHash(sb.postfix.port)) === j.current.tlsa ? true : undefined), { deadlineMs: 15_000, what: 'the current key served again' });
    const again = await sb.cli(['check', '--config', cfg]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.deepEqual(await published(), dnsBefore, 'DNS untouched: a same-key renewal');
  });

  it('mxcert check reports an RRset deleted as a whole (DANE enabled, host unprotected); the next pass republishes', async () => {
    const j = await journal();
    await run('nsupdate', ['-k', sb.bind.tsig.keyFile], {
      input: `server 127.0.0.1 ${sb.bind.primary.port}\nzone example.test\nupdate delete ${owner} TLSA\nsend\n`,
    });
    await pollUntil(async () => ((await published()).every((s) => s.length === 0) ? true : undefined), { deadlineMs: 10_000, what: 'RRset removed' });
    const check = await sb.cli(['check', '--config', cfg]);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stdout, /MISMATCH: no TLSA records published at _\d+\._tcp\.mx1\.example\.test/);
    await renew();
    await pollUntil(async () => ((await published()).every((s) => s.includes(j.current.tlsa) && s.includes(j.next.tlsa)) ? true : undefined), { deadlineMs: 20_000, intervalMs: 300, what: 'records restored' });
    const again = await sb.cli(['check', '--config', cfg]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });
});
