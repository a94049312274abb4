// What a secret file may hold, and how the secret is found in it:
// - a BIND key file as tsig-keygen / ddns-confgen write it,
//     key "name" { algorithm hmac-sha256; secret "base64"; };
//   with comments (`#`, `//`, `/* */`), quoted or unquoted names, and several
//   key blocks, one of which the configured TSIG key name picks;
// - certbot's dns-rfc2136 credentials INI (src/config/certbot-credentials.ts),
//   so a host that migrates from certbot keeps the file it already has;
// - anything else: the bare secret (a base64 TSIG secret, an API key).
// Reading the file and its mode rule live in src/config/secrets.ts. Messages
// name key blocks and fields, never the secret.
import { isCertbotCredentials, secretFromCertbotCredentials } from './certbot-credentials.js';

/** The secret, and the key name and algorithm when the file states them. */
export interface KeyFileSecret {
  ok: true;
  value: string;
  keyName?: string;
  algorithm?: string;
  /** Why `algorithm` is what it is, when the file does not say it. */
  algorithmNote?: string;
}

export type KeyFileResult = KeyFileSecret | { ok: false; message: string };

const KEY_BLOCK_RE = /\bkey\s+(?:"([^"]*)"|([^\s{;]+))\s*\{([^}]*)\}/g;
const SECRET_STMT_RE = /\bsecret\s+"([^"]*)"\s*;/;
const ALGORITHM_STMT_RE = /\balgorithm\s+"?([^";\s]+)"?\s*;/;

/** A `key` statement of a BIND key file: its name (without a final dot) and the text between its braces. */
export interface KeyBlock {
  name: string;
  body: string;
}

/** Every `key` block of a BIND key file, comments removed first (they could hide a block, a brace or a stray quote). */
export function keyBlocks(content: string): KeyBlock[] {
  const text = withoutComments(content);
  return [...text.matchAll(KEY_BLOCK_RE)].map((m) => ({ name: (m[1] ?? m[2] ?? '').replace(/\.$/, ''), body: m[3]! }));
}

/**
 * named.conf's three comment forms (`#` and `//` to the end of the line,
 * `/* … *\/`), wherever they start outside a quoted string: after a
 * statement too, where one holding `}` or `secret "…";` would otherwise
 * end the block early or be read as the secret. A base64 secret holds `//`
 * and `/*` freely, inside its quotes.
 */
function withoutComments(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      const end = text.indexOf('"', i + 1);
      const stop = end < 0 ? text.length : end + 1;
      out += text.slice(i, stop);
      i = stop;
    } else if (c === '#' || text.startsWith('//', i)) {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      out += ' ';
      i = end < 0 ? text.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * The secret in a secret file's `content`. With several BIND key blocks,
 * `keyName` (the configured TSIG key name) picks one.
 */
export function secretFromKeyFile(content: string, keyName?: string): KeyFileResult {
  if (isCertbotCredentials(content)) return secretFromCertbotCredentials(content);
  const blocks = keyBlocks(content);
  if (blocks.length === 0) {
    const value = content.trim();
    return value ? { ok: true, value } : { ok: false, message: 'file is empty' };
  }
  let block = blocks[0]!;
  if (blocks.length > 1) {
    const wanted = keyName?.replace(/\.$/, '');
    const match = wanted === undefined ? undefined : blocks.find((b) => b.name === wanted);
    if (!match) {
      return { ok: false, message: `${blocks.length} key blocks (${blocks.map((b) => `"${b.name}"`).join(', ')}) and none named ${wanted === undefined ? '(no name given)' : `"${wanted}"`}` };
    }
    block = match;
  }
  const value = SECRET_STMT_RE.exec(block.body)?.[1]?.trim();
  if (!value) return { ok: false, message: `key block "${block.name}" has no secret statement` };
  return { ok: true, value, keyName: block.name, algorithm: ALGORITHM_STMT_RE.exec(block.body)?.[1] };
}
