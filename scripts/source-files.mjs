// The TypeScript sources under a folder, for the structure checks
// (import-cycles.mjs, long-functions.mjs).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** Every .ts file under `dir` (declaration files left out), as absolute paths, sorted. */
export function sourceFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir)) {
    const p = path.join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}
