// Generates config/mxcert.schema.json (JSON Schema draft-07) from the zod
// schema in src/config/schema.ts, for editors: with the first line
//   # yaml-language-server: $schema=./mxcert.schema.json
// a YAML-aware editor completes and checks the config as you type.
//
//   npm run gen:schema            write the file
//   npm run gen:schema -- --check exit 1 if the committed file is stale
//
// test/unit/json-schema.test.ts fails when the committed file differs from
// what this generates, so a schema change cannot forget it.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { configSchema } from '../src/config/schema.js';

export const SCHEMA_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'config', 'mxcert.schema.json');

/** The schema file's exact text (2-space JSON, trailing newline). */
export function generateSchemaText(): string {
  const generated = zodToJsonSchema(configSchema, {
    target: 'jsonSchema7',
    // What a user writes (durations as "90d" or seconds), not what the parser returns.
    effectStrategy: 'input',
    // Inline every sub-schema: some editors resolve deep $ref paths poorly.
    $refStrategy: 'none',
    // Keys with defaults are optional in the file.
    pipeStrategy: 'input',
  }) as Record<string, unknown>;
  const schema = {
    $schema: generated['$schema'],
    $id: 'https://mxcert.invalid/schema/config.json',
    title: 'mxcert configuration',
    description:
      'Config file of mxcert, the certificate lifecycle agent for mail hosts. Generated from src/config/schema.ts by scripts/gen-schema.ts; do not edit. `mxcert config check` also checks files, secrets and relations this schema cannot see.',
    ...Object.fromEntries(Object.entries(generated).filter(([k]) => k !== '$schema')),
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

async function main(argv: string[]): Promise<number> {
  const text = generateSchemaText();
  if (argv.includes('--check')) {
    const current = await readFile(SCHEMA_PATH, 'utf8').catch(() => '');
    if (current === text) return 0;
    process.stderr.write(`${path.relative(process.cwd(), SCHEMA_PATH)} is stale: run npm run gen:schema\n`);
    return 1;
  }
  await writeFile(SCHEMA_PATH, text);
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_PATH)}\n`);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
