// An observer for DANE rollover tests (docs/architecture.md, "DANE
// rollover"), independent of mxcert: it asks Postfix what it serves (openssl
// s_client, once per key family when the server holds several chains) and
// asks every authoritative server for the TLSA RRset (dig, directly, no
// recursion), each in its own loop, over and over, and checks the invariant
// over what it saw:
//   at every instant, the key the MTA serves is in every TLSA RRset that any
//   authoritative server returned during the preceding 2 × TTL.
// It never reads mxcert's journal or state, and uses none of mxcert's code:
// its probes are a plain DNS-over-TCP question and a plain SMTP STARTTLS
// handshake, in process (spawning dig and openssl ten times a second is
// itself what blinds a watcher on a loaded machine).
//
// A watcher that cannot see proves nothing, so a probe that fails (dig timed
// out, no AA bit, openssl got no certificate) is recorded as an error, never
// as an empty RRset, and the longest stretch without a sample of each target
// is measured: assertWatched() fails a test on any error or on a gap longer
// than the TTL. A server a test stops on purpose is declared with
// expectDown() first; its failures then count as "down" samples (a stopped
// server returns nothing, which constrains nothing).
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import type { DnsServerAddr } from '../env/bind.js';
import { run } from '../env/proc.js';
import { servedLeafPem } from './sandbox.js';

export type KeyFamily = 'ecdsa' | 'rsa';

export interface WatchSample {
  /** When the probe started (ms since the epoch). */
  t: number;
  kind: 'served' | 'dns';
  /** served: the key family asked for ('any' = no preference). */
  family?: KeyFamily | 'any';
  /** dns: host:port of the server asked. */
  server?: string;
  /** served: [the leaf's 3 1 1 hash]; dns: every 3 1 1 hash in the RRset. */
  hashes: string[];
  /** dns: the RRset's TTL as served (absent when there is none). */
  ttl?: number;
  /** dns: the server was declared down and did not answer. */
  down?: boolean;
}

export interface ProbeError {
  t: number;
  target: string;
  message: string;
}

export interface DaneWatcherOptions {
  /** Every authoritative server of the zone, each asked directly. */
  servers: DnsServerAddr[];
  /** TLSA owner name, e.g. _2525._tcp.mx1.example.test */
  owner: string;
  /** Postfix's STARTTLS port on 127.0.0.1. */
  smtpPort: number;
  /** TTL of the TLSA records mxcert publishes, seconds: the window is 2 × the larger of this and the RRset's own TTL. */
  ttl: number;
  /** Key families to probe separately (dual chains); default: whatever the server picks. */
  families?: KeyFamily[];
  /** Pause between two probes of one target. Default 100 ms. */
  intervalMs?: number;
}

/** 3 1 1 data of a certificate: hex SHA-256 of its SubjectPublicKeyInfo. */
export function spkiHash(pem: string): string {
  const c = new X509Certificate(pem);
  return createHash('sha256').update(c.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/** dig +short prints "3 1 1 HEX" with the hex possibly split by spaces. */
export function parseDigTlsa(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^3 1 1 /.test(l))
    .map((l) => l.slice(6).replace(/\s+/g, '').toLowerCase());
}

export type DigVerdict = { ok: true; hashes: string[]; ttl?: number } | { ok: false; message: string };

/**
 * A full dig answer (not +short): usable only if dig got a reply, with
 * NOERROR or NXDOMAIN, and the AA bit. The 3 1 1 hashes and the RRset's TTL
 * from the answer section.
 */
export function parseDigAnswer(owner: string, out: string, exitCode: number): DigVerdict {
  const status = /status: (\w+)/.exec(out)?.[1];
  if (exitCode !== 0 || !status) return { ok: false, message: `no reply (dig exit ${exitCode}): ${out.split('\n').find((l) => l.startsWith(';;') && !/global options/.test(l)) ?? out.trim().slice(0, 120)}` };
  if (status !== 'NOERROR' && status !== 'NXDOMAIN') return { ok: false, message: `status ${status}` };
  const flags = /;; flags:([^;]*);/.exec(out)?.[1] ?? '';
  if (!/\baa\b/.test(flags)) return { ok: false, message: `answer without the AA bit (flags:${flags})` };
  const want = owner.replace(/\.$/, '').toLowerCase();
  const hashes: string[] = [];
  let ttl: number | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith(';') || !line.trim()) continue;
    const f = line.trim().split(/\s+/);
    if (f[0]?.replace(/\.$/, '').toLowerCase() !== want || f[2] !== 'IN' || f[3] !== 'TLSA') continue;
    ttl = Math.max(ttl ?? 0, Number(f[1]));
    if (f[4] === '3' && f[5] === '1' && f[6] === '1') hashes.push(f.slice(7).join('').toLowerCase());
  }
  return { ok: true, hashes, ...(ttl !== undefined ? { ttl } : {}) };
}

/** The 3 1 1 hashes one server serves at `owner`, sorted (an RRset is a set; servers rotate its order). Throws if the server did not answer usably. */
export async function tlsaAt(server: DnsServerAddr, owner: string): Promise<string[]> {
  const v = await digTlsa(server, owner);
  if (!v.ok) throw new Error(`TLSA ${owner} at ${server.host}:${server.port}: ${v.message}`);
  return v.hashes.sort();
}

async function digTlsa(server: DnsServerAddr, owner: string): Promise<DigVerdict> {
  const r = await run('dig', [`@${server.host}`, '-p', String(server.port), '+norec', '+time=2', '+tries=1', '+nosplit', 'TLSA', owner], { allowFailure: true, timeoutMs: 8000 });
  return parseDigAnswer(owner, r.stdout, r.code);
}

/** One TLSA question over TCP, no recursion, straight to `server`; the same verdict rules as parseDigAnswer. */
export function askTlsa(server: DnsServerAddr, owner: string, timeoutMs = 2000): Promise<DigVerdict> {
  const name = owner.replace(/\.$/, '');
  const id = Math.floor(Math.random() * 0x10000);
  return new Promise((resolve) => {
    const sock = net.connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const done = (v: DigVerdict) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done({ ok: false, message: `no reply within ${timeoutMs} ms` }), timeoutMs);
    sock.on('error', (err) => done({ ok: false, message: err.message }));
    sock.on('connect', () => sock.write(dnsPacket.streamEncode({ type: 'query', id, flags: 0, questions: [{ type: 'TLSA', name, class: 'IN' }] })));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < buf.readUInt16BE(0) + 2) return;
      let p: dnsPacket.DecodedPacket;
      try {
        p = dnsPacket.decode(buf.subarray(2, buf.readUInt16BE(0) + 2));
      } catch (err) {
        return done({ ok: false, message: `undecodable reply: ${(err as Error).message}` });
      }
      done(tlsaVerdict(p, id, name));
    });
  });
}

function tlsaVerdict(p: dnsPacket.DecodedPacket, id: number, name: string): DigVerdict {
  const rcode = (p as { rcode?: string }).rcode ?? 'NOERROR';
  if (p.id !== id) return { ok: false, message: `reply id ${p.id}, asked ${id}` };
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') return { ok: false, message: `status ${rcode}` };
  if (!p.flag_aa) return { ok: false, message: 'answer without the AA bit' };
  const rrs = (p.answers ?? []).filter((a) => a.type === 'TLSA' && a.name.toLowerCase() === name.toLowerCase()) as Array<{ ttl?: number; data: { usage: number; selector: number; matchingType: number; certificate: Buffer } }>;
  const hashes = rrs.filter((a) => a.data.usage === 3 && a.data.selector === 1 && a.data.matchingType === 1).map((a) => a.data.certificate.toString('hex'));
  return rrs.length ? { ok: true, hashes, ttl: Math.max(...rrs.map((a) => a.ttl ?? 0)) } : { ok: true, hashes };
}

/** The leaf an SMTP server presents after STARTTLS, as its 3 1 1 hash (the key family chosen by the signature algorithms offered). */
export function probeServed(port: number, family: KeyFamily | undefined, timeoutMs = 5000): Promise<string> {
  const sigalgs = family === 'rsa' ? 'RSA-PSS+SHA256:RSA+SHA256:RSA-PSS+SHA384:RSA+SHA384' : family === 'ecdsa' ? 'ECDSA+SHA256:ECDSA+SHA384' : undefined;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let t: tls.TLSSocket | undefined;
    const fail = (err: Error) => {
      clearTimeout(timer);
      (t ?? sock).destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no certificate within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', fail);
    let text = '';
    let step = 0;
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      // A reply is complete at its last line, "NNN text" (continuation lines are "NNN-text").
      if (!text.endsWith('\r\n')) return;
      const last = text.split('\r\n').at(-2) ?? '';
      if (!/^\d{3}( |$)/.test(last)) return;
      const code = last.slice(0, 3);
      text = '';
      if (step === 0 && code === '220') sock.write('EHLO dane-watcher.test\r\n');
      else if (step === 1 && code === '250') sock.write('STARTTLS\r\n');
      else if (step === 2 && code === '220') {
        sock.removeAllListeners('data');
        t = tls.connect({ socket: sock, servername: 'mx1.example.test', rejectUnauthorized: false, ...(sigalgs ? { sigalgs } : {}) }, () => {
          const raw = t!.getPeerCertificate().raw;
          clearTimeout(timer);
          t!.destroy();
          if (!raw) return reject(new Error('no certificate'));
          resolve(createHash('sha256').update(new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' })).digest('hex'));
        });
        t.on('error', fail);
        return;
      } else return fail(new Error(`SMTP step ${step}: unexpected reply ${code}`));
      step++;
    });
  });
}

/** What Postfix serves right now (3 1 1 hash), for one key family or whatever it picks. */
export async function servedHash(smtpPort: number, family?: KeyFamily): Promise<string> {
  return spkiHash(await servedLeafPem(smtpPort, family ? { keyFamily: family } : {}));
}

export class DaneWatcher {
  samples: WatchSample[] = [];
  probeErrors: ProbeError[] = [];
  private stopped = false;
  private loops: Array<Promise<void>> = [];
  private readonly down = new Set<string>();
  private startedAt = 0;
  private stoppedAt = 0;

  constructor(private readonly opts: DaneWatcherOptions) {}

  start(): this {
    this.startedAt = Date.now();
    const families: Array<KeyFamily | undefined> = this.opts.families?.length ? this.opts.families : [undefined];
    for (const family of families) this.loops.push(this.loop(() => this.probeServed(family)));
    for (const s of this.opts.servers) this.loops.push(this.loop(() => this.probeDns(s)));
    return this;
  }

  /** The test is about to stop `server`: its failures are "down", not errors, until expectUp. */
  expectDown(server: DnsServerAddr): void {
    this.down.add(`${server.host}:${server.port}`);
  }

  expectUp(server: DnsServerAddr): void {
    this.down.delete(`${server.host}:${server.port}`);
  }

  private async loop(probe: () => Promise<void>): Promise<void> {
    while (!this.stopped) {
      await probe();
      await new Promise((r) => setTimeout(r, this.opts.intervalMs ?? 100));
    }
  }

  private async probeServed(family: KeyFamily | undefined): Promise<void> {
    const t = Date.now();
    const target = `served:${family ?? 'any'}`;
    try {
      const h = await probeServed(this.opts.smtpPort, family);
      this.samples.push({ t, kind: 'served', family: family ?? 'any', hashes: [h] });
    } catch (err) {
      this.probeErrors.push({ t, target, message: (err as Error).message.split('\n')[0]! });
    }
  }

  private async probeDns(s: DnsServerAddr): Promise<void> {
    const t = Date.now();
    const server = `${s.host}:${s.port}`;
    const v = await askTlsa(s, this.opts.owner);
    if (v.ok) this.samples.push({ t, kind: 'dns', server, hashes: v.hashes, ...(v.ttl !== undefined ? { ttl: v.ttl } : {}) });
    else if (this.down.has(server)) this.samples.push({ t, kind: 'dns', server, hashes: [], down: true });
    else this.probeErrors.push({ t, target: `dns:${server}`, message: v.message });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    this.stoppedAt = Date.now();
  }

  /** Violations of the invariant, over the samples taken. */
  violations(): string[] {
    return findViolations(this.samples, this.opts.ttl);
  }

  /** Per target, the longest time without a sample (from start to the first, between two, from the last to stop). */
  gaps(): Array<{ target: string; maxGapMs: number; at: number }> {
    const targets = [
      ...(this.opts.families?.length ? this.opts.families : ['any' as const]).map((f) => `served:${f}`),
      ...this.opts.servers.map((s) => `dns:${s.host}:${s.port}`),
    ];
    return targets.map((target) => {
      const times = this.samples.filter((s) => sampleTarget(s) === target).map((s) => s.t);
      return longestGap(target, [this.startedAt, ...times, this.stoppedAt || Date.now()]);
    });
  }

  /** Distinct served keys, in the order first seen. */
  servedKeys(family?: KeyFamily | 'any'): string[] {
    return [...new Set(this.samples.filter((s) => s.kind === 'served' && (!family || s.family === family)).map((s) => s.hashes[0]!))];
  }

  /** When a key was first seen served (ms), if ever. */
  firstServed(hash: string, family?: KeyFamily | 'any'): number | undefined {
    return this.samples.find((s) => s.kind === 'served' && s.hashes[0] === hash && (!family || s.family === family))?.t;
  }

  /** Samples per server / family, to prove the watcher actually watched. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.samples) out[sampleTarget(s)] = (out[sampleTarget(s)] ?? 0) + 1;
    return out;
  }

  /** Served samples taken in [from, to] (ms). */
  servedBetween(from: number, to: number, family?: KeyFamily | 'any'): WatchSample[] {
    return this.samples.filter((s) => s.kind === 'served' && s.t >= from && s.t <= to && (!family || s.family === family));
  }
}

function sampleTarget(s: WatchSample): string {
  return s.kind === 'served' ? `served:${s.family}` : `dns:${s.server}`;
}

/** Pure: the longest interval between consecutive instants (sorted first). */
export function longestGap(target: string, instants: number[]): { target: string; maxGapMs: number; at: number } {
  const t = [...instants].sort((a, b) => a - b);
  let maxGapMs = 0;
  let at = t[0] ?? 0;
  for (let i = 1; i < t.length; i++) {
    if (t[i]! - t[i - 1]! > maxGapMs) {
      maxGapMs = t[i]! - t[i - 1]!;
      at = t[i - 1]!;
    }
  }
  return { target, maxGapMs, at };
}

/**
 * The watcher saw: no probe failed, and no target went unsampled for longer
 * than `maxGapMs` (default: the TTL; a gap as long as the 2 × TTL window
 * could hide a violation). Call after stop().
 */
export function assertWatched(w: DaneWatcher, ttlSeconds: number, maxGapMs = ttlSeconds * 1000): void {
  assert.deepEqual(w.probeErrors.slice(0, 5), [], `probe errors (${w.probeErrors.length}): the watcher was partly blind`);
  const blind = w.gaps().filter((g) => g.maxGapMs > maxGapMs);
  assert.deepEqual(
    blind.map((g) => `${g.target}: ${g.maxGapMs} ms without a sample from ${new Date(g.at).toISOString()}`),
    [],
    `sampling gaps longer than ${maxGapMs} ms`,
  );
}

/**
 * Pure: every served sample must be in every non-empty RRset any server
 * returned in the 2 × TTL before it, TTL being the larger of `ttl` and the
 * TTL that RRset was served with. (An empty RRset means no DANE at that
 * server, which constrains nothing.)
 */
export function findViolations(samples: WatchSample[], ttl: number): string[] {
  const out: string[] = [];
  const dns = samples.filter((s) => s.kind === 'dns' && s.hashes.length > 0);
  for (const s of samples.filter((x) => x.kind === 'served')) {
    const h = s.hashes[0]!;
    for (const d of dns) {
      const window = 2 * Math.max(ttl, d.ttl ?? 0) * 1000;
      if (d.t <= s.t && d.t >= s.t - window && !d.hashes.includes(h)) {
        out.push(
          `at ${new Date(s.t).toISOString()} served (${s.family ?? 'any'}) ${h.slice(0, 12)}… missing from ${d.server}'s RRset ` +
            `[${d.hashes.map((x) => x.slice(0, 8)).join(' ')}] (TTL ${d.ttl ?? '?'}) seen at ${new Date(d.t).toISOString()}`,
        );
      }
    }
  }
  return out;
}
