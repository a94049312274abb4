// A private Pebble (Debian package) per test: own temp dir, HTTPS cert, free
// ports, and knobs for the behaviours clients must survive (bad nonces,
// authorization reuse, EAB, short certificate lifetimes).

import { mkdtemp, writeFile, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { makeLoopbackPki } from './pki.js';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, startDaemon, stopPid } from './proc.js';

/** Where Debian's pebble package installs the server (`dpkg -L pebble`). */
export const PEBBLE_BIN = '/usr/bin/pebble';

export interface PebbleOptions {
  /** Resolver Pebble uses for challenge names and http-01 targets (e.g. the test BIND). */
  dnsServer?: { host: string; port: number };
  /** Port Pebble connects to for http-01 (default 5002). */
  httpPort?: number;
  /** Port Pebble connects to for tls-alpn-01 (default 5001). */
  tlsPort?: number;
  /** Lifetime of issued certificates, in seconds. */
  validitySeconds?: number;
  /** Percentage of valid nonces rejected with badNonce (default 0 here; Pebble's own default is 5). */
  nonceReject?: number;
  /** Percentage of authorizations reused across orders (Pebble's default 50 when unset). */
  authzReuse?: number;
  /** Require External Account Binding; a kid and HMAC key are generated. */
  eab?: boolean;
  /** Extra roots, each with its own chain, offered as alternates (Link rel="alternate", PEBBLE_ALTERNATE_ROOTS). */
  alternateRoots?: number;
}

/** Pebble's management view of one certificate (GET /cert-status-by-serial/SERIAL). */
export interface PebbleCertStatus {
  Status: 'Valid' | 'Revoked';
  Serial: string;
  Certificate: string;
  /** RFC 5280 CRLReason code, when one was given. */
  Reason?: number;
  RevokedAt?: string;
}

export interface PebbleEnv {
  directoryUrl: string;
  /** CA that signed Pebble's own HTTPS certificate (not the ACME issuer). */
  caBundlePath: string;
  managementUrl: string;
  /** Issuing root, new on every Pebble start (GET /roots/0 on the management API). */
  issuerRootPem(): Promise<string>;
  issuerIntermediatePem(): Promise<string>;
  /** Root / intermediate number `i` (0 is the default chain's; 1.. the alternates'). */
  rootPem(i: number): Promise<string>;
  intermediatePem(i: number): Promise<string>;
  /** The certificate's status by serial (hex, as openssl prints it); undefined when Pebble does not know it (404). */
  certStatus(serialHex: string): Promise<PebbleCertStatus | undefined>;
  eabKid?: string;
  /** base64url, as ACME clients expect it. */
  eabHmacKey?: string;
  dir: string;
  logPath: string;
  pid: number;
  stop(): Promise<void>;
}

/** GET over HTTPS trusting only `ca` (global fetch cannot take a per-request CA). */
export function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout fetching ${url}`)));
    req.on('error', reject);
  });
}

export async function startPebble(opts: PebbleOptions = {}): Promise<PebbleEnv> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-pebble-'));
  registerTempDir(dir);
  const pki = await makeLoopbackPki(dir, 'mxcert pebble HTTPS CA');
  const ca = await readFile(pki.caCertPath, 'utf8');
  const listenPort = await freePort();
  const mgmtPort = await freePort();

  let eabKid: string | undefined;
  let eabHmacKey: string | undefined;
  const config: Record<string, unknown> = {
    listenAddress: `127.0.0.1:${listenPort}`,
    managementListenAddress: `127.0.0.1:${mgmtPort}`,
    certificate: pki.certPath,
    privateKey: pki.keyPath,
    httpPort: opts.httpPort ?? 5002,
    tlsPort: opts.tlsPort ?? 5001,
    ocspResponderURL: '',
    externalAccountBindingRequired: opts.eab ?? false,
  };
  if (opts.validitySeconds !== undefined) config.certificateValidityPeriod = opts.validitySeconds;
  if (opts.eab) {
    eabKid = `kid-${randomBytes(4).toString('hex')}`;
    // Pebble decodes MAC keys as unpadded base64url.
    eabHmacKey = randomBytes(32).toString('base64url');
    config.externalAccountMACKeys = { [eabKid]: eabHmacKey };
  }
  const configPath = path.join(dir, 'pebble-config.json');
  await writeFile(configPath, JSON.stringify({ pebble: config }, null, 2));

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Otherwise each validation waits a random 0–15 s.
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: String(opts.nonceReject ?? 0),
  };
  if (opts.authzReuse !== undefined) env.PEBBLE_AUTHZREUSE = String(opts.authzReuse);
  else delete env.PEBBLE_AUTHZREUSE;
  if (opts.alternateRoots !== undefined) env.PEBBLE_ALTERNATE_ROOTS = String(opts.alternateRoots);
  else delete env.PEBBLE_ALTERNATE_ROOTS;

  const args = ['-config', configPath];
  if (opts.dnsServer) args.push('-dnsserver', `${opts.dnsServer.host}:${opts.dnsServer.port}`);

  const logPath = path.join(dir, 'pebble.log');
  const daemon = startDaemon({ name: 'pebble', command: PEBBLE_BIN, args, cwd: dir, logPath, env });
  const directoryUrl = `https://127.0.0.1:${listenPort}/dir`;
  const managementUrl = `https://127.0.0.1:${mgmtPort}`;

  try {
    await pollUntil(
      async () => {
        if (daemon.hasExited()) throw new Error('pebble exited');
        const dirRes = await httpsGet(directoryUrl, ca);
        if (dirRes.status !== 200) return undefined;
        // The management API starts separately; tests fetch the issuer root from it.
        const rootRes = await httpsGet(`${managementUrl}/roots/0`, ca);
        return rootRes.status === 200 ? true : undefined;
      },
      { deadlineMs: 15_000, what: `pebble at ${directoryUrl}`, detail: () => `pebble log:\n${logTail(logPath)}` },
    );
  } catch (err) {
    await stopPid(daemon.pid);
    throw err;
  }

  const getPem = async (p: string): Promise<string> => {
    const res = await httpsGet(`${managementUrl}${p}`, ca);
    if (res.status !== 200) throw new Error(`pebble management ${p}: HTTP ${res.status}`);
    return res.body;
  };

  return {
    directoryUrl,
    caBundlePath: pki.caCertPath,
    managementUrl,
    issuerRootPem: () => getPem('/roots/0'),
    issuerIntermediatePem: () => getPem('/intermediates/0'),
    rootPem: (i) => getPem(`/roots/${i}`),
    intermediatePem: (i) => getPem(`/intermediates/${i}`),
    async certStatus(serialHex) {
      // Pebble parses the serial as a big integer: leading zeros are harmless, case is not an issue.
      const res = await httpsGet(`${managementUrl}/cert-status-by-serial/${serialHex.toLowerCase()}`, ca);
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw new Error(`pebble management cert-status-by-serial: HTTP ${res.status}`);
      return JSON.parse(res.body) as PebbleCertStatus;
    },
    eabKid,
    eabHmacKey,
    dir,
    logPath,
    pid: daemon.pid,
    async stop() {
      await stopPid(daemon.pid);
      await removeTempDir(dir);
    },
  };
}
