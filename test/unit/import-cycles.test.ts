// No module under src/ may import, directly or through others, a module that
// imports it back (scripts/import-cycles.mjs counts type-only and dynamic
// imports too).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
// @ts-expect-error: a plain .mjs script, without type declarations.
import { importCycles } from '../../scripts/import-cycles.mjs';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
const cyclesIn = importCycles as (root: string) => string[][];

// Known cycles, being removed: the DANE publisher dispatcher imports each
// publisher, and each publisher imports the dispatcher's shared helpers.
const ALLOWED: string[][] = [['dane/publish-hook.ts', 'dane/publish-pdns.ts', 'dane/publish-rfc2136.ts', 'dane/publisher.ts']];

describe('import cycles', () => {
  it('src/ has none beyond the allowlist', () => {
    const allowed = new Set(ALLOWED.map((c) => c.join(' ')));
    const found = cyclesIn(SRC).filter((c) => !allowed.has(c.join(' ')));
    assert.deepEqual(found, [], `import cycles in src/:\n${found.map((c) => c.join(' ↔ ')).join('\n')}`);
  });

  it('finds a cycle through a type-only import and a dynamic import, and ignores look-alikes in comments', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-cycles-'));
    try {
      await mkdir(path.join(dir, 'cli'));
      await writeFile(path.join(dir, 'cli/main.ts'), "export type Ctx = { n: number };\nexport async function go() { await import('./cmd.js'); }\n");
      await writeFile(path.join(dir, 'cli/cmd.ts'), "import type { Ctx } from './main.js';\nexport const f = (c: Ctx) => c.n;\n");
      await writeFile(path.join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = b;\n");
      await writeFile(path.join(dir, 'b.ts'), "// import { a } from './a.js';\nexport const b = 1;\n");
      assert.deepEqual(cyclesIn(dir), [['cli/cmd.ts', 'cli/main.ts']]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
