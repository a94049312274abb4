#!/usr/bin/env node
// Lists functions under src/ longer than a limit (default 80 lines): the
// size at which a function usually does more than one thing.
//
//   node scripts/long-functions.mjs [--max N] [DIR]
//
// Prints `FILE:LINE NAME (N lines)`, longest first; exits 1 if any. Counts
// every function-like node (declarations, methods, constructors, accessors,
// arrow functions and function expressions, nested ones on their own), from
// its first line to its last, comments inside included.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { sourceFiles } from './source-files.mjs';

function nameOf(node, sf) {
  if (node.name) return node.name.getText(sf);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))) return parent.name.getText(sf);
  return '(anonymous)';
}

/** Functions in the .ts files under `root` longer than `max` lines. */
export function longFunctions(root, max = 80) {
  const out = [];
  for (const file of sourceFiles(root)) {
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
        const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
        const lines = last - first + 1;
        if (lines > max) out.push({ file: path.relative(root, file), line: first, name: nameOf(node, sf), lines });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out.sort((a, b) => b.lines - a.lines);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--max');
  const max = at >= 0 ? Number(args.splice(at, 2)[1]) : 80;
  const root = path.resolve(args[0] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  const found = longFunctions(root, max);
  for (const f of found) console.log(`${f.file}:${f.line} ${f.name} (${f.lines} lines)`);
  process.exitCode = found.length > 0 ? 1 : 0;
}
