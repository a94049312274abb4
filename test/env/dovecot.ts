// A private Dovecot instance (Debian's dovecot-core and dovecot-imapd) in a
// temp dir: IMAP with STARTTLS and IMAPS with implicit TLS on loopback, a
// self-signed default certificate, and optionally an `!include` of a file
// mxcert writes. Stopped by its PID; the packaged instance is never touched.
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, logTail, pollUntil, registerTempDir, removeTempDir, run, stopPid, trackPid, waitForTcpPort } from './proc.js';

export interface DovecotEnv {
  dir: string;
  conf: string;
  /** IMAP, STARTTLS. */
  imapPort: number;
  /** IMAPS, implicit TLS. */
  imapsPort: number;
  pid: number;
  logPath: string;
  stop(): Promise<void>;
}

export async function startDovecot(opts: { include?: string; defaultName?: string } = {}): Promise<DovecotEnv> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-dovecot-'));
  registerTempDir(dir);
  // Dovecot's unprivileged login processes must reach the sockets in base_dir.
  await chmod(dir, 0o755);
  for (const d of ['run', 'state', 'home']) await mkdir(path.join(dir, d));
  await mkdir(path.join(dir, 'private'), { mode: 0o700 });
  const key = path.join(dir, 'private', 'default.key');
  const crt = path.join(dir, 'private', 'default.pem');
  const name = opts.defaultName ?? 'default.example.test';
  await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', key, '-out', crt,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`]);
  await chmod(key, 0o600);
  const imapPort = await freePort();
  const imapsPort = await freePort();
  const conf = path.join(dir, 'dovecot.conf');
  const logPath = path.join(dir, 'dovecot.log');
  await writeFile(
    conf,
    [
      `base_dir = ${dir}/run`,
      `state_dir = ${dir}/state`,
      `log_path = ${logPath}`,
      'protocols = imap',
      'listen = 127.0.0.1',
      'ssl = required',
      `ssl_cert = <${crt}`,
      `ssl_key = <${key}`,
      'ssl_dh = </usr/share/dovecot/dh.pem',
      'passdb {',
      '  driver = static',
      '  args = password=unused',
      '}',
      'userdb {',
      '  driver = static',
      `  args = uid=nobody gid=nogroup home=${dir}/home`,
      '}',
      'mail_location = maildir:~/Maildir',
      'service imap-login {',
      '  inet_listener imap {',
      '    address = 127.0.0.1',
      `    port = ${imapPort}`,
      '  }',
      '  inet_listener imaps {',
      '    address = 127.0.0.1',
      `    port = ${imapsPort}`,
      '    ssl = yes',
      '  }',
      '}',
      ...(opts.include ? [`!include ${opts.include}`] : []),
      '',
    ].join('\n'),
  );
  // The master daemonizes and its children keep whatever stdio they were
  // given: with pipes, waiting for their end would last until Dovecot stops.
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('/usr/sbin/dovecot', ['-c', conf], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`dovecot -c ${conf} failed (exit ${code}):\n${logTail(logPath)}`);
  const pidFile = path.join(dir, 'run', 'master.pid');
  const pid = await pollUntil(async () => Number((await readFile(pidFile, 'utf8')).trim()) || undefined, {
    deadlineMs: 10_000,
    what: 'Dovecot master.pid',
    detail: () => logTail(logPath),
  });
  trackPid(pid, 'dovecot');
  await waitForTcpPort('127.0.0.1', imapPort, 10_000);
  await waitForTcpPort('127.0.0.1', imapsPort, 10_000);
  return {
    dir,
    conf,
    imapPort,
    imapsPort,
    pid,
    logPath,
    async stop() {
      // The master takes about 3 s to stop its children.
      await stopPid(pid, 15_000);
      await removeTempDir(dir);
    },
  };
}
