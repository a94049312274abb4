// The npm packages the Debian package must ship: the bundle's externals
// (scripts/bundle-externals.mjs) and everything they depend on at run time,
// found the way Node's resolver finds them (a package's own node_modules
// first, then each parent's), so nested versions land where Node looks.
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';

function findPackage(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dir === path.dirname(dir)) return undefined;
  }
}

/**
 * The run-time dependency closure of `names`, resolved from `repo`:
 * [{ name, version, license, author, dir, rel }] where `rel` is the package's
 * path below the top node_modules ("pino-pretty/node_modules/sonic-boom").
 * Optional dependencies that are not installed are skipped, as npm does.
 */
export function dependencyClosure(repo, names) {
  const top = realpathSync(path.join(repo, 'node_modules'));
  const found = new Map();
  const visit = (name, fromDir, optional) => {
    const dir = findPackage(name, fromDir);
    if (!dir) {
      if (optional) return;
      throw new Error(`${name} (needed from ${fromDir}) is not installed: run npm ci first`);
    }
    if (found.has(dir)) return;
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const rel = path.relative(top, dir);
    if (rel.startsWith('..')) throw new Error(`${name} resolves outside ${top}: ${dir}`);
    found.set(dir, { name: pkg.name, version: pkg.version, license: pkg.license, author: pkg.author, bin: pkg.bin, dir, rel });
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
  };
  for (const name of names) visit(name, repo, false);
  return [...found.values()].sort((a, b) => a.rel.localeCompare(b.rel));
}

// What a package needs at run time is its code and package.json files. Tests,
// benchmarks, docs, examples, type declarations, dotfiles and its own command
// line tools (its "bin") are left out; licences go into the copyright file.
const DROP_DIRS = new Set([
  'node_modules', 'test', 'tests', '__tests__', 'bench', 'benchmark', 'benchmarks', 'doc', 'docs',
  'docsify', 'example', 'examples', 'fixture', 'fixtures', 'coverage', 'types',
]);
const DROP_FILES = /^(bench|benchmark|example|test|eslint\.config|tsconfig)\.(c|m)?js(on)?$/;
const KEEP_FILES = /\.(c|m)?js$|\.json$/;

function binFiles(pkg) {
  const bins = typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {});
  return new Set(bins.map((b) => path.normalize(b)));
}

/** Files of one package to ship, as paths relative to its directory. */
export function runtimeFiles(pkg) {
  const bins = binFiles(pkg);
  const out = [];
  const walk = (rel) => {
    for (const entry of readdirSync(path.join(pkg.dir, rel), { withFileTypes: true })) {
      const name = path.join(rel, entry.name);
      if (entry.name.startsWith('.')) continue;
      if (entry.isDirectory()) {
        if (!DROP_DIRS.has(entry.name)) walk(name);
      } else if (entry.isFile() && KEEP_FILES.test(entry.name) && !DROP_FILES.test(entry.name) && !bins.has(name)) {
        out.push(name);
      }
    }
  };
  walk('');
  return out.sort();
}

/**
 * Bare module specifiers in the bundle that are neither Node built-ins nor
 * in `external`: each would fail with ERR_MODULE_NOT_FOUND once installed,
 * where no node_modules but the shipped one exists.
 */
export function unresolvedImports(bundleSources, external) {
  // As esbuild writes them: static `import … from "x"` / `import "x"` /
  // `export … from "x"` at the start of a line, and `import("x")` /
  // `require("x")` not inside a string. Text such as an error message that
  // says `from 'alg'` or 'import "reflect-metadata"' is not an import.
  const statics = /^[ \t]*(?:import|export)\b[^;'"`]*?"([^"\s./][^"\s]*)"/gm;
  const calls = /(?<![\w"'`$.])(?:import|require)\(\s*"([^"\s./][^"\s]*)"\s*\)/g;
  const missing = new Set();
  for (const src of bundleSources) {
    for (const m of [...src.matchAll(statics), ...src.matchAll(calls)]) {
      const s = m[1];
      const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0];
      if (!isBuiltin(s) && !external.includes(name)) missing.add(s);
    }
  }
  return [...missing].sort();
}
