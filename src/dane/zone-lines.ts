// The records mxcert wants published, in zone-file syntax (`mxcert tlsa`),
// for operators who publish by hand or want to see what mxcert will do.
import type { CertificateConfig } from '../config/schema.js';
import type { DaneJournal } from './journal.js';
import { formatTlsa, parseTlsa, tlsaOwner, type TlsaRecord } from './tlsa.js';

const rec = (hex: string): TlsaRecord => ({ usage: 3, selector: 1, matchingType: 1, data: hex });

/** The owner names of a certificate's endpoints, `_port._tcp.host.` (RFC 6698 §3). */
export function endpointOwners(cert: CertificateConfig): string[] {
  return (cert.dane?.endpoints ?? []).map((e) => tlsaOwner(e.host, e.port));
}

/** One line per record: every key type's current and next, then the extra records. */
export function wantedRecords(cert: CertificateConfig, journals: Array<{ keyType: string; journal?: DaneJournal }>, ttl: number): string[] {
  const lines: string[] = [];
  for (const owner of endpointOwners(cert)) {
    for (const { keyType, journal } of journals) {
      if (!journal) {
        lines.push(`; ${owner} ${keyType}: no keys yet (run mxcert renew first)`);
        continue;
      }
      lines.push(`${owner} ${ttl} IN TLSA ${formatTlsa(rec(journal.current.tlsa))} ; ${keyType} current`);
      lines.push(`${owner} ${ttl} IN TLSA ${formatTlsa(rec(journal.next.tlsa))} ; ${keyType} next`);
    }
    for (const x of cert.dane?.extraRecords ?? []) lines.push(`${owner} ${ttl} IN TLSA ${formatTlsa(parseTlsa(x))} ; extra`);
  }
  return lines;
}
