#!/usr/bin/env node
// Lists import cycles among the modules under src/ (docs/architecture.md,
// "Decisions and effects": effects sit behind small seams, and a seam that
// imports its caller back is not one). Every edge counts: static imports,
// `import type`, re-exports and dynamic `import()`, because a type-only
// circle still ties two modules' designs together.
//
//   node scripts/import-cycles.mjs [DIR]   prints one cycle per line, exits 1 if any
//
// Uses the TypeScript compiler's own import scanner (ts.preProcessFile), so
// comments and strings that merely look like imports are not counted.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { sourceFiles } from './source-files.mjs';

/** file → the files under the same tree that it imports (relative specifiers only). */
export function importGraph(root) {
  const files = new Set(sourceFiles(root));
  const graph = new Map();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = new Set();
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const target = path.resolve(path.dirname(file), fileName).replace(/\.js$/, '.ts');
      if (files.has(target)) deps.add(target);
    }
    graph.set(file, [...deps].sort());
  }
  return graph;
}

/**
 * Strongly connected components with more than one module, or one that
 * imports itself (Tarjan's algorithm). Each is a sorted list of files
 * relative to `root`.
 */
export function importCycles(root) {
  const graph = importGraph(root);
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const out = [];
  let next = 0;
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || graph.get(v).includes(v)) out.push(scc.map((f) => path.relative(root, f)).sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  const cycles = importCycles(root);
  for (const c of cycles) console.log(c.join(' ↔ '));
  process.exitCode = cycles.length > 0 ? 1 : 0;
}
