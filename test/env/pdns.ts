// A private PowerDNS Authoritative Server (Debian pdns-server 4.7 with the
// gsqlite3 backend) for the pdns TLSA publisher's tests: its own config dir,
// database and ports on loopback, the HTTP API on, one zone created through
// the API, stopped by PID.
//
// Facts learned on Debian 12 (4.7.3):
// - gsqlite3 does not create its schema; load the packaged schema.sqlite3.sql.
// - Zones made with `pdnsutil create-zone` while the server runs are invisible
//   to it until its zone cache refreshes (zone-cache-refresh-interval, 300 s);
//   zones created through the API are live at once, and get
//   SOA-EDIT-API=DEFAULT, so every PATCH bumps the served SOA serial.
// - The API purges its packet/query caches for the zone on PATCH, so DNS
//   answers change immediately.
// - TLSA content comes back normalised to lowercase hex.
// - GET …/zones/Z?rrset_name=N&rrset_type=T omits disabled records; the
//   whole-zone GET includes them.
// - Concurrent PATCHes can fail with HTTP 500: gsqlite3 "database is locked".
// - `security-poll-suffix=` keeps it from looking up its own version in DNS.

import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { dig } from './bind.js';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, run, startDaemon, stopPid, type Daemon } from './proc.js';

export const PDNS_BIN = '/usr/sbin/pdns_server';
const SCHEMA = '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql';

export interface PdnsOptions {
  /** Zone origin without trailing dot (default 'example.test'). */
  zone?: string;
  /** Relative owner name -> IPv4 (default mx1 and mx2 -> 127.0.0.1). */
  hosts?: Record<string, string>;
  /** TTL of the zone's records (default 5). */
  ttl?: number;
}

export interface PdnsEnv {
  /** Base URL of the webserver, e.g. http://127.0.0.1:8081 (no /api/v1). */
  apiUrl: string;
  apiKey: string;
  /** File holding only the API key, mode 0600. */
  apiKeyFile: string;
  dns: { host: '127.0.0.1'; port: number };
  serverId: 'localhost';
  /** Zone origin without trailing dot. */
  zone: string;
  /** Calls the API with the key; resolves with status and parsed body. */
  api(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  dir: string;
  stop(): Promise<void>;
}

export async function startPdns(opts: PdnsOptions = {}): Promise<PdnsEnv> {
  const zone = (opts.zone ?? 'example.test').replace(/\.$/, '');
  const hosts = opts.hosts ?? { mx1: '127.0.0.1', mx2: '127.0.0.1' };
  const ttl = opts.ttl ?? 5;
  const root = await mkdtemp(path.join(os.tmpdir(), 'mxcert-pdns-'));
  registerTempDir(root);
  const confDir = path.join(root, 'conf');
  const sockDir = path.join(root, 'run');
  await mkdir(confDir, { mode: 0o700 });
  await mkdir(sockDir, { mode: 0o700 });

  const apiKey = randomBytes(24).toString('base64url');
  const apiKeyFile = path.join(root, 'pdns-api.key');
  await writeFile(apiKeyFile, `${apiKey}\n`, { mode: 0o600 });

  const db = path.join(root, 'pdns.sqlite3');
  await run('sqlite3', [db], { input: `.read ${SCHEMA}\n`, timeoutMs: 10_000 });

  const dnsPort = await freePort();
  const webPort = await freePort();
  await writeFile(
    path.join(confDir, 'pdns.conf'),
    [
      'launch=gsqlite3',
      `gsqlite3-database=${db}`,
      'local-address=127.0.0.1',
      `local-port=${dnsPort}`,
      'webserver=yes',
      'webserver-address=127.0.0.1',
      `webserver-port=${webPort}`,
      'webserver-allow-from=127.0.0.0/8',
      'api=yes',
      `api-key=${apiKey}`,
      'guardian=no',
      'daemon=no',
      'disable-syslog=yes',
      `socket-dir=${sockDir}`,
      // Runs as the invoking user; the packaged default would switch to 'pdns'.
      'setuid=',
      'setgid=',
      'security-poll-suffix=',
      'loglevel=5',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );

  const logPath = path.join(root, 'pdns.log');
  let daemon: Daemon | undefined;
  const apiUrl = `http://127.0.0.1:${webPort}`;
  const dns = { host: '127.0.0.1' as const, port: dnsPort };

  const api = async (method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${apiUrl}/api/v1${apiPath}`, {
      method,
      headers: { 'X-API-Key': apiKey, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // plain text (e.g. "Unauthorized")
    }
    return { status: res.status, body: parsed };
  };

  try {
    daemon = startDaemon({
      name: 'pdns_server',
      command: PDNS_BIN,
      args: [`--config-dir=${confDir}`],
      cwd: root,
      logPath,
    });
    const d = daemon;
    const detail = () => `pdns log:\n${logTail(logPath)}`;
    await pollUntil(
      async () => {
        if (d.hasExited()) throw new Error('pdns_server exited');
        const r = await api('GET', '/servers/localhost');
        return r.status === 200 ? true : undefined;
      },
      { deadlineMs: 20_000, intervalMs: 50, what: `PowerDNS API on ${apiUrl}`, detail },
    );

    const abs = (n: string) => (n === '@' ? `${zone}.` : `${n}.${zone}.`);
    const a = (name: string, ip: string) => ({ name: abs(name), type: 'A', ttl, records: [{ content: ip, disabled: false }] });
    const created = await api('POST', '/servers/localhost/zones', {
      name: `${zone}.`,
      kind: 'Native',
      nameservers: [`ns1.${zone}.`],
      rrsets: [
        {
          name: `${zone}.`,
          type: 'SOA',
          ttl,
          records: [{ content: `ns1.${zone}. hostmaster.${zone}. 1 60 10 3600 ${ttl}`, disabled: false }],
        },
        a('ns1', '127.0.0.1'),
        ...Object.entries(hosts).map(([n, ip]) => a(n, ip)),
      ],
    });
    if (created.status !== 201) throw new Error(`creating zone ${zone} through the API: HTTP ${created.status} ${JSON.stringify(created.body)}`);

    await pollUntil(
      async () => {
        if (d.hasExited()) throw new Error('pdns_server exited');
        const out = await dig(dns, ['+tcp', `${zone}.`, 'SOA']);
        return /status: NOERROR/.test(out) && /;; flags:[^;]*\baa\b/.test(out) ? true : undefined;
      },
      { deadlineMs: 20_000, intervalMs: 50, what: `PowerDNS to serve ${zone} on port ${dnsPort}`, detail },
    );
  } catch (err) {
    if (daemon) await stopPid(daemon.pid);
    throw err;
  }

  const pid = daemon.pid;
  return {
    apiUrl,
    apiKey,
    apiKeyFile,
    dns,
    serverId: 'localhost',
    zone,
    api,
    dir: root,
    async stop() {
      await stopPid(pid);
      await removeTempDir(root);
    },
  };
}
