// ACME problem documents (RFC 8555 §6.7): the error types a CA may send, in
// one place, and the helpers that turn a CA's answer into an
// AcmeProblemError. Code compares against these constants, never against
// strings of its own.
import { AcmeProblemError, type AcmeProblem } from '../errors.js';
import { parseRetryAfter, type AcmeResponse } from './transport.js';

/** RFC 8555 §9.7.4: the namespace of ACME error types. */
export const ACME_ERROR_PREFIX = 'urn:ietf:params:acme:error:';

const p = <T extends string>(name: T) => `${ACME_ERROR_PREFIX}${name}` as const;

/** The error types of RFC 8555 §6.7 (Table 1) and the documents extending it. */
export const PROBLEM = {
  /** §7.3.1: the request named an account the CA does not know (onlyReturnExisting, or a deleted account). */
  accountDoesNotExist: p('accountDoesNotExist'),
  /** §7.6: the certificate was already revoked. */
  alreadyRevoked: p('alreadyRevoked'),
  /** §7.4: the CSR is unacceptable. */
  badCSR: p('badCSR'),
  /** §6.5: the nonce was not one the CA issued (or was used); retry with the response's nonce. */
  badNonce: p('badNonce'),
  /** §7.3.5: the key is not acceptable (keyChange, newAccount). */
  badPublicKey: p('badPublicKey'),
  /** §7.6: the revocation reason is not allowed. */
  badRevocationReason: p('badRevocationReason'),
  /** §6.2: the JWS algorithm is not supported. */
  badSignatureAlgorithm: p('badSignatureAlgorithm'),
  /** §7.4: CAA forbids this CA from issuing for the identifier (RFC 8659). */
  caa: p('caa'),
  /** §6.7.1: several problems, in `subproblems`. */
  compound: p('compound'),
  /** §8: the CA could not connect to validate a challenge. */
  connection: p('connection'),
  /** §8.4: a DNS problem during validation. */
  dns: p('dns'),
  /** §7.3.4: the CA requires External Account Binding. */
  externalAccountRequired: p('externalAccountRequired'),
  /** §8: the challenge response did not match. */
  incorrectResponse: p('incorrectResponse'),
  /** §7.3: a contact URL is invalid. */
  invalidContact: p('invalidContact'),
  /** §6.7: the request is malformed. */
  malformed: p('malformed'),
  /** §7.4: finalize came before the order was ready. */
  orderNotReady: p('orderNotReady'),
  /** §6.6: a rate limit was hit; Retry-After says when to try again. */
  rateLimited: p('rateLimited'),
  /** §7.4: the CA will not issue for this identifier. */
  rejectedIdentifier: p('rejectedIdentifier'),
  /** §6.7: the CA failed internally. */
  serverInternal: p('serverInternal'),
  /** §8: a TLS problem during validation. */
  tls: p('tls'),
  /** §6.7: the client lacks authorization for the action. */
  unauthorized: p('unauthorized'),
  /** §7.3: a contact URL uses a scheme the CA does not support. */
  unsupportedContact: p('unsupportedContact'),
  /** §7.4: the identifier type is not supported. */
  unsupportedIdentifier: p('unsupportedIdentifier'),
  /** §7.3.3: a human must visit the `instance` URL (e.g. new terms of service). */
  userActionRequired: p('userActionRequired'),
  /** RFC 9773 §7.4: the certificate named in `replaces` was already replaced. */
  alreadyReplaced: p('alreadyReplaced'),
  /** draft-ietf-acme-profiles: the requested profile is not offered. */
  invalidProfile: p('invalidProfile'),
} as const;

export type ProblemType = (typeof PROBLEM)[keyof typeof PROBLEM];

/** The type without the namespace (`rateLimited`), as shown to people. */
export function shortProblemType(type: string): string {
  return type.startsWith(ACME_ERROR_PREFIX) ? type.slice(ACME_ERROR_PREFIX.length) : type;
}

/** Whether `err` is a CA problem of exactly this type. */
export function isProblem(err: unknown, type: ProblemType): err is AcmeProblemError {
  return err instanceof AcmeProblemError && err.problem?.type === type;
}

/** The problem document in a response, if the body is one. */
export function problemOf(resp: AcmeResponse): AcmeProblem | undefined {
  const j = resp.json as Partial<AcmeProblem> | undefined;
  return j && typeof j === 'object' && typeof j.type === 'string' ? (j as AcmeProblem) : undefined;
}

/** RFC 8555 §6.7.1: name the identifiers a compound problem is about. */
export function describeProblem(prob: AcmeProblem): string {
  const sub = (prob.subproblems ?? []).map((s) => `${s.identifier?.value ?? '?'}: ${s.detail ?? shortProblemType(s.type)}`).join('; ');
  const detail = prob.detail ?? prob.type;
  return sub ? `${detail} (${sub})` : detail;
}

/** `what failed [type]: detail`, with the problem, status and Retry-After kept for the scheduler. */
export function problemError(
  what: string,
  problem: AcmeProblem | undefined,
  status: number | undefined,
  retryAfter: number | undefined,
  fallback: string,
  cause?: unknown,
): AcmeProblemError {
  const type = problem?.type ? ` [${shortProblemType(problem.type)}]` : '';
  return new AcmeProblemError(`${what} failed${type}: ${problem ? describeProblem(problem) : fallback}`, { problem, status, retryAfter }, cause === undefined ? undefined : { cause });
}

/** A failed response as an AcmeProblemError: its problem document, or its status and the start of its body. */
export function responseError(what: string, resp: AcmeResponse): AcmeProblemError {
  const problem = problemOf(resp);
  const snippet = resp.text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return problemError(what, problem, resp.status, parseRetryAfter(resp.headers['retry-after']), `HTTP ${resp.status} from ${resp.url}${snippet ? `: ${snippet}` : ''}`);
}
