// Which names go into the MTAs' SNI tables and which files serve each
// (docs/architecture.md, "SNI tables"). Pure: the caller says which files
// exist, so a certificate that was never deployed is left out instead of
// breaking the table (postmap -F and Dovecot both fail on a missing file).
import type { CertificateConfig } from '../config/schema.js';
import { expandOutputPath } from './output-paths.js';

/** The files one key type of a certificate is written to. */
export interface SniKeyFiles {
  keyType: string;
  combined?: string;
  key?: string;
  fullchain?: string;
}

/** One certificate as the SNI tables see it. */
export interface SniSource {
  cert: string;
  /** As configured (case and a trailing dot as written). */
  domains: string[];
  /** One entry per key type, in the config's order (the first is the main certificate). */
  files: SniKeyFiles[];
}

/** Something left out of a table, and why; `warn` when the config should change. */
export interface SniNote {
  level: 'info' | 'warn';
  text: string;
}

/**
 * The certificates a server presents (usage `server`), with their output
 * paths expanded per key type. Client-only certificates never answer a
 * TLS ClientHello, so they have no place in an SNI table.
 */
export function sniSources(certs: readonly CertificateConfig[]): SniSource[] {
  return certs
    .filter((c) => c.usage.includes('server'))
    .map((c) => ({
      cert: c.name,
      domains: c.domains,
      files: c.keys.map((keyType) => {
        const at = (tpl: string | undefined) => (tpl === undefined ? undefined : expandOutputPath(tpl, { keytype: keyType, name: c.name }));
        return { keyType, combined: at(c.output.combined), key: at(c.output.key), fullchain: at(c.output.fullchain) };
      }),
    }));
}

/** Every path the tables may name, for the caller to check which exist. */
export function sniCandidatePaths(sources: readonly SniSource[]): string[] {
  const out = new Set<string>();
  for (const s of sources) {
    for (const f of s.files) for (const p of [f.combined, f.key, f.fullchain]) if (p) out.add(p);
  }
  return [...out];
}

/** A configured name as both MTAs compare it: lower case, no trailing dot. */
export function canonicalName(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}

/**
 * Order for DNS names: by labels from the right, so every customer's names
 * stand together and a parent comes before its children (`example.com`,
 * `.example.com`, `mail.example.com`). Deterministic output lets a rebuild
 * tell "changed" from "the same" by comparing text.
 */
export function compareDnsNames(a: string, b: string): number {
  const la = a.split('.').reverse();
  const lb = b.split('.').reverse();
  for (let i = 0; i < Math.min(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return la[i]! < lb[i]! ? -1 : 1;
  }
  return la.length - lb.length;
}

/**
 * Names in config order, first certificate wins: a name claimed by two
 * certificates is served by the one listed first, and the other claim is a
 * `warn` note (SNI can serve one certificate per name).
 */
export function firstClaims<T>(
  sources: readonly SniSource[],
  table: string,
  keyOf: (domain: string) => string,
  valueOf: (source: SniSource) => T | undefined,
): { claims: Map<string, { cert: string; value: T }>; notes: SniNote[] } {
  const claims = new Map<string, { cert: string; value: T }>();
  const notes: SniNote[] = [];
  for (const s of sources) {
    const value = valueOf(s);
    if (value === undefined) continue;
    for (const d of s.domains) {
      const key = keyOf(d);
      const prev = claims.get(key);
      if (!prev) claims.set(key, { cert: s.cert, value });
      else if (prev.cert !== s.cert) notes.push({ level: 'warn', text: `${table}: ${key} is a name of certificates ${prev.cert} and ${s.cert}; it is served ${prev.cert}'s (the first in the config)` });
    }
  }
  return { claims, notes };
}
