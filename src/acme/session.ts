// One CA as seen from the client: the directory (RFC 8555 §7.1.1), plain
// and signed requests (§6.2) with the retries the protocol calls for. The
// account, order and renewal-information code all talk through this.
import type { Logger } from '../log.js';
import { InsecureUrlError, NetworkError, RETRYABLE_NETWORK, TransportError, AcmeTransport, type AcmeResponse } from './transport.js';
import { signJws, type AccountKey } from './jws.js';
import { nextNonce, retryOnBadNonce } from './nonce.js';
import { problemError, responseError } from './problems.js';

export interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert?: string;
  keyChange?: string;
  renewalInfo?: string;
  meta?: { profiles?: Record<string, string>; termsOfService?: string; externalAccountRequired?: boolean };
}

/** Who signs a request: the key, and the account URL once there is one (`kid`, §6.2). */
export interface Signer {
  key: AccountKey;
  kid?: string;
}

export interface SessionOptions {
  directoryUrl: string;
  caBundlePem?: string;
  requestTimeoutMs?: number;
  /** Where a request still unanswered after a moment is announced. */
  logger?: Logger;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export { InsecureUrlError };

export class AcmeSession {
  readonly transport: AcmeTransport;
  readonly directoryUrl: string;
  private dir: Promise<Directory> | undefined;

  constructor(opts: SessionOptions) {
    this.directoryUrl = opts.directoryUrl;
    this.transport = new AcmeTransport({ caBundlePem: opts.caBundlePem, logger: opts.logger, ...(opts.requestTimeoutMs ? { timeoutMs: opts.requestTimeoutMs } : {}) });
  }

  /** Let go of keep-alive connections (the process can exit at once). */
  close(): void {
    this.transport.close();
  }

  /**
   * A request, retried once on a connection-level failure (a keep-alive
   * socket the CA closed while idle). A passed deadline, a 3xx, an oversized
   * body or a non-https URL is not retried. Transport errors become
   * AcmeProblemError naming `what`.
   */
  async withNetworkRetry(what: string, fn: () => Promise<AcmeResponse>): Promise<AcmeResponse> {
    try {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof NetworkError) || !err.code || !RETRYABLE_NETWORK.has(err.code)) throw err;
        await sleep(200);
        return await fn();
      }
    } catch (err) {
      if (err instanceof TransportError) throw problemError(what, undefined, undefined, undefined, err.message, err);
      throw err;
    }
  }

  /** The directory, fetched once; a failed fetch is not cached. */
  directory(): Promise<Directory> {
    if (this.dir) return this.dir;
    const held: Promise<Directory> = this.fetchDirectory().catch((err: unknown) => {
      if (this.dir === held) this.dir = undefined;
      throw err;
    });
    this.dir = held;
    return held;
  }

  private async fetchDirectory(): Promise<Directory> {
    const resp = await this.withNetworkRetry('directory', () => this.transport.get(this.directoryUrl, { from: 'acme.directory' }));
    const d = resp.json as Partial<Directory> | undefined;
    if (resp.status !== 200 || !d || typeof d.newNonce !== 'string' || typeof d.newAccount !== 'string' || typeof d.newOrder !== 'string') {
      throw resp.status !== 200
        ? responseError('directory', resp)
        : problemError('directory', undefined, resp.status, undefined, `${this.directoryUrl} is not an ACME directory (no newNonce/newAccount/newOrder)`);
    }
    return d as Directory;
  }

  private async nonce(what: string): Promise<string> {
    return nextNonce(this.transport, what, async () => {
      const dir = await this.directory();
      return this.withNetworkRetry(what, () => this.transport.head(dir.newNonce, { from: 'the directory (newNonce)' }));
    });
  }

  /**
   * A signed POST (RFC 8555 §6.2), retried on badNonce (§6.5) with a fresh
   * nonce. `payload` '' is POST-as-GET (§6.3); `body` builds the payload per
   * attempt when it must carry something signed for this exact request
   * (keyChange's inner JWS, §7.3.5). Any 4xx/5xx is an AcmeProblemError
   * naming `what` and the problem type.
   */
  async signed(
    what: string,
    url: string,
    payload: unknown,
    o: { signer: Signer | (() => Promise<Signer>); accept?: string; from: string },
  ): Promise<AcmeResponse> {
    for (let attempt = 0; ; attempt++) {
      const resp = await this.withNetworkRetry(what, async () => {
        const nonce = await this.nonce(what);
        const s = typeof o.signer === 'function' ? await o.signer() : o.signer;
        return this.transport.post(url, signJws(s.key, { url, nonce, kid: s.kid, payload }), { accept: o.accept, from: o.from });
      });
      if (resp.status < 400) return resp;
      if (retryOnBadNonce(resp, attempt)) continue;
      throw responseError(what, resp);
    }
  }
}
