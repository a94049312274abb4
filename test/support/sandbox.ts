// A whole mail host on loopback, from real Debian servers: BIND 9 (inline-
// signed zone, TSIG updates, optional secondary), Pebble (resolving through
// that BIND), Postfix serving STARTTLS from the combined file mxcert writes.
// Used by the end-to-end tests and by `npm run sandbox` (README).
import { access, mkdtemp, mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { startBind, type BindEnv } from '../env/bind.js';
import { startPebble, type PebbleEnv, type PebbleOptions } from '../env/pebble.js';
import { startPostfix, type PostfixEnv } from '../env/postfix.js';
import { freePort, run, type RunResult } from '../env/proc.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'bin', 'mxcert.js');
export const POSTFIX_RELOAD_HOOK = path.join(REPO, 'hooks', 'postfix-reload');

export interface SandboxOptions {
  secondary?: boolean;
  pebble?: Omit<PebbleOptions, 'dnsServer' | 'httpPort'>;
  /** Directory to keep everything in (default: a new temp dir). */
  dir?: string;
}

export interface Sandbox {
  dir: string;
  bind: BindEnv;
  pebble: PebbleEnv;
  postfix: PostfixEnv;
  /** Port the http-01 listener must use (Pebble connects there). */
  httpPort: number;
  outDir: string;
  stateDir: string;
  /** Write `pebble`'s issuing root to a file usable as acme.trustAnchors. */
  anchorsFor(pebble: PebbleEnv, name: string): Promise<string>;
  /** Path Postfix reads smtpd_tls_chain_files from (ecdsa-p256 by default). */
  combinedPath(keyType?: string): string;
  /** Write a config file; returns its path. */
  writeConfig(cfg: object, file?: string): Promise<string>;
  /** A config for certificate mx1 on this sandbox; tweak the returned object. */
  baseConfig(opts?: { challenge?: 'dns-01' | 'http-01'; keys?: string[] }): SandboxConfig;
  /** Point Postfix at both the ECDSA and the RSA combined files (RSA placeholder first). */
  useDualChains(): Promise<void>;
  cli(args: string[], opts?: { env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult>;
  stop(): Promise<void>;
}

// Loose on purpose: tests mutate it into invalid shapes too.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type SandboxConfig = Record<string, any>;

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'mxcert-sandbox-')));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const outDir = path.join(dir, 'postfix-tls');
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const stateDir = path.join(dir, 'state');
  const combinedPath = (keyType = 'ecdsa-p256') => path.join(outDir, `mx1-${keyType}.pem`);

  const started: Array<{ stop(): Promise<void> }> = [];
  try {
    const bind = await startBind({ secondary: opts.secondary ?? false, ttl: 5 });
    started.push(bind);
    const httpPort = await freePort();
    const pebble = await startPebble({ ...opts.pebble, dnsServer: bind.primary, httpPort });
    started.push(pebble);
    const postfix = await startPostfix({ combinedPath: combinedPath(), hostname: 'mx1.example.test' });
    started.push(postfix);
    // Pebble's issuing root is new on every start: it is the trust anchor the
    // issued chains must lead to (acme.trustAnchors).
    const trustAnchors = path.join(dir, 'pebble-roots.pem');
    await writeFile(trustAnchors, await pebble.issuerRootPem(), { mode: 0o644 });

    const sb: Sandbox = {
      dir,
      bind,
      pebble,
      postfix,
      httpPort,
      outDir,
      stateDir,
      combinedPath,
      async writeConfig(cfg, file = path.join(dir, 'config.yaml')) {
        await writeFile(file, stringify(cfg), { mode: 0o600 });
        return file;
      },
      baseConfig({ challenge = 'dns-01', keys = ['ecdsa-p256'] } = {}) {
        const nameservers = [bind.primary, ...(bind.secondary ? [bind.secondary] : [])].map((s) => `${s.host}:${s.port}`);
        return {
          stateDir,
          acme: { directory: pebble.directoryUrl, email: 'postmaster@example.test', caBundle: pebble.caBundlePath, trustAnchors },
          certificates: [
            {
              name: 'mx1',
              domains: ['mx1.example.test'],
              keys,
              challenge:
                challenge === 'dns-01'
                  ? {
                      type: 'dns-01',
                      dns: {
                        provider: 'rfc2136',
                        server: bind.primary.host,
                        port: bind.primary.port,
                        zone: bind.zone,
                        tsig: { name: bind.tsig.name, algorithm: bind.tsig.algorithm, secretFile: bind.tsig.secretFile },
                        ttl: 5,
                        nameservers,
                      },
                    }
                  : { type: 'http-01', http: { listen: `127.0.0.1:${httpPort}` } },
              output: { combined: path.join(outDir, 'mx1-{keytype}.pem'), fullchain: path.join(outDir, 'mx1-{keytype}.fullchain.pem') },
              hooks: { deploy: [[POSTFIX_RELOAD_HOOK, postfix.configDir]] },
              verify: { smtp: [`127.0.0.1:${postfix.port}`], serverName: 'mx1.example.test', timeout: '15s' },
            },
          ],
        };
      },
      async anchorsFor(p, name) {
        const f = path.join(dir, `${name}-roots.pem`);
        await writeFile(f, await p.issuerRootPem(), { mode: 0o644 });
        return f;
      },
      async useDualChains() {
        const rsa = combinedPath('rsa-2048');
        if (!(await access(rsa).then(() => true, () => false))) {
          const key = path.join(dir, 'rsa-placeholder.key');
          const crt = path.join(dir, 'rsa-placeholder.crt');
          await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'rsa:2048', '-keyout', key, '-out', crt, '-days', '2',
            '-subj', '/CN=mx1.example.test', '-addext', 'subjectAltName=DNS:mx1.example.test']);
          await writeFile(rsa, (await readFile(key, 'utf8')) + (await readFile(crt, 'utf8')), { mode: 0o600 });
        }
        await run('postconf', ['-c', postfix.configDir, '-e', `smtpd_tls_chain_files = ${combinedPath('ecdsa-p256')}, ${rsa}`]);
        await postfix.reload();
      },
      cli(args, o = {}) {
        return run(process.execPath, [CLI, ...args], {
          allowFailure: true,
          timeoutMs: o.timeoutMs ?? 120_000,
          env: { ...process.env, MXCERT_LOG_LEVEL: process.env.MXCERT_LOG_LEVEL ?? 'info', ...o.env },
        });
      },
      async stop() {
        for (const s of started.reverse()) await s.stop().catch(() => undefined);
        // MXCERT_TEST_KEEP=1 keeps the directory (logs, state, config) for debugging.
        if (!opts.dir && !process.env.MXCERT_TEST_KEEP) await rm(dir, { recursive: true, force: true });
      },
    };
    return sb;
  } catch (err) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    throw err;
  }
}

/** What the server serves, read with openssl (independent of mxcert's own probe). */
export async function servedLeafPem(
  port: number,
  opts: { keyFamily?: 'ecdsa' | 'rsa'; servername?: string } = {},
): Promise<string> {
  const sigalgs =
    opts.keyFamily === 'rsa'
      ? ['-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256:RSA-PSS+SHA384:RSA+SHA384']
      : opts.keyFamily === 'ecdsa'
        ? ['-sigalgs', 'ECDSA+SHA256:ECDSA+SHA384']
        : [];
  const r = await run(
    'openssl',
    ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-servername', opts.servername ?? 'mx1.example.test', ...sigalgs],
    { allowFailure: true, input: 'QUIT\r\n', timeoutMs: 15_000 },
  );
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout);
  if (!m) throw new Error(`openssl s_client got no certificate from 127.0.0.1:${port}:\n${r.stdout}\n${r.stderr}`);
  return m[0] + '\n';
}
