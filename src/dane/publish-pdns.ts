// TLSA publishing through the PowerDNS Authoritative HTTP API (tested against
// 4.7 from Debian 12).
//
// The API edits whole RRsets: PATCH with `changetype: REPLACE` sets the
// complete record list of one name/type. To add or remove only our records
// we read the RRset, compute current − remove + add, and write that back.
//
// Unlike RFC 2136 the API has no prerequisites (no If-Match, no per-record
// changetypes before PowerDNS 5), so between our GET and our PATCH another
// writer's change to the same RRset can be overwritten: we would drop a
// record they just added, or resurrect one they just removed. We narrow
// that window and repair what it breaks: after the PATCH we wait a little
// (longer than a competing writer's own GET→PATCH gap, which is a few ms),
// read again and, if our adds are missing or our removals are back, start
// over. The competing writer, if it is another mxcert, does the same for its
// records, so both converge. A human editing the same RRset at the same
// instant is not protected; the visibility gate (which looks for our records
// on every server) is the final check. Where strict compare-and-swap matters,
// PowerDNS also speaks RFC 2136 (`dnsupdate=yes`): use the rfc2136 publisher.
//
// Every request carries the API key, so (docs/architecture.md, "Security
// model"): https, or plain http to loopback only; no redirect is followed (a
// 3xx is an error: following it would hand the key to whatever origin the
// Location names); one total deadline per request, body included; bodies
// capped (the whole zone is read, see readRaw).
import { systemClock, type Clock } from '../clock.js';
import type { DanePdnsPublisherConfig } from '../config/schema.js';
import { readSecret } from '../config/load.js';
import { findAuthoritativeServers, parseHostPort } from '../dns/authoritative.js';
import { stripDot } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import { DnsError } from '../errors.js';
import { bodyCapMessage, deadlineMessage, declaredLength } from '../util/http-limits.js';
import { urlProblem } from '../util/url-policy.js';
import { silentLogger, type Logger } from '../log.js';
import { checkChange, retryDelayMs, type PublisherDeps, type TlsaChange, type TlsaPublisher } from './publish-common.js';
import { applyTlsaChange, formatTlsa, hasTlsa, parseTlsa, sameTlsaSet, shortTlsa, type TlsaRecord } from './tlsa.js';

export interface PdnsPublisherOptions {
  /** Base URL of the PowerDNS webserver (`http://127.0.0.1:8081`); `/api/v1` is appended. */
  url: string;
  apiKey: string;
  serverId?: string;
  zone: string;
  /** DNS address of PowerDNS, for NS discovery. */
  dnsServer: DnsServer;
  nameservers?: DnsServer[];
  logger?: Logger;
  clock?: Clock;
  /** Total deadline of one HTTP request, body included. Default 30 s. */
  timeoutMs?: number;
  /** Largest response body accepted. Default 16 MiB. */
  maxBodyBytes?: number;
  /** Pause between our PATCH and the read that checks nobody overwrote it. Default 500 ms (jittered up to 2×). */
  verifyDelayMs?: number;
  /** Default 8. */
  maxAttempts?: number;
  random?: () => number;
  resolver?: (name: string) => Promise<string[]>;
  fetch?: typeof fetch;
}

interface PdnsRecord {
  content: string;
  disabled: boolean;
}

interface PdnsRrset {
  name: string;
  type: string;
  ttl?: number;
  records: PdnsRecord[];
}

interface PdnsZone {
  name: string;
  serial?: number;
  /** The serial after SOA-EDIT, i.e. the one served over DNS. */
  edited_serial?: number;
  dnssec?: boolean;
  api_rectify?: boolean;
  rrsets?: PdnsRrset[];
}

interface RawState {
  zone: PdnsZone;
  /** Every record, disabled ones too, with its parsed form. */
  records: Array<{ rec: TlsaRecord; disabled: boolean }>;
  ttl?: number;
}

/**
 * The whole zone is read (see readRaw), so the cap is the zone's JSON: about
 * 150 bytes a record, so 16 MiB is a zone of some 100,000 records.
 */
export const PDNS_MAX_BODY_BYTES = 16 << 20;

export class PdnsApiError extends DnsError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
  }
}

export class PdnsTlsaPublisher implements TlsaPublisher {
  readonly name = 'pdns';
  private readonly zone: string;
  private readonly zoneUrl: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: PdnsPublisherOptions) {
    const bad = urlProblem(opts.url, { loopbackHttp: true });
    if (bad) throw new PdnsApiError(`PowerDNS API URL ${redactUrl(opts.url)}: ${bad}`);
    this.zone = `${stripDot(opts.zone)}.`;
    const base = opts.url.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
    // PowerDNS zone ids are the absolute name (with '/' escaped as =2F, which
    // no hostname contains).
    this.zoneUrl = `${base}/api/v1/servers/${encodeURIComponent(opts.serverId ?? 'localhost')}/zones/${encodeURIComponent(this.zone)}`;
    this.log = (opts.logger ?? silentLogger).child({ publisher: 'pdns', zone: this.zone });
    this.clock = opts.clock ?? systemClock;
    this.fetch = opts.fetch ?? fetch;
  }

  async servers(): Promise<DnsServer[]> {
    return findAuthoritativeServers(this.zone, {
      primary: this.opts.dnsServer,
      ...(this.opts.nameservers ? { explicit: this.opts.nameservers } : {}),
      ...(this.opts.resolver ? { resolver: this.opts.resolver } : {}),
    });
  }

  /** The records PowerDNS serves (disabled ones are stored but not served). */
  async read(owner: string): Promise<TlsaRecord[]> {
    const state = await this.readRaw(owner);
    return state.records.filter((r) => !r.disabled).map((r) => r.rec);
  }

  async change(owner: string, change: TlsaChange, ttl: number): Promise<{ serial?: number }> {
    checkChange(change, ttl);
    const name = this.owner(owner);
    const log = this.log.child({ owner: name });
    const maxAttempts = this.opts.maxAttempts ?? 8;
    for (let attempt = 1; ; attempt++) {
      const before = await this.readRaw(name);
      const served = before.records.filter((r) => !r.disabled).map((r) => r.rec);
      const desired = applyTlsaChange(served, change);
      if (sameTlsaSet(desired, served)) {
        log.debug({ records: served.map(shortTlsa) }, 'TLSA RRset already as wanted');
        return serialOf(before.zone);
      }
      // Someone's disabled records are theirs to keep; one we add is enabled
      // (it is in `desired`), one we remove goes entirely.
      const keptDisabled = before.records.filter((r) => r.disabled && !hasTlsa(desired, r.rec) && !hasTlsa(change.remove, r.rec));
      const records: PdnsRecord[] = [
        ...desired.map((r) => ({ content: formatTlsa(r), disabled: false })),
        ...keptDisabled.map((r) => ({ content: formatTlsa(r.rec), disabled: true })),
      ];
      // One RRset has one TTL (RFC 2181 §5.2), so REPLACE sets it for the
      // foreign records too; RFC 2136 adds behave the same way in BIND.
      const rrset =
        records.length === 0
          ? { name, type: 'TLSA', changetype: 'DELETE' }
          : { name, type: 'TLSA', ttl, changetype: 'REPLACE', records };
      try {
        await this.request('PATCH', this.zoneUrl, { rrsets: [rrset] }, 'update TLSA RRset');
      } catch (err) {
        // With the gsqlite3 backend a PATCH that meets another writer's
        // transaction fails with HTTP 500 ("database is locked") and changes
        // nothing. Any 5xx is retried the same way: the next round re-reads,
        // so whether or not this one landed, the retry is computed afresh.
        if (err instanceof PdnsApiError && err.status !== undefined && err.status >= 500 && attempt < maxAttempts) {
          const wait = retryDelayMs(attempt, this.opts.random);
          log.warn({ attempt, status: err.status, pauseMs: wait }, 'PowerDNS failed the PATCH; re-reading and retrying');
          await this.clock.sleep(wait);
          continue;
        }
        throw err;
      }
      // Zones signed by PowerDNS need NSEC(3) ordering fixed after a change
      // unless API-RECTIFY does it on every PATCH.
      if (before.zone.dnssec && before.zone.api_rectify === false) {
        await this.request('PUT', `${this.zoneUrl}/rectify`, undefined, 'rectify zone');
      }

      const pause = Math.round((this.opts.verifyDelayMs ?? 500) * (1 + (this.opts.random ?? Math.random)()));
      await this.clock.sleep(pause);
      const after = await this.readRaw(name);
      const nowServed = after.records.filter((r) => !r.disabled).map((r) => r.rec);
      const lost = change.add.filter((r) => !hasTlsa(nowServed, r));
      const back = change.remove.filter((r) => !hasTlsa(change.add, r) && hasTlsa(nowServed, r));
      if (lost.length === 0 && back.length === 0) {
        log.info(
          { added: desired.filter((r) => !hasTlsa(served, r)).map(shortTlsa), removed: served.filter((r) => !hasTlsa(desired, r)).map(shortTlsa), attempt },
          'TLSA RRset updated',
        );
        return serialOf(after.zone);
      }
      if (attempt >= maxAttempts) {
        throw new DnsError(`TLSA ${stripDot(name)}.: gave up after ${attempt} attempts, another writer keeps replacing the RRset`);
      }
      const wait = retryDelayMs(attempt, this.opts.random);
      log.warn({ attempt, lost: lost.map(shortTlsa), reappeared: back.map(shortTlsa), pauseMs: wait }, 'TLSA RRset was overwritten concurrently; redoing our change');
      await this.clock.sleep(wait);
    }
  }

  private async readRaw(owner: string): Promise<RawState> {
    const name = this.owner(owner);
    // The whole zone, not `?rrset_name=…&rrset_type=…`: in 4.7 that filter
    // silently leaves out disabled records, and a REPLACE built from it
    // would delete someone's disabled records.
    const zone = (await this.request('GET', this.zoneUrl, undefined, 'read zone')) as PdnsZone;
    const rrset = (zone.rrsets ?? []).find((r) => r.type === 'TLSA' && stripDot(r.name).toLowerCase() === stripDot(name).toLowerCase());
    const records = (rrset?.records ?? []).map((r) => ({ rec: parseTlsa(r.content), disabled: Boolean(r.disabled) }));
    const state: RawState = { zone, records };
    if (rrset?.ttl !== undefined) state.ttl = rrset.ttl;
    return state;
  }

  /** Absolute, lowercase, inside the zone (PowerDNS answers 422 otherwise; say it clearly first). */
  private owner(owner: string): string {
    const n = stripDot(owner).toLowerCase();
    const z = stripDot(this.zone).toLowerCase();
    if (n !== z && !n.endsWith(`.${z}`)) throw new DnsError(`${n}. is not in zone ${this.zone}`);
    return `${n}.`;
  }

  private async request(method: string, url: string, body: unknown, what: string): Promise<unknown> {
    const head = `PowerDNS API ${what} (${method} ${redactUrl(url)})`;
    // Checked again per request: this URL is built from the configured one.
    const bad = urlProblem(url, { loopbackHttp: true });
    if (bad) throw new PdnsApiError(`${head}: ${bad}; nothing was sent`);
    const { status, text } = await this.exchange(method, url, body, head);
    if (status < 200 || status >= 300) {
      throw new PdnsApiError(`${head}: HTTP ${status}: ${explainStatus(status, text, this.zone)}`, status);
    }
    if (!text) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new PdnsApiError(`${head}: reply is not JSON`, status);
    }
  }

  /**
   * One request under one timer, from the start to the end of the body;
   * no redirects; the body cut off at the cap. Resolves with the status and
   * the body text; every failure is a PdnsApiError saying what happened.
   */
  private async exchange(method: string, url: string, body: unknown, head: string): Promise<{ status: number; text: string }> {
    const timeoutMs = this.opts.timeoutMs ?? 30_000;
    const cap = this.opts.maxBodyBytes ?? PDNS_MAX_BODY_BYTES;
    const abort = new AbortController();
    let phase: 'response' | 'body' = 'response';
    let received = 0;
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      abort.abort();
    }, timeoutMs);
    const failure = (err: unknown): PdnsApiError => {
      if (err instanceof PdnsApiError) return err;
      if (expired) return new PdnsApiError(`${head}: ${deadlineMessage(redactUrl(url), timeoutMs, phase, received)} (the deadline for the whole request)`, undefined, { cause: err });
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return new PdnsApiError(`${head}: ${e.cause?.code ?? e.cause?.message ?? e.message}`, undefined, { cause: err });
    };
    try {
      const res = await this.fetch(url, {
        method,
        headers: {
          'X-API-Key': this.opts.apiKey,
          Accept: 'application/json',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: 'manual',
        signal: abort.signal,
      });
      if (res.status >= 300 && res.status < 400) {
        const location = res.headers.get('location');
        throw new PdnsApiError(
          `${head}: HTTP ${res.status}${location ? ` redirecting to ${location.slice(0, 300)}` : ''}: API requests follow no redirects; nothing was sent there (check the url setting)`,
          res.status,
        );
      }
      const declared = declaredLength(res.headers.get('content-length'));
      if (declared !== undefined && declared > cap) throw new PdnsApiError(`${head}: ${bodyCapMessage(redactUrl(url), cap, declared)}`, res.status);
      phase = 'body';
      const chunks: Uint8Array[] = [];
      if (res.body) {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          received += chunk.byteLength;
          if (received > cap) throw new PdnsApiError(`${head}: ${bodyCapMessage(redactUrl(url), cap)}`, res.status);
          chunks.push(chunk);
        }
      }
      return { status: res.status, text: Buffer.concat(chunks).toString('utf8') };
    } catch (err) {
      throw failure(err);
    } finally {
      clearTimeout(timer);
      // Whatever is still coming (a cut-off body, a redirect's body) is
      // dropped and its connection closed.
      abort.abort();
    }
  }
}

function serialOf(zone: PdnsZone): { serial?: number } {
  const s = zone.edited_serial ?? zone.serial;
  return typeof s === 'number' && s > 0 ? { serial: s } : {};
}

function redactUrl(url: string): string {
  // No secret is ever in the URL, but user:password@ could be configured.
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return `${u.origin}${u.pathname}`;
  } catch {
    return url;
  }
}

function explainStatus(status: number, body: string, zone: string): string {
  let detail = body.trim();
  try {
    const j = JSON.parse(body) as { error?: string };
    if (j.error) detail = j.error;
  } catch {
    // plain-text body (e.g. "Unauthorized")
  }
  detail = detail.slice(0, 300);
  switch (status) {
    case 401:
    case 403:
      return `API key rejected (check apiKeyFile/apiKeyEnv and the server's api-key)`;
    case 404:
      return `zone ${zone} or server id not found${detail ? ` (${detail})` : ''}`;
    case 422:
      return `PowerDNS refused the change: ${detail}`;
    default:
      return detail || 'no detail';
  }
}

export async function createPdnsPublisher(cfg: DanePdnsPublisherConfig, deps: PublisherDeps): Promise<PdnsTlsaPublisher> {
  const apiKey = await readSecret({ secretFile: cfg.apiKeyFile, secretEnv: cfg.apiKeyEnv }, deps.env);
  // By default PowerDNS answers DNS on the host that serves its API.
  const host = cfg.server ?? new URL(cfg.url).hostname.replace(/^\[(.*)\]$/, '$1');
  return new PdnsTlsaPublisher({
    url: cfg.url,
    apiKey,
    serverId: cfg.serverId,
    zone: cfg.zone,
    dnsServer: { host, port: cfg.port },
    ...(cfg.nameservers ? { nameservers: cfg.nameservers.map((s) => parseHostPort(s)) } : {}),
    logger: deps.logger,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.resolver ? { resolver: deps.resolver } : {}),
    timeoutMs: cfg.timeout,
  });
}
