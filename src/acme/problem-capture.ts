// acme-client turns every failed ACME response into `new Error(detail)`, losing
// the RFC 8555 §6.7 problem type, the HTTP status and Retry-After. We put an
// interceptor on its axios instance that records the last problem document seen
// within the current async operation (AsyncLocalStorage keeps concurrent orders
// apart), and rebuild a typed AcmeProblemError from it when a call fails.
import { AsyncLocalStorage } from 'node:async_hooks';
import { AcmeProblemError, type AcmeProblem } from '../errors.js';

interface Captured {
  problem?: AcmeProblem;
  status?: number;
  retryAfter?: number;
  url?: string;
}

const als = new AsyncLocalStorage<{ last?: Captured }>();

interface AxiosLikeResponse {
  status: number;
  headers: Record<string, unknown>;
  data: unknown;
  config?: { url?: string };
}

/** Parse Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. */
export function parseRetryAfter(value: unknown, now: Date = new Date()): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const t = Date.parse(value);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.round((t - now.getTime()) / 1000));
}

export function recordResponse(resp: AxiosLikeResponse): void {
  const store = als.getStore();
  if (!store) return;
  const ctype = String(resp.headers['content-type'] ?? '');
  if (resp.status >= 400 || ctype.includes('problem+json')) {
    const data = resp.data as Partial<AcmeProblem> | undefined;
    store.last = {
      problem: data && typeof data === 'object' && typeof data.type === 'string' ? (data as AcmeProblem) : undefined,
      status: resp.status,
      retryAfter: parseRetryAfter(resp.headers['retry-after']),
      url: resp.config?.url,
    };
  } else {
    // A later success (e.g. a retried badNonce) supersedes an earlier problem.
    store.last = undefined;
  }
}

/** Run `fn`, turning acme-client's string errors into AcmeProblemError with the captured problem. */
export async function withProblemCapture<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const store: { last?: Captured } = {};
  return als.run(store, async () => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AcmeProblemError) throw err;
      const last = store.last;
      const detail = last?.problem?.detail ?? (err instanceof Error ? err.message : String(err));
      const type = last?.problem?.type ? ` [${last.problem.type.replace('urn:ietf:params:acme:error:', '')}]` : '';
      throw new AcmeProblemError(
        `${what} failed${type}: ${detail}`,
        { problem: last?.problem, status: last?.status, retryAfter: last?.retryAfter },
        { cause: err },
      );
    }
  });
}
