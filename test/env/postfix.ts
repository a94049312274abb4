// A private Postfix instance (Debian package) serving STARTTLS from the
// combined PEM that mxcert deploys, so tests can reload it and probe the
// certificate it really serves. Own config, queue and data directories in a
// temp dir; the packaged instance in /etc/postfix is never touched.

import { mkdtemp, writeFile, readFile, mkdir, chmod, access, utimes } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { writeSelfSignedCombined } from './pki.js';
import { freePort, logTail, pidAlive, pollUntil, registerTempDir, removeTempDir, run, stopPid, trackPid } from './proc.js';

export const POSTFIX_BIN = '/usr/sbin/postfix';

export interface PostfixOptions {
  /** smtpd_tls_chain_files; a self-signed placeholder is written first if missing. */
  combinedPath: string;
  /** Loopback port for smtpd (default: a free port). */
  port?: number;
  /** myhostname, also the placeholder certificate's name (default mx1.example.test). */
  hostname?: string;
}

export interface PostfixEnv {
  port: number;
  host: '127.0.0.1';
  configDir: string;
  /** `postfix reload`: new connections get the new certificate shortly after (not instantly). */
  reload(): Promise<void>;
  stop(): Promise<void>;
  logPath: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** Reads the SMTP greeting; resolves with it, rejects on error or timeout. */
export function readSmtpBanner(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = '';
    sock.setTimeout(timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        sock.end('QUIT\r\n');
        sock.destroy();
        resolve(buf.slice(0, nl).trimEnd());
      }
    });
    sock.once('timeout', () => {
      sock.destroy();
      reject(new Error('no SMTP banner before timeout'));
    });
    sock.once('error', (err) => {
      sock.destroy();
      reject(err);
    });
    sock.once('close', () => reject(new Error(`connection closed before banner (got ${JSON.stringify(buf)})`)));
  });
}

function mainCf(dir: string, port: number, hostname: string, combinedPath: string): string {
  return `# Private test instance written by test/env/postfix.ts
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
# post-install reads postfix-files etc. from here; our config dir has only main.cf/master.cf.
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
# Log to a file we can read (no syslog in containers); it must sit under a prefix.
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/postfix.log
syslog_name = postfix-mxcert-test
myhostname = ${hostname}
mydomain = ${hostname.split('.').slice(1).join('.') || 'localdomain'}
myorigin = $myhostname
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
relayhost =
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP mxcert-test
smtpd_tls_chain_files = ${combinedPath}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_tls_received_header = no
smtp_tls_security_level = none
# No file-based TLS session cache: tlsmgr would need a database in data_directory.
smtpd_tls_session_cache_database =
`;
}

function masterCf(port: number): string {
  // Debian's default chroots most services into the queue dir, which would
  // need a populated chroot; everything here runs unchrooted (column 5 = n).
  // smtpd listens only on the test port; the rest is the minimum the master
  // expects for a working queue (pickup/cleanup/qmgr/rewrite/bounce...).
  const rows = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    'pickup    unix  n - n 60 1 pickup',
    'cleanup   unix  n - n - 0 cleanup',
    'qmgr      unix  n - n 300 1 qmgr',
    'tlsmgr    unix  - - n 1000? 1 tlsmgr',
    'rewrite   unix  - - n - - trivial-rewrite',
    'bounce    unix  - - n - 0 bounce',
    'defer     unix  - - n - 0 bounce',
    'trace     unix  - - n - 0 bounce',
    'verify    unix  - - n - 1 verify',
    'flush     unix  n - n 1000? 0 flush',
    'proxymap  unix  - - n - - proxymap',
    'proxywrite unix - - n - 1 proxymap',
    'smtp      unix  - - n - - smtp',
    'relay     unix  - - n - - smtp',
    'showq     unix  n - n - - showq',
    'error     unix  - - n - - error',
    'retry     unix  - - n - - error',
    'discard   unix  - - n - - discard',
    'local     unix  - n n - - local',
    'anvil     unix  - - n - 1 anvil',
    'scache    unix  - - n - 1 scache',
    'postlog   unix-dgram n - n - 1 postlogd',
  ];
  return rows.join('\n') + '\n';
}

/** master.pid lives in $queue_directory/pid in Postfix 3.x. */
async function readMasterPid(dir: string): Promise<number | undefined> {
  for (const p of [path.join(dir, 'queue', 'pid', 'master.pid'), path.join(dir, 'data', 'master.pid')]) {
    try {
      const pid = Number((await readFile(p, 'utf8')).trim());
      if (Number.isInteger(pid) && pid > 0) return pid;
    } catch {
      // try the next location
    }
  }
  return undefined;
}

export async function startPostfix(opts: PostfixOptions): Promise<PostfixEnv> {
  const hostname = opts.hostname ?? 'mx1.example.test';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-postfix-'));
  registerTempDir(dir);
  // Postfix daemons run as the unprivileged mail_owner and chdir into the
  // queue directory, so the path to it must be traversable (mkdtemp gives 0700).
  await chmod(dir, 0o755);
  const configDir = path.join(dir, 'etc');
  await mkdir(configDir);
  // The queue directory itself must exist (root-owned); `postfix start` runs
  // post-install, which creates its subdirectories and data_directory with
  // the right owners.
  await mkdir(path.join(dir, 'queue'), { mode: 0o755 });
  const logPath = path.join(dir, 'postfix.log');
  const port = opts.port ?? (await freePort());

  if (!(await exists(opts.combinedPath))) {
    await writeSelfSignedCombined(opts.combinedPath, [hostname], dir);
  }

  await writeFile(path.join(configDir, 'main.cf'), mainCf(dir, port, hostname, opts.combinedPath));
  await writeFile(path.join(configDir, 'master.cf'), masterCf(port));
  // Postfix refuses to read a main.cf modified within the last ~2 s ("being
  // edited") and re-reads it every 300 ms until it is older, which made every
  // start 2.4 s slower. Backdating the files is the honest fix.
  const past = new Date(Date.now() - 60_000);
  for (const f of ['main.cf', 'master.cf']) await utimes(path.join(configDir, f), past, past);

  // postfix(1) prints fatal errors only to a terminal; otherwise it exits 1
  // silently, so failures are explained from the maillog file.
  const postfix = (cmd: string) =>
    run(POSTFIX_BIN, ['-c', configDir, cmd], { allowFailure: true, timeoutMs: 30_000 });
  const explain = (what: string, res?: { stdout: string; stderr: string; code: number }) =>
    new Error(
      `${what}${res ? ` (exit ${res.code})\n${res.stdout}${res.stderr}` : ''}\npostfix log (${logPath}):\n${logTail(logPath)}`,
    );

  let masterPid: number | undefined;

  const stop = async (): Promise<void> => {
    const pid = masterPid ?? (await readMasterPid(dir));
    if (pid === undefined) {
      await postfix('stop');
      return;
    }
    // Exactly what `postfix stop` does (SIGTERM to master, which terminates
    // its children), but polled at 20 ms: postfix-script polls with `sleep 1`,
    // which cost a second per test.
    await stopPid(pid);
  };

  try {
    const res = await postfix('start');
    if (res.code !== 0) throw explain('postfix start failed', res);
    // master daemonizes, so it is not our child: track it by its PID file.
    masterPid = await pollUntil(() => readMasterPid(dir), {
      deadlineMs: 10_000,
      what: 'postfix master.pid',
      detail: () => `postfix log:\n${logTail(logPath)}`,
    });
    trackPid(masterPid, 'postfix-master');
    await pollUntil(
      async () => {
        if (!pidAlive(masterPid!)) throw new Error('postfix master exited');
        const banner = await readSmtpBanner('127.0.0.1', port);
        if (!banner.startsWith('220')) throw new Error(`unexpected banner ${banner}`);
        return banner;
      },
      { deadlineMs: 15_000, what: `postfix smtpd on 127.0.0.1:${port}`, detail: () => `postfix log:\n${logTail(logPath)}` },
    );
  } catch (err) {
    await stop().catch(() => undefined);
    if (err instanceof Error && !err.message.includes('postfix log')) throw explain(err.message);
    throw err;
  }

  return {
    port,
    host: '127.0.0.1',
    configDir,
    logPath,
    async reload() {
      const res = await postfix('reload');
      if (res.code !== 0) throw explain('postfix reload failed', res);
    },
    async stop() {
      await stop();
      await removeTempDir(dir);
    },
  };
}
