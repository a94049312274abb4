// Alternate certificate chains (RFC 8555 §7.4.2): a CA may offer the same
// certificate under other issuers, linked from the download with
// `Link: <url>;rel="alternate"`. Pure functions; order.ts fetches.
import { X509Certificate } from 'node:crypto';
import { loadX509 } from '../util/cert-fields.js';

/** The targets of `rel="alternate"` links in one or more Link header values (RFC 8288 §3). */
export function alternateLinks(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: string[] = [];
  // <target> followed by parameters up to the next link; a rel may list several types.
  for (const m of text.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]+(?:=(?:"[^"]*"|[^;,]*))?)*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]*))/i.exec(m[2] ?? '');
    const types = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (types.includes('alternate') && m[1]) out.push(m[1]);
  }
  return out;
}

/**
 * The CN of the issuer of the topmost certificate of a PEM chain (what
 * certbot's --preferred-chain matches), read from the Name's DER with
 * @peculiar/x509: node's text rendering reorders a multi-valued RDN
 * ("CN=Root+O=X" prints as "O=X + CN=Root") and escapes what it prints. A
 * Name with no CN, or with several, has none to match (undefined).
 */
export async function topIssuerCn(chainPem: string): Promise<string | undefined> {
  const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  const top = blocks?.at(-1);
  if (!top) return undefined;
  try {
    const x509 = await loadX509();
    const cns = new x509.X509Certificate(new X509Certificate(top).raw).issuerName.getField('CN');
    return cns.length === 1 ? cns[0] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The index of the first chain whose topmost certificate's issuer CN is
 * `preferred` (exact match, as certbot and lego do), or undefined.
 */
export async function pickChain(chainsPem: string[], preferred: string): Promise<number | undefined> {
  for (const [i, c] of chainsPem.entries()) if ((await topIssuerCn(c)) === preferred) return i;
  return undefined;
}
