// Bundle the compiled CLI (dist/src, type-checked by tsc) into dist/bundle,
// the code bin/mxcert.js runs. Why: Node 20 has no compile cache, and
// resolving, reading and evaluating ~150 separate module files cost
// `mxcert renew` and `mxcert status` 40–60 ms of every start.
// Code splitting keeps each command's heavy parts in chunks loaded on demand,
// as the dynamic imports in src/cli/main.ts intend.
//
// Entry points are the files other processes start by path (they must keep
// their names: src/daemon/run.ts forks ./pass-child.js, ./config-child.js and
// ./fleet-child.js next to itself). What stays outside the bundle: scripts/bundle-externals.mjs.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXTERNAL } from './bundle-externals.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'bundle');
await rm(out, { recursive: true, force: true });
// The build id (src/config/validated-cache.ts): the SHA-256 of everything
// bundled, so a config validated by one build is never taken as validated by
// another. Built once with a placeholder of the id's length, hashed, and the
// placeholder replaced (same length: the source maps stay right). The
// placeholder is a hash itself, so nothing else in the bundle spells it.
const PLACEHOLDER = createHash('sha256').update('mxcert build id placeholder').digest('hex');
const result = await build({
  write: false,
  define: { __MXCERT_BUILD_ID__: JSON.stringify(PLACEHOLDER) },
  absWorkingDir: root,
  entryPoints: {
    main: 'dist/src/cli/main.js',
    'pass-child': 'dist/src/daemon/pass-child.js',
    'config-child': 'dist/src/daemon/config-child.js',
    'fleet-child': 'dist/src/daemon/fleet-child.js',
  },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // The chain check loads @peculiar/x509 with a dynamic import and uses its
  // named exports. Its package.json has no "exports" and esbuild, for
  // platform node, prefers "main" (the CommonJS build), whose chunk would
  // only have a default export; its "module" build keeps the named ones.
  alias: { '@peculiar/x509': '@peculiar/x509/build/x509.es.js' },
  // CommonJS dependencies (dns-packet, …) call require(); ESM output has none.
  banner: { js: "import { createRequire as __mxcertCreateRequire } from 'node:module'; const require = __mxcertCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  // Names in stack traces and error class names (MxcertError subclasses set this.name from new.target.name).
  keepNames: true,
  logLevel: 'warning',
});
const hash = createHash('sha256');
for (const f of [...result.outputFiles].sort((a, b) => a.path.localeCompare(b.path))) hash.update(f.path.slice(out.length)).update(f.contents);
const id = hash.digest('hex');
if (!result.outputFiles.some((f) => f.text.includes(PLACEHOLDER))) throw new Error('bundle: the build id placeholder is not in the bundle');
for (const f of result.outputFiles) {
  await mkdir(path.dirname(f.path), { recursive: true });
  await writeFile(f.path, f.path.endsWith('.js') ? f.text.replaceAll(PLACEHOLDER, id) : f.contents);
}
