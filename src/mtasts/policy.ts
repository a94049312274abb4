// MTA-STS (RFC 8461), the pure part: parse the policy file (§3.2) and the
// `_mta-sts` TXT record (§3.1), match MX host names against the policy's `mx`
// patterns (§4.1), and compare a certificate's names and the domain's MX set
// with the policy. No I/O here; src/mtasts/fetch.ts gets the inputs.

export type StsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsPolicy {
  version: 'STSv1';
  mode: StsMode;
  /** The `mx` patterns, lower-case, without a trailing dot, in file order, duplicates removed. */
  mx: string[];
  /** Seconds (0 … 31557600). */
  maxAge: number;
  /** Fields this version of the RFC does not define (kept, ignored). */
  extensions: Record<string, string>;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** RFC 8461 §3.2: max_age is at most 31557600 seconds (about one year). */
export const MAX_AGE_LIMIT = 31_557_600;

const MODES: readonly StsMode[] = ['enforce', 'testing', 'none'];
const FIELD_KEY_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** `["*."] Domain` (RFC 8461 §3.2 sts-policy-mx-value, Domain per RFC 5321). */
const MX_PATTERN_RE = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

/**
 * Parse a policy file (RFC 8461 §3.2). Lines end in LF or CRLF; each is
 * `key: value` with optional whitespace after the colon. For a repeated
 * field the first wins, except `mx`, which may repeat. Unknown fields are
 * extensions and ignored. `version`, `mode` and `max_age` are required, and
 * `testing` / `enforce` policies need at least one `mx` (a policy without one
 * matches no MX host, so no mail could be delivered under it).
 */
export function parsePolicy(text: string): ParseResult<MtaStsPolicy> {
  const problems: string[] = [];
  const first = new Map<string, string>();
  const mx: string[] = [];
  const extensions: Record<string, string> = {};

  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.replace(/[ \t]+$/, '');
    if (line === '') return; // blank lines, the final newline
    const where = `line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      problems.push(`${where}: not "key: value": ${JSON.stringify(truncate(line))}`);
      return;
    }
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+/, '');
    if (!FIELD_KEY_RE.test(key)) {
      problems.push(`${where}: bad field name ${JSON.stringify(truncate(key))}`);
      return;
    }
    // ABNF string literals are case-insensitive (RFC 5234 §2.3).
    const k = key.toLowerCase();
    if (k === 'mx') {
      const pattern = normaliseName(value);
      if (!MX_PATTERN_RE.test(pattern)) problems.push(`${where}: bad mx pattern ${JSON.stringify(truncate(value))}`);
      else if (!mx.includes(pattern)) mx.push(pattern);
      return;
    }
    if (first.has(k)) return;
    first.set(k, value);
    if (k !== 'version' && k !== 'mode' && k !== 'max_age') extensions[key] = value;
  });

  const version = first.get('version');
  if (version === undefined) problems.push('missing "version: STSv1"');
  else if (version.toLowerCase() !== 'stsv1') problems.push(`unsupported version ${JSON.stringify(truncate(version))} (want STSv1)`);

  const modeText = first.get('mode');
  const mode = MODES.find((m) => m === modeText?.toLowerCase());
  if (modeText === undefined) problems.push('missing "mode" (enforce, testing or none)');
  else if (!mode) problems.push(`bad mode ${JSON.stringify(truncate(modeText))} (want enforce, testing or none)`);

  const maxAgeText = first.get('max_age');
  let maxAge = 0;
  if (maxAgeText === undefined) problems.push('missing "max_age"');
  else if (!/^\d{1,10}$/.test(maxAgeText)) problems.push(`bad max_age ${JSON.stringify(truncate(maxAgeText))} (want seconds, 1 to 10 digits)`);
  else {
    maxAge = Number(maxAgeText);
    if (maxAge > MAX_AGE_LIMIT) problems.push(`max_age ${maxAge} is above the limit of ${MAX_AGE_LIMIT} seconds`);
  }

  if (mode && mode !== 'none' && mx.length === 0 && !problems.some((p) => p.includes('bad mx'))) {
    problems.push(`mode ${mode} without any "mx" line: no MX host would be allowed`);
  }

  if (problems.length > 0 || !mode) return { ok: false, problems };
  return { ok: true, value: { version: 'STSv1', mode, mx, maxAge, extensions } };
}

export interface StsTxtRecord {
  id: string;
  /** Other `key=value` fields (extensions), in record order. */
  extensions: Record<string, string>;
}

/**
 * Pick and parse the `_mta-sts` TXT record (RFC 8461 §3.1) from all TXT
 * strings at that name. Records not starting with `v=STSv1` are discarded;
 * exactly one must remain, and it must carry `id=` (1–32 letters/digits).
 */
export function parseStsTxt(records: readonly string[]): ParseResult<StsTxtRecord> {
  const candidates = records.filter((r) => /^v=STSv1(?:[ \t]*;|[ \t]*$)/.test(r));
  if (candidates.length === 0) {
    return { ok: false, problems: [records.length === 0 ? 'no TXT record' : `no TXT record starting with "v=STSv1;" (found ${records.length} other)`] };
  }
  if (candidates.length > 1) return { ok: false, problems: [`${candidates.length} TXT records start with "v=STSv1"; exactly one is allowed`] };
  const text = candidates[0]!;
  const problems: string[] = [];
  const fields = text.split(';').map((f) => f.trim());
  // A trailing delimiter is allowed: "v=STSv1; id=abc;".
  if (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
  let id: string | undefined;
  const extensions: Record<string, string> = {};
  for (const field of fields.slice(1)) {
    const m = /^([A-Za-z0-9_.-]{1,32})=([\x21-\x3a\x3c\x3e-\x7e]{1,})$/.exec(field);
    if (!m) {
      problems.push(`bad field ${JSON.stringify(truncate(field))}`);
      continue;
    }
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'id') {
      if (id !== undefined) continue;
      if (!/^[A-Za-z0-9]{1,32}$/.test(value)) problems.push(`bad id ${JSON.stringify(truncate(value))} (1 to 32 letters and digits)`);
      else id = value;
    } else if (!(key in extensions)) extensions[key] = value;
  }
  if (id === undefined && !problems.some((p) => p.startsWith('bad id'))) problems.push('no "id=" field');
  if (problems.length > 0 || id === undefined) return { ok: false, problems };
  return { ok: true, value: { id, extensions } };
}

/** Lower-case, without a trailing dot: DNS names compare case-insensitively (RFC 4343). */
export function normaliseName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.length > 1 && n.endsWith('.') ? n.slice(0, -1) : n;
}

/**
 * Does MX host `host` match policy pattern `pattern` (RFC 8461 §4.1)? A
 * pattern is a full host name or `*.` plus a domain, where the wildcard
 * stands for exactly one left-most label: `*.example.com` matches
 * `mx1.example.com` but neither `example.com` nor `a.b.example.com`.
 */
export function mxMatches(host: string, pattern: string): boolean {
  const h = normaliseName(host);
  const p = normaliseName(pattern);
  if (!p.startsWith('*.')) return h === p;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

/**
 * Is `host` covered by certificate name `certName` (RFC 6125 §6.4.3 as
 * MTA-STS applies it, RFC 8461 §4.1): an exact match, or a wildcard
 * certificate name `*.example.com` for one label under example.com.
 */
export function certNameCovers(certName: string, host: string): boolean {
  // A certificate wildcard and an MX pattern wildcard follow the same one-label rule.
  return mxMatches(host, certName);
}

/**
 * The policy's `mx` patterns that the certificate's names do not serve:
 *
 * - a host-name pattern (`mx1.example.com`) needs a certificate name that
 *   covers it, either the same name or a wildcard one label up
 *   (`*.example.com`);
 * - a wildcard pattern (`*.example.com`) is served by the same wildcard
 *   certificate name, or by any certificate name it matches (the
 *   certificate of `mx1.example.com` is a valid certificate for an MX host
 *   the pattern allows). A wildcard certificate name for another level
 *   (`*.mx.example.com`) does not serve it.
 */
export function checkCoverage(certNames: readonly string[], policy: Pick<MtaStsPolicy, 'mx'>): string[] {
  const names = certNames.map(normaliseName);
  return policy.mx.filter((pattern) => {
    const p = normaliseName(pattern);
    if (p.startsWith('*.')) return !names.some((n) => n === p || (!n.startsWith('*.') && mxMatches(n, p)));
    return !names.some((n) => certNameCovers(n, p));
  });
}

/** The MX hosts no `mx` pattern of the policy allows: in `enforce` mode, senders will not deliver to them. */
export function compareMxSet(mxHosts: readonly string[], policy: Pick<MtaStsPolicy, 'mx'>): string[] {
  const out: string[] = [];
  for (const host of mxHosts) {
    const h = normaliseName(host);
    if (!policy.mx.some((p) => mxMatches(h, p)) && !out.includes(h)) out.push(h);
  }
  return out;
}

/** The `mx` patterns that match none of the MX hosts (stale lines; harmless, but a sign the two drifted apart). */
export function unusedPatterns(mxHosts: readonly string[], policy: Pick<MtaStsPolicy, 'mx'>): string[] {
  return policy.mx.filter((p) => !mxHosts.some((h) => mxMatches(h, p)));
}

function truncate(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
