// Which paths mxcert, running as root, may trust (docs/architecture.md,
// "Security model"). A file is only as safe as every directory above it:
// whoever can write a directory can rename its entries and put their own in
// their place, and whoever owns a directory can make it writable. So output
// directories, hooks and the config file are refused unless they and every
// directory up to `/` are owned by root and writable by no one else, the rule
// OpenSSH's StrictModes and sudo apply to the files they trust.
//
// The decision is a pure function of the (path, stat) entries met while
// resolving a path (`trustProblem`); the walk that collects them lstat()s
// each component itself, so a symlink is seen as a symlink and never
// silently followed. The walk uses the synchronous calls: every atomic write
// walks its directory's ten-odd components, and on a pass over a thousand
// certificates the promise and thread-pool round trip of each lstat(2)
// (~25 µs of CPU against ~5 µs for the call itself) was a tenth of the CPU.
import { constants, lstatSync, readlinkSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { MxcertError } from '../errors.js';
import { permissionDenied } from '../util/errno.js';

export type EntryType = 'dir' | 'file' | 'symlink' | 'other';

/**
 * - `ancestor`: a directory passed through on the way.
 * - `parent`: the directory that holds the files (an output directory, or the
 *   directory of a hook or config file).
 * - `target`: the file itself (hook, config).
 * - `link`: a symlink met on the way.
 */
export type EntryRole = 'ancestor' | 'parent' | 'target' | 'link';

export interface PathEntry {
  path: string;
  type: EntryType;
  uid: number;
  /** Permission bits including sticky/setid (st_mode & 07777). */
  mode: number;
  role: EntryRole;
  /** For a symlink: what it points to. */
  linkTarget?: string;
}

export interface TrustPolicy {
  /** Owners that are trusted: root, plus the effective uid when mxcert does not run as root. */
  trustedUids: readonly number[];
  /** Whether a symlink owned by a trusted user may be followed (its target is then checked too). */
  allowSymlinks: boolean;
}

export interface TrustProblem {
  /** The entry that fails. */
  path: string;
  message: string;
  /** Whether the ownership/writability rule is what failed (as opposed to a symlink or a wrong file type). */
  rule: boolean;
}

const STICKY = 0o1000;
const GROUP_OTHER_WRITE = 0o022;

export const octal = (mode: number): string => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;

function ownerText(uid: number, nameOf: (uid: number) => string | undefined): string {
  const name = nameOf(uid);
  return name ? `uid ${uid} (${name})` : `uid ${uid}`;
}

function trustedText(policy: TrustPolicy, nameOf: (uid: number) => string | undefined): string {
  const others = policy.trustedUids.filter((u) => u !== 0);
  return others.length === 0 ? 'root' : `root or ${others.map((u) => ownerText(u, nameOf)).join(', ')} (the user mxcert runs as)`;
}

/**
 * The first entry that makes the path untrustworthy, or undefined.
 *
 * An ancestor that is writable by others but has the sticky bit (like /tmp)
 * passes: in a sticky directory only an entry's owner (or the directory's)
 * may rename or remove it (unlink(2), rename(2) EPERM), and the entry below
 * is checked to be owned by a trusted user. The directory that holds the
 * files themselves gets no such exception: others could still create new
 * names there, next to ours.
 */
export function trustProblem(
  entries: readonly PathEntry[],
  policy: TrustPolicy,
  nameOf: (uid: number) => string | undefined = () => undefined,
): TrustProblem | undefined {
  for (const e of entries) {
    const owner = policy.trustedUids.includes(e.uid) ? undefined : `${e.path} is owned by ${ownerText(e.uid, nameOf)}, not ${trustedText(policy, nameOf)}`;
    switch (e.role) {
      case 'link':
        if (!policy.allowSymlinks) {
          return { path: e.path, message: `${e.path} is a symlink${e.linkTarget ? ` (to ${e.linkTarget})` : ''}; give the real path, mxcert does not follow links here`, rule: false };
        }
        if (owner) return { path: e.path, message: `symlink ${owner}`, rule: true };
        break;
      case 'ancestor':
      case 'parent':
        if (e.type !== 'dir') return { path: e.path, message: `${e.path} is not a directory`, rule: false };
        if (owner) return { path: e.path, message: `directory ${owner}`, rule: true };
        if (e.mode & GROUP_OTHER_WRITE && !(e.role === 'ancestor' && e.mode & STICKY)) {
          return { path: e.path, message: `directory ${e.path} is writable by group or others (mode ${octal(e.mode)})`, rule: true };
        }
        break;
      case 'target':
        if (e.type !== 'file') return { path: e.path, message: `${e.path} is not a regular file`, rule: false };
        if (owner) return { path: e.path, message: owner, rule: true };
        if (e.mode & GROUP_OTHER_WRITE) return { path: e.path, message: `${e.path} is writable by group or others (mode ${octal(e.mode)})`, rule: true };
        break;
    }
  }
  return undefined;
}

/** Root always; the effective uid too when mxcert runs unprivileged (it can only hurt itself then). */
export function defaultTrustedUids(): number[] {
  const euid = process.geteuid?.();
  return euid === undefined || euid === 0 ? [0] : [0, euid];
}

function entryType(st: Stats): EntryType {
  return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
}

/** Linux's limit on symlinks followed in one lookup (path_resolution(7)). */
const MAX_LINKS = 40;

class WalkError extends Error {
  constructor(
    message: string,
    readonly missing: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The entries met while resolving absolute path `p` the way the kernel
 * would, one component at a time with lstat(2), following symlinks by hand
 * so each one and every directory its target passes through is seen. With
 * `allowSymlinks` false the walk stops at the first symlink (which the
 * policy then refuses).
 */
/**
 * What lstat(2) said of each path already met, within one piece of work (a
 * config load: a thousand output directories share their ancestors).
 * Keyed by the full path, and holding no role: the role an entry plays
 * (ancestor, parent, target) depends on the path being checked and is
 * decided for every walk anew.
 */
export type EntryMemo = Map<string, Omit<PathEntry, 'role'>>;

export async function pathEntries(p: string, opts: { kind: 'file' | 'dir'; allowSymlinks: boolean; memo?: EntryMemo }): Promise<PathEntry[]> {
  if (!path.isAbsolute(p)) throw new WalkError(`${p} is not an absolute path`, false);
  const at = (q: string): PathEntry => memoEntryAt(q, opts.memo);
  const entries: PathEntry[] = [at('/')];
  let done: string[] = [];
  let todo = p.split('/').filter(Boolean);
  let links = 0;
  while (todo.length > 0) {
    const name = todo.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      done.pop();
      continue;
    }
    const e = at(`/${[...done, name].join('/')}`);
    entries.push(e);
    if (e.type === 'symlink') {
      e.role = 'link';
      if (!opts.allowSymlinks) return entries;
      if (++links > MAX_LINKS) throw new WalkError(`${p}: too many levels of symbolic links`, false);
      if (e.linkTarget!.startsWith('/')) done = [];
      todo = [...e.linkTarget!.split('/').filter(Boolean), ...todo];
      continue;
    }
    if (todo.length > 0 && e.type !== 'dir') throw new WalkError(`${e.path} is not a directory`, false);
    done.push(name);
  }
  const real = `/${done.join('/')}`;
  const last = entries[entries.length - 1]!;
  if (opts.kind === 'dir') {
    last.role = 'parent';
  } else {
    last.role = 'target';
    const dir = path.dirname(real);
    for (let i = entries.length - 2; i >= 0; i--) {
      const e = entries[i]!;
      if (e.path === dir && e.type === 'dir') {
        e.role = 'parent';
        break;
      }
    }
  }
  return entries;
}

function memoEntryAt(p: string, memo: EntryMemo | undefined): PathEntry {
  const known = memo?.get(p);
  if (known) return { ...known, role: 'ancestor' };
  const e = entryAt(p);
  memo?.set(p, { path: e.path, type: e.type, uid: e.uid, mode: e.mode, ...(e.linkTarget === undefined ? {} : { linkTarget: e.linkTarget }) });
  return e;
}

function entryAt(p: string): PathEntry {
  let st: Stats;
  try {
    st = lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new WalkError(`${p} does not exist`, true, { cause: err });
    if (code === 'ENOTDIR') throw new WalkError(`a parent of ${p} is not a directory`, false, { cause: err });
    if (code === 'EACCES' || code === 'EPERM') throw new WalkError(permissionDenied('inspecting', p), false, { cause: err });
    throw new WalkError(`cannot inspect ${p}: ${code ?? String(err)}`, false, { cause: err });
  }
  const e: PathEntry = { path: p, type: entryType(st), uid: st.uid, mode: st.mode & 0o7777, role: 'ancestor' };
  if (e.type === 'symlink') e.linkTarget = readlinkSync(p);
  return e;
}

export interface TrustedPathOptions {
  /** What the path is, for the message: `output directory`, `hook`, `config file`. */
  what: string;
  kind: 'file' | 'dir';
  /** Default false: any symlink on the way is refused. */
  allowSymlinks?: boolean;
  /** Default: root, plus the effective uid when not root. */
  trustedUids?: readonly number[];
  /** Shared by the checks of one piece of work (see EntryMemo). */
  memo?: EntryMemo;
}

export type TrustResult =
  | { ok: true }
  | {
      ok: false;
      reason: 'missing' | 'untrusted' | 'unreadable';
      /** `refusing hook /x: …`, naming what and the path asked about. */
      message: string;
      /** The part after the colon: which entry fails and why. */
      detail: string;
    };

const RULE = 'it and every directory above it must be owned by root and writable by no one else';

/** Check `p` against the policy; problems come back as a value with a message naming the entry at fault. */
export async function checkTrustedPath(p: string, opts: TrustedPathOptions): Promise<TrustResult> {
  const allowSymlinks = opts.allowSymlinks ?? false;
  let entries: PathEntry[];
  try {
    entries = await pathEntries(p, { kind: opts.kind, allowSymlinks, ...(opts.memo ? { memo: opts.memo } : {}) });
  } catch (err) {
    if (!(err instanceof WalkError)) throw err;
    return { ok: false, reason: err.missing ? 'missing' : 'unreadable', message: `${opts.what} ${p}: ${err.message}`, detail: err.message };
  }
  const problem = trustProblem(entries, { trustedUids: opts.trustedUids ?? defaultTrustedUids(), allowSymlinks }, userName);
  if (!problem) return { ok: true };
  const detail = problem.rule ? `${problem.message}; ${RULE}` : problem.message;
  return { ok: false, reason: 'untrusted', message: `refusing ${opts.what} ${p}: ${detail}`, detail };
}

/** A path refused by the trust rule, or a file refused by readRegularNoFollow. */
export class UntrustedPathError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('untrusted-path', message, options);
  }
}

/** Like checkTrustedPath, but throws (`toError` picks the error type the caller's layer uses). */
export async function assertTrustedPath(
  p: string,
  opts: TrustedPathOptions,
  toError: (message: string) => Error = (m) => new UntrustedPathError(m),
): Promise<void> {
  const r = await checkTrustedPath(p, opts);
  if (!r.ok) throw toError(r.message);
}

// Only used to word an error, so a failed lookup costs nothing but the name.
function userName(uid: number): string | undefined {
  const r = spawnSync('getent', ['passwd', String(uid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const name = r.status === 0 ? r.stdout.split(':')[0] : undefined;
  return name || undefined;
}

// ---------------------------------------------------------------------------
// Reading a file without following a link: check and use on one descriptor.

export interface RegularFile {
  content: Buffer;
  /** st_mode & 0777, from the descriptor the content was read through. */
  mode: number;
  uid: number;
  gid: number;
  dev: number;
  ino: number;
}

/**
 * Read `p` through a descriptor opened with O_NOFOLLOW, taking mode and
 * owner from fstat(2) of that same descriptor, so what is checked is what is
 * read: a symlink swapped in at the last component fails the open (ELOOP)
 * instead of being followed. O_NONBLOCK keeps a FIFO planted there from
 * blocking the open; anything but a regular file is refused after fstat.
 * Undefined when nothing is there.
 */
export async function readRegularNoFollow(p: string): Promise<RegularFile | undefined> {
  let fh;
  try {
    fh = await open(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new UntrustedPathError(`${p} is a symlink; mxcert does not follow it`, { cause: err });
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new UntrustedPathError(`${p} is not a regular file`);
    const content = await fh.readFile();
    return { content, mode: st.mode & 0o777, uid: st.uid, gid: st.gid, dev: st.dev, ino: st.ino };
  } finally {
    await fh.close();
  }
}
