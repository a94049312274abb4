// Config checks for `sni:` that the schema cannot make (docs/architecture.md,
// "SNI tables" and "Security model"): the tables' directories follow the rule
// for output directories, postmap must be a trusted executable, and every
// path a table will name must be one the MTA can read back from it.
import { constants as fsc } from 'node:fs';
import { access, lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import { dovecotPathProblem, dovecotPaths } from '../deploy/sni-dovecot-conf.js';
import { sniSources } from '../deploy/sni-names.js';
import { postfixMapPathProblem } from '../deploy/sni-postfix-map.js';
import { MAP_SUFFIX } from '../deploy/sni-postfix.js';
import { checkTrustedPath } from '../security/trusted-path.js';
import { errnoText } from './errno-text.js';
import type { CertificateConfig, SniConfig } from './schema.js';

type Indexed = { index: number; cert: CertificateConfig }[];

export async function sniProblems(sni: SniConfig, certs: Indexed, opts: { partial?: boolean } = {}): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [...sniPathProblems(sni, certs, opts)];
  if (sni.postfix) {
    const p = sni.postfix;
    for (const f of [p.map, p.map + MAP_SUFFIX[p.type]]) {
      const problem = await targetProblem(f, 'SNI map directory');
      if (problem) {
        out.push({ path: 'sni.postfix.map', message: problem });
        break;
      }
    }
    const postmap = await executableProblem(p.postmap);
    if (postmap) out.push({ path: 'sni.postfix.postmap', message: postmap });
    if (p.configDir) {
      const mainCf = await stat(path.join(p.configDir, 'main.cf')).then(
        (st) => (st.isFile() ? undefined : 'is not a regular file'),
        (err: unknown) => errnoText(err),
      );
      if (mainCf) out.push({ path: 'sni.postfix.configDir', message: `${path.join(p.configDir, 'main.cf')}: ${mainCf} (postmap -c reads it)` });
    }
  }
  if (sni.dovecot) {
    const problem = await targetProblem(sni.dovecot.include, 'SNI include directory');
    if (problem) out.push({ path: 'sni.dovecot.include', message: problem });
  }
  return out;
}

/**
 * Paths a table would name but the MTA could not read back from it, at the
 * output's YAML path; and a table no certificate would ever fill.
 */
export function sniPathProblems(sni: SniConfig, certs: Indexed, opts: { partial?: boolean } = {}): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  const report = (at: string, message: string | undefined) => {
    if (!message || seen.has(at)) return;
    seen.add(at);
    out.push({ path: at, message: `${message} (sni)` });
  };
  let postfixFiles = 0;
  let dovecotFiles = 0;
  const byName = new Map(certs.map((c) => [c.cert.name, c.index]));
  for (const s of sniSources(certs.map((c) => c.cert))) {
    const at = `certificates[${byName.get(s.cert)}].output`;
    for (const f of s.files) {
      if (sni.postfix && f.combined) {
        postfixFiles++;
        report(`${at}.combined`, postfixMapPathProblem(f.combined));
      }
      if (!sni.dovecot) continue;
      const files = dovecotPaths(f);
      dovecotFiles += files.length;
      for (const kind of ['key', 'fullchain', 'combined'] as const) {
        const file = f[kind];
        if (file && files.includes(file)) report(`${at}.${kind}`, dovecotPathProblem(file));
      }
    }
  }
  // With certificates that failed the schema, "no certificate fills it" may be untrue.
  if (opts.partial) return out;
  if (sni.postfix && postfixFiles === 0) out.push({ path: 'sni.postfix', message: 'no server certificate has a combined output, so the map would stay empty' });
  if (sni.dovecot && dovecotFiles === 0) out.push({ path: 'sni.dovecot', message: 'no server certificate has a combined output or key and fullchain outputs, so the include would stay empty' });
  return out;
}

/** Like an output file: a trusted directory that exists, and no symlink or odd file at the target. */
async function targetProblem(file: string, what: string): Promise<string | undefined> {
  const dir = path.dirname(file);
  const trust = await checkTrustedPath(dir, { what, kind: 'dir' });
  if (!trust.ok) return trust.reason === 'missing' && trust.detail === `${dir} does not exist` ? `directory ${dir} does not exist` : trust.message;
  const st = await lstat(file).catch(() => undefined);
  if (st?.isSymbolicLink()) return `${file} is a symlink; mxcert replaces files atomically and does not follow links`;
  if (st && !st.isFile()) return `${file} exists and is not a regular file`;
  return undefined;
}

/** postmap runs as root: like a hook, it and the directories above it must be root's alone. */
async function executableProblem(file: string): Promise<string | undefined> {
  const st = await stat(file).catch((err: unknown) => err as NodeJS.ErrnoException);
  if (st instanceof Error) return st.code === 'ENOENT' ? `${file} does not exist (install Postfix)` : `${file}: ${errnoText(st)}`;
  if (!st.isFile()) return `${file} is not a regular file`;
  if (!(await access(file, fsc.X_OK).then(() => true, () => false))) return `${file} is not executable`;
  const trust = await checkTrustedPath(file, { what: 'postmap', kind: 'file', allowSymlinks: true });
  return trust.ok ? undefined : trust.message;
}
