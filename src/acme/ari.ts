// ACME Renewal Information (RFC 9773).
import { X509Certificate } from 'node:crypto';
import { AriError } from '../errors.js';
import { readCertFields } from '../util/cert-fields.js';

/**
 * CertID (RFC 9773 §4.1): base64url(AuthorityKeyIdentifier.keyIdentifier) "."
 * base64url(the serial number's DER INTEGER contents octets, exactly as the
 * certificate encodes them, so including the leading 0x00 that DER adds when
 * the high bit is set). Loads @peculiar/x509 (util/cert-fields.ts).
 */
export async function ariCertId(leafPem: string): Promise<string> {
  let aki: Buffer | undefined;
  let serial: Buffer;
  try {
    const fields = await readCertFields(new X509Certificate(leafPem));
    aki = fields.authorityKeyId;
    serial = fields.serialDer;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new AriError(`certificate is not readable; ARI CertID cannot be formed: ${why}`, { cause: err });
  }
  if (!aki) throw new AriError('certificate has no Authority Key Identifier; ARI CertID cannot be formed');
  return `${aki.toString('base64url')}.${serial.toString('base64url')}`;
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
    throw new AriError('renewalInfo response has no valid suggestedWindow');
  }
  if (end.getTime() < start.getTime()) throw new AriError('renewalInfo suggestedWindow ends before it starts');
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
