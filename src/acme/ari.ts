// ACME Renewal Information (RFC 9773).
import * as x509 from '@peculiar/x509';
import { MxcertError } from '../errors.js';

/**
 * CertID (RFC 9773 §4.1): base64url(AuthorityKeyIdentifier.keyIdentifier) "."
 * base64url(serial number DER content bytes, including a leading 0x00 when
 * the high bit is set).
 */
export function ariCertId(leafPem: string): string {
  const cert = new x509.X509Certificate(leafPem);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new MxcertError('ari', 'certificate has no Authority Key Identifier; ARI CertID cannot be formed');
  const akiBytes = Buffer.from(aki.keyId, 'hex');
  let serial = Buffer.from(cert.serialNumber, 'hex');
  // @peculiar/x509 strips the DER sign byte; put it back for a positive integer with the high bit set.
  if (serial.length > 0 && (serial[0]! & 0x80) !== 0) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${akiBytes.toString('base64url')}.${serial.toString('base64url')}`;
}

export interface RenewalInfo {
  window: { start: Date; end: Date };
  explanationURL?: string;
  /** Seconds, from Retry-After, if sent. */
  retryAfter?: number;
}

/** Parse a renewalInfo response body (RFC 9773 §4.2); throws on anything malformed. */
export function parseRenewalInfo(body: unknown, retryAfter?: number): RenewalInfo {
  const b = body as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown } | undefined;
  const start = typeof b?.suggestedWindow?.start === 'string' ? new Date(b.suggestedWindow.start) : undefined;
  const end = typeof b?.suggestedWindow?.end === 'string' ? new Date(b.suggestedWindow.end) : undefined;
  if (!start || !end || Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) {
    throw new MxcertError('ari', 'renewalInfo response has no valid suggestedWindow');
  }
  if (end.getTime() < start.getTime()) throw new MxcertError('ari', 'renewalInfo suggestedWindow ends before it starts');
  return {
    window: { start, end },
    explanationURL: typeof b?.explanationURL === 'string' ? b.explanationURL : undefined,
    retryAfter,
  };
}

/** When to ask again: the CA's Retry-After, clamped to [1 min, 1 day]; 6 h when absent. */
export function nextAriCheck(now: Date, retryAfterSeconds: number | undefined): Date {
  const s = retryAfterSeconds === undefined ? 6 * 3600 : Math.min(Math.max(retryAfterSeconds, 60), 86_400);
  return new Date(now.getTime() + s * 1000);
}
