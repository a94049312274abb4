// A fleet of N members on real servers, each running `mxcert run` (the
// daemon only): one sandbox (Pebble, BIND primary + secondary, Postfix for
// the first member), a 3-node etcd cluster, one more Postfix per further
// member, one fleet prefix and fleet key. Used by
// test/integration/fleet-daemon.test.ts and bench/fleet.ts; its member
// set-up (memberPostfixes, fleetMemberConfig) also by fleet-renew and
// fleet-dane.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CLI, POSTFIX_RELOAD_HOOK, startSandbox, type Sandbox, type SandboxConfig } from './sandbox.js';
import { startPostfix, type PostfixEnv } from '../env/postfix.js';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import type { DnsServerAddr } from '../env/bind.js';
import { pollUntil, startDaemon, stopPid, type Daemon } from '../env/proc.js';

export const FLEET_DOMAIN = 'mx.example.test';

/** Where one member serves SMTP, and the files its Postfix reads. */
export interface MemberSmtp {
  port: number;
  configDir: string;
  combined: string;
}

/**
 * The SMTP side of each member: the sandbox's Postfix for the first, a
 * Postfix of its own (serving its own combined file) for each other one.
 * The started ones are pushed onto `started`, for the caller to stop.
 */
export async function memberPostfixes(sb: Sandbox, names: readonly string[], domain: string, started: PostfixEnv[]): Promise<MemberSmtp[]> {
  const smtp: MemberSmtp[] = [{ port: sb.postfix.port, configDir: sb.postfix.configDir, combined: sb.combinedPath() }];
  for (const name of names.slice(1)) {
    const combined = path.join(sb.outDir, `${name}.pem`);
    const pf = await startPostfix({ combinedPath: combined, hostname: domain });
    started.push(pf);
    smtp.push({ port: pf.port, configDir: pf.configDir, combined });
  }
  return smtp;
}

export interface MemberConfigOptions {
  name: string;
  names: readonly string[];
  /** This member's SMTP side. */
  own: MemberSmtp;
  keyFile: string;
  endpoints: string[];
  prefix: string;
  domain: string;
  /** With DANE: the TLSA TTL, and every member's SMTP side (the leader publishes at every owner). */
  dane?: { ttl: number; everyone: readonly MemberSmtp[] };
}

/**
 * One member's config: its own state directory, output, reload hook and
 * live check on its own Postfix, the shared fleet block (2 s lease and
 * deadlines) and certificate `mx` with `fleet: true`.
 */
export function fleetMemberConfig(sb: Sandbox, o: MemberConfigOptions): SandboxConfig {
  const cfg: SandboxConfig = sb.baseConfig();
  cfg.stateDir = path.join(sb.dir, `state-${o.name}`);
  cfg.fleet = {
    member: o.name,
    members: [...o.names],
    etcd: { endpoints: o.endpoints, prefix: o.prefix, dialTimeout: '2s', requestTimeout: '2s' },
    keyEncryption: { keyFile: o.keyFile },
    leaseTtl: '2s',
  };
  const c = cfg.certificates[0];
  const dns = c.challenge.dns;
  Object.assign(c, {
    name: 'mx',
    domains: [o.domain],
    fleet: true,
    output: { combined: o.own.combined },
    hooks: { deploy: [[POSTFIX_RELOAD_HOOK, o.own.configDir]] },
    verify: { smtp: [`127.0.0.1:${o.own.port}`], serverName: o.domain, timeout: '15s' },
  });
  if (o.dane) {
    c.dane = {
      enabled: true,
      endpoints: o.dane.everyone.map((s) => ({ host: o.domain, port: s.port })),
      publisher: { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: o.dane.ttl, nameservers: dns.nameservers },
      keyLifetime: '90d',
      minHold: '0s',
    };
  }
  return cfg;
}

export interface FleetRigOptions {
  members: number;
  prefix: string;
  /** TLSA TTL in seconds; undefined: no DANE. */
  daneTtl?: number;
  /** Pebble's certificate lifetime (default 3600 s: nothing comes due on its own). */
  validitySeconds?: number;
  /** The CLI to run (default this checkout's bin/mxcert.js). */
  cli?: string;
  /** The daemons' log level (default info). */
  logLevel?: string;
}

export interface RigMember {
  name: string;
  cfg: string;
  cfgObj: SandboxConfig;
  port: number;
  /** The TLSA owner of its endpoint. */
  owner: string;
  logPath: string;
  daemon?: Daemon;
}

export interface Journal {
  phase: string;
  current: { tlsa: string };
  next: { tlsa: string };
  old?: { tlsa: string };
  swappedAt?: string;
}

export class FleetRig {
  readonly members: RigMember[] = [];
  private readonly postfixes: PostfixEnv[] = [];

  constructor(
    readonly sb: Sandbox,
    readonly cluster: EtcdCluster,
    readonly opts: FleetRigOptions,
  ) {}

  get servers(): DnsServerAddr[] {
    return [this.sb.bind.primary, ...(this.sb.bind.secondary ? [this.sb.bind.secondary] : [])];
  }

  async setUp(): Promise<void> {
    const keyFile = path.join(this.sb.dir, 'fleet.key');
    await writeFile(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const names = Array.from({ length: this.opts.members }, (_, i) => `mx-${String.fromCharCode(97 + i)}`);
    const smtp = await memberPostfixes(this.sb, names, FLEET_DOMAIN, this.postfixes);
    for (const [i, name] of names.entries()) {
      const cfg = this.memberConfig(name, names, smtp, i, keyFile);
      this.members.push({
        name,
        cfgObj: cfg,
        cfg: await this.sb.writeConfig(cfg, path.join(this.sb.dir, `${name}.yaml`)),
        port: smtp[i]!.port,
        owner: `_${smtp[i]!.port}._tcp.${FLEET_DOMAIN}`,
        logPath: path.join(this.sb.dir, `${name}-daemon.log`),
      });
    }
  }

  private memberConfig(name: string, names: string[], smtp: MemberSmtp[], i: number, keyFile: string): SandboxConfig {
    const { daneTtl } = this.opts;
    const cfg = fleetMemberConfig(this.sb, {
      name,
      names,
      own: smtp[i]!,
      keyFile,
      endpoints: this.cluster.endpoints,
      prefix: this.opts.prefix,
      domain: FLEET_DOMAIN,
      dane: daneTtl === undefined ? undefined : { ttl: daneTtl, everyone: smtp },
    });
    // Once a year: only the fleet watcher and the due timer may start passes.
    cfg.schedule = '0 0 1 1 *';
    return cfg;
  }

  startDaemon(m: RigMember): Daemon {
    m.daemon = startDaemon({
      name: `mxcert run (${m.name})`,
      command: process.execPath,
      args: [this.opts.cli ?? CLI, 'run', '--config', m.cfg],
      cwd: this.sb.dir,
      logPath: m.logPath,
      env: { ...process.env, MXCERT_LOG_LEVEL: this.opts.logLevel ?? 'info', MXCERT_LOG_FORMAT: 'json' },
    });
    return m.daemon;
  }

  async stopDaemon(m: RigMember): Promise<void> {
    if (m.daemon && !m.daemon.hasExited()) await stopPid(m.daemon.pid, 30_000);
  }

  log(m: RigMember): Promise<string> {
    return readFile(m.logPath, 'utf8').catch(() => '');
  }

  /** Lines of a member's daemon log (JSON) whose msg matches. */
  async lines(m: RigMember, msg: RegExp): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = [];
    for (const l of (await this.log(m)).split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        const j = JSON.parse(l) as Record<string, unknown>;
        if (typeof j.msg === 'string' && msg.test(j.msg)) out.push(j);
      } catch {
        // a partial last line
      }
    }
    return out;
  }

  /** Passes a member's daemon has finished. */
  async passes(m: RigMember): Promise<number> {
    return (await this.lines(m, /^pass (finished|failed)$/)).length;
  }

  /** ACME orders placed by the daemons (their pass children log each issuance). */
  async orders(): Promise<number> {
    let n = 0;
    for (const m of this.members) n += (await this.lines(m, /^certificate issued$/)).length;
    return n;
  }

  async journal(): Promise<Journal | undefined> {
    const r = await this.cluster.etcdctl(['get', `${this.opts.prefix}certs/mx/dane`, '--print-value-only']);
    const text = r.stdout.trim();
    if (!text) return undefined;
    return (JSON.parse(text) as { journal: Record<string, Journal> }).journal['ecdsa-p256'];
  }

  async leader(): Promise<string | undefined> {
    const r = await this.cluster.etcdctl(['get', `${this.opts.prefix}leader`, '--print-value-only']);
    return r.stdout.trim() || undefined;
  }

  /** Wait until no daemon has finished a pass for `quietMs` (polled), then return each one's pass count. */
  async settled(quietMs: number, deadlineMs: number): Promise<number[]> {
    let last = '';
    let since = Date.now();
    return pollUntil(
      async () => {
        const counts = await Promise.all(this.members.map((m) => this.passes(m)));
        const key = counts.join(',');
        if (key !== last) {
          last = key;
          since = Date.now();
          return undefined;
        }
        return Date.now() - since >= quietMs && !(await this.leader()) ? counts : undefined;
      },
      { deadlineMs, intervalMs: 250, what: `the daemons to finish their passes (no pass for ${quietMs} ms)` },
    );
  }

  async stop(): Promise<void> {
    for (const m of this.members) await this.stopDaemon(m).catch(() => undefined);
    for (const pf of this.postfixes) await pf.stop().catch(() => undefined);
    await this.cluster.stop().catch(() => undefined);
    await this.sb.stop();
  }
}

export async function startFleetRig(o: FleetRigOptions): Promise<FleetRig> {
  const sb = await startSandbox({ secondary: o.daneTtl !== undefined, pebble: { validitySeconds: o.validitySeconds ?? 3600 } });
  let cluster: EtcdCluster | undefined;
  try {
    cluster = await startEtcdCluster();
    const rig = new FleetRig(sb, cluster, o);
    await rig.setUp();
    return rig;
  } catch (err) {
    await cluster?.stop().catch(() => undefined);
    await sb.stop();
    throw err;
  }
}
