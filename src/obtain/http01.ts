// http-01 (RFC 8555 §8.3): serve the key authorization at
// /.well-known/acme-challenge/TOKEN, either from a built-in listener or as a
// file under an existing web server's webroot.
import http from 'node:http';
import { constants } from 'node:fs';
import { access, lstat, mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { ChallengeError } from '../errors.js';
import type { ChallengeInput, ChallengeSolver } from './solver.js';
import { parseListen } from '../util/host-port.js';
import { readRegularNoFollow } from '../security/trusted-path.js';

const PREFIX = '/.well-known/acme-challenge/';
const TOKEN_RE = /^[A-Za-z0-9_-]+$/; // base64url (RFC 8555 §8.3); anything else is not ours

export function createHttp01Solver(cfg: { listen?: string; webroot?: string }, logger: Logger): ChallengeSolver {
  if (cfg.webroot) return webrootSolver(cfg.webroot, logger);
  if (cfg.listen) return listenerSolver(cfg.listen, logger);
  throw new ChallengeError('http-01 needs either listen or webroot');
}

function listenerSolver(listen: string, logger: Logger): ChallengeSolver {
  const tokens = new Map<string, string>();
  let server: http.Server | undefined;
  let starting: Promise<void> | undefined;

  const start = (): Promise<void> => {
    if (starting) return starting;
    const { host, port } = parseListen(listen);
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      const token = url.startsWith(PREFIX) ? url.slice(PREFIX.length) : undefined;
      const value = token && TOKEN_RE.test(token) ? tokens.get(token) : undefined;
      if (req.method === 'GET' && value) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(value);
      } else {
        res.writeHead(404).end();
      }
    });
    starting = new Promise<void>((resolve, reject) => {
      server!.once('error', (err) => reject(new ChallengeError(`http-01 listener cannot listen on ${listen}: ${err.message}`, { cause: err })));
      server!.listen({ host, port }, () => {
        logger.debug({ listen }, 'http-01 listener up');
        resolve();
      });
    });
    return starting;
  };

  return {
    type: 'http-01',
    async present(ch: ChallengeInput) {
      if (!TOKEN_RE.test(ch.token)) throw new ChallengeError(`refusing odd http-01 token ${JSON.stringify(ch.token)}`);
      tokens.set(ch.token, ch.value);
      await start();
    },
    async cleanup(ch: ChallengeInput) {
      tokens.delete(ch.token);
    },
    async close() {
      const s = server;
      server = undefined;
      starting = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

// The webroot belongs to the web server's user (that is the point of it), so
// anything inside it may have been replaced by a symlink to somewhere only
// root may write. Node has no openat(2); a directory opened with
// O_NOFOLLOW|O_DIRECTORY and named through /proc/self/fd/N gives the same
// guarantee: each step is looked up in the directory already opened, never
// through a path someone can swap in between, and O_NOFOLLOW refuses a
// symlink at each step.
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const CHALLENGE_PATH = ['.well-known', 'acme-challenge'] as const;

const fdPath = (dir: FileHandle, name: string): string => `/proc/self/fd/${dir.fd}/${name}`;

async function openDirNoFollow(at: string, shown: string): Promise<FileHandle> {
  try {
    return await open(at, DIR_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const st = code === 'ENOTDIR' || code === 'ELOOP' ? await lstat(at).catch(() => undefined) : undefined;
    const why = st?.isSymbolicLink()
      ? 'it is a symlink; mxcert does not follow links in the webroot'
      : st
        ? 'it is not a directory'
        : (code ?? String(err));
    throw new ChallengeError(`http-01 webroot: refusing ${shown}: ${why}`, { cause: err });
  }
}

/**
 * Open WEBROOT/.well-known/acme-challenge one step at a time without
 * following links, creating the missing steps (0755, readable by the web
 * server) when `create`. Undefined when a step is missing and not `create`.
 */
async function openChallengeDir(webroot: string, create: boolean, logger: Logger): Promise<FileHandle | undefined> {
  if (create && !(await access('/proc/self/fd').then(() => true, () => false))) {
    throw new ChallengeError('http-01 webroot needs /proc (mxcert creates files in the webroot without following links through it)');
  }
  let dir = await openDirNoFollow(webroot, webroot);
  let shown = webroot;
  let done = false;
  try {
    for (const name of CHALLENGE_PATH) {
      shown = path.join(shown, name);
      let made = false;
      if (create) {
        made = await mkdir(fdPath(dir, name), { mode: 0o755 }).then(
          () => true,
          (err: NodeJS.ErrnoException) => {
            if (err.code === 'EEXIST') return false;
            throw new ChallengeError(`http-01 webroot: cannot create ${shown}: ${err.code ?? err.message}`, { cause: err });
          },
        );
      } else if (!(await lstat(fdPath(dir, name)).then(() => true, () => false))) {
        return undefined;
      }
      const next = await openDirNoFollow(fdPath(dir, name), shown);
      await dir.close();
      dir = next;
      // Only a directory mxcert made is chmod-ed (the umask may have narrowed it).
      if (made) {
        await dir.chmod(0o755);
        logger.debug({ dir: shown }, 'http-01 directory created');
      }
    }
    done = true;
    return dir;
  } finally {
    if (!done) await dir.close();
  }
}

type FileId = { dev: number; ino: number };

/**
 * A regular file holding exactly this challenge's key authorization (which
 * includes our account's thumbprint, RFC 8555 §8.1) is one mxcert wrote,
 * here or in an earlier run whose cleanup failed.
 */
async function ourLeftover(at: string, ch: ChallengeInput): Promise<FileId | undefined> {
  const f = await readRegularNoFollow(at).catch(() => undefined);
  return f && f.content.toString('utf8') === ch.value ? { dev: f.dev, ino: f.ino } : undefined;
}

/** Create the token file in the open challenge directory (O_EXCL|O_NOFOLLOW: never through a link, never over a file). */
async function writeToken(d: FileHandle, ch: ChallengeInput, shown: string): Promise<FileId> {
  const at = fdPath(d, ch.token);
  let fh: FileHandle;
  try {
    fh = await open(at, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    const leftover = (err as NodeJS.ErrnoException).code === 'EEXIST' ? await ourLeftover(at, ch) : undefined;
    if (leftover) return leftover;
    throw new ChallengeError(`http-01 webroot: refusing to write ${shown}: something mxcert did not write is already there (a symlink, a directory or another file)`, { cause: err });
  }
  try {
    // World-readable on purpose: the web server serving it is another user.
    await fh.chmod(0o644);
    await fh.writeFile(ch.value);
    const st = await fh.stat();
    return { dev: st.dev, ino: st.ino };
  } finally {
    await fh.close();
  }
}

/** Remove the token file only if it is the regular file mxcert wrote; anything else stays. */
async function removeToken(d: FileHandle, ch: ChallengeInput, mine: FileId | undefined, shown: string, logger: Logger): Promise<void> {
  const at = fdPath(d, ch.token);
  const st = await lstat(at).catch(() => undefined);
  if (!st) return;
  const ours = mine ?? (await ourLeftover(at, ch));
  if (!st.isFile() || !ours || ours.dev !== st.dev || ours.ino !== st.ino) {
    logger.warn({ file: shown }, 'http-01: leaving a file mxcert did not write');
    return;
  }
  await unlink(at);
}

function webrootSolver(webroot: string, logger: Logger): ChallengeSolver {
  const dir = path.join(webroot, ...CHALLENGE_PATH);
  /** Files this solver created: token → identity, so cleanup removes only those. */
  const created = new Map<string, FileId>();
  return {
    type: 'http-01',
    async present(ch: ChallengeInput) {
      if (!TOKEN_RE.test(ch.token)) throw new ChallengeError(`refusing odd http-01 token ${JSON.stringify(ch.token)}`);
      const file = path.join(dir, ch.token);
      const d = (await openChallengeDir(webroot, true, logger))!;
      try {
        created.set(ch.token, await writeToken(d, ch, file));
        logger.debug({ file }, 'http-01 file written');
      } finally {
        await d.close();
      }
    },
    async cleanup(ch: ChallengeInput) {
      if (!TOKEN_RE.test(ch.token)) return;
      // A step that is a symlink now cannot hold anything mxcert wrote: present never goes through one.
      const d = await openChallengeDir(webroot, false, logger).catch((err: unknown) => {
        if (!(err instanceof ChallengeError)) throw err;
        logger.warn({ err: err.message }, 'http-01: nothing of ours to remove');
        return undefined;
      });
      if (!d) return;
      try {
        await removeToken(d, ch, created.get(ch.token), path.join(dir, ch.token), logger);
      } finally {
        created.delete(ch.token);
        await d.close();
      }
    },
    async close() {},
  };
}
