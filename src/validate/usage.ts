// Does the issued leaf allow what the MTA does with it? `usage: [server,
// client]` says the MTA also presents this certificate as an SMTP client
// certificate (Postfix smtp_tls_chain_files, Exim tls_certificate on the
// transport). Public CAs have dropped the clientAuth extended key usage from
// server certificates (Let's Encrypt in 2026), and a peer that checks client
// certificates then refuses it. That is worth a warning, not a failed
// renewal: the server side is fine.
import { X509Certificate } from 'node:crypto';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';

export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
export const EKU_ANY = '2.5.29.37.0';

const EKU_FOR = { server: EKU_SERVER_AUTH, client: EKU_CLIENT_AUTH } as const;
const EKU_NAME: Record<string, string> = {
  [EKU_SERVER_AUTH]: 'serverAuth',
  [EKU_CLIENT_AUTH]: 'clientAuth',
  [EKU_ANY]: 'anyExtendedKeyUsage',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};

export type Usage = keyof typeof EKU_FOR;

/** The leaf's extended key usages as OIDs, or undefined when it has no EKU extension. */
export function extendedKeyUsages(leafPem: string): string[] | undefined {
  // Node names this property keyUsage, but it is the extendedKeyUsage extension.
  const ekus = new X509Certificate(leafPem).keyUsage as string[] | undefined;
  return ekus && ekus.length > 0 ? [...ekus] : undefined;
}

/**
 * The usages in `wanted` that the leaf does not allow. Without an EKU
 * extension a certificate is not restricted (RFC 5280 §4.2.1.12), and
 * anyExtendedKeyUsage allows everything.
 */
export function missingUsages(leafPem: string, wanted: readonly Usage[]): Usage[] {
  const ekus = extendedKeyUsages(leafPem);
  if (!ekus || ekus.includes(EKU_ANY)) return [];
  return wanted.filter((u) => !ekus.includes(EKU_FOR[u]));
}

export function ekuNames(oids: readonly string[]): string[] {
  return oids.map((o) => EKU_NAME[o] ?? o);
}

/**
 * Log a warning naming the certificate for every configured usage the issued
 * leaf does not allow. Never throws: a leaf that cannot be read here has
 * already passed the chain check, so this is only logged.
 */
export function warnOnMissingUsage(cert: { name: string; usage?: readonly Usage[] }, leafPem: string, log: Logger): Usage[] {
  try {
    const usage = cert.usage ?? ['server'];
    const missing = missingUsages(leafPem, usage);
    if (missing.length === 0) return [];
    const eku = ekuNames(extendedKeyUsages(leafPem) ?? []);
    for (const u of missing) {
      const what = u === 'client'
        ? `certificate ${cert.name} lacks the clientAuth extended key usage, but usage lists client: SMTP peers that check client certificates will refuse it (get a client certificate from a CA that still issues clientAuth, or drop client from usage)`
        : `certificate ${cert.name} lacks the serverAuth extended key usage, but usage lists server: TLS clients will refuse it`;
      log.warn({ usage, eku, missing: EKU_NAME[EKU_FOR[u]] }, what);
    }
    return missing;
  } catch (err) {
    log.warn({ err: describeError(err) }, `certificate ${cert.name}: could not read its extended key usage`);
    return [];
  }
}
