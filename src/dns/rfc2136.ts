// TSIG-signed dynamic updates (RFC 2136, TSIG per RFC 8945) through BIND's
// nsupdate. nsupdate does the TSIG signing and the UPDATE wire format, which
// BIND itself interoperates with; we only have to feed it safely:
// - argv array, no shell; the update script on stdin, never on a command line;
// - the TSIG secret only in a key file created 0600 with O_EXCL inside a fresh
//   0700 directory, removed afterwards (`-y` would put it in `ps` output);
// - every name and datum checked, so nothing can inject a line into the script.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { exchangeTcpRaw, formatServer, queryDns, sameName, stripDot } from './query.js';
import type { DnsServer } from './types.js';
import { buildUpdate, CLASS, DnsAnswerError, encodeRdata, parseUpdateAnswer, TYPE_ANY, TYPE_CODES, type UpdateAnswer, type WireRecord } from './update-wire.js';

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

const TSIG_ALGORITHMS = new Set(['hmac-md5', 'hmac-sha1', 'hmac-sha224', 'hmac-sha256', 'hmac-sha384', 'hmac-sha512']);
const NAME_RE = /^(\*\.)?([A-Za-z0-9_-]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_-])?\.)*[A-Za-z0-9_-]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_-])?\.?$/;
const TYPE_RE = /^[A-Za-z][A-Za-z0-9-]{0,15}$/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

export class Rfc2136Updater {
  private readonly server: DnsServer;
  private readonly zone: string;
  private readonly tsig: TsigKey;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly nsupdatePath: string;
  /** Send updates in process (TXT/TLSA); an explicit nsupdatePath keeps the nsupdate route. */
  private readonly inProcess: boolean;
  private readonly now: () => number;

  constructor(opts: {
    server: DnsServer;
    zone: string;
    tsig: TsigKey;
    logger?: Logger;
    /** For the whole exchange. Default 30 s. */
    timeoutMs?: number;
    /**
     * Run this nsupdate for every update instead of sending TXT and TLSA
     * updates in process (other record types always go through nsupdate,
     * `nsupdate` from PATH by default; Debian ships it in bind9-dnsutils).
     */
    nsupdatePath?: string;
    /**
     * Wall-clock milliseconds for TSIG Time Signed and the answer's time
     * check (RFC 8945 §5.2.3); tests only. Not the scheduling clock: the
     * server compares against its real clock, so this must be real time.
     */
    now?: () => number;
  }) {
    // Key name, algorithm and secret go into a BIND key statement: a quote or
    // semicolon there would change its meaning. The message never echoes the secret.
    if (!NAME_RE.test(opts.tsig.name)) throw new DnsError(`invalid TSIG key name ${JSON.stringify(opts.tsig.name)}`);
    if (!TSIG_ALGORITHMS.has(opts.tsig.algorithm.toLowerCase())) throw new DnsError(`unsupported TSIG algorithm ${JSON.stringify(opts.tsig.algorithm)}`);
    if (!BASE64_RE.test(opts.tsig.secret.trim())) throw new DnsError(`TSIG secret for key ${opts.tsig.name} is not base64`);
    if (!NAME_RE.test(opts.zone)) throw new DnsError(`invalid zone name ${JSON.stringify(opts.zone)}`);
    this.server = opts.server;
    this.zone = absolute(opts.zone);
    this.tsig = { name: opts.tsig.name, algorithm: opts.tsig.algorithm.toLowerCase(), secret: opts.tsig.secret.trim() };
    this.logger = opts.logger ?? silentLogger;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.nsupdatePath = opts.nsupdatePath ?? 'nsupdate';
    this.inProcess = opts.nsupdatePath === undefined;
    this.now = opts.now ?? Date.now;
  }

  /** Send `ops` as one UPDATE message: the server applies all of it or none (RFC 2136 §3.2–3.4). */
  async update(ops: UpdateOps): Promise<void> {
    const lines = this.scriptLines(ops);
    if (!ops.prerequisites?.length && !ops.deletes?.length && !ops.adds?.length) return;
    const where = formatServer(this.server);
    const log = this.logger.child({ server: where, zone: this.zone });
    log.debug({ update: lines.slice(2) }, 'sending DNS update');
    const types = [...(ops.prerequisites ?? []).map((p) => p.type), ...(ops.deletes ?? []).map((d) => d.type), ...(ops.adds ?? []).map((a) => a.type)];
    if (this.inProcess && types.every((t) => t === undefined || rrType(t) in TYPE_CODES)) {
      await this.sendInProcess(ops, where);
      log.debug('DNS update accepted');
      if (!(await this.confirmServed(ops))) log.debug('the primary does not serve the change yet; going on');
      return;
    }

    const dir = await mkdtemp(join(tmpdir(), 'mxcert-tsig-'));
    try {
      const keyFile = join(dir, 'tsig.conf');
      // 'wx' = O_CREAT|O_EXCL: never write into a file someone planted there.
      const fh = await open(keyFile, 'wx', 0o600);
      try {
        await fh.writeFile(`key "${this.tsig.name}" {\n\talgorithm ${this.tsig.algorithm};\n\tsecret "${this.tsig.secret}";\n};\n`);
      } finally {
        await fh.close();
      }

      const timeoutSecs = Math.max(1, Math.ceil(this.timeoutMs / 1000));
      // Loaded on first use (execa costs ~70 ms of start-up otherwise).
      const { execa } = await import('execa');
      const result = await execa(this.nsupdatePath, ['-v', '-t', String(timeoutSecs), '-k', keyFile], {
        input: [...lines, 'send', ''].join('\n'),
        reject: false,
        timeout: this.timeoutMs + 2000,
        stripFinalNewline: true,
        env: { LC_ALL: 'C' },
      });

      if (result.failed || result.exitCode !== 0) {
        const output = this.scrub(`${result.stderr ?? ''}\n${result.stdout ?? ''}`.trim());
        throw this.failure(where, result, output);
      }
      log.debug('DNS update accepted');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** The same UPDATE nsupdate would send, built here and sent over TCP (src/dns/update-wire.ts). */
  private async sendInProcess(ops: UpdateOps, where: string): Promise<void> {
    const code = (t: string | undefined) => TYPE_CODES[rrType(t)]!;
    const none = Buffer.alloc(0);
    const prereqs: WireRecord[] = (ops.prerequisites ?? []).map((p) => {
      const name = this.ownerName(p.name);
      switch (p.kind) {
        case 'yxdomain':
          return { name, type: TYPE_ANY, class: CLASS.ANY, ttl: 0, rdata: none };
        case 'nxdomain':
          return { name, type: TYPE_ANY, class: CLASS.NONE, ttl: 0, rdata: none };
        case 'nxrrset':
          return { name, type: code(p.type), class: CLASS.NONE, ttl: 0, rdata: none };
        case 'yxrrset':
          return p.data === undefined
            ? { name, type: code(p.type), class: CLASS.ANY, ttl: 0, rdata: none }
            : { name, type: code(p.type), class: CLASS.IN, ttl: 0, rdata: encodeRdata(rrType(p.type), p.data) };
        default:
          throw new DnsError(`unknown prerequisite kind ${JSON.stringify((p as { kind: unknown }).kind)}`);
      }
    });
    const updates: WireRecord[] = [
      ...(ops.deletes ?? []).map((d) =>
        d.data === undefined
          ? { name: this.ownerName(d.name), type: code(d.type), class: CLASS.ANY, ttl: 0, rdata: none }
          : { name: this.ownerName(d.name), type: code(d.type), class: CLASS.NONE, ttl: 0, rdata: encodeRdata(rrType(d.type), d.data) },
      ),
      ...(ops.adds ?? []).map((a) => ({ name: this.ownerName(a.name), type: code(a.type), class: CLASS.IN, ttl: a.ttl, rdata: encodeRdata(rrType(a.type), a.data) })),
    ];
    const { message, id, mac } = buildUpdate(this.zone, prereqs, updates, this.tsig, this.now());
    let raw: Buffer;
    try {
      raw = await exchangeTcpRaw(this.server, message, this.timeoutMs);
    } catch (err) {
      if ((err as { timedOut?: boolean }).timedOut) throw new DnsError(`update to ${where} timed out after ${this.timeoutMs} ms`);
      const e = err as NodeJS.ErrnoException;
      throw new DnsError(`cannot reach ${where} to update ${this.zone}: ${e.message}`, { cause: err });
    }
    let answer: UpdateAnswer;
    try {
      answer = parseUpdateAnswer(raw, id, mac, this.tsig, this.now());
    } catch (err) {
      if (!(err instanceof DnsAnswerError)) throw err;
      throw new DnsAnswerError(err.problem, `answer from ${where} to the update of ${this.zone} not accepted: ${err.message}`, { cause: err });
    }
    if (answer.rcode !== 'NOERROR' || answer.tsigError) {
      const shown = answer.tsigError ? `${answer.rcode}(${answer.tsigError})` : answer.rcode;
      throw new DnsUpdateError(`update refused by ${where}: ${shown} (${explainRcode(answer.rcode, answer.tsigError, this.zone)})`, answer.rcode, answer.tsigError);
    }
  }

  /**
   * BIND acknowledges an update before its inline-signed zone serves it
   * (0–5 ms later; nsupdate's own exit used to hide that). Wait briefly until
   * the primary serves every added record and none of the deleted ones, so
   * whoever looks right after sees the change. False after the deadline:
   * the update was accepted, and callers that need it served everywhere
   * (dns-01, DANE) poll every authoritative server themselves anyway.
   */
  private async confirmServed(ops: UpdateOps, deadlineMs = 2000): Promise<boolean> {
    const checks = [
      ...(ops.adds ?? []).map((a) => ({ name: this.ownerName(a.name), type: rrType(a.type), data: a.data, present: true })),
      ...(ops.deletes ?? [])
        // A whole-RRset delete followed by adds to that RRset: the adds say it all.
        .filter((d) => d.data !== undefined || !(ops.adds ?? []).some((a) => sameName(a.name, d.name) && rrType(a.type) === rrType(d.type)))
        .map((d) => ({ name: this.ownerName(d.name), type: rrType(d.type), data: d.data, present: false })),
    ];
    if (!checks.length) return true;
    const want = (type: string, data: string) => (type === 'TLSA' ? normalizeTlsa(data) : data);
    const deadline = Date.now() + deadlineMs;
    for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
      const served = await Promise.all(
        checks.map(async (c) => {
          try {
            const r = await queryDns(this.server, c.name, c.type, { tcp: false, recursion: false, timeoutMs: 1000 });
            const values = r.answers.filter((a) => a.type === c.type && sameName(a.name, c.name)).map((a) => answerValue(c.type, a.data));
            return c.data === undefined ? values.length > 0 === c.present : values.includes(want(c.type, c.data)) === c.present;
          } catch {
            return false;
          }
        }),
      );
      if (served.every(Boolean)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  private failure(
    where: string,
    result: { timedOut?: boolean; exitCode?: number; code?: string; originalMessage?: string },
    output: string,
  ): DnsError {
    if (result.code === 'ENOENT') {
      return new DnsError(`cannot run ${this.nsupdatePath}: not found (install BIND's nsupdate, Debian package bind9-dnsutils)`);
    }
    if (result.timedOut) return new DnsError(`update to ${where} timed out after ${this.timeoutMs} ms${output ? `: ${output}` : ''}`);

    const m = /update failed: ([A-Z]+)(?:\(([A-Z]+)\))?/.exec(output);
    if (m) {
      const rcode = m[1]!;
      const tsigError = m[2];
      const shown = tsigError ? `${rcode}(${tsigError})` : rcode;
      return new DnsUpdateError(`update refused by ${where}: ${shown} (${explainRcode(rcode, tsigError, this.zone)})`, rcode, tsigError);
    }
    const comm = /Communication with (.*) failed: (.*)/.exec(output);
    if (comm) return new DnsError(`cannot reach ${where} to update ${this.zone}: ${comm[2]}`);
    return new DnsError(`nsupdate failed (exit ${result.exitCode ?? '?'}) updating ${this.zone} at ${where}: ${output || result.originalMessage || 'no output'}`);
  }

  /** nsupdate does not print the secret, but an error message must never carry it whatever happens. */
  private scrub(text: string): string {
    return text.split(this.tsig.secret).join('[redacted]');
  }

  private scriptLines(ops: UpdateOps): string[] {
    const lines = [`server ${this.server.host} ${this.server.port}`, `zone ${this.zone}`];
    for (const p of ops.prerequisites ?? []) {
      const name = this.ownerName(p.name);
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
          lines.push(`prereq yxrrset ${name} ${type}${p.data === undefined ? '' : ` ${rdata(type, p.data)}`}`);
          break;
        }
        default:
          throw new DnsError(`unknown prerequisite kind ${JSON.stringify((p as { kind: unknown }).kind)}`);
      }
    }
    for (const d of ops.deletes ?? []) {
      const type = rrType(d.type);
      lines.push(`update delete ${this.ownerName(d.name)} ${type}${d.data === undefined ? '' : ` ${rdata(type, d.data)}`}`);
    }
    for (const a of ops.adds ?? []) {
      const type = rrType(a.type);
      if (!Number.isInteger(a.ttl) || a.ttl < 0 || a.ttl > 0x7fffffff) throw new DnsError(`invalid TTL ${a.ttl} for ${a.name}`);
      lines.push(`update add ${this.ownerName(a.name)} ${a.ttl} ${type} ${rdata(type, a.data)}`);
    }
    return lines;
  }

  private ownerName(name: string): string {
    if (!NAME_RE.test(name)) throw new DnsError(`invalid owner name ${JSON.stringify(name)}`);
    const abs = absolute(name);
    const n = abs.toLowerCase();
    const z = this.zone.toLowerCase();
    // The server would answer NOTZONE (RFC 2136 §3.1.2); say it before sending.
    if (n !== z && !n.endsWith(`.${z}`)) throw new DnsError(`${abs} is not in zone ${this.zone}`);
    return abs;
  }
}

/** TXT as the raw value; TLSA as "u s m hex" (lower-case, no spaces). */
function answerValue(type: string, data: unknown): string {
  if (type === 'TXT') return Buffer.concat((Array.isArray(data) ? data : [data]).map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(String(b))))).toString('utf8');
  const d = data as { usage?: number; selector?: number; matchingType?: number; certificate?: Buffer } | undefined;
  return `${d?.usage} ${d?.selector} ${d?.matchingType} ${d?.certificate?.toString('hex') ?? ''}`;
}

function normalizeTlsa(data: string): string {
  const [u, s, m, ...hex] = data.trim().split(/\s+/);
  return `${Number(u)} ${Number(s)} ${Number(m)} ${hex.join('').toLowerCase()}`;
}

function absolute(name: string): string {
  return `${stripDot(name)}.`;
}

function rrType(type: string | undefined): string {
  if (!type || !TYPE_RE.test(type)) throw new DnsError(`invalid record type ${JSON.stringify(type)}`);
  return type.toUpperCase();
}

function rdata(type: string, data: string): string {
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
