// certbot's dns-rfc2136 credentials INI (`dns_rfc2136_server`, `_port`,
// `_name`, `_secret`, `_algorithm`), accepted as a TSIG `secretFile` so a host
// that migrates from certbot keeps the file it already has (same 0600 rule as
// any secret file). Messages never include the secret.
import { ConfigObjSyntaxError, parseConfigObj, single } from './configobj.js';

export interface CertbotRfc2136Credentials {
  server?: string;
  port?: string;
  /** TSIG key name as written (may end in a dot). */
  name?: string;
  secret?: string;
  /** As written, e.g. `HMAC-SHA256`; compare with normalizeTsigAlgorithm. */
  algorithm?: string;
}

/**
 * The algorithm certbot's rfc2136 plugin uses when the file names none
 * (certbot_dns_rfc2136: `ALGORITHMS.get(..., dns.tsig.HMAC_MD5)`).
 */
export const CERTBOT_DEFAULT_TSIG_ALGORITHM = 'hmac-md5';

const PREFIX = 'dns_rfc2136_';
const KEY_LINE_RE = /^\s*dns_rfc2136_[a-z_]+\s*=/m;

/** Whether a secret file is a certbot rfc2136 credentials file rather than a bare secret or BIND key file. */
export function isCertbotCredentials(text: string): boolean {
  return KEY_LINE_RE.test(text);
}

export function parseCertbotCredentials(text: string): { ok: true; value: CertbotRfc2136Credentials } | { ok: false; message: string } {
  let values;
  try {
    values = parseConfigObj(text).values;
  } catch (err) {
    // The parser's messages carry a line number only, never the line.
    const at = err instanceof ConfigObjSyntaxError ? err.message : 'syntax error';
    return { ok: false, message: `certbot credentials file: ${at}` };
  }
  const out: CertbotRfc2136Credentials = {};
  for (const field of ['server', 'port', 'name', 'secret', 'algorithm'] as const) {
    const v = values[PREFIX + field];
    if (v === undefined) continue;
    const s = single(v)?.trim();
    if (s === undefined) return { ok: false, message: `certbot credentials file: ${PREFIX}${field} holds a list, expected one value` };
    if (s !== '') out[field] = s;
  }
  return { ok: true, value: out };
}

/** `HMAC-SHA256`, `hmac-sha256.` → `hmac-sha256` (certbot writes upper case; BIND names may end in a dot). */
export function normalizeTsigAlgorithm(a: string): string {
  return a.trim().toLowerCase().replace(/\.$/, '');
}

/** TSIG key names are DNS names: case-insensitive, trailing dot optional. */
export function sameKeyName(a: string, b: string): boolean {
  return a.trim().toLowerCase().replace(/\.$/, '') === b.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * The TSIG secret of a certbot credentials file, with the key name and the
 * algorithm certbot signs with (its default when the file names none), for
 * the secret reader in key-files.ts.
 */
export function secretFromCertbotCredentials(
  text: string,
): { ok: true; value: string; keyName?: string; algorithm: string; algorithmNote?: string } | { ok: false; message: string } {
  const c = parseCertbotCredentials(text);
  if (!c.ok) return c;
  const { secret, name, algorithm } = c.value;
  if (!secret) return { ok: false, message: `certbot credentials file has no ${PREFIX}secret` };
  return algorithm
    ? { ok: true, value: secret, keyName: name, algorithm }
    : { ok: true, value: secret, keyName: name, algorithm: CERTBOT_DEFAULT_TSIG_ALGORITHM, algorithmNote: ` (the file names no ${PREFIX}algorithm; certbot then signs with HMAC-MD5)` };
}
