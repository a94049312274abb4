// HTTP for ACME: one keep-alive agent per CA, JSON and problem+json bodies,
// Retry-After, and the Replay-Nonce pool (RFC 8555 §6.5, §7.2). node:https
// only: it is loaded anyway, and a general HTTP client (acme-client's axios)
// cost more start-up time than an issuance (issue 6).
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { FlattenedJws } from './jws.js';
import { withExtraTrust } from '../util/tls-trust.js';

export interface AcmeResponse {
  url: string;
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON (including problem+json), else undefined. */
  json: unknown;
  text: string;
}

/** A failure below HTTP: nothing (or nothing usable) was answered. */
export class NetworkError extends Error {
  constructor(
    readonly url: string,
    readonly code: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach ${url}: ${code ?? ''} ${message}`.replace(/\s+/g, ' ').trim(), options);
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

export interface TransportOptions {
  /** Extra trust for the CA's HTTPS endpoint (private or test CA), added to the system roots. */
  caBundlePem?: string;
  timeoutMs?: number;
}

export class AcmeTransport {
  private readonly agent: https.Agent;
  private readonly plainAgent: http.Agent;
  private readonly timeoutMs: number;
  private readonly nonces: string[] = [];

  constructor(opts: TransportOptions = {}) {
    const secureContext = opts.caBundlePem ? withExtraTrust(opts.caBundlePem) : undefined;
    this.agent = new https.Agent({ keepAlive: true, ...(secureContext ? { secureContext } : {}) });
    this.plainAgent = new http.Agent({ keepAlive: true });
    this.timeoutMs = opts.timeoutMs ?? 30_000;
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

  get(url: string, accept?: string): Promise<AcmeResponse> {
    return this.send('GET', url, undefined, accept);
  }

  head(url: string): Promise<AcmeResponse> {
    return this.send('HEAD', url);
  }

  post(url: string, jws: FlattenedJws, accept?: string): Promise<AcmeResponse> {
    return this.send('POST', url, JSON.stringify(jws), accept);
  }

  close(): void {
    this.agent.destroy();
    this.plainAgent.destroy();
  }

  private async send(method: string, url: string, body?: string, accept?: string): Promise<AcmeResponse> {
    const resp = await this.once(method, url, body, accept);
    this.keepNonce(resp);
    return resp;
  }

  private once(method: string, url: string, body?: string, accept?: string): Promise<AcmeResponse> {
    return new Promise((resolve, reject) => {
      let u: URL;
      try {
        u = new URL(url);
      } catch (err) {
        reject(new NetworkError(url, 'EINVAL', 'not a URL', { cause: err }));
        return;
      }
      const secure = u.protocol === 'https:';
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept: accept ?? 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/jose+json';
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      const req = (secure ? https : http).request(u, { method, headers, agent: secure ? this.agent : this.plainAgent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err: NodeJS.ErrnoException) => reject(new NetworkError(url, err.code, err.message, { cause: err })));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const ctype = String(res.headers['content-type'] ?? '');
          let json: unknown;
          if (/json/i.test(ctype) && text !== '') {
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
          }
          resolve({ url, status: res.statusCode ?? 0, headers: res.headers, json, text });
        });
      });
      req.setTimeout(this.timeoutMs, () => {
        const err = Object.assign(new Error(`no answer within ${Math.round(this.timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' });
        req.destroy(err);
      });
      req.on('error', (err: NodeJS.ErrnoException) => reject(new NetworkError(url, err.code, err.message, { cause: err })));
      req.end(body);
    });
  }
}
