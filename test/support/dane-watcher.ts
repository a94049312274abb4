// An observer for DANE rollover tests (DESIGN §6), independent of mxcert: it
// asks Postfix what it serves (openssl s_client, once per key family when the
// server holds several chains) and asks every authoritative server for the
// TLSA RRset (dig, directly, no recursion), over and over, and checks the
// invariant over what it saw:
//   at every instant, the key the MTA serves is in every TLSA RRset that any
//   authoritative server returned during the preceding 2 × TTL.
// It never reads mxcert's journal or state.
import { createHash, X509Certificate } from 'node:crypto';
import { dig, type DnsServerAddr } from '../env/bind.js';
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
}

export interface DaneWatcherOptions {
  /** Every authoritative server of the zone, each asked directly. */
  servers: DnsServerAddr[];
  /** TLSA owner name, e.g. _2525._tcp.mx1.example.test */
  owner: string;
  /** Postfix's STARTTLS port on 127.0.0.1. */
  smtpPort: number;
  /** TTL of the TLSA RRset, seconds: the window is 2 × TTL. */
  ttl: number;
  /** Key families to probe separately (dual chains); default: whatever the server picks. */
  families?: KeyFamily[];
  /** Pause between rounds. Default 100 ms. */
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

/** The 3 1 1 hashes one server serves at `owner`, sorted (an RRset is a set; servers rotate its order). */
export async function tlsaAt(server: DnsServerAddr, owner: string): Promise<string[]> {
  return parseDigTlsa(await dig(server, ['+short', 'TLSA', owner])).sort();
}

/** What Postfix serves right now (3 1 1 hash), for one key family or whatever it picks. */
export async function servedHash(smtpPort: number, family?: KeyFamily): Promise<string> {
  return spkiHash(await servedLeafPem(smtpPort, family ? { keyFamily: family } : {}));
}

export class DaneWatcher {
  samples: WatchSample[] = [];
  probeErrors = 0;
  private stopped = false;
  private loop?: Promise<void>;

  constructor(private readonly opts: DaneWatcherOptions) {}

  start(): this {
    const families: Array<KeyFamily | undefined> = this.opts.families?.length ? this.opts.families : [undefined];
    this.loop = (async () => {
      while (!this.stopped) {
        const t = Date.now();
        await Promise.all([
          ...families.map((family) =>
            servedHash(this.opts.smtpPort, family)
              .then((h) => this.samples.push({ t, kind: 'served', family: family ?? 'any', hashes: [h] }))
              .catch(() => void this.probeErrors++),
          ),
          ...this.opts.servers.map((s) =>
            dig(s, ['+short', 'TLSA', this.opts.owner])
              .then((out) => this.samples.push({ t, kind: 'dns', server: `${s.host}:${s.port}`, hashes: parseDigTlsa(out) }))
              .catch(() => void this.probeErrors++),
          ),
        ]);
        await new Promise((r) => setTimeout(r, this.opts.intervalMs ?? 100));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Violations of the DESIGN §6 invariant, over the samples taken. */
  violations(): string[] {
    return findViolations(this.samples, this.opts.ttl);
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
    for (const s of this.samples) {
      const k = s.kind === 'served' ? `served:${s.family}` : `dns:${s.server}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /** Served samples taken in [from, to] (ms). */
  servedBetween(from: number, to: number, family?: KeyFamily | 'any'): WatchSample[] {
    return this.samples.filter((s) => s.kind === 'served' && s.t >= from && s.t <= to && (!family || s.family === family));
  }
}

/**
 * Pure: every served sample must be in every non-empty RRset any server
 * returned in the 2 × TTL before it. (An empty RRset means no DANE at that
 * server, which constrains nothing.)
 */
export function findViolations(samples: WatchSample[], ttl: number): string[] {
  const out: string[] = [];
  const dns = samples.filter((s) => s.kind === 'dns' && s.hashes.length > 0);
  for (const s of samples.filter((x) => x.kind === 'served')) {
    const h = s.hashes[0]!;
    for (const d of dns) {
      if (d.t <= s.t && d.t >= s.t - 2 * ttl * 1000 && !d.hashes.includes(h)) {
        out.push(
          `at ${new Date(s.t).toISOString()} served (${s.family ?? 'any'}) ${h.slice(0, 12)}… missing from ${d.server}'s RRset ` +
            `[${d.hashes.map((x) => x.slice(0, 8)).join(' ')}] seen at ${new Date(d.t).toISOString()}`,
        );
      }
    }
  }
  return out;
}
