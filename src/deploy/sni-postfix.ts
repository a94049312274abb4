// Installs Postfix's tls_server_sni_maps table (docs/architecture.md, "SNI
// tables"): the source text goes to a private staging directory next to the
// live map, `postmap -F` builds the database there, and the database, then
// the source, are renamed over the live ones and the directory is fsynced.
// A Postfix process that has the table open sees the old file unlinked
// (st_nlink 0) and restarts itself before its next connection, so no reload
// is needed for the table itself. If postmap fails, nothing live is touched.
//
// The database holds the files' contents, private keys included (-F): it is
// built in a 0700 directory from a 0600 source (postmap creates the database
// with its source's mode) and is forced to 0600 before it is renamed.
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { DeployError, describeError } from '../errors.js';
import { hookProcessEnv } from '../hooks/environment.js';
import { errorTail, OutputTail } from '../hooks/output-tail.js';
import type { Logger } from '../log.js';
import { assertSafeTarget, readIfExists, syncDir } from './atomic-write.js';

export type PostfixMapType = 'hash' | 'lmdb' | 'cdb';

/** The file postmap writes for each table type (postmap(1), DATABASE_README). */
export const MAP_SUFFIX: Record<PostfixMapType, string> = { hash: '.db', lmdb: '.lmdb', cdb: '.cdb' };

export interface PostfixMapTarget {
  /** The source file; the database is this plus MAP_SUFFIX[type]. */
  map: string;
  type: PostfixMapType;
  /** Passed as `postmap -c DIR` (a non-default Postfix instance). */
  configDir?: string;
  postmap: string;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 300_000;
const DB_MODE = 0o600;
/** Enough for postmap's messages; what is kept of them is bounded again by errorTail. */
const MAX_OUTPUT = 1024 * 1024;

/** `postmap -c DIR -F type:SOURCE` (argv, no shell). */
export function postmapArgv(t: Pick<PostfixMapTarget, 'postmap' | 'type' | 'configDir'>, source: string): string[] {
  return [t.postmap, ...(t.configDir ? ['-c', t.configDir] : []), '-F', `${t.type}:${source}`];
}

/**
 * Whether the live map is what `text` would build: the same source text, a
 * database present, and no file it embeds changed since it was built (a
 * deploy or a rollback that could not rebuild it leaves it older).
 */
export async function postfixMapCurrent(text: string, files: readonly string[], t: PostfixMapTarget): Promise<boolean> {
  await assertSafeTarget(t.map);
  const live = await readIfExists(t.map);
  if (!live || live.toString('utf8') !== text) return false;
  const db = await lstat(t.map + MAP_SUFFIX[t.type]).catch(() => undefined);
  if (!db?.isFile()) return false;
  for (const f of files) {
    const st = await stat(f).catch(() => undefined);
    if (!st || st.mtimeMs >= db.mtimeMs) return false;
  }
  return true;
}

/** Build the table from `text` and swap it in; throws DeployError naming the command when postmap fails. */
export async function installPostfixMap(text: string, t: PostfixMapTarget, log: Logger): Promise<void> {
  const suffix = MAP_SUFFIX[t.type];
  const liveDb = t.map + suffix;
  await assertSafeTarget(t.map);
  await assertSafeTarget(liveDb);
  const dir = path.dirname(t.map);
  const base = path.basename(t.map);
  await sweepStaleStaging(dir, base);
  const staging = path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.d`);
  try {
    await mkdir(staging, { mode: 0o700 });
  } catch (err) {
    throw new DeployError(`cannot create ${staging} to build the SNI map: ${describeError(err)}`, { cause: err });
  }
  try {
    const source = path.join(staging, base);
    await writeNew(source, text);
    await runPostmap(t, source, log);
    await settleDatabase(source + suffix);
    try {
      // Database first: a reader that opens the source (postmap -q, Postfix's
      // "older than source" check) never sees a source newer than its database.
      await rename(source + suffix, liveDb);
      await rename(source, t.map);
      await syncDir(dir);
    } catch (err) {
      throw new DeployError(`cannot install the SNI map ${liveDb}: ${describeError(err)}`, { cause: err });
    }
  } finally {
    await rm(staging, { recursive: true, force: true }).catch((err: unknown) => log.warn({ dir: staging, err: describeError(err) }, 'cannot remove the SNI map staging directory'));
  }
}

async function writeNew(file: string, text: string): Promise<void> {
  try {
    const fh = await open(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, DB_MODE);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new DeployError(`cannot write ${file}: ${describeError(err)}`, { cause: err });
  }
}

/** The database postmap wrote: a regular file, 0600, on disk before it is renamed into place. */
async function settleDatabase(db: string): Promise<void> {
  try {
    const fh = await open(db, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new Error('not a regular file');
      if ((st.mode & 0o777) !== DB_MODE) await fh.chmod(DB_MODE);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new DeployError(`postmap did not leave a usable ${db}: ${describeError(err)}`, { cause: err });
  }
}

async function runPostmap(t: PostfixMapTarget, source: string, log: Logger): Promise<void> {
  const argv = postmapArgv(t, source);
  const command = argv.join(' ');
  const timeoutMs = t.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // Loaded on first use (execa costs ~70 ms of start-up otherwise).
  const { execa } = await import('execa');
  const r = await execa(argv[0]!, argv.slice(1), {
    shell: false,
    reject: false,
    stdin: 'ignore',
    timeout: timeoutMs,
    maxBuffer: MAX_OUTPUT,
    // A hook's clean environment (docs/architecture.md, "Security model"):
    // mxcert's own may hold the secrets that `*Env` settings name. C: English messages.
    env: hookProcessEnv({ LC_ALL: 'C' }),
    extendEnv: false,
  });
  const tail = new OutputTail(2048);
  for (const line of String(r.stderr ?? '').split('\n')) tail.push(line);
  const said = errorTail(tail, 'stderr');
  if (!r.failed && r.exitCode === 0) {
    // postmap -F leaves out an entry whose file it cannot read, warns and
    // exits 0: installing that map would serve the default certificate for
    // the name, so it is a failure like any other.
    if (/skipping this entry/.test(String(r.stderr))) throw new DeployError(`${command} left out entries: ${said}; the live SNI map is unchanged`);
    if (said) log.warn({ command, stderr: said }, 'postmap warned while building the SNI map');
    return;
  }
  const code = (r as { code?: string }).code;
  const how =
    r.timedOut ? `timed out after ${timeoutMs} ms` :
    code === 'ENOENT' ? 'could not be run: not found (install Postfix, or set sni.postfix.postmap)' :
    r.exitCode !== undefined ? `exited with code ${r.exitCode}` :
    `was killed by ${r.signal ?? 'a signal'}`;
  throw new DeployError(`${command} ${how}${said ? `: ${said}` : ''}; the live SNI map is unchanged`);
}

/**
 * Staging directories of writers that died (kill -9, power cut) hold a
 * copy of the keys: removed before the next build, like the temporaries of
 * writeFileAtomic. Only directories named like ours whose pid is gone.
 */
async function sweepStaleStaging(dir: string, base: string): Promise<void> {
  const prefix = `.${base}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]{12}\.d$/.exec(n.slice(prefix.length));
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    const p = path.join(dir, n);
    const st = await lstat(p).catch(() => undefined);
    // rm does not follow symlinks inside; a symlink in our name's place is left alone.
    if (st?.isDirectory()) await rm(p, { recursive: true, force: true }).catch(() => undefined);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
