// A private unbound 1.17 (Debian) as a DNSSEC-validating resolver for the
// test zone: its own config and temp dir, a loopback port, a stub-zone to the
// test BIND servers, and the zone's own DNSKEY as trust anchor (or a wrong
// one, or none), stopped by PID. TEST-ENV-NOTES: `local-zone: "test."
// nodefault` (RFC 6761 names are refused otherwise), `do-not-query-localhost:
// no`, a low cache-max-ttl; AD is set on validated answers.
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { dig, type DnsServerAddr } from './bind.js';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, run, startDaemon, stopPid } from './proc.js';

export const UNBOUND_BIN = '/usr/sbin/unbound';

export interface UnboundOptions {
  zone: string;
  /** Authoritative servers of the zone (stub-zone targets). */
  servers: DnsServerAddr[];
  /**
   * 'zone': the zone's KSK/CSK as served by the first server (answers validate, AD);
   * 'wrong': a key that did not sign the zone (answers are bogus: SERVFAIL);
   * 'none': no anchor (answers are insecure: no AD).
   */
  anchor: 'zone' | 'wrong' | 'none';
}

export interface UnboundEnv extends DnsServerAddr {
  dir: string;
  logPath: string;
  stop(): Promise<void>;
}

/** The zone's secure-entry-point keys (flags 257) as unbound trust-anchor lines. */
async function zoneAnchors(server: DnsServerAddr, zone: string): Promise<string[]> {
  const out = await dig(server, ['+short', '+norecurse', `${zone}.`, 'DNSKEY']);
  const keys = out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^257 3 \d+ /.test(l));
  if (!keys.length) throw new Error(`no DNSKEY with flags 257 for ${zone} at ${server.host}:${server.port}:\n${out}`);
  return keys.map((k) => `${zone}. DNSKEY ${k}`);
}

export async function startUnbound(opts: UnboundOptions): Promise<UnboundEnv> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-unbound-'));
  registerTempDir(dir);
  const port = await freePort();
  const logPath = path.join(dir, 'unbound.log');
  let anchors: string[] = [];
  if (opts.anchor !== 'none') {
    anchors = await zoneAnchors(opts.servers[0]!, opts.zone);
    if (opts.anchor === 'wrong') {
      // Same algorithm and shape, different key material: nothing in the zone matches it.
      anchors = anchors.map((a) => a.replace(/(\S+)$/, (b64) => Buffer.from(Buffer.from(b64, 'base64').map((x) => x ^ 0x5a)).toString('base64')));
    }
  }
  const conf = [
    'server:',
    `  interface: 127.0.0.1@${port}`,
    `  port: ${port}`,
    '  do-ip6: no',
    '  do-udp: yes',
    '  do-tcp: yes',
    '  chroot: ""',
    '  username: ""',
    `  directory: "${dir}"`,
    `  pidfile: "${path.join(dir, 'unbound.pid')}"`,
    `  logfile: "${logPath}"`,
    '  use-syslog: no',
    '  verbosity: 1',
    '  val-log-level: 2',
    '  access-control: 127.0.0.0/8 allow',
    '  do-not-query-localhost: no',
    `  local-zone: "test." nodefault`,
    '  module-config: "validator iterator"',
    '  cache-max-ttl: 1',
    '  cache-max-negative-ttl: 1',
    '  qname-minimisation: no',
    '  harden-referral-path: no',
    '  target-fetch-policy: "0 0 0 0 0"',
    ...anchors.map((a) => `  trust-anchor: "${a}"`),
    'remote-control:',
    '  control-enable: no',
    'stub-zone:',
    `  name: "${opts.zone}"`,
    ...opts.servers.map((s) => `  stub-addr: ${s.host}@${s.port}`),
    '',
  ].join('\n');
  const confPath = path.join(dir, 'unbound.conf');
  await writeFile(confPath, conf);
  const check = await run('unbound-checkconf', [confPath], { allowFailure: true });
  if (check.code !== 0) throw new Error(`unbound-checkconf rejected the test config:\n${check.stdout}${check.stderr}\n${conf}`);

  const d = startDaemon({ name: 'unbound', command: UNBOUND_BIN, args: ['-d', '-c', confPath], cwd: dir, logPath });
  try {
    const self = { host: '127.0.0.1', port };
    await pollUntil(
      async () => {
        if (d.hasExited()) throw new Error('unbound exited');
        const out = await dig(self, ['+rec', '+tcp', `${opts.zone}.`, 'SOA']);
        return /status: (NOERROR|SERVFAIL)/.test(out) ? true : undefined;
      },
      { deadlineMs: 20_000, intervalMs: 100, what: `unbound on 127.0.0.1:${port}`, detail: () => logTail(logPath) },
    );
  } catch (err) {
    await stopPid(d.pid);
    throw err;
  }
  return {
    host: '127.0.0.1',
    port,
    dir,
    logPath,
    async stop() {
      await stopPid(d.pid);
      await removeTempDir(dir);
    },
  };
}
