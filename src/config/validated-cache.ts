// The validated config, remembered for `mxcert status` alone. Parsing the
// YAML of a host with a thousand certificates costs more CPU than the rest of
// status together (bench/README.md, "One host with many certificates"), and
// status is run by people waiting at a terminal. What is remembered is the
// schema's output for one exact file, so it can only ever stand in for the
// parse of exactly those bytes by exactly this build:
//
// - keyed by the SHA-256 of the config's bytes (as read, through the same
//   descriptor whose mode and path are checked on every run) and the build
//   id (the SHA-256 of the bundle, scripts/bundle.mjs); without a build id
//   (an unbundled run) nothing is cached;
// - kept in `stateDir/cache/`, which must be, like every directory above it,
//   owned by root and writable by no one else (src/security/trusted-path.ts),
//   and itself closed to group and others (0700); the file is read through
//   O_NOFOLLOW, and must be owned by root and closed to group and others;
// - written only for a config with no problem at all and no secret written
//   inline (acme.eab.hmacKey and the like), so it never holds a secret;
// - the checks that depend on anything but the bytes (the config file's
//   owner and mode and those of its directories, output directories, hooks,
//   secret files and variables, CA bundles) run on every use; any problem
//   they find, or any doubt about the entry, means the full load, whose
//   answer is then exactly that of `mxcert config check`.
//
// `run`, `renew` and `config check` never read it (docs/architecture.md,
// "Security model").
import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError } from '../errors.js';
import { checkTrustedPath, defaultTrustedUids, readRegularNoFollow } from '../security/trusted-path.js';
import { readConfigFile, type ConfigFileRead } from './fs-checks.js';
import type { Examined } from './load.js';
import type { Config } from './schema.js';
import { environmentProblems } from './semantic.js';

export const CACHE_DIR = 'cache';
export const CACHE_FILE = 'validated-config.json';
const FORMAT = 1;
/** The schema's default stateDir (src/config/schema.ts); only where to look, see stateDirHint. */
const DEFAULT_STATE_DIR = '/var/lib/mxcert';

// Set by scripts/bundle.mjs: the SHA-256 of the bundle's own code (with the
// yaml and zod it contains), so an upgrade or rebuild never reuses what an
// other build concluded.
declare const __MXCERT_BUILD_ID__: string | undefined;

export function buildId(): string | undefined {
  return typeof __MXCERT_BUILD_ID__ === 'string' && /^[0-9a-f]{64}$/.test(__MXCERT_BUILD_ID__) ? __MXCERT_BUILD_ID__ : undefined;
}

type CachedConfig = Omit<Config, 'source'>;

interface Entry {
  format: number;
  build: string;
  sha256: string;
  config: CachedConfig;
}

/**
 * The stateDir a config's text names on a top-level `stateDir:` line, else
 * the default; without parsing the YAML. Only where to look: an entry is
 * used only when the config it holds (the schema's output for these very
 * bytes) names this same directory, so a wrong guess costs a full load, never
 * a wrong answer.
 */
export function stateDirHint(text: string): string {
  const m = /^stateDir:[ \t]*(?:"([^"\\\n]*)"|'([^'\n]*)'|([^\s#'"][^\s#]*))[ \t]*(?:#.*)?$/m.exec(text);
  return m ? (m[1] ?? m[2] ?? m[3])! : DEFAULT_STATE_DIR;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Whether `dir` may hold the cache: trusted all the way up (no symlinks), a directory closed to group and others. */
async function trustedCacheDir(dir: string): Promise<boolean> {
  const trust = await checkTrustedPath(dir, { what: 'config cache', kind: 'dir' });
  if (!trust.ok) return false;
  const st = lstatSync(dir);
  return st.isDirectory() && (st.mode & 0o077) === 0;
}

/** The cached config for exactly these bytes and this build, or undefined on any doubt. */
export async function cachedConfig(stateDir: string, bytes: Buffer, build: string): Promise<CachedConfig | undefined> {
  try {
    const dir = path.join(stateDir, CACHE_DIR);
    if (!(await trustedCacheDir(dir))) return undefined;
    const f = await readRegularNoFollow(path.join(dir, CACHE_FILE));
    if (!f || !defaultTrustedUids().includes(f.uid) || (f.mode & 0o077) !== 0) return undefined;
    const e = JSON.parse(f.content.toString('utf8')) as Partial<Entry>;
    if (e.format !== FORMAT || e.build !== build || e.sha256 !== sha256(bytes)) return undefined;
    const config = e.config;
    if (!config || typeof config !== 'object' || config.stateDir !== stateDir || !Array.isArray(config.certificates)) return undefined;
    return config;
  } catch {
    return undefined;
  }
}

/**
 * Remember `config` as the validation of `bytes` by `build`, when its
 * stateDir exists and the cache directory can be trusted; nothing is created
 * above it. Errors are swallowed: the cache only ever saves time.
 */
export async function storeConfig(bytes: Buffer, build: string, config: Config): Promise<boolean> {
  const { source: _source, ...rest } = config;
  const json = JSON.stringify({ format: FORMAT, build, sha256: sha256(bytes), config: rest } satisfies Entry);
  // Only what JSON gives back unchanged: the entry must stand for the schema's output exactly.
  if (!isDeepStrictEqual((JSON.parse(json) as Entry).config, rest)) return false;
  const dir = path.join(config.stateDir, CACHE_DIR);
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
  }
  if (!(await trustedCacheDir(dir))) return false;
  const { writeFileAtomic } = await import('../deploy/atomic-write.js');
  await writeFileAtomic(path.join(dir, CACHE_FILE), json, { mode: 0o600 });
  return true;
}

/**
 * examineConfig for `mxcert status`: the same answer, from the cache when
 * these bytes were validated before by this build and nothing outside them
 * has a problem now; else the full load (which then refreshes the cache).
 */
export async function examineConfigForStatus(file: string, opts: { env?: NodeJS.ProcessEnv; build?: string } = {}): Promise<Examined> {
  const env = opts.env ?? process.env;
  const build = opts.build ?? buildId();
  const source = path.resolve(file);
  let read: ConfigFileRead;
  try {
    read = await readConfigFile(source);
  } catch (err) {
    // Unreadable: the full load says so in its words.
    if (err instanceof ConfigError) return (await import('./load.js')).examineConfig(file, { env });
    throw err;
  }
  if (build && read.problems.length === 0) {
    const stateDir = stateDirHint(read.text);
    const cached = await cachedConfig(stateDir, read.bytes, build);
    if (cached) {
      const config: Config = { ...cached, source };
      const parts = { acme: config.acme, certificates: config.certificates.map((cert, index) => ({ index, cert })), sni: config.sni, fleet: config.fleet, fleetGiven: config.fleet !== undefined };
      // What depends on the bytes alone passed when the entry was written; the rest is asked now.
      if ((await environmentProblems(parts, env)).length === 0) {
        return { config, usable: { source, stateDir: config.stateDir, certificates: config.certificates, acme: config.acme }, problems: [], inlineSecrets: false };
      }
    }
  }
  const examined = await (await import('./load.js')).examineRead(source, read, { env });
  // Written only where the next run will look (a stateDir given in flow style, say, is never found).
  if (build && examined.config && examined.problems.length === 0 && !examined.inlineSecrets && stateDirHint(read.text) === examined.config.stateDir) {
    await storeConfig(read.bytes, build, examined.config).catch(() => false);
  }
  return examined;
}
