// Private BIND 9 instances (Debian package) for DNS tests: an authoritative,
// DNSSEC-signed (inline signing) primary that accepts TSIG-signed dynamic
// updates for TXT and TLSA only, and optionally a secondary fed by zone
// transfer, so tests can observe real propagation lag between servers.

import { mkdtemp, writeFile, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, run, startDaemon, stopPid, type Daemon } from './proc.js';

export const NAMED_BIN = '/usr/sbin/named';

export interface BindOptions {
  /** Zone origin without trailing dot (default 'example.test'). */
  zone?: string;
  /** Relative owner name -> IPv4 (default mx1 and mx2 -> 127.0.0.1). */
  hosts?: Record<string, string>;
  /** Also run a secondary that pulls the zone by transfer. */
  secondary?: boolean;
  /** Default TTL and negative-caching TTL of the zone, in seconds (default 5). */
  ttl?: number;
  /**
   * Seconds the primary waits before sending NOTIFY after a change (default 0).
   * BIND's own default is 5, which makes every propagation test 5 s slower;
   * raise it to test a secondary that lags behind.
   */
  notifyDelay?: number;
}

export interface DnsServerAddr {
  host: string;
  port: number;
}

export interface BindTsig {
  /** Key name as written in named.conf (no trailing dot). */
  name: string;
  algorithm: 'hmac-sha256';
  /** base64 */
  secret: string;
  /** File holding only the base64 secret (no newline), mode 0600. */
  secretFile: string;
  /** `key "name" { algorithm ...; secret "..."; };` for nsupdate -k / named, mode 0600. */
  keyFile: string;
}

export interface BindEnv {
  zone: string;
  primary: { host: '127.0.0.1'; port: number };
  secondary?: DnsServerAddr;
  tsig: BindTsig;
  /** Runs rndc against one of the servers; resolves with its stdout. */
  rndc(args: string[], which?: 'primary' | 'secondary'): Promise<string>;
  stop(): Promise<void>;
  /** Stops only the secondary (it keeps its zone copy on disk). */
  stopSecondary?(): Promise<void>;
  /** Restarts a stopped secondary on the same port; waits until it serves the primary's serial. */
  startSecondary?(): Promise<void>;
  dir: string;
}

export interface SoaState {
  authoritative: boolean;
  signed: boolean;
  serial?: number;
  status: string;
}

/** `dig` against one server, never recursing, one short try per call. */
export async function dig(server: DnsServerAddr, args: string[]): Promise<string> {
  const res = await run(
    'dig',
    [`@${server.host}`, '-p', String(server.port), '+norec', '+time=1', '+tries=1', ...args],
    { allowFailure: true, timeoutMs: 5000 },
  );
  return res.stdout;
}

/** The zone's SOA as one server serves it: aa flag, RRSIG presence, serial. */
export async function querySoa(server: DnsServerAddr, zone: string): Promise<SoaState> {
  const out = await dig(server, ['+dnssec', zone, 'SOA']);
  const status = /status: (\w+)/.exec(out)?.[1] ?? 'NO-ANSWER';
  const flags = /;; flags:([^;]*);/.exec(out)?.[1] ?? '';
  const authoritative = /\baa\b/.test(flags);
  const fqdn = `${zone}.`;
  let serial: number | undefined;
  let signed = false;
  for (const line of out.split('\n')) {
    if (line.startsWith(';')) continue;
    const f = line.trim().split(/\s+/);
    if (f[0]?.toLowerCase() !== fqdn.toLowerCase()) continue;
    if (f[3] === 'SOA' && f[6] !== undefined) serial = Number(f[6]);
    if (f[3] === 'RRSIG' && f[4] === 'SOA') signed = true;
  }
  return { authoritative, signed, serial, status };
}

function keyClause(name: string, secret: string): string {
  return `key "${name}" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`;
}

function zoneFile(zone: string, ttl: number, hosts: Record<string, string>, withNs2: boolean): string {
  const lines = [
    `$ORIGIN ${zone}.`,
    `$TTL ${ttl}`,
    // refresh/retry are short so a secondary that missed a NOTIFY catches up quickly.
    `@ IN SOA ns1.${zone}. hostmaster.${zone}. ( 1 60 10 3600 ${ttl} )`,
    // Real NS set; the servers actually listen on non-53 ports, so tests pass
    // explicit nameserver lists instead of following these.
    `@ IN NS ns1.${zone}.`,
    `ns1 IN A 127.0.0.1`,
  ];
  if (withNs2) lines.push(`@ IN NS ns2.${zone}.`, `ns2 IN A 127.0.0.1`);
  for (const [name, ip] of Object.entries(hosts)) lines.push(`${name} IN A ${ip}`);
  return lines.join('\n') + '\n';
}

interface Instance {
  role: 'primary' | 'secondary';
  dir: string;
  port: number;
  rndcPort: number;
  rndcConf: string;
  confPath: string;
  logPath: string;
  daemon?: Daemon;
}

/** Common `options` and rndc `controls` for one named instance in its own dir. */
function namedConfHead(inst: Instance, rndcSecret: string): string {
  return `options {
\tdirectory "${inst.dir}";
\tpid-file "${inst.dir}/named.pid";
\tsession-keyfile "${inst.dir}/session.key";
\tmanaged-keys-directory "${inst.dir}";
\tdump-file "${inst.dir}/named_dump.db";
\tstatistics-file "${inst.dir}/named.stats";
\tlisten-on port ${inst.port} { 127.0.0.1; };
\tlisten-on-v6 port ${inst.port} { ::1; };
\trecursion no;
\tallow-query { any; };
\t// Authoritative only; validation would need trust anchors we do not have.
\tdnssec-validation no;
};
${keyClause('rndc-key', rndcSecret)}
controls {
\tinet 127.0.0.1 port ${inst.rndcPort} allow { 127.0.0.1; } keys { "rndc-key"; };
};
`;
}

async function writeRndcConf(inst: Instance, rndcSecret: string): Promise<void> {
  await writeFile(
    inst.rndcConf,
    `${keyClause('rndc-key', rndcSecret)}options {\n\tdefault-key "rndc-key";\n\tdefault-server 127.0.0.1;\n\tdefault-port ${inst.rndcPort};\n};\n`,
    { mode: 0o600 },
  );
}

async function newInstance(root: string, role: 'primary' | 'secondary'): Promise<Instance> {
  const dir = path.join(root, role);
  await mkdir(dir, { mode: 0o700 });
  return {
    role,
    dir,
    port: await freePort(),
    rndcPort: await freePort(),
    rndcConf: path.join(dir, 'rndc.conf'),
    confPath: path.join(dir, 'named.conf'),
    logPath: path.join(dir, 'named.log'),
  };
}

function launch(inst: Instance): Daemon {
  // -g: foreground with all logging to stderr (our log file). It runs as the
  // invoking user (root here), so no -u is needed and the temp dir is writable.
  return startDaemon({
    name: `named-${inst.role}`,
    command: NAMED_BIN,
    args: ['-g', '-c', inst.confPath],
    cwd: inst.dir,
    logPath: inst.logPath,
  });
}

/** Polls until `inst` serves the zone authoritatively and signed (and, if given, at least `minSerial`). */
async function waitServing(inst: Instance, zone: string, minSerial?: number): Promise<SoaState> {
  const server = { host: '127.0.0.1', port: inst.port };
  return pollUntil(
    async () => {
      if (inst.daemon?.hasExited()) throw new Error(`named (${inst.role}) exited`);
      const soa = await querySoa(server, zone);
      if (!soa.authoritative || !soa.signed || soa.serial === undefined) return undefined;
      if (minSerial !== undefined && soa.serial < minSerial) return undefined;
      return soa;
    },
    {
      deadlineMs: 20_000,
      intervalMs: 50,
      what: `named ${inst.role} on port ${inst.port} to serve signed ${zone}`,
      detail: () => `named ${inst.role} log:\n${logTail(inst.logPath)}`,
    },
  );
}

export async function startBind(opts: BindOptions = {}): Promise<BindEnv> {
  const zone = (opts.zone ?? 'example.test').replace(/\.$/, '');
  const hosts = opts.hosts ?? { mx1: '127.0.0.1', mx2: '127.0.0.1' };
  const ttl = opts.ttl ?? 5;
  const root = await mkdtemp(path.join(os.tmpdir(), 'mxcert-bind-'));
  registerTempDir(root);
  const started: Instance[] = [];

  const stopAll = async (): Promise<void> => {
    for (const inst of started) if (inst.daemon) await stopPid(inst.daemon.pid);
  };

  try {
    const rndcSecret = randomBytes(32).toString('base64');
    const tsigName = 'mxcert-update';
    const tsigSecret = randomBytes(32).toString('base64');
    const secretFile = path.join(root, 'tsig.secret');
    const keyFile = path.join(root, 'tsig.key');
    await writeFile(secretFile, tsigSecret, { mode: 0o600 });
    await writeFile(keyFile, keyClause(tsigName, tsigSecret), { mode: 0o600 });

    const primary = await newInstance(root, 'primary');
    const secondary = opts.secondary ? await newInstance(root, 'secondary') : undefined;

    await writeFile(path.join(primary.dir, `${zone}.db`), zoneFile(zone, ttl, hosts, Boolean(secondary)));
    // The primary notifies only the secondary's real port ("explicit"); the
    // NS records point at port 53 where nothing of ours listens.
    const notify = secondary
      ? `\tnotify explicit;\n\tnotify-delay ${opts.notifyDelay ?? 0};\n\talso-notify { 127.0.0.1 port ${secondary.port}; };\n\tallow-transfer { 127.0.0.1; ::1; };\n`
      : `\tnotify no;\n\tallow-transfer { none; };\n`;
    await writeFile(
      primary.confPath,
      `${namedConfHead(primary, rndcSecret)}
${keyClause(tsigName, tsigSecret)}
zone "${zone}" {
\ttype primary;
\tfile "${zone}.db";
\t// Signed copy is kept separately and re-signed on every update.
\tdnssec-policy default;
\tinline-signing yes;
\tupdate-policy { grant ${tsigName}. zonesub TXT TLSA; };
${notify}};
`,
    );
    await writeRndcConf(primary, rndcSecret);

    primary.daemon = launch(primary);
    started.push(primary);
    const primarySoa = await waitServing(primary, zone);

    if (secondary) {
      await writeFile(
        secondary.confPath,
        `${namedConfHead(secondary, rndcSecret)}
zone "${zone}" {
\ttype secondary;
\tfile "${zone}.sec.db";
\tprimaries { 127.0.0.1 port ${primary.port}; };
\tallow-notify { 127.0.0.1; };
\tnotify no;
};
`,
      );
      await writeRndcConf(secondary, rndcSecret);
      secondary.daemon = launch(secondary);
      started.push(secondary);
      await waitServing(secondary, zone, primarySoa.serial);
    }

    const env: BindEnv = {
      zone,
      primary: { host: '127.0.0.1', port: primary.port },
      tsig: { name: tsigName, algorithm: 'hmac-sha256', secret: tsigSecret, secretFile, keyFile },
      async rndc(args, which = 'primary') {
        const inst = which === 'secondary' ? secondary : primary;
        if (!inst) throw new Error('no secondary configured');
        const res = await run('rndc', ['-c', inst.rndcConf, ...args], { timeoutMs: 10_000 });
        return res.stdout;
      },
      async stop() {
        await stopAll();
        await removeTempDir(root);
      },
      dir: root,
    };

    if (secondary) {
      env.secondary = { host: '127.0.0.1', port: secondary.port };
      env.stopSecondary = async () => {
        if (secondary.daemon && !secondary.daemon.hasExited()) await stopPid(secondary.daemon.pid);
      };
      env.startSecondary = async () => {
        if (secondary.daemon && !secondary.daemon.hasExited()) return;
        secondary.daemon = launch(secondary);
        // It serves its on-disk copy first and would only check the primary
        // at a randomised later refresh time (20+ s here), so force the SOA
        // check and wait for the primary's current serial, i.e. the catch-up
        // transfer.
        await waitServing(secondary, zone);
        await run('rndc', ['-c', secondary.rndcConf, 'refresh', zone], { timeoutMs: 10_000 });
        const current = await querySoa({ host: '127.0.0.1', port: primary.port }, zone);
        await waitServing(secondary, zone, current.serial);
      };
    }
    return env;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
