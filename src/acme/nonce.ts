// Anti-replay nonces (RFC 8555 §6.5, §7.2). The transport pools the
// Replay-Nonce of every response; a signed request takes one from the pool
// and asks newNonce only when the pool is empty.
import { PROBLEM, problemOf, responseError } from './problems.js';
import type { AcmeResponse, AcmeTransport } from './transport.js';

// §6.5: a badNonce is answered by retrying with the nonce of that response.
// A CA that rejects many nonces (Pebble's PEBBLE_WFE_NONCEREJECT) can reject
// several in a row on one of the dozen requests of an issuance; each retry
// is cheap.
export const MAX_BAD_NONCE_RETRIES = 20;

/** A nonce for the next signed request: a pooled one, else a fresh one from newNonce (HEAD, §7.2). */
export async function nextNonce(transport: AcmeTransport, what: string, askNewNonce: () => Promise<AcmeResponse>): Promise<string> {
  const pooled = transport.takeNonce();
  if (pooled) return pooled;
  const resp = await askNewNonce();
  // The transport pools the Replay-Nonce of every response, this one too.
  const n = transport.takeNonce();
  if (!n) throw responseError(`${what} (newNonce)`, resp);
  return n;
}

/** Whether a failed signed request is to be sent again with a new nonce. */
export function retryOnBadNonce(resp: AcmeResponse, attempt: number): boolean {
  return problemOf(resp)?.type === PROBLEM.badNonce && attempt < MAX_BAD_NONCE_RETRIES;
}
