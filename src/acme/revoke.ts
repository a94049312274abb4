// Certificate revocation (RFC 8555 §7.6).
import { X509Certificate } from 'node:crypto';
import { AcmeInputError } from '../errors.js';
import { accountKeyFromPem } from './jws.js';
import { PROBLEM, isProblem, problemError } from './problems.js';
import type { AcmeSession, Signer } from './session.js';

/**
 * The RFC 5280 §5.3.1 reasons a subscriber may give (the ones Let's
 * Encrypt accepts from subscribers), by name, with their CRLReason codes.
 */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function isRevocationReason(s: string): s is RevocationReason {
  return Object.prototype.hasOwnProperty.call(REVOCATION_REASONS, s);
}

/**
 * The revokeCert payload. RFC 5280 §5.3.1: "the reason code CRL entry
 * extension SHOULD be absent instead of using the unspecified (0)
 * reasonCode value", so `unspecified` sends no reason.
 */
export function revocationPayload(certPem: string, reason: RevocationReason): { certificate: string; reason?: number } {
  let der: Buffer;
  try {
    der = new X509Certificate(certPem).raw;
  } catch (err) {
    throw new AcmeInputError(`the certificate to revoke is not readable: ${(err as Error).message}`, { cause: err });
  }
  const code = REVOCATION_REASONS[reason];
  return code === 0 ? { certificate: der.toString('base64url') } : { certificate: der.toString('base64url'), reason: code };
}

/**
 * Revoke `certPem`, signed by the account that ordered it (`kid`) or,
 * without one, by the certificate's own key (JWK; §7.6 allows both).
 * Returns false when the CA says it was already revoked.
 */
export async function revokeCertificate(
  session: AcmeSession,
  req: { certPem: string; reason: RevocationReason; account?: Signer; certKeyPem: string },
): Promise<{ alreadyRevoked: boolean }> {
  const dir = await session.directory();
  if (typeof dir.revokeCert !== 'string') throw problemError('revocation', undefined, undefined, undefined, 'the CA offers no revokeCert endpoint');
  const signer: Signer = req.account ?? { key: accountKeyFromPem(req.certKeyPem) };
  try {
    await session.signed('revocation', dir.revokeCert, revocationPayload(req.certPem, req.reason), { signer, from: 'the directory (revokeCert)' });
    return { alreadyRevoked: false };
  } catch (err) {
    if (isProblem(err, PROBLEM.alreadyRevoked)) return { alreadyRevoked: true };
    throw err;
  }
}
