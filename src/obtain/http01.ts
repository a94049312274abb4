// http-01 (RFC 8555 §8.3): serve the key authorization at
// /.well-known/acme-challenge/TOKEN, either from a built-in listener or as a
// file under an existing web server's webroot.
import http from 'node:http';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { ChallengeError } from '../errors.js';
import type { ChallengeInput, ChallengeSolver } from './solver.js';
import { parseListen } from '../util/host-port.js';

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

function webrootSolver(webroot: string, logger: Logger): ChallengeSolver {
  const dir = path.join(webroot, '.well-known', 'acme-challenge');
  return {
    type: 'http-01',
    async present(ch: ChallengeInput) {
      if (!TOKEN_RE.test(ch.token)) throw new ChallengeError(`refusing odd http-01 token ${JSON.stringify(ch.token)}`);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      // World-readable on purpose: the web server serving it is another user.
      await writeFile(path.join(dir, ch.token), ch.value, { mode: 0o644 });
      logger.debug({ file: path.join(dir, ch.token) }, 'http-01 file written');
    },
    async cleanup(ch: ChallengeInput) {
      if (TOKEN_RE.test(ch.token)) await rm(path.join(dir, ch.token), { force: true });
    },
    async close() {},
  };
}
