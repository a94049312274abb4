// What the DANE scenario tests share (docs/architecture.md, "DANE rollover"):
// a sandbox with mxcert configured for DANE, helpers to drive passes like a
// timer would, to kill mxcert at a given journal phase, and to edit the
// zone behind mxcert's back. mxcert's journal is read only to know when to
// stop waiting or where to kill, never to decide whether the invariant held.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import net from 'node:net';
import path from 'node:path';
import { CLI, REPO, startSandbox, type Sandbox, type SandboxConfig } from './sandbox.js';
import { DaneWatcher, servedHash, tlsaAt, type KeyFamily } from './dane-watcher.js';
import { dig, type DnsServerAddr } from '../env/bind.js';
import { run } from '../env/proc.js';

export const TTL = 2;
export const WINDOW_MS = 2 * TTL * 1000;
export const NSUPDATE_TLSA_HOOK = path.join(REPO, 'hooks', 'nsupdate-tlsa');
export const FOREIGN = 'ab'.repeat(32);

export interface KeyRef {
  id: string;
  tlsa: string;
}
export interface Journal {
  phase: string;
  nextVisibleAt?: string;
  current: KeyRef;
  next: KeyRef;
  old?: KeyRef;
  rollover?: unknown;
  updatedAt: string;
}

export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Everything one describe needs around its sandbox. */
export class Rig {
  cfg = '';
  cfgObj: SandboxConfig = {};
  owner = '';
  /** Servers the DANE publisher's records are served from (what the watcher asks). */
  servers: DnsServerAddr[] = [];
  log: string[] = [];
  /** MXCERT_LOG_LEVEL of the CLI runs (hook output is logged at debug only). */
  logLevel = 'info';
  /** Every CLI run's whole stderr (log holds only the tail of each). */
  stderr: string[] = [];
  /** Certificates mxcert reported issued, over every run through cli(). */
  issued = 0;

  constructor(readonly sb: Sandbox) {
    this.owner = `_${sb.postfix.port}._tcp.mx1.example.test`;
  }

  journalPath(keyType = 'ecdsa-p256'): string {
    return path.join(this.sb.stateDir, 'certs', 'mx1', keyType, 'dane', 'journal.json');
  }

  async journal(keyType = 'ecdsa-p256'): Promise<Journal | undefined> {
    try {
      return JSON.parse(await readFile(this.journalPath(keyType), 'utf8')) as Journal;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** The RRset each server serves, sorted. */
  published(servers = this.servers): Promise<string[][]> {
    return Promise.all(servers.map((s) => tlsaAt(s, this.owner)));
  }

  served(family?: KeyFamily): Promise<string> {
    return servedHash(this.sb.postfix.port, family);
  }

  /** The last few CLI outputs, for failure messages. */
  tail(n = 4): string {
    return this.log.slice(-n).join('\n----\n');
  }

  async cli(args: string[], cfg = this.cfg): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await this.sb.cli([...args, '--config', cfg], { env: { MXCERT_LOG_LEVEL: this.logLevel } });
    this.stderr.push(r.stderr);
    this.issued += (r.stderr.match(/"msg":"certificate issued"/g) ?? []).length;
    this.log.push(`$ mxcert ${args.join(' ')} → ${r.code}\n${r.stdout}${r.stderr.split('\n').slice(-30).join('\n')}`);
    return r;
  }

  /** One timer-like pass that must not fail. */
  async pass(cfg = this.cfg): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await this.cli(['renew'], cfg);
    assert.notEqual(r.code, 1, `a pass failed:\n${this.tail(1)}`);
    return r;
  }

  /**
   * Runs passes (with a short pause between them, like a timer) until
   * `until` returns a value. A failing pass fails the test at once.
   */
  async drive<T>(until: () => Promise<T | undefined>, what: string, opts: { deadlineMs?: number; cfg?: string } = {}): Promise<T> {
    const deadline = Date.now() + (opts.deadlineMs ?? 90_000);
    for (;;) {
      const v = await until();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await this.diag()}\n${this.tail()}`);
      await this.pass(opts.cfg);
      await pause(200);
    }
  }

  /** Adoption until every key type's journal is STEADY: one certificate per key type, not more. */
  async adopt(keyTypes = ['ecdsa-p256']): Promise<void> {
    const before = this.issued;
    await this.drive(
      async () => ((await Promise.all(keyTypes.map((k) => this.journal(k)))).every((j) => j?.phase === 'STEADY') ? true : undefined),
      'adoption to reach STEADY',
    );
    assert.equal(this.issued - before, keyTypes.length, `certificates issued during adoption\n${this.tail()}`);
  }

  /** Whether each server still answers, for timeout messages. */
  async diag(): Promise<string> {
    const lines = await Promise.all(
      this.servers.map(async (s) => `${s.host}:${s.port} SOA: ${(await dig(s, ['+short', this.owner.replace(/^.*?\.mx1\./, ''), 'SOA'])).trim() || 'no answer'}`),
    );
    const served = await this.served().catch((err: Error) => `error: ${err.message.split('\n')[0]}`);
    return [...lines, `Postfix serves: ${served}`].join('\n');
  }

  /** Rollover requested and driven until it has swapped and retired (journal used only to know when to stop). */
  async completeRollover(before: Record<string, Journal>, cfg = this.cfg): Promise<void> {
    await this.drive(
      async () => {
        for (const [k, j0] of Object.entries(before)) {
          const j = await this.journal(k);
          if (!(j && j.phase === 'STEADY' && !j.old && j.current.tlsa === j0.next.tlsa)) return undefined;
        }
        return true;
      },
      'the rollover to swap and retire',
      { cfg },
    );
  }

  /**
   * `mxcert rollover --cert mx1`, then `mxcert renew` passes, until `stop`
   * says the last run is the one we wanted; every other run must exit 0.
   * `beforeEach` runs before each of them.
   */
  async runUntil(
    cfg: string,
    stop: (r: { code: number; stdout: string }) => Promise<boolean>,
    what: string,
    beforeEach?: () => Promise<void>,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const deadline = Date.now() + 60_000;
    for (let first = true; ; first = false) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}\n${this.tail()}`);
      await beforeEach?.();
      const r = await this.cli(first ? ['rollover', '--cert', 'mx1'] : ['renew'], cfg);
      if (await stop(r)) return r;
      assert.equal(r.code, 0, this.tail(1));
      await pause(200);
    }
  }

  watcher(families?: KeyFamily[]): DaneWatcher {
    return new DaneWatcher({ servers: this.servers, owner: this.owner, smtpPort: this.sb.postfix.port, ttl: TTL, ...(families ? { families } : {}) });
  }

  /**
   * Runs `mxcert ARGS` in the background and SIGKILLs it as soon as its
   * journal is rewritten with phase `phase`. The journal is polled every
   * millisecond from a worker thread, so the watcher's own work on the main
   * event loop cannot delay the kill. Resolves when the process is gone.
   */
  async killAtPhase(args: string[], phase: string, keyType = 'ecdsa-p256'): Promise<{ killed: boolean; code: number | null; out: string }> {
    const file = this.journalPath(keyType);
    const initial = await readFile(file, 'utf8');
    const child = spawn(process.execPath, [CLI, ...args, '--config', this.cfg], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MXCERT_LOG_LEVEL: 'info' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const killer = new Worker(KILL_AT_PHASE_WORKER, { eval: true, workerData: { file, initial, phase, pid: child.pid, stop } });
    const killerDone = new Promise<void>((resolve) => killer.once('exit', () => resolve()));
    const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    Atomics.store(stop, 0, 1);
    await killerDone;
    this.log.push(`$ mxcert ${args.join(' ')} (kill at ${phase}) → ${r.signal ?? r.code}\n${out.split('\n').slice(-30).join('\n')}`);
    return { killed: r.signal === 'SIGKILL', code: r.code, out };
  }

  /**
   * Repeats killAtPhase with `mxcert renew` until one run is killed at
   * `phase`, while the journal stays in one of `before` (e.g. RETIRE waiting
   * for its TTL); a run that went past `phase` unkilled fails the test.
   */
  async killRenewAt(phase: string, before: string[], keyType = 'ecdsa-p256'): Promise<number> {
    const deadline = Date.now() + 60_000;
    for (let runs = 1; ; runs++) {
      const r = await this.killAtPhase(['renew'], phase, keyType);
      if (r.killed) return runs;
      assert.notEqual(r.code, 1, `a pass failed:\n${this.tail(1)}`);
      const j = await this.journal(keyType);
      if (!before.includes(j!.phase) || Date.now() > deadline) {
        throw new Error(`never caught phase ${phase} (journal now ${j?.phase})\n${await this.diag()}\n${this.tail()}`);
      }
      await pause(200);
    }
  }
}

/** Worker body for killAtPhase (CommonJS, eval'd). */
const KILL_AT_PHASE_WORKER = `
const { workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { file, initial, phase, pid, stop } = workerData;
const nap = new Int32Array(new SharedArrayBuffer(4));
while (Atomics.load(stop, 0) === 0) {
  let raw;
  try { raw = readFileSync(file, 'utf8'); } catch { raw = initial; }
  if (raw !== initial) {
    let p;
    try { p = JSON.parse(raw).phase; } catch {}
    if (p === phase) {
      try { process.kill(pid, 'SIGKILL'); } catch {}
      break;
    }
  }
  Atomics.wait(nap, 0, 0, 1);
}
`;

export function daneBlock(rig: Rig, publisher: object, extra: object = {}): object {
  return {
    enabled: true,
    endpoints: [{ host: 'mx1.example.test', port: rig.sb.postfix.port }],
    publisher,
    keyLifetime: '90d',
    minHold: '0s',
    ...extra,
  };
}

export function rfc2136Publisher(rig: Rig): object {
  const dns = rig.cfgObj.certificates[0].challenge.dns;
  return { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: TTL, nameservers: dns.nameservers };
}

export async function bindRig(opts: { keys?: string[] } = {}): Promise<Rig> {
  const sb = await startSandbox({ secondary: true, pebble: { validitySeconds: 3600 } });
  const rig = new Rig(sb);
  rig.servers = [sb.bind.primary, sb.bind.secondary!];
  rig.cfgObj = sb.baseConfig({ challenge: 'dns-01', ...(opts.keys ? { keys: opts.keys } : {}) });
  rig.cfgObj.certificates[0].dane = daneBlock(rig, rfc2136Publisher(rig));
  rig.cfg = await sb.writeConfig(rig.cfgObj);
  return rig;
}

/** Adds a record at the owner behind mxcert's back (an operator's, another host's). */
export async function foreignAdd(sb: Sandbox, owner: string, hex: string, ttl = TTL): Promise<void> {
  await run('nsupdate', ['-k', sb.bind.tsig.keyFile], {
    input: `server 127.0.0.1 ${sb.bind.primary.port}\nzone example.test\nupdate add ${owner} ${ttl} TLSA 3 1 1 ${hex}\nsend\n`,
  });
}

/**
 * Makes Postfix start `n` smtpd processes now (n concurrent sessions), which
 * then stay idle for reuse. Without a reload, connections in the next
 * seconds are served by these processes, which read the certificate files
 * at start: so "the reload hook does not run" really means the old files
 * keep being served, instead of a fresh smtpd picking up the new files
 * whenever two probes overlap.
 */
export async function preforkSmtpd(port: number, n: number): Promise<void> {
  const socks = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port });
          s.setTimeout(10_000, () => s.destroy(new Error('no banner')));
          s.on('error', reject); // no-op once resolved
          s.once('data', () => resolve(s));
        }),
    ),
  );
  await Promise.all(
    socks.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          s.end('QUIT\r\n');
        }),
    ),
  );
}

export async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);
}

/**
 * Makes the secondary lag while it keeps answering: the primary refuses
 * zone transfers (allow-transfer none, rndc reconfig), so the secondary
 * serves its old copy authoritatively. The returned function lets it catch
 * up (transfers allowed again, the secondary told to refresh).
 */
export async function holdTransfers(sb: Sandbox): Promise<() => Promise<void>> {
  const conf = path.join(sb.bind.dir, 'primary', 'named.conf');
  const text = await readFile(conf, 'utf8');
  const open = 'allow-transfer { 127.0.0.1; ::1; };';
  assert.ok(text.includes(open), `${conf} allows transfers as expected`);
  await writeFile(conf, text.replace(open, 'allow-transfer { none; };'));
  await sb.bind.rndc(['reconfig']);
  return async () => {
    await writeFile(conf, text);
    await sb.bind.rndc(['reconfig']);
    await sb.bind.rndc(['refresh', sb.bind.zone], 'secondary');
  };
}
