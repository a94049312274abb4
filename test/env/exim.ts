// A private Exim 4 daemon (Debian's exim4-daemon-light) serving STARTTLS from
// the key and certificate files mxcert writes. Installing exim4 would remove
// Postfix (both provide mail-transport-agent), so the package is only
// downloaded (`apt-get download`, cached in EXIM_CACHE_DIR) and unpacked with
// `dpkg-deb -x`; the binary runs from there with its own -C config, spool and
// log directories in a temp dir. /etc/exim4 is never read or written.
//
// Its shared libraries must be installed for real (scripts/install-system-deps.sh
// does that; libidn12 is the one a Postfix host usually lacks): the binary is
// setuid root, and on SIGHUP the daemon, which runs as Debian-exim, re-executes
// it, so ld.so runs it in secure-execution mode and ignores LD_LIBRARY_PATH
// (ld.so(8)). A library that is only unpacked would make the reload kill Exim.

import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  freePort,
  logTail,
  pidAlive,
  pollUntil,
  registerTempDir,
  removeTempDir,
  run,
  startDaemon,
  stopPid,
  waitForTcpPort,
  type Daemon,
} from './proc.js';

/** Where the downloaded .deb and the unpacked tree are kept between runs. */
export const EXIM_CACHE_DIR = process.env.MXCERT_EXIM_CACHE ?? '/var/cache/mxcert-test/exim';
/** The user and group Debian's Exim runs as (its compiled-in exim_user). */
export const EXIM_USER = 'Debian-exim';
const DEB_PACKAGE = 'exim4-daemon-light';
const DEB_PATTERN = /^exim4-daemon-light_.+\.deb$/;

export interface EximOptions {
  /** tls_certificate: leaf first, then the chain (mxcert's fullchain file). */
  certificate: string;
  /** tls_privatekey. */
  privateKey: string;
  /** primary_hostname (default mx1.example.test). */
  hostname?: string;
  /** Loopback port (default: a free port). */
  port?: number;
}

export interface EximEnv {
  host: '127.0.0.1';
  port: number;
  /** The unpacked exim4 binary (for the hook's EXIM variable). */
  binary: string;
  /** The -C configuration file the daemon runs with. */
  configPath: string;
  /** Written by the daemon (-oP); what hooks/exim-reload reads with EXIM_PID_FILE. */
  pidFile: string;
  /** The daemon's PID; a SIGHUP re-executes Exim in place, so it does not change. */
  pid: number;
  mainLogPath: string;
  paniclogPath: string;
  /** Exim's mainlog ('' before the first line). */
  mainLog(): Promise<string>;
  stop(): Promise<void>;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** The newest cached exim4-daemon-light .deb, downloading it when none is cached. */
async function cachedDeb(): Promise<string> {
  const debDir = path.join(EXIM_CACHE_DIR, 'debs');
  await mkdir(debDir, { recursive: true, mode: 0o755 });
  const newest = async (): Promise<string | undefined> => {
    const names = (await readdir(debDir)).filter((n) => DEB_PATTERN.test(n));
    const withTimes = await Promise.all(names.map(async (n) => ({ n, t: (await stat(path.join(debDir, n))).mtimeMs })));
    withTimes.sort((a, b) => b.t - a.t);
    return withTimes[0] ? path.join(debDir, withTimes[0].n) : undefined;
  };
  const found = await newest();
  if (found) return found;
  // Download into a private directory and move the file in, so a second test
  // process never sees a half-written .deb. APT::Sandbox::User=root: apt's
  // _apt user cannot write into a root-owned temp dir.
  const tmp = await mkdtemp(path.join(debDir, '.download-'));
  try {
    const r = await run('apt-get', ['-o', 'APT::Sandbox::User=root', 'download', DEB_PACKAGE], { cwd: tmp, allowFailure: true, timeoutMs: 120_000 });
    const got = (await readdir(tmp)).filter((n) => DEB_PATTERN.test(n));
    if (r.code !== 0 || got.length !== 1) {
      throw new Error(
        `cannot download ${DEB_PACKAGE} into ${debDir} (apt-get download exit ${r.code}); ` +
          `run scripts/install-system-deps.sh (it runs apt-get update and caches the package)\n${r.stdout}${r.stderr}`,
      );
    }
    await rename(path.join(tmp, got[0]!), path.join(debDir, got[0]!));
    return path.join(debDir, got[0]!);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Unpacks the .deb once per version (atomically, by rename) and returns the tree's root. */
async function unpacked(deb: string): Promise<string> {
  const root = path.join(EXIM_CACHE_DIR, 'root', path.basename(deb, '.deb'));
  if (await exists(path.join(root, 'usr/sbin/exim4'))) return root;
  await mkdir(path.dirname(root), { recursive: true, mode: 0o755 });
  const tmp = await mkdtemp(`${root}.tmp-`);
  try {
    await run('dpkg-deb', ['-x', deb, tmp]);
    // The daemon (running as Debian-exim) re-executes this binary on SIGHUP,
    // so every directory on the way must be traversable; mkdtemp gives 0700.
    await chmod(tmp, 0o755);
    await rename(tmp, root).catch(async (err: NodeJS.ErrnoException) => {
      // Another test process won the race: its tree is identical.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      await rm(tmp, { recursive: true, force: true });
    });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return root;
}

/** Creates the Debian-exim system group and user when missing, as exim4-base's postinst would. */
async function ensureEximUser(): Promise<void> {
  if ((await run('getent', ['group', EXIM_USER], { allowFailure: true })).code !== 0) {
    await run('groupadd', ['--system', EXIM_USER]);
  }
  if ((await run('getent', ['passwd', EXIM_USER], { allowFailure: true })).code !== 0) {
    await run('useradd', ['--system', '--gid', EXIM_USER, '--home-dir', '/var/spool/exim4', '--no-create-home', '--shell', '/usr/sbin/nologin', EXIM_USER]);
  }
}

/**
 * The unpacked exim4 binary, after checking that it can run: its libraries
 * resolve without LD_LIBRARY_PATH and its user exists.
 */
export async function eximBinary(): Promise<string> {
  const binary = path.join(await unpacked(await cachedDeb()), 'usr/sbin/exim4');
  const missing = (await run('ldd', [binary])).stdout
    .split('\n')
    .filter((l) => l.includes('not found'))
    .map((l) => l.trim().split(/\s/)[0]);
  if (missing.length > 0) {
    throw new Error(`${binary} needs shared libraries that are not installed: ${missing.join(', ')}; run scripts/install-system-deps.sh`);
  }
  await ensureEximUser();
  return binary;
}

function eximConf(o: { binary: string; dir: string; hostname: string; certificate: string; privateKey: string }): string {
  return `# Private test instance written by test/env/exim.ts
# SIGHUP makes the daemon execv() exim_path, so it must name this binary.
exim_path = ${o.binary}
primary_hostname = ${o.hostname}
spool_directory = ${o.dir}/spool
log_file_path = ${o.dir}/log/%slog
local_interfaces = 127.0.0.1
exim_user = ${EXIM_USER}
exim_group = ${EXIM_USER}
# No DNS, ident or reverse lookups on loopback.
host_lookup =
rfc1413_hosts =
tls_advertise_hosts = *
tls_certificate = ${o.certificate}
tls_privatekey = ${o.privateKey}
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  deny message = test instance accepts no mail
`;
}

/**
 * Starts Exim as root, like the packaged service, with -C pointing at a
 * config in a new temp dir. The daemon drops to Debian-exim once it listens
 * and loads the TLS key and certificate as that user, so the files must be
 * readable by it (group Debian-exim, as config/exim.example.yaml writes them).
 *
 * Because of -C, the re-executed daemon after a SIGHUP stays Debian-exim and
 * notes "exim user lost privilege for using -C option" in its paniclog; it
 * still listens on the (unprivileged) test port and reloads its TLS files.
 */
export async function startExim(opts: EximOptions): Promise<EximEnv> {
  const binary = await eximBinary();
  const hostname = opts.hostname ?? 'mx1.example.test';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-exim-'));
  registerTempDir(dir);
  await chmod(dir, 0o755);
  const { uid, gid } = await eximIds();
  for (const d of ['spool', 'log']) {
    await mkdir(path.join(dir, d), { mode: 0o750 });
    await chown(path.join(dir, d), uid, gid);
  }
  const port = opts.port ?? (await freePort());
  // Exim refuses a -C file that is not owned by root (its CONFIGURE_OWNER) or
  // is writable by others.
  const configPath = path.join(dir, 'exim.conf');
  await writeFile(configPath, eximConf({ binary, dir, hostname, certificate: opts.certificate, privateKey: opts.privateKey }), { mode: 0o644 });
  const check = await run(binary, ['-C', configPath, '-bV'], { allowFailure: true });
  if (check.code !== 0) throw new Error(`exim -bV rejects ${configPath}:\n${check.stdout}${check.stderr}`);

  const pidFile = path.join(dir, 'exim.pid');
  const mainLogPath = path.join(dir, 'log', 'mainlog');
  const paniclogPath = path.join(dir, 'log', 'paniclog');
  // -bdf: a listening daemon that stays our child, so its stderr (e.g. a
  // failed re-exec) lands in exim.out and its exit is seen. -oX: this port
  // only; -oP: the pid file the hook reads (Debian's default is
  // /run/exim4/exim.pid); -oY: no notifier socket, whose abstract name would
  // clash with another Exim on this host.
  const daemon: Daemon = startDaemon({
    name: 'exim',
    command: binary,
    args: ['-C', configPath, '-bdf', '-oX', String(port), '-oP', pidFile, '-oY'],
    cwd: dir,
    logPath: path.join(dir, 'exim.out'),
  });
  const why = () => `${logTail(daemon.logPath)}\n${logTail(mainLogPath)}\n${logTail(paniclogPath)}`;
  try {
    await pollUntil(
      async () => {
        if (daemon.hasExited()) throw new Error(`exim exited during start-up:\n${why()}`);
        return Number((await readFile(pidFile, 'utf8')).trim()) === daemon.pid ? true : undefined;
      },
      { deadlineMs: 15_000, what: `Exim to write ${pidFile}`, detail: why },
    );
    await waitForTcpPort('127.0.0.1', port, 10_000);
  } catch (err) {
    await stopPid(daemon.pid);
    await removeTempDir(dir);
    throw err;
  }

  return {
    host: '127.0.0.1',
    port,
    binary,
    configPath,
    pidFile,
    pid: daemon.pid,
    mainLogPath,
    paniclogPath,
    mainLog: () => readFile(mainLogPath, 'utf8').catch(() => ''),
    async stop() {
      if (pidAlive(daemon.pid)) await stopPid(daemon.pid);
      await removeTempDir(dir);
    },
  };
}

async function eximIds(): Promise<{ uid: number; gid: number }> {
  const fields = (await run('getent', ['passwd', EXIM_USER])).stdout.trim().split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
