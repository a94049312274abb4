// Crash-safe file replacement (docs/architecture.md, "Files on disk"). A reader of the target at any
// instant sees the whole old file or the whole new one: the data goes to a
// temporary file in the same directory (same filesystem, so rename(2) is
// atomic), is fsynced, renamed over the target, and the directory is fsynced
// so the rename itself survives a power cut.
import { constants } from 'node:fs';
import { lstat, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { DeployError } from '../errors.js';
import { hookProcessEnv } from '../hooks/environment.js';
import { checkTrustedPath, readRegularNoFollow } from '../security/trusted-path.js';

export interface WriteOptions {
  /** Permission bits the file is created with (the process umask may narrow them, never widen). */
  mode: number;
  uid?: number;
  gid?: number;
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Refuse targets another local user could redirect or swap (docs/architecture.md, "Files on disk",
 * docs/architecture.md "Security model"): a directory that is not, with
 * every directory above it, owned by root and writable by no one else (they
 * could rename our file away or plant their own between check and use), a
 * symlink anywhere on the way (we would write wherever it points), or a
 * target that is not a regular file.
 */
export async function assertSafeTarget(target: string): Promise<void> {
  const dir = path.dirname(target);
  const trust = await checkTrustedPath(dir, { what: 'directory', kind: 'dir' });
  if (!trust.ok) throw new DeployError(`${trust.reason === 'untrusted' ? 'refusing to write' : 'cannot write'} ${target}: ${trust.detail}`);
  try {
    const st = await lstat(target);
    if (st.isSymbolicLink()) throw new DeployError(`refusing to write ${target}: it is a symlink`);
    if (!st.isFile()) throw new DeployError(`refusing to write ${target}: it is not a regular file`);
  } catch (err) {
    if (err instanceof DeployError) throw err;
    if (errCode(err) !== 'ENOENT') throw new DeployError(`cannot inspect ${target}: ${errMsg(err)}`, { cause: err });
  }
}

/**
 * Replace `target` atomically with `data`. The temporary file is created
 * with O_CREAT|O_EXCL and the final mode, so a key is never readable by
 * anyone else, not even for the instant between create and chmod, and
 * ownership is set before the first byte is written.
 *
 * The symlink check races with other writers, but harmlessly: rename(2)
 * replaces a symlink planted after the check instead of following it.
 */
export async function writeFileAtomic(target: string, data: string | Buffer, opts: WriteOptions): Promise<void> {
  const tmp = await writeTemporary(target, data, opts);
  await commitTemporaries([{ tmp, target }], path.dirname(target));
}

/**
 * Several files in one directory, each replaced atomically as
 * writeFileAtomic does it (a reader sees each whole, old or new), with one
 * fsync of the directory after the last rename instead of one after each:
 * every rename is durable when this returns. For sets written together
 * (the certbot-style lineage: four files, three fewer directory fsyncs per
 * certificate). If one fails, the temporaries not yet renamed are removed.
 */
export async function writeFilesAtomic(files: Array<{ target: string; data: string | Buffer; opts: WriteOptions }>): Promise<void> {
  const dir = path.dirname(files[0]?.target ?? '/');
  if (files.some((f) => path.dirname(f.target) !== dir)) throw new DeployError(`cannot write ${files.map((f) => f.target).join(', ')}: not all in one directory`);
  const temps: Array<{ tmp: string; target: string }> = [];
  try {
    for (const f of files) temps.push({ tmp: await writeTemporary(f.target, f.data, f.opts), target: f.target });
  } catch (err) {
    await Promise.all(temps.map((t) => unlink(t.tmp).catch(() => undefined)));
    throw err;
  }
  await commitTemporaries(temps, dir);
}

/** The data in a new temporary next to `target`, fsynced and closed; its name. */
async function writeTemporary(target: string, data: string | Buffer, opts: WriteOptions): Promise<string> {
  await assertSafeTarget(target);
  const dir = path.dirname(target);
  await sweepStaleTemps(dir, path.basename(target), Date.now(), await tempNamesIn(dir));
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  let tmpExists = false;
  try {
    fh = await open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, opts.mode & 0o777);
    tmpExists = true;
    if (opts.uid !== undefined || opts.gid !== undefined) await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
    await fh.writeFile(data);
    await fh.sync();
    const closing = fh;
    fh = undefined;
    await closing.close();
    return tmp;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    if (tmpExists) await unlink(tmp).catch(() => undefined);
    throw new DeployError(`cannot write ${target}: ${errMsg(err)}`, { cause: err });
  }
}

/** Rename each temporary over its target, in order, then fsync the directory so the renames survive a power cut. */
async function commitTemporaries(temps: Array<{ tmp: string; target: string }>, dir: string): Promise<void> {
  let i = 0;
  try {
    for (; i < temps.length; i++) await rename(temps[i]!.tmp, temps[i]!.target);
    await syncDir(dir);
  } catch (err) {
    await Promise.all(temps.slice(i).map((t) => unlink(t.tmp).catch(() => undefined)));
    throw new DeployError(`cannot write ${temps[Math.min(i, temps.length - 1)]!.target}: ${errMsg(err)}`, { cause: err });
  }
}

/**
 * Create `target`, which must not exist yet, with `data`: O_CREAT|O_EXCL|
 * O_NOFOLLOW and the final mode from the first byte, written and fsynced.
 * No temporary and no rename: only for a directory that nothing else reads
 * until the caller renames the whole directory into place (and fsyncs it
 * first), like a staged version's. The caller checks that directory once
 * (assertSafeTarget) before writing into it.
 */
export async function createFileExclusive(target: string, data: string | Buffer, opts: WriteOptions): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(target, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, opts.mode & 0o777);
    if (opts.uid !== undefined || opts.gid !== undefined) await fh.chown(opts.uid ?? -1, opts.gid ?? -1);
    await fh.writeFile(data);
    await fh.sync();
    const closing = fh;
    fh = undefined;
    await closing.close();
  } catch (err) {
    await fh?.close().catch(() => undefined);
    throw new DeployError(`cannot write ${target}: ${errMsg(err)}`, { cause: err });
  }
}

/** Make the entries of `dir` durable (its renames and new files). */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    await syncDir(dir);
  } catch (err) {
    throw new DeployError(`cannot sync directory ${dir}: ${errMsg(err)}`, { cause: err });
  }
}

/** Temporaries of `base` that an older version named without the writer's pid: stale after this long. */
const UNOWNED_TEMP_STALE_MS = 10 * 60_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errCode(err) === 'EPERM';
  }
}

/**
 * A writer killed between create and rename (kill -9, power cut) leaves
 * `.NAME.PID.RAND.tmp` behind, 0600 and possibly holding a private key
 * (the fault suite). Before writing NAME again, remove the temporaries
 * of NAME whose writer is gone. A live pid (ours, a concurrent writer, or a
 * reused pid) keeps its file: a missed sweep is harmless, a wrong one would
 * break another writer's rename. Only regular files are touched.
 */
export async function sweepStaleTemps(dir: string, base: string, now = Date.now(), listing?: Set<string>): Promise<string[]> {
  const prefix = `.${base}.`;
  let names: Iterable<string>;
  try {
    names = listing ?? (await readdir(dir));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of [...names]) {
    if (!n.startsWith(prefix) || !n.endsWith('.tmp')) continue;
    const m = /^(?:(\d+)\.)?[0-9a-f]{12}\.tmp$/.exec(n.slice(prefix.length));
    if (!m) continue;
    const p = path.join(dir, n);
    try {
      const st = await lstat(p);
      if (!st.isFile()) continue;
      const stale = m[1] !== undefined ? Number(m[1]) !== process.pid && !pidAlive(Number(m[1])) : now - st.mtimeMs > UNOWNED_TEMP_STALE_MS;
      if (!stale) continue;
      await unlink(p);
      listing?.delete(n);
      removed.push(n);
    } catch {
      /* gone already, or not ours to remove: leave it */
    }
  }
  return removed;
}

/**
 * The names in `dir` that look like temporaries (`.NAME….tmp`), as they were
 * the first time this process wrote there. Listing a directory costs time in
 * proportion to what it holds, and an output directory shared by a thousand
 * certificates holds thousands of files: listing it before every write made
 * a pass quadratic in the number of certificates. A temporary left by a
 * killed writer is there before this process starts writing (a second
 * writer at the same time is kept out by the agent lock), so one listing
 * per directory finds it; one that appears later anyway is swept by the
 * next process, and a missed sweep is harmless (see sweepStaleTemps).
 */
const tempListings = new Map<string, Promise<Set<string>>>();

function tempNamesIn(dir: string): Promise<Set<string>> {
  let listing = tempListings.get(dir);
  if (!listing) {
    listing = readdir(dir).then(
      (names) => new Set(names.filter((n) => n.startsWith('.') && n.endsWith('.tmp'))),
      () => new Set<string>(),
    );
    tempListings.set(dir, listing);
  }
  return listing;
}

/** Remove `target` if it exists, durably (the directory is fsynced). */
export async function removeFile(target: string): Promise<void> {
  try {
    await unlink(target);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return;
    throw new DeployError(`cannot remove ${target}: ${errMsg(err)}`, { cause: err });
  }
  try {
    await syncDir(path.dirname(target));
  } catch (err) {
    throw new DeployError(`cannot remove ${target}: ${errMsg(err)}`, { cause: err });
  }
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the rename is still atomic there.
    if (errCode(err) !== 'EINVAL' && errCode(err) !== 'ENOTSUP' && errCode(err) !== 'EOPNOTSUPP') throw err;
  } finally {
    await fh.close();
  }
}

/**
 * The file's content, or undefined if it does not exist. Read through an
 * O_NOFOLLOW descriptor: a symlink or anything but a regular file is
 * refused, never followed (see readRegularNoFollow).
 */
export async function readIfExists(target: string): Promise<Buffer | undefined> {
  return (await readRegularNoFollow(target))?.content;
}

/**
 * A deployed file as mxcert last wrote it, for reconciling against the
 * store: only from a directory that passes assertSafeTarget, and through an
 * O_NOFOLLOW descriptor. Undefined if it does not exist; DeployError if it
 * may not be trusted.
 */
export async function readDeployed(target: string): Promise<Buffer | undefined> {
  await assertSafeTarget(target);
  try {
    return await readIfExists(target);
  } catch (err) {
    throw new DeployError(`cannot read ${target}: ${errMsg(err)}`, { cause: err });
  }
}

/**
 * Numeric ids for the config's `output.owner` / `output.group` (names or
 * numbers). Names go through getent, so NSS sources (LDAP, sssd, systemd
 * userdb) resolve like they do for `chown`; /etc/passwd and /etc/group are
 * the fallback where getent is missing.
 */
export function resolveOwner(owner?: string | number, group?: string | number): { uid?: number; gid?: number } {
  const out: { uid?: number; gid?: number } = {};
  if (owner !== undefined) out.uid = resolveId('passwd', owner);
  if (group !== undefined) out.gid = resolveId('group', group);
  return out;
}

/**
 * Ids already looked up by this process. Each lookup is a getent process
 * (milliseconds, with the event loop blocked while it runs), and a pass over
 * a thousand certificates with `owner`/`group` names asked for the same two
 * names two thousand times. An account's id does not change while a pass
 * runs; the next process looks again. Unknown names are not kept.
 */
const knownIds = new Map<string, number>();

function resolveId(db: 'passwd' | 'group', name: string | number): number {
  if (typeof name === 'number') return name;
  if (/^\d+$/.test(name)) return Number(name);
  const known = knownIds.get(`${db}:${name}`);
  if (known !== undefined) return known;
  const what = db === 'passwd' ? 'user' : 'group';
  const line = getentLine(db, name);
  // passwd: name:x:uid:gid:...  group: name:x:gid:members — the id is field 3 in both.
  const id = line?.split(':')[2];
  if (id === undefined || !/^\d+$/.test(id)) throw new DeployError(`unknown ${what} "${name}"`);
  knownIds.set(`${db}:${name}`, Number(id));
  return Number(id);
}

function getentLine(db: 'passwd' | 'group', name: string): string | undefined {
  // node:child_process, not execa: importing execa costs every command ~70 ms at start-up.
  // A hook's clean environment: mxcert's own may hold the secrets that
  // `*Env` settings name (docs/architecture.md, "Security model").
  const r = spawnSync('getent', [db, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: hookProcessEnv({}) });
  if (r.status === 0) return r.stdout.split('\n')[0];
  if (r.status === 2) return undefined; // getent(1): key not found
  // getent missing or unusable here: read the local databases directly.
  const file = db === 'passwd' ? '/etc/passwd' : '/etc/group';
  return readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
}
