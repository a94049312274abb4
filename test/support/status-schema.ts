// Validates `mxcert status --json` output against docs/status.schema.json,
// the documented contract (a stable, documented schema).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';

export const STATUS_SCHEMA_PATH = new URL('../../docs/status.schema.json', import.meta.url);
// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

let compiled: ReturnType<Ajv['compile']> | undefined;

/** Throws (an assertion naming every violation) unless `doc` matches the schema. */
export function assertStatusSchema(doc: unknown): void {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    addFormats(ajv);
    compiled = ajv.compile(JSON.parse(readFileSync(STATUS_SCHEMA_PATH, 'utf8')) as object);
  }
  const ok = compiled(doc);
  assert.ok(ok, `status --json does not match docs/status.schema.json: ${JSON.stringify(compiled.errors, null, 1)}\n${JSON.stringify(doc, null, 1)}`);
}
