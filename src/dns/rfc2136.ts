// TSIG-signed dynamic updates (RFC 2136, TSIG per RFC 8945) to a zone's
// primary, by one of two routes behind the same interface (UpdateRoute in
// src/dns/update-ops.ts):
// - in process (src/dns/rfc2136-wire.ts): mxcert builds, signs and sends the
//   UPDATE itself and verifies the answer's TSIG; the default for the record
//   types it can encode (TXT for dns-01, TLSA for DANE). One nsupdate process
//   per update would cost a fork/exec and BIND's library start-up each time.
// - BIND's nsupdate (src/dns/rfc2136-nsupdate.ts): nsupdate signs and sends;
//   for every other record type, and for every update when the config names
//   an nsupdate binary (`nsupdatePath`).
// Either way the update is checked first (updateLines), so a bad name or
// datum is refused the same way before anything leaves the host.
import { DnsError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { formatServer } from './query.js';
import { NsupdateRoute } from './rfc2136-nsupdate.js';
import { WireRoute, wireSupports } from './rfc2136-wire.js';
import type { DnsServer } from './types.js';
import { absolute, NAME_RE, updateLines, type TsigKey, type UpdateOps } from './update-ops.js';

export {
  DnsUpdateError,
  explainRcode,
  type Prerequisite,
  type PrerequisiteKind,
  type RecordAdd,
  type RecordDelete,
  type TsigKey,
  type UpdateOps,
} from './update-ops.js';

const TSIG_ALGORITHMS = new Set(['hmac-md5', 'hmac-sha1', 'hmac-sha224', 'hmac-sha256', 'hmac-sha384', 'hmac-sha512']);
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

export class Rfc2136Updater {
  private readonly zone: string;
  private readonly where: string;
  private readonly logger: Logger;
  /** Absent when the config names an nsupdate binary: then every update goes through it. */
  private readonly wire: WireRoute | undefined;
  private readonly nsupdate: NsupdateRoute;

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
    this.zone = absolute(opts.zone);
    this.where = formatServer(opts.server);
    this.logger = opts.logger ?? silentLogger;
    const route = {
      server: opts.server,
      zone: this.zone,
      tsig: { name: opts.tsig.name, algorithm: opts.tsig.algorithm.toLowerCase(), secret: opts.tsig.secret.trim() },
      where: this.where,
      timeoutMs: opts.timeoutMs ?? 30_000,
    };
    this.wire = opts.nsupdatePath === undefined ? new WireRoute({ ...route, now: opts.now ?? Date.now }) : undefined;
    this.nsupdate = new NsupdateRoute({ ...route, nsupdatePath: opts.nsupdatePath ?? 'nsupdate' });
  }

  /** Send `ops` as one UPDATE message: the server applies all of it or none (RFC 2136 §3.2–3.4). */
  async update(ops: UpdateOps): Promise<void> {
    const lines = updateLines(ops, this.zone);
    if (!ops.prerequisites?.length && !ops.deletes?.length && !ops.adds?.length) return;
    const log = this.logger.child({ server: this.where, zone: this.zone });
    log.debug({ update: lines }, 'sending DNS update');
    const route = this.wire && wireSupports(ops) ? this.wire : this.nsupdate;
    await route.send(ops, log);
  }
}
