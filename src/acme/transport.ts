// HTTP for ACME: one keep-alive agent per CA, JSON and problem+json bodies,
// Retry-After, and the Replay-Nonce pool (RFC 8555 §6.5, §7.2). node:https
// only: it is loaded anyway, and a general HTTP client cost more start-up
// time than an issuance.
//
// What the transport refuses (docs/architecture.md, "Security model"): any
// URL that is not https, wherever it came from (RFC 8555 §6.1: over plain
// http anyone on the path reads the account's requests, its contact and EAB
// key id included, and can rewrite the CA's answers); any 3xx (ACME uses no
// redirects, so one is an error, never followed); a request still
// unfinished at its total deadline; a body over the cap.
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { FlattenedJws } from './jws.js';
import { withExtraTrust } from '../util/tls-trust.js';
import { bodyCapMessage, deadlineMessage, declaredLength, type DeadlinePhase } from '../util/http-limits.js';
import { announceWait } from '../util/announce-wait.js';
import type { Logger } from '../log.js';

export interface AcmeResponse {
  url: string;
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON (including problem+json), else undefined. */
  json: unknown;
  text: string;
}

/** The transport refused or lost a request; `code` says which way (errno-style). */
export class TransportError extends Error {
  constructor(
    readonly url: string,
    readonly code: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A failure below HTTP: nothing (or nothing usable) was answered. */
export class NetworkError extends TransportError {
  constructor(url: string, code: string | undefined, message: string, options?: { cause?: unknown }) {
    super(url, code, `cannot reach ${url}: ${code ?? ''} ${message}`.replace(/\s+/g, ' ').trim(), options);
  }
}

/**
 * A URL that is not https (RFC 8555 §6.1: ACME runs over HTTPS only).
 * `from` names where the URL came from (the config, a directory field, a
 * Location header); nothing was sent to it.
 */
export class InsecureUrlError extends TransportError {
  constructor(
    url: string,
    readonly from: string,
  ) {
    super(url, 'EINSECURE', `refusing ${url} (from ${from}): ACME is https only (RFC 8555 §6.1); nothing was sent to it`);
  }
}

/** A 3xx: ACME uses no redirects, and a request is never repeated to where one points. */
export class RedirectError extends TransportError {
  constructor(
    url: string,
    readonly status: number,
    readonly location: string | undefined,
  ) {
    super(url, 'EREDIRECT', `HTTP ${status} from ${url}${location ? ` redirecting to ${location.slice(0, 300)}` : ''}: API requests follow no redirects; nothing was sent there`);
  }
}

/** The request's total deadline passed; `phase` says how far it had got. */
export class DeadlineError extends TransportError {
  constructor(
    url: string,
    readonly deadlineMs: number,
    readonly phase: DeadlinePhase,
    readonly bodyBytes: number,
  ) {
    super(url, 'EDEADLINE', `${deadlineMessage(url, deadlineMs, phase, bodyBytes)} (the deadline for the whole request)`);
  }
}

/** The body is larger than the cap (declared in Content-Length, or as it arrived). */
export class BodyTooLargeError extends TransportError {
  constructor(
    url: string,
    readonly capBytes: number,
    declared?: number,
  ) {
    super(url, 'ETOOBIG', bodyCapMessage(url, capBytes, declared));
  }
}

/**
 * Connection-level failures worth one quick retry: typically a keep-alive
 * socket the CA closed while idle. A POST repeated this way is signed again
 * with a fresh nonce, so at worst the CA sees a duplicate newOrder.
 */
export const RETRYABLE_NETWORK = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN']);

/** Parse Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. */
export function parseRetryAfter(value: unknown, now: Date = new Date()): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const t = Date.parse(value);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.round((t - now.getTime()) / 1000));
}

const USER_AGENT = 'mxcert/0.1 (+RFC 8555)';
// Nonces beyond this are old; a CA expires them anyway.
const NONCE_POOL_MAX = 32;

/** Default total deadline of one request: connect, TLS, request, response and the whole body. */
export const DEFAULT_DEADLINE_MS = 30_000;
/**
 * Default body cap. ACME bodies are small JSON objects and PEM chains: an
 * order with 100 authorizations is ~15 KiB, a chain a few KiB (alternates
 * alike); 1 MiB leaves room for any real CA and bounds the memory a broken or
 * hostile one can make us use.
 */
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

export interface TransportOptions {
  /** Extra trust for the CA's HTTPS endpoint (private or test CA), added to Node's bundled roots. */
  caBundlePem?: string;
  /** Total deadline per request (one timer from start to the end of the body). */
  timeoutMs?: number;
  /** Largest body accepted; a larger one is cut off. */
  maxBodyBytes?: number;
  /** Where a request still unanswered after a moment is announced, with its deadline. */
  logger?: Logger;
}

const WAITING_FOR: Record<DeadlinePhase, string> = {
  connect: 'the connection',
  tls: 'the TLS handshake',
  response: 'the response',
  body: 'the rest of the response',
};

export interface RequestOptions {
  accept?: string;
  /** Where the URL came from (`acme.directory`, `the directory (newAccount)`, …), for the https-only refusal. */
  from?: string;
}

export class AcmeTransport {
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly nonces: string[] = [];
  private readonly logger: Logger | undefined;

  constructor(opts: TransportOptions = {}) {
    this.logger = opts.logger;
    const secureContext = opts.caBundlePem ? withExtraTrust(opts.caBundlePem) : undefined;
    this.agent = new https.Agent({ keepAlive: true, ...(secureContext ? { secureContext } : {}) });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_DEADLINE_MS;
    this.maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  /** A nonce from an earlier response (RFC 8555 §7.2 allows it), newest first; undefined when none is left. */
  takeNonce(): string | undefined {
    return this.nonces.pop();
  }

  private keepNonce(resp: AcmeResponse): void {
    const n = resp.headers['replay-nonce'];
    if (typeof n !== 'string' || n === '') return;
    this.nonces.push(n);
    if (this.nonces.length > NONCE_POOL_MAX) this.nonces.shift();
  }

  get(url: string, o: RequestOptions = {}): Promise<AcmeResponse> {
    return this.send('GET', url, undefined, o);
  }

  head(url: string, o: RequestOptions = {}): Promise<AcmeResponse> {
    return this.send('HEAD', url, undefined, o);
  }

  post(url: string, jws: FlattenedJws, o: RequestOptions = {}): Promise<AcmeResponse> {
    return this.send('POST', url, JSON.stringify(jws), o);
  }

  close(): void {
    this.agent.destroy();
  }

  private async send(method: string, url: string, body: string | undefined, o: RequestOptions): Promise<AcmeResponse> {
    const resp = await this.once(method, url, body, o);
    this.keepNonce(resp);
    return resp;
  }

  private once(method: string, url: string, body: string | undefined, o: RequestOptions): Promise<AcmeResponse> {
    let u: URL;
    try {
      u = new URL(url);
    } catch (err) {
      return Promise.reject(new NetworkError(url, 'EINVAL', 'not a URL', { cause: err }));
    }
    // Checked here, at request time, for every URL: the config's directory
    // and every URL the CA hands out (directory, Location, Link, bodies).
    if (u.protocol !== 'https:') return Promise.reject(new InsecureUrlError(url, o.from ?? 'the request'));
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: o.accept ?? 'application/json' };
    if (body !== undefined) {
      headers['content-type'] = 'application/jose+json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    return new Promise((resolve, reject) => {
      let phase: DeadlinePhase = 'connect';
      let received = 0;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      let announced: (() => void) | undefined;
      const finish = (err: Error | undefined, resp?: AcmeResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        announced?.();
        if (err) {
          // Destroying the request closes its socket: no more bytes are
          // read, and the keep-alive pool does not get it back.
          req.destroy();
          reject(err);
        } else resolve(resp!);
      };
      const req = https.request(u, { method, headers, agent: this.agent }, (res) => {
        res.on('error', (err: NodeJS.ErrnoException) => finish(new NetworkError(url, err.code, err.message, { cause: err })));
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) return finish(new RedirectError(url, status, res.headers.location));
        // A HEAD's Content-Length describes a body that does not come.
        const declared = method === 'HEAD' ? undefined : declaredLength(res.headers['content-length']);
        if (declared !== undefined && declared > this.maxBodyBytes) return finish(new BodyTooLargeError(url, this.maxBodyBytes, declared));
        phase = 'body';
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (received > this.maxBodyBytes) finish(new BodyTooLargeError(url, this.maxBodyBytes));
          else chunks.push(c);
        });
        res.on('end', () => finish(undefined, toResponse(url, status, res.headers, Buffer.concat(chunks).toString('utf8'))));
      });
      req.on('socket', (socket: TLSSocket) => {
        // A fresh socket connects, then shakes hands; a pooled one is ready.
        if (!socket.connecting) phase = 'response';
        else {
          socket.once('connect', () => {
            if (phase === 'connect') phase = 'tls';
          });
          socket.once('secureConnect', () => {
            if (phase === 'tls') phase = 'response';
          });
        }
      });
      // One timer for the whole request, never reset by progress: a server
      // sending a byte now and then cannot hold it open.
      timer = setTimeout(() => finish(new DeadlineError(url, this.timeoutMs, phase, received)), this.timeoutMs);
      if (this.logger) {
        announced = announceWait(this.logger, () => `${WAITING_FOR[phase]} from the ACME server (${method} ${url})`, Date.now() + this.timeoutMs);
      }
      req.on('error', (err: NodeJS.ErrnoException) => finish(new NetworkError(url, err.code, err.message, { cause: err })));
      req.end(body);
    });
  }
}

function toResponse(url: string, status: number, headers: IncomingHttpHeaders, text: string): AcmeResponse {
  const ctype = String(headers['content-type'] ?? '');
  let json: unknown;
  if (/json/i.test(ctype) && text !== '') {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { url, status, headers, json, text };
}
