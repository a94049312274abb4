// Local mail delivery on a running sandbox Postfix (test/env/postfix.ts), so a
// test can read what sendmail(1) handed over once the real Postfix has queued,
// routed and delivered it: mail for root@localhost lands in a mailbox file in
// the instance's own directory (removed with it), nothing in /var/mail.
// The instance's master.cf already has pickup, cleanup, qmgr, trivial-rewrite
// and local; missing ones are added here rather than in the env module.
import { chmod, mkdir, readFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { PostfixEnv } from '../env/postfix.js';
import { logTail, pollUntil, run } from '../env/proc.js';

export interface LocalMailbox {
  /** The mailbox file of a local user (mbox format). */
  path(user?: string): string;
  /** The mailbox's text, '' while nothing has been delivered. */
  read(user?: string): Promise<string>;
  /** Polls until the mailbox contains a message matching `re`; returns the whole mailbox. */
  waitFor(re: RegExp, opts?: { user?: string; deadlineMs?: number }): Promise<string>;
}

/** The services local delivery needs; appended to master.cf only when absent. */
const NEEDED_SERVICES: Array<{ name: string; type: string; line: string }> = [
  { name: 'pickup', type: 'unix', line: 'pickup/unix=pickup unix n - n 60 1 pickup' },
  { name: 'cleanup', type: 'unix', line: 'cleanup/unix=cleanup unix n - n - 0 cleanup' },
  { name: 'qmgr', type: 'unix', line: 'qmgr/unix=qmgr unix n - n 300 1 qmgr' },
  { name: 'rewrite', type: 'unix', line: 'rewrite/unix=rewrite unix - - n - - trivial-rewrite' },
  { name: 'bounce', type: 'unix', line: 'bounce/unix=bounce unix - - n - 0 bounce' },
  { name: 'defer', type: 'unix', line: 'defer/unix=defer unix - - n - 0 bounce' },
  { name: 'trace', type: 'unix', line: 'trace/unix=trace unix - - n - 0 bounce' },
  { name: 'local', type: 'unix', line: 'local/unix=local unix - n n - - local' },
  { name: 'error', type: 'unix', line: 'error/unix=error unix - - n - - error' },
];

/**
 * Reconfigure the sandbox Postfix for local delivery: `localhost` is a local
 * domain, mail goes to `<instance dir>/mail/<user>`, no alias or recipient
 * maps (so root is delivered as root, not aliased away), then reload.
 */
export async function enableLocalMailbox(postfix: PostfixEnv): Promise<LocalMailbox> {
  const configDir = postfix.configDir;
  const spool = path.join(path.dirname(configDir), 'mail');
  await mkdir(spool, { recursive: true });
  // Like /var/mail with its sticky bit: local(8) creates each mailbox file with
  // the recipient's (or default_privs') rights.
  await chmod(spool, 0o1777);

  const postconf = (args: string[]) => run('postconf', ['-c', configDir, ...args], { timeoutMs: 15_000 });
  await postconf([
    '-e',
    'mydestination = localhost, localhost.$mydomain, $myhostname',
    `mail_spool_directory = ${spool}`,
    'home_mailbox =',
    'mailbox_command =',
    'alias_maps =',
    'alias_database =',
    'local_recipient_maps =',
    'local_transport = local:$myhostname',
    'default_transport = error:no outside delivery from the mxcert test instance',
  ]);
  const have = new Set(
    (await postconf(['-M'])).stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 2)
      .map((f) => `${f[0]}/${f[1]}`),
  );
  const missing = NEEDED_SERVICES.filter((s) => !have.has(`${s.name}/${s.type}`));
  if (missing.length) await postconf(['-Me', ...missing.map((s) => s.line)]);
  // Postfix waits while main.cf looks freshly edited (mtime within ~2 s);
  // backdate it as test/env/postfix.ts does at start.
  const past = new Date(Date.now() - 60_000);
  for (const f of ['main.cf', 'master.cf']) await utimes(path.join(configDir, f), past, past);
  await postfix.reload();

  const file = (user = 'root') => path.join(spool, user);
  const read = (user?: string) => readFile(file(user), 'utf8').catch(() => '');
  return {
    path: file,
    read,
    waitFor: (re, opts = {}) =>
      pollUntil(async () => {
        const text = await read(opts.user);
        return re.test(text) ? text : undefined;
      }, {
        deadlineMs: opts.deadlineMs ?? 30_000,
        intervalMs: 100,
        what: `a message matching ${re} in ${file(opts.user)}`,
        detail: () => `postfix log (${postfix.logPath}):\n${logTail(postfix.logPath, 30)}`,
      }),
  };
}
