// A real Pebble (Debian package) that can be SIGKILLed and started again on
// the same ports with the same HTTPS certificate, so mxcert's config (the
// directory URL and caBundle) stays the same across a CA crash. Pebble keeps
// everything in memory: after a restart it has a new issuing root and knows
// none of the accounts, orders or authorizations of the previous process.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeLoopbackPki } from '../../env/pki.js';
import { PEBBLE_BIN, httpsGet } from '../../env/pebble.js';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, startDaemon, stopPid, type Daemon } from '../../env/proc.js';

export interface RestartablePebbleOptions {
  dnsServer: { host: string; port: number };
  httpPort: number;
  validitySeconds?: number;
  nonceReject?: number;
  /** Default 0 here: every order needs its challenge, so a test can catch it mid-challenge. */
  authzReuse?: number;
  /** Require EAB with this kid and base64url HMAC key. */
  eab?: { kid: string; hmacKey: string };
}

export interface RestartablePebble {
  directoryUrl: string;
  caBundlePath: string;
  managementUrl: string;
  dir: string;
  pid(): number;
  /** True while the current process runs. */
  running(): boolean;
  issuerRootPem(): Promise<string>;
  /** SIGKILL, no goodbye: a crashed CA. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** A new Pebble process on the same ports; resolves once it serves its directory. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRestartablePebble(opts: RestartablePebbleOptions): Promise<RestartablePebble> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-faults-pebble-'));
  registerTempDir(dir);
  const pki = await makeLoopbackPki(dir, 'mxcert faults pebble HTTPS CA');
  const ca = await readFile(pki.caCertPath, 'utf8');
  const listenPort = await freePort();
  const mgmtPort = await freePort();
  const config: Record<string, unknown> = {
    listenAddress: `127.0.0.1:${listenPort}`,
    managementListenAddress: `127.0.0.1:${mgmtPort}`,
    certificate: pki.certPath,
    privateKey: pki.keyPath,
    httpPort: opts.httpPort,
    tlsPort: 5001,
    ocspResponderURL: '',
    externalAccountBindingRequired: Boolean(opts.eab),
  };
  if (opts.eab) config.externalAccountMACKeys = { [opts.eab.kid]: opts.eab.hmacKey };
  if (opts.validitySeconds !== undefined) config.certificateValidityPeriod = opts.validitySeconds;
  const configPath = path.join(dir, 'pebble-config.json');
  await writeFile(configPath, JSON.stringify({ pebble: config }, null, 2));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: String(opts.nonceReject ?? 0),
    PEBBLE_AUTHZREUSE: String(opts.authzReuse ?? 0),
  };
  const directoryUrl = `https://127.0.0.1:${listenPort}/dir`;
  const managementUrl = `https://127.0.0.1:${mgmtPort}`;
  const logPath = path.join(dir, 'pebble.log');
  let daemon: Daemon | undefined;

  const start = async (): Promise<void> => {
    if (daemon && !daemon.hasExited()) throw new Error('pebble is already running');
    const d = startDaemon({
      name: 'pebble (faults)',
      command: PEBBLE_BIN,
      args: ['-config', configPath, '-dnsserver', `${opts.dnsServer.host}:${opts.dnsServer.port}`],
      cwd: dir,
      logPath,
      env,
    });
    daemon = d;
    await pollUntil(
      async () => {
        if (d.hasExited()) throw new Error('pebble exited');
        if ((await httpsGet(directoryUrl, ca)).status !== 200) return undefined;
        return (await httpsGet(`${managementUrl}/roots/0`, ca)).status === 200 ? true : undefined;
      },
      // A port just released by a killed process is free at once on loopback (no TIME_WAIT for listeners).
      { deadlineMs: 15_000, what: `pebble at ${directoryUrl}`, detail: () => `pebble log:\n${logTail(logPath)}` },
    );
  };
  await start();

  return {
    directoryUrl,
    caBundlePath: pki.caCertPath,
    managementUrl,
    dir,
    pid: () => daemon!.pid,
    running: () => Boolean(daemon && !daemon.hasExited()),
    async issuerRootPem() {
      const r = await httpsGet(`${managementUrl}/roots/0`, ca);
      if (r.status !== 200) throw new Error(`pebble /roots/0: HTTP ${r.status}`);
      return r.body;
    },
    async kill() {
      const d = daemon;
      if (!d || d.hasExited()) return;
      process.kill(d.pid, 'SIGKILL');
      await d.exited;
    },
    start,
    async stop() {
      if (daemon && !daemon.hasExited()) await stopPid(daemon.pid);
      await removeTempDir(dir);
    },
  };
}
