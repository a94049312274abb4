// TLSA records (RFC 6698) as plain data: computing mxcert's own "3 1 1"
// records, naming their owners, and converting between the forms they take
// (zone files, hook variables, the PowerDNS API, dns-packet's wire decoding).
// Everything here is pure, so the rollover logic can compare RRsets without
// touching DNS.
import { createHash, X509Certificate } from 'node:crypto';
import { DnsError } from '../errors.js';

export interface TlsaRecord {
  /** Certificate usage (RFC 6698 §2.1.1); 3 = DANE-EE. */
  usage: number;
  /** Selector (§2.1.2); 1 = SubjectPublicKeyInfo. */
  selector: number;
  /** Matching type (§2.1.3); 1 = SHA-256. */
  matchingType: number;
  /** Certificate association data, lowercase hex. */
  data: string;
}

/**
 * `3 1 1 SHA-256(SubjectPublicKeyInfo)`: the record RFC 7671 §5.1 recommends
 * for SMTP servers. It pins the key, not the certificate, so renewals that
 * keep the key (docs/architecture.md, "DANE rollover") leave the record valid, and no CA is involved in
 * the match (DANE-EE ignores names and expiry, RFC 7672 §3.1.1).
 */
export function tlsa311(spkiDer: Buffer): TlsaRecord {
  if (!Buffer.isBuffer(spkiDer) || spkiDer.length === 0) throw new DnsError('tlsa311: empty SubjectPublicKeyInfo');
  // Cheap sanity check: DER SubjectPublicKeyInfo is a SEQUENCE. Hashing a PEM
  // string or a whole certificate by mistake would publish a record that
  // matches nothing, which is exactly the failure DANE cannot forgive.
  if (spkiDer[0] !== 0x30) throw new DnsError('tlsa311: not DER (a SubjectPublicKeyInfo starts with a SEQUENCE)');
  return { usage: 3, selector: 1, matchingType: 1, data: createHash('sha256').update(spkiDer).digest('hex') };
}

const LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * The owner name of the TLSA RRset for a TCP service (RFC 6698 §3):
 * `_25._tcp.mx1.example.test.` — absolute, lowercase (DNS names compare
 * case-insensitively, RFC 4343, and one spelling keeps comparisons simple).
 */
export function tlsaOwner(host: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DnsError(`invalid port ${port} for TLSA owner name`);
  const name = host.trim().replace(/\.$/, '').toLowerCase();
  const labels = name.split('.');
  if (name === '' || labels.some((l) => !LABEL_RE.test(l)) || name.length > 240) {
    throw new DnsError(`invalid host name ${JSON.stringify(host)} for TLSA owner name`);
  }
  return `_${port}._tcp.${name}.`;
}

/** Presentation form of the RDATA: `3 1 1 9f86d0…` (RFC 6698 §2.2). */
export function formatTlsa(rec: TlsaRecord): string {
  return `${rec.usage} ${rec.selector} ${rec.matchingType} ${rec.data.toLowerCase()}`;
}

// RFC 7218 mnemonics, accepted on input because operators write them in
// configs and some tools print them.
const USAGE_NAMES: Record<string, number> = { 'pkix-ta': 0, 'pkix-ee': 1, 'dane-ta': 2, 'dane-ee': 3, privcert: 255 };
const SELECTOR_NAMES: Record<string, number> = { cert: 0, spki: 1, privsel: 255 };
const MATCHING_NAMES: Record<string, number> = { full: 0, 'sha2-256': 1, 'sha2-512': 2, privmatch: 255 };
/** Digest lengths fixed by the matching type (RFC 6698 §2.1.3). */
const DIGEST_BYTES: Record<number, number> = { 1: 32, 2: 64 };

function field(token: string | undefined, names: Record<string, number>, what: string, text: string): number {
  if (token === undefined) throw new DnsError(`TLSA record ${JSON.stringify(text)}: missing ${what}`);
  const named = names[token.toLowerCase()];
  if (named !== undefined) return named;
  // Each of the three fields is one octet (RFC 6698 §2.1).
  if (!/^\d{1,3}$/.test(token) || Number(token) > 255) {
    throw new DnsError(`TLSA record ${JSON.stringify(text)}: ${what} must be 0-255, got ${JSON.stringify(token)}`);
  }
  return Number(token);
}

/**
 * Parse presentation-form RDATA: `3 1 1 <hex>`. Accepts any whitespace
 * (tabs, newlines), hex in either case and split into chunks (as dig prints
 * long records), the zone-file parentheses of a multi-line record, and RFC
 * 7218 mnemonics (`DANE-EE SPKI SHA2-256 …`). Anything else is an error that
 * quotes the input: a mistyped record published anyway would break delivery.
 */
export function parseTlsa(text: string): TlsaRecord {
  const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text;
  const tokens = text.replace(/[()]/g, ' ').trim().split(/\s+/).filter(Boolean);
  if (tokens.length < 4) throw new DnsError(`TLSA record ${JSON.stringify(shown)}: expected "usage selector matching-type hex-data"`);
  const usage = field(tokens[0], USAGE_NAMES, 'usage', shown);
  const selector = field(tokens[1], SELECTOR_NAMES, 'selector', shown);
  const matchingType = field(tokens[2], MATCHING_NAMES, 'matching type', shown);
  const data = tokens.slice(3).join('').toLowerCase();
  if (!/^[0-9a-f]+$/.test(data)) throw new DnsError(`TLSA record ${JSON.stringify(shown)}: association data is not hexadecimal`);
  if (data.length % 2 !== 0) throw new DnsError(`TLSA record ${JSON.stringify(shown)}: association data has an odd number of hex digits`);
  const want = DIGEST_BYTES[matchingType];
  if (want !== undefined && data.length !== want * 2) {
    throw new DnsError(`TLSA record ${JSON.stringify(shown)}: matching type ${matchingType} needs ${want} bytes of data, got ${data.length / 2}`);
  }
  return { usage, selector, matchingType, data };
}

/** Same record: equal fields, hex compared case-insensitively. */
export function sameTlsa(a: TlsaRecord, b: TlsaRecord): boolean {
  return a.usage === b.usage && a.selector === b.selector && a.matchingType === b.matchingType && a.data.toLowerCase() === b.data.toLowerCase();
}

/** Whether `set` contains `rec`. */
export function hasTlsa(set: readonly TlsaRecord[], rec: TlsaRecord): boolean {
  return set.some((r) => sameTlsa(r, rec));
}

/** Without duplicates, first occurrence kept, in order. An RRset is a set (RFC 2181 §5). */
export function uniqueTlsa(records: readonly TlsaRecord[]): TlsaRecord[] {
  const out: TlsaRecord[] = [];
  for (const r of records) if (!hasTlsa(out, r)) out.push(normalizeTlsa(r));
  return out;
}

/** Equal as sets (order and duplicates ignored). */
export function sameTlsaSet(a: readonly TlsaRecord[], b: readonly TlsaRecord[]): boolean {
  const ua = uniqueTlsa(a);
  const ub = uniqueTlsa(b);
  return ua.length === ub.length && ua.every((r) => hasTlsa(ub, r));
}

/**
 * The RRset after removing exactly `remove` and adding `add`: every other
 * record (someone else's) stays. A record in both lists ends up present —
 * adding wins, because removing a record that should be published is the
 * dangerous direction.
 */
export function applyTlsaChange(current: readonly TlsaRecord[], change: { add: readonly TlsaRecord[]; remove: readonly TlsaRecord[] }): TlsaRecord[] {
  const kept = uniqueTlsa(current).filter((r) => !hasTlsa(change.remove, r) || hasTlsa(change.add, r));
  return uniqueTlsa([...kept, ...change.add]);
}

function normalizeTlsa(r: TlsaRecord): TlsaRecord {
  return { usage: r.usage, selector: r.selector, matchingType: r.matchingType, data: r.data.toLowerCase() };
}

/** A master-file line (RFC 1035 §5.1): `_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 9f86…`. */
export function zoneLine(owner: string, ttl: number, rec: TlsaRecord): string {
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) throw new DnsError(`invalid TTL ${ttl}`);
  const name = owner.endsWith('.') ? owner : `${owner}.`;
  return `${name} ${ttl} IN TLSA ${formatTlsa(rec)}`;
}

/** dns-packet's decoded TLSA RDATA (`{ usage, selector, matchingType, certificate: Buffer }`). */
export function fromDnsPacket(data: unknown): TlsaRecord {
  const d = data as { usage?: unknown; selector?: unknown; matchingType?: unknown; certificate?: unknown } | null | undefined;
  const octet = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
  if (!d || !octet(d.usage) || !octet(d.selector) || !octet(d.matchingType) || !Buffer.isBuffer(d.certificate)) {
    throw new DnsError('malformed TLSA RDATA in DNS answer');
  }
  return { usage: d.usage, selector: d.selector, matchingType: d.matchingType, data: d.certificate.toString('hex') };
}

/** Short form for logs: `3 1 1 9f86d081…`. */
export function shortTlsa(rec: TlsaRecord): string {
  return `${rec.usage} ${rec.selector} ${rec.matchingType} ${rec.data.slice(0, 12)}…`;
}

/**
 * Whether an SMTP client that does DANE can use the record (RFC 7672 §3.1.3,
 * RFC 7671 §4, §5): DANE-TA(2) or DANE-EE(3), a known selector and matching
 * type. PKIX-TA/EE (0, 1) and unknown parameters are unusable; an RRset of
 * only unusable records asks for TLS without authentication.
 */
export function usableForSmtp(rec: TlsaRecord): boolean {
  return (rec.usage === 2 || rec.usage === 3) && (rec.selector === 0 || rec.selector === 1) && [0, 1, 2].includes(rec.matchingType);
}

/**
 * Whether `rec` authenticates a server presenting `chainDer` (leaf first,
 * then the issuers it sends): DANE-EE against the leaf, DANE-TA against any
 * issuer in the chain (RFC 7671 §5.2 asks servers to send the TA).
 */
export function tlsaMatchesChain(rec: TlsaRecord, chainDer: readonly Buffer[]): boolean {
  if (!usableForSmtp(rec)) return false;
  const candidates = rec.usage === 3 ? chainDer.slice(0, 1) : chainDer.slice(1);
  return candidates.some((der) => {
    const selected = rec.selector === 0 ? der : (new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
    const data = rec.matchingType === 0 ? selected : createHash(rec.matchingType === 1 ? 'sha256' : 'sha512').update(selected).digest();
    return data.toString('hex') === rec.data.toLowerCase();
  });
}
