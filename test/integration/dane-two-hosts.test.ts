// Several MX hosts in one zone: each host runs its own
// mxcert with its own state, keys and Postfix, and edits only its own TLSA
// owner name. Both agents adopt and then roll over at the same time against
// the same real BIND primary (+ secondary fed by zone transfer); their
// UPDATEs race for the zone. Independent watchers (openssl against each
// Postfix, dig against every authoritative server) check the rollover
// invariant (docs/architecture.md, "DANE") for each host; journals are read only to know when to stop.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { POSTFIX_RELOAD_HOOK, startSandbox, type Sandbox, type SandboxConfig } from '../support/sandbox.js';
import { assertWatched, DaneWatcher, servedHash, tlsaAt } from '../support/dane-watcher.js';
import { dig, type DnsServerAddr } from '../env/bind.js';
import { startPostfix, type PostfixEnv } from '../env/postfix.js';
import { run } from '../env/proc.js';

const TTL = 2;
const FOREIGN = 'cd'.repeat(32);

interface Journal {
  phase: string;
  current: { tlsa: string };
  next: { tlsa: string };
  old?: { tlsa: string };
}

interface Host {
  name: string;
  cfg: string;
  stateDir: string;
  port: number;
  owner: string;
  watcher: DaneWatcher;
  log: string[];
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sorted = (a: string[]) => [...a].sort();

describe('two MX hosts, two agents, one zone', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let pf2: PostfixEnv;
  let servers: DnsServerAddr[];
  const hosts: Host[] = [];

  before(async () => {
    sb = await startSandbox({ secondary: true, pebble: { validitySeconds: 3600 } });
    servers = [sb.bind.primary, sb.bind.secondary!];
    pf2 = await startPostfix({ combinedPath: path.join(sb.outDir, 'mx2-ecdsa-p256.pem'), hostname: 'mx2.example.test' });
    for (const [name, postfixPort, configDir] of [
      ['mx1', sb.postfix.port, sb.postfix.configDir],
      ['mx2', pf2.port, pf2.configDir],
    ] as const) {
      const cfg: SandboxConfig = sb.baseConfig();
      const stateDir = path.join(sb.dir, `state-${name}`);
      cfg.stateDir = stateDir;
      const c = cfg.certificates[0];
      const dns = c.challenge.dns;
      Object.assign(c, {
        name,
        domains: [`${name}.example.test`],
        output: { combined: path.join(sb.outDir, `${name}-{keytype}.pem`) },
        hooks: { deploy: [[POSTFIX_RELOAD_HOOK, configDir]] },
        verify: { smtp: [`127.0.0.1:${postfixPort}`], serverName: `${name}.example.test`, timeout: '15s' },
        dane: {
          enabled: true,
          endpoints: [{ host: `${name}.example.test`, port: postfixPort }],
          publisher: { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: TTL, nameservers: dns.nameservers },
          keyLifetime: '90d',
          minHold: '0s',
        },
      });
      const owner = `_${postfixPort}._tcp.${name}.example.test`;
      hosts.push({
        name,
        cfg: await sb.writeConfig(cfg, path.join(sb.dir, `${name}.yaml`)),
        stateDir,
        port: postfixPort,
        owner,
        watcher: new DaneWatcher({ servers, owner, smtpPort: postfixPort, ttl: TTL }),
        log: [],
      });
    }
  });
  after(async () => {
    for (const h of hosts) await h.watcher.stop();
    await pf2?.stop();
    await sb?.stop();
  });

  const journal = async (h: Host): Promise<Journal | undefined> =>
    JSON.parse(await readFile(path.join(h.stateDir, 'certs', h.name, 'ecdsa-p256', 'dane', 'journal.json'), 'utf8').catch(() => 'null')) ?? undefined;

  async function cli(h: Host, args: string[]): Promise<number> {
    const r = await sb.cli([...args, '--config', h.cfg]);
    h.log.push(`$ mxcert ${args.join(' ')} → ${r.code}\n${r.stdout}${r.stderr.split('\n').slice(-20).join('\n')}`);
    assert.equal(r.code, 0, `${h.name}: a pass failed:\n${h.log.slice(-1)}`);
    return r.code;
  }

  /** Timer-like passes of one agent until `done`; the two agents run these concurrently. */
  async function drive(h: Host, done: (j: Journal | undefined) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (!done(await journal(h))) {
      if (Date.now() > deadline) throw new Error(`${h.name}: timed out waiting for ${what}\n${h.log.slice(-4).join('\n----\n')}`);
      await cli(h, ['renew']);
      await pause(100);
    }
  }

  it('both adopt and roll over at once: each keeps its own records, the foreign one survives, no served key is ever missing', async () => {
    // An operator's record at mx1's owner (so mx1 adopts over a non-empty
    // RRset: publish, hold, then serve); mx2's owner starts empty.
    await run('nsupdate', ['-k', sb.bind.tsig.keyFile], {
      input: `server 127.0.0.1 ${sb.bind.primary.port}\nzone example.test\nupdate add ${hosts[0]!.owner} ${TTL} TLSA 3 1 1 ${FOREIGN}\nsend\n`,
    });
    // What each Postfix serves before mxcert deployed anything: a self-signed
    // placeholder. At mx1 the operator's record already puts DANE in force,
    // so the placeholder "violates" the invariant before mxcert acts; that
    // is the starting state mxcert repairs, not something it did.
    const placeholders = await Promise.all(hosts.map((h) => servedHash(h.port)));
    for (const h of hosts) h.watcher.start();

    await Promise.all(hosts.map((h) => drive(h, (j) => j?.phase === 'STEADY', 'adoption')));
    const j0 = await Promise.all(hosts.map((h) => journal(h)));

    await Promise.all(hosts.map((h) => cli(h, ['rollover', '--cert', h.name])));
    await Promise.all(
      hosts.map((h, i) => drive(h, (j) => Boolean(j && j.phase === 'STEADY' && !j.old && j.current.tlsa === j0[i]!.next.tlsa), 'the rollover to swap and retire')),
    );
    const j1 = await Promise.all(hosts.map((h) => journal(h)));
    for (const h of hosts) await h.watcher.stop();
    for (const h of hosts) assertWatched(h.watcher, TTL);

    for (const [i, h] of hosts.entries()) {
      const want = sorted([j1[i]!.current.tlsa, j1[i]!.next.tlsa, ...(i === 0 ? [FOREIGN] : [])]);
      for (const s of servers) assert.deepEqual(await tlsaAt(s, h.owner), want, `${h.name} at ${s.host}:${s.port}: own current + next${i === 0 ? ' + the foreign record' : ''}, nothing of the other host`);
      assert.equal(await servedHash(h.port), j0[i]!.next.tlsa, `${h.name} serves its former next key`);
      assert.deepEqual(
        h.watcher.violations().filter((v) => !v.includes(`served (any) ${placeholders[i]!.slice(0, 12)}`)),
        [],
        `${h.name}: invariant (for every key mxcert deployed)`,
      );
      const lastPlaceholder = h.watcher.samples.filter((x) => x.kind === 'served' && x.hashes[0] === placeholders[i]).at(-1)?.t ?? 0;
      const firstRecord = h.watcher.samples.find((x) => x.kind === 'dns' && x.hashes.includes(j0[i]!.current.tlsa))?.t ?? Infinity;
      if (i === 1) assert.ok(lastPlaceholder < firstRecord, `${h.name}: (empty RRset) the current key is served before its record is published`);
      const served = h.watcher.servedKeys().filter((k) => k === j0[i]!.current.tlsa || k === j0[i]!.next.tlsa);
      assert.deepEqual(served, [j0[i]!.current.tlsa, j0[i]!.next.tlsa], `${h.name}: served old, then new`);
      assert.ok(h.watcher.samples.filter((x) => x.kind === 'dns').length > 20, `${h.name}: the watcher asked DNS often enough`);
    }
    // Keys are each host's own.
    const all = hosts.flatMap((_, i) => [j0[i]!.current.tlsa, j0[i]!.next.tlsa, j1[i]!.next.tlsa]);
    assert.equal(new Set(all).size, all.length, 'no key shared between hosts or reused');
    // The rest of the zone is untouched by either agent.
    for (const s of servers) {
      for (const n of ['mx1', 'mx2']) assert.equal((await dig(s, ['+short', `${n}.example.test`, 'A'])).trim(), '127.0.0.1', `${n} A at ${s.port}`);
    }
  });
});
