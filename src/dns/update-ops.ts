// An RFC 2136 dynamic update as mxcert describes it, whichever route sends
// it (src/dns/rfc2136.ts picks one): the operations, the checks every name,
// type and datum passes before anything is sent, the update's text form
// (nsupdate's input, and what the debug log shows), and the error a server
// that refuses it gives.
import { DnsError } from '../errors.js';
import type { Logger } from '../log.js';
import { stripDot } from './query.js';
import type { DnsServer } from './types.js';

export type PrerequisiteKind = 'yxrrset' | 'nxrrset' | 'yxdomain' | 'nxdomain';

/** RFC 2136 §2.4: conditions the server checks atomically before applying the update. */
export interface Prerequisite {
  kind: PrerequisiteKind;
  name: string;
  /** Required for yxrrset/nxrrset. */
  type?: string;
  /** yxrrset only: the RRset must contain exactly this value (§2.4.2, value dependent). */
  data?: string;
}

export interface RecordDelete {
  name: string;
  type: string;
  /** Delete only this RR (§2.5.4); without it the whole RRset (§2.5.2). */
  data?: string;
}

export interface RecordAdd {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

/**
 * `data` is presentation format (`3 1 1 ab12…` for TLSA), except for TXT,
 * where it is the raw value: the updater quotes and escapes it.
 */
export interface UpdateOps {
  prerequisites?: Prerequisite[];
  deletes?: RecordDelete[];
  adds?: RecordAdd[];
}

export interface TsigKey {
  name: string;
  algorithm: string;
  /** Base64, as in BIND's `secret "…";`. */
  secret: string;
}

/**
 * One way to deliver an update to the zone's primary. `ops` have passed
 * updateLines; the route resolves once the server accepted the whole update
 * (RFC 2136 §3.2–3.4: all of it or none) and throws DnsUpdateError when the
 * server refused it.
 */
export interface UpdateRoute {
  send(ops: UpdateOps, log: Logger): Promise<void>;
}

const PREREQUISITE_RCODES = new Set(['YXDOMAIN', 'YXRRSET', 'NXDOMAIN', 'NXRRSET']);

/** An UPDATE the server answered with an error rcode. */
export class DnsUpdateError extends DnsError {
  /** The response code, e.g. `NOTAUTH`, `REFUSED`, `NXRRSET`. */
  readonly rcode: string;
  /** The TSIG error (RFC 8945 §5.3.2), e.g. `BADSIG`, `BADKEY`, `BADTIME`, if any. */
  readonly tsigError: string | undefined;
  constructor(message: string, rcode: string, tsigError?: string) {
    super(message);
    this.rcode = rcode;
    this.tsigError = tsigError;
  }
  /** A prerequisite did not hold (RFC 2136 §2.4): re-read the zone and retry. */
  get prerequisiteFailed(): boolean {
    return PREREQUISITE_RCODES.has(this.rcode);
  }
}

/** The DnsUpdateError for an answer of `rcode` (and `tsigError`) from `where`. */
export function updateRefused(where: string, zone: string, rcode: string, tsigError?: string): DnsUpdateError {
  const shown = tsigError ? `${rcode}(${tsigError})` : rcode;
  return new DnsUpdateError(`update refused by ${where}: ${shown} (${explainRcode(rcode, tsigError, zone)})`, rcode, tsigError);
}

/**
 * A hint for the operator after the rcode. NOTAUTH and BADKEY do not only
 * mean a wrong key: Knot answers NOTAUTH(BADKEY) when its ACL denies the
 * update for a key it knows, so both causes are named.
 */
export function explainRcode(rcode: string, tsigError: string | undefined, zone: string): string {
  if (tsigError === 'BADSIG') return 'TSIG key rejected: wrong secret?';
  if (tsigError === 'BADKEY') {
    return "TSIG key name or algorithm unknown to the server, or the server's ACL does not allow this key this update (Knot answers BADKEY for both)?";
  }
  if (tsigError === 'BADTIME') return 'TSIG time check failed: clocks out of sync?';
  switch (rcode) {
    case 'NOTAUTH':
      return `TSIG key rejected, the server's ACL does not allow this key this update (Knot answers NOTAUTH for both), or the server is not authoritative for ${zone}?`;
    case 'REFUSED':
      return "the key's update-policy does not allow this change?";
    case 'NOTZONE':
      return `a name is outside ${zone}`;
    case 'SERVFAIL':
      return 'server failed to apply the update';
    default:
      return PREREQUISITE_RCODES.has(rcode) ? 'prerequisite not met, RFC 2136 §2.4' : 'update failed';
  }
}

// ---------------------------------------------------------------------------
// Checks. Names, types and data end up in a BIND key statement or an
// nsupdate script: a quote, semicolon or newline there would change its
// meaning, so each is checked before anything is sent.

export const NAME_RE = /^(\*\.)?([A-Za-z0-9_-]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_-])?\.)*[A-Za-z0-9_-]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_-])?\.?$/;
const TYPE_RE = /^[A-Za-z][A-Za-z0-9-]{0,15}$/;

/** `name` with exactly one final dot. */
export function absolute(name: string): string {
  return `${stripDot(name)}.`;
}

/** The record type in upper case; refused unless it looks like a type mnemonic. */
export function rrType(type: string | undefined): string {
  if (!type || !TYPE_RE.test(type)) throw new DnsError(`invalid record type ${JSON.stringify(type)}`);
  return type.toUpperCase();
}

/** `name` made absolute; refused unless it is a valid name inside `zone` (absolute). */
export function ownerName(name: string, zone: string): string {
  if (!NAME_RE.test(name)) throw new DnsError(`invalid owner name ${JSON.stringify(name)}`);
  const abs = absolute(name);
  const n = abs.toLowerCase();
  const z = zone.toLowerCase();
  // The server would answer NOTZONE (RFC 2136 §3.1.2); say it before sending.
  if (n !== z && !n.endsWith(`.${z}`)) throw new DnsError(`${abs} is not in zone ${zone}`);
  return abs;
}

/**
 * The update as nsupdate commands (`prereq …`, `update delete …`, `update
 * add …`), every name, type, TTL and datum checked on the way. Both routes
 * call it first, so a bad update is refused the same way on either.
 */
export function updateLines(ops: UpdateOps, zone: string): string[] {
  const lines: string[] = [];
  for (const p of ops.prerequisites ?? []) {
    const name = ownerName(p.name, zone);
    switch (p.kind) {
      case 'nxdomain':
      case 'yxdomain':
        lines.push(`prereq ${p.kind} ${name}`);
        break;
      case 'nxrrset':
        lines.push(`prereq nxrrset ${name} ${rrType(p.type)}`);
        break;
      case 'yxrrset': {
        const type = rrType(p.type);
        lines.push(`prereq yxrrset ${name} ${type}${p.data === undefined ? '' : ` ${presentationData(type, p.data)}`}`);
        break;
      }
      default:
        throw unknownPrerequisite(p);
    }
  }
  for (const d of ops.deletes ?? []) {
    const type = rrType(d.type);
    lines.push(`update delete ${ownerName(d.name, zone)} ${type}${d.data === undefined ? '' : ` ${presentationData(type, d.data)}`}`);
  }
  for (const a of ops.adds ?? []) {
    const type = rrType(a.type);
    if (!Number.isInteger(a.ttl) || a.ttl < 0 || a.ttl > 0x7fffffff) throw new DnsError(`invalid TTL ${a.ttl} for ${a.name}`);
    lines.push(`update add ${ownerName(a.name, zone)} ${a.ttl} ${type} ${presentationData(type, a.data)}`);
  }
  return lines;
}

export function unknownPrerequisite(p: Prerequisite): DnsError {
  return new DnsError(`unknown prerequisite kind ${JSON.stringify((p as { kind: unknown }).kind)}`);
}

/** Record data in master-file syntax: TXT quoted, anything else as given once checked. */
function presentationData(type: string, data: string): string {
  if (type === 'TXT') return quoteTxt(data);
  // Newlines would start a new nsupdate command; ';' starts a comment in master-file syntax.
  if (/[\x00-\x1f\x7f;"\\]/.test(data) || data.trim() === '') throw new DnsError(`invalid ${type} data ${JSON.stringify(data)}`);
  return data.trim();
}

/**
 * A raw TXT value in master-file syntax (RFC 1035 §5.1): character-strings of
 * at most 255 octets each, quoted, with `"` and `\` escaped and anything not
 * printable ASCII as \DDD — so no value can end the quote or the line.
 */
export function quoteTxt(value: string): string {
  const bytes = Buffer.from(value, 'utf8');
  const chunks: string[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    let s = '';
    for (const b of bytes.subarray(i, i + 255)) {
      if (b === 0x22 || b === 0x5c) s += `\\${String.fromCharCode(b)}`;
      else if (b < 0x20 || b > 0x7e) s += `\\${String(b).padStart(3, '0')}`;
      else s += String.fromCharCode(b);
    }
    chunks.push(`"${s}"`);
  }
  return chunks.join(' ');
}

/** Where and how either route sends an UPDATE. */
export interface RouteTarget {
  server: DnsServer;
  /** Absolute. */
  zone: string;
  tsig: TsigKey;
  /** Printed form of the server, for messages. */
  where: string;
  timeoutMs: number;
}
