// The config's checks against the file system (docs/architecture.md,
// "Security model"): the config file itself (who may write it, whether it may
// hold inline secrets), output directories, hooks, the http-01 webroot and CA
// bundles. Each check returns problems at YAML paths instead of throwing, so
// all of them are reported at once; only a config file that cannot be read
// at all ends the load.
import { constants as fsc, lstatSync, readdirSync } from 'node:fs';
import { access, lstat, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { expandOutputPath, OUTPUT_KINDS } from '../deploy/output-paths.js';
import { checkTrustedPath, type EntryMemo } from '../security/trusted-path.js';
import { errnoText, readProblem } from './errno-text.js';
import { asRootHint, isPermissionError, permissionDenied } from '../util/errno.js';
import type { CertificateConfig, HookCommand } from './schema.js';
import { formatPath } from './yaml-path.js';
import { onceEach, type Once } from '../util/once.js';

// ---------------------------------------------------------------------------
// The config file

/** What readConfigFile read: the text, and the exact bytes it was decoded from (what a cached validation is keyed by). */
export interface ConfigFileRead {
  text: string;
  bytes: Buffer;
  mode: number;
  problems: ConfigProblem[];
}

/**
 * Read the config through one descriptor, so the mode that decides whether
 * it may hold inline secrets is the mode of what was read. A config that
 * anyone but root can write (it, or a directory above it) is refused: its
 * hooks and output paths decide what root runs and writes. A root-owned
 * symlink to it (config management) is followed like the rest of the path.
 */
export async function readConfigFile(source: string): Promise<ConfigFileRead> {
  const problems: ConfigProblem[] = [];
  const trust = await checkTrustedPath(source, { what: 'config file', kind: 'file', allowSymlinks: true });
  // Missing files and the like are reported by the read below, in its words.
  if (!trust.ok && trust.reason === 'untrusted') problems.push({ path: '', message: trust.message });
  const fail = (why: string, cause?: unknown): never => {
    throw new ConfigError([...problems, { path: '', message: `cannot read config file ${source}: ${why}` }], { cause });
  };
  const fh = await open(source, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY).catch((err: unknown) =>
    fail(isPermissionError(err) ? `permission denied${asRootHint()}` : errnoText(err), err),
  );
  try {
    const st = await fh.stat();
    if (!st.isFile()) fail(st.isDirectory() ? 'is a directory' : 'not a regular file');
    const bytes = await fh.readFile();
    return { text: bytes.toString('utf8'), bytes, mode: st.mode & 0o777, problems };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return fail(errnoText(err), err);
  } finally {
    await fh.close();
  }
}

/** Names of hook environment variables that look like they hold a secret. */
const SECRET_ENV_NAME_RE = /secret|passw(or)?d|token|api_?key|hmac|private/i;

/**
 * YAML paths of secrets written into the config itself: `acme.eab.hmacKey`,
 * and hook publisher environment entries whose names look like secrets
 * (`dane.publisher.env` is documented as "no secrets here"). Refused when
 * group or others may read the file: a readable secret is a leaked one.
 */
export function inlineSecretProblems(raw: unknown, mode: number): ConfigProblem[] {
  if (!(mode & 0o044)) return [];
  const modeText = (mode & 0o777).toString(8).padStart(4, '0');
  const readable = `readable by ${mode & 0o004 ? 'others' : 'group'} (mode ${modeText})`;
  const out: ConfigProblem[] = [];
  const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const root = obj(raw);
  const eab = obj(obj(root?.['acme'])?.['eab']);
  if (eab && eab['hmacKey'] !== undefined) {
    out.push({ path: 'acme.eab.hmacKey', message: `an inline secret, and the config file is ${readable}; use hmacKeyFile (mode 0600) or hmacKeyEnv, or make the config 0600` });
  }
  const certs = Array.isArray(root?.['certificates']) ? (root['certificates'] as unknown[]) : [];
  certs.forEach((c, i) => {
    const hookEnv = obj(obj(obj(obj(c)?.['dane'])?.['publisher'])?.['env']);
    for (const name of Object.keys(hookEnv ?? {})) {
      if (!SECRET_ENV_NAME_RE.test(name)) continue;
      out.push({ path: formatPath(['certificates', i, 'dane', 'publisher', 'env', name]), message: `looks like a secret, and the config file is ${readable}; pass the hook a file name instead, or make the config 0600` });
    }
  });
  return out;
}

// ---------------------------------------------------------------------------
// Outputs and hooks

/**
 * Each output's directory must exist and, with every directory above it, be
 * a real directory owned by root and writable by no one else; the target
 * must not be a symlink (docs/architecture.md, "Security model"):
 * found at config time, not after a certificate has been ordered.
 */
export async function outputTargetProblems(index: number, cert: CertificateConfig, once: Once = onceEach(), memo: EntryMemo = new Map()): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const kind of OUTPUT_KINDS) {
    const template = cert.output[kind];
    if (template === undefined || !path.isAbsolute(template) || template.endsWith('/')) continue;
    const at = `certificates[${index}].output.${kind}`;
    for (const keytype of cert.keys) {
      const file = path.normalize(expandOutputPath(template, { keytype, name: cert.name }));
      if (seen.has(at)) break;
      const problem = await outputFileProblem(file, once, memo);
      if (problem) {
        out.push({ path: at, message: problem });
        seen.add(at);
      }
    }
  }
  return out;
}

async function outputFileProblem(file: string, once: Once, memo: EntryMemo): Promise<string | undefined> {
  const dir = path.dirname(file);
  // Certificates usually share their output directory: walk it once per load;
  // different directories share their ancestors: lstat each of those once.
  const trust = await once(`output-dir:${dir}`, () => checkTrustedPath(dir, { what: 'output directory', kind: 'dir', memo }));
  if (!trust.ok) return trust.reason === 'missing' && trust.detail === `${dir} does not exist` ? `directory ${dir} does not exist` : trust.message;
  // One listing per directory and load instead of an lstat per file: the
  // directory's entry types (d_type) say the same, without building a Stats
  // object with four Dates for each of a thousand certificates' files.
  const listing = await once(`output-listing:${dir}`, async () => entryKinds(dir));
  const kind = listing ? (listing.get(path.basename(file)) ?? 'absent') : 'unknown';
  if (kind === 'absent') return undefined; // Not there yet is fine: the first deploy creates it.
  if (kind === 'unknown') return lstatProblem(file);
  if (kind === 'symlink') return symlinkOutput(file);
  if (kind !== 'file') return `${file} exists and is not a regular file`;
  return undefined;
}

type EntryKind = 'file' | 'symlink' | 'other' | 'unknown';

/** Each entry's type, as the directory listing gives it; undefined when it cannot be listed (each file is then asked alone). */
function entryKinds(dir: string): Map<string, EntryKind> | undefined {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  const kinds = new Map<string, EntryKind>();
  for (const e of entries) {
    // Some file systems leave d_type unset (DT_UNKNOWN): every is*() is false, and lstat decides.
    const known = e.isFile() || e.isDirectory() || e.isFIFO() || e.isSocket() || e.isCharacterDevice() || e.isBlockDevice();
    kinds.set(e.name, e.isSymbolicLink() ? 'symlink' : e.isFile() ? 'file' : known ? 'other' : 'unknown');
  }
  return kinds;
}

const symlinkOutput = (file: string) => `${file} is a symlink; mxcert replaces files atomically and does not follow links`;

function lstatProblem(file: string): string | undefined {
  let f;
  try {
    // Synchronous like the walk above (src/security/trusted-path.ts).
    f = lstatSync(file);
  } catch (err) {
    if (isPermissionError(err)) return permissionDenied('inspecting', file);
    // Not there yet is fine: the first deploy creates it.
  }
  if (f?.isSymbolicLink()) return symlinkOutput(file);
  if (f && !f.isFile()) return `${file} exists and is not a regular file`;
  return undefined;
}

/**
 * Hooks must exist, be executable and be trusted (owned by root, like every
 * directory above them, and writable by no one else: a hook runs as root)
 * before anything is ordered. The DANE hook publisher's command too.
 */
export async function hookProblems(index: number, cert: CertificateConfig, once: Once = onceEach(), memo: EntryMemo = new Map()): Promise<ConfigProblem[]> {
  const hooks: { at: string; h: HookCommand }[] = [];
  for (const which of ['deploy', 'failure'] as const) {
    for (const [i, h] of cert.hooks[which].entries()) hooks.push({ at: `certificates[${index}].hooks.${which}[${i}]`, h });
  }
  const publisher = cert.dane?.publisher;
  if (publisher?.provider === 'hook') hooks.push({ at: `certificates[${index}].dane.publisher.command`, h: publisher.command });
  const out: ConfigProblem[] = [];
  for (const { at, h } of hooks) {
    const argv0 = typeof h === 'string' ? h : h[0];
    if (!argv0 || !path.isAbsolute(argv0)) {
      // A plain string is an absPath in the schema, which reports it already.
      if (typeof h !== 'string') out.push({ path: at, message: 'the command must be an absolute path' });
      continue;
    }
    const problem = await once(`hook:${argv0}`, () => hookFileProblem(argv0, memo));
    if (problem) out.push({ path: at, message: problem });
  }
  return out;
}

async function hookFileProblem(argv0: string, memo: EntryMemo): Promise<string | undefined> {
  let st;
  try {
    st = await stat(argv0);
  } catch (err) {
    // Only a hook that is not there "does not exist": one mxcert may not look at is another problem.
    if (isPermissionError(err)) return `hook: ${permissionDenied('reading', argv0)}`;
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? `hook ${argv0} does not exist` : `hook ${argv0}: ${errnoText(err)}`;
  }
  if (!st.isFile()) return `hook ${argv0} is not a regular file`;
  if (!(await access(argv0, fsc.X_OK).then(() => true, () => false))) return `hook ${argv0} is not executable`;
  const trust = await checkTrustedPath(argv0, { what: 'hook', kind: 'file', allowSymlinks: true, memo });
  return trust.ok ? undefined : trust.message;
}

// ---------------------------------------------------------------------------
// CA bundles and the webroot

export async function checkCaBundle(file: string, at: string, once: Once = onceEach()): Promise<ConfigProblem[]> {
  const message = await once(`ca-bundle:${file}`, () => caBundleProblem(file));
  return message === undefined ? [] : [{ path: at, message }];
}

async function caBundleProblem(file: string): Promise<string | undefined> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return 'not a regular file';
    const pem = await readFile(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) return 'no PEM certificate in file';
    return undefined;
  } catch (err) {
    return readProblem(file, err);
  }
}

// The webroot is opened without following a link (src/obtain/http01.ts):
// its owner, the web server's user, could otherwise point it anywhere.
export async function checkWebroot(dir: string, at: string): Promise<ConfigProblem[]> {
  try {
    const st = await lstat(dir);
    if (st.isSymbolicLink()) return [{ path: at, message: `${dir} is a symlink; give the real path, mxcert does not follow links in the webroot` }];
    if (!st.isDirectory()) return [{ path: at, message: `${dir} is not a directory` }];
    return [];
  } catch (err) {
    return [{ path: at, message: `directory ${dir}: ${errnoText(err)}` }];
  }
}
