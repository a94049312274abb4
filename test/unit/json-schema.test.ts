// config/mxcert.schema.json is generated from the zod schema for editors.
// It must never go stale (a schema change without `npm run gen:schema`
// fails here), every shipped example must validate against it, and it must
// be as strict as the loader about unknown keys.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { generateSchemaText, SCHEMA_PATH } from '../../scripts/gen-schema.js';
import { configSchema } from '../../src/config/schema.js';

const configDir = new URL('../../config/', import.meta.url);
// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv) => Ajv;

async function validator(): Promise<ValidateFunction> {
  const schema = JSON.parse(await readFile(SCHEMA_PATH, 'utf8')) as object;
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormats(ajv);
  return ajv.compile(schema);
}

async function examples(): Promise<string[]> {
  return (await readdir(configDir)).filter((f) => f.endsWith('.yaml')).sort();
}

function minimal(): Record<string, unknown> {
  return {
    acme: { directory: 'https://acme.example.test/directory' },
    certificates: [
      {
        name: 'mx1',
        domains: ['mx1.example.com'],
        challenge: { type: 'http-01', http: { listen: '[::]:80' } },
      },
    ],
  };
}

describe('config/mxcert.schema.json', () => {
  it('equals freshly generated output (run `npm run gen:schema` after changing src/config/schema.ts)', async () => {
    const committed = await readFile(SCHEMA_PATH, 'utf8');
    assert.equal(committed, generateSchemaText(), 'config/mxcert.schema.json is stale: run npm run gen:schema');
  });

  it('is a valid draft-07 schema that ajv compiles in strict mode', async () => {
    const validate = await validator();
    assert.equal(typeof validate, 'function');
  });

  it('every example in config/ validates, and points editors at the schema on its first line', async () => {
    const validate = await validator();
    const files = await examples();
    assert.ok(files.length >= 7, `examples: ${files.join(', ')}`);
    for (const f of files) {
      const text = await readFile(new URL(f, configDir), 'utf8');
      assert.equal(text.split('\n')[0], '# yaml-language-server: $schema=./mxcert.schema.json', `${f}: first line`);
      const ok = validate(parse(text));
      assert.ok(ok, `${f}: ${JSON.stringify(validate.errors, null, 2)}`);
    }
  });

  it('a minimal config validates; one with the new mtaSts and usage keys too', async () => {
    const validate = await validator();
    assert.ok(validate(minimal()), JSON.stringify(validate.errors));
    const cfg = minimal();
    (cfg['certificates'] as Array<Record<string, unknown>>)[0]!['usage'] = ['server', 'client'];
    (cfg['certificates'] as Array<Record<string, unknown>>)[0]!['mtaSts'] = {
      domain: 'example.com',
      policyUrl: 'https://127.0.0.1:8443/.well-known/mta-sts.txt',
      caBundle: '/etc/mxcert/mta-sts-ca.pem',
      dnsServer: '127.0.0.1:53',
    };
    assert.ok(validate(cfg), JSON.stringify(validate.errors));
    assert.ok(configSchema.safeParse(cfg).success, 'zod agrees');
  });

  it('unknown keys fail, at the top level and nested, like the loader', async () => {
    const validate = await validator();
    const top = { ...minimal(), stateDri: '/var/lib/mxcert' };
    assert.equal(validate(top), false);
    assert.ok(validate.errors?.some((e) => e.keyword === 'additionalProperties' && e.params['additionalProperty'] === 'stateDri'), JSON.stringify(validate.errors));
    assert.equal(configSchema.safeParse(top).success, false, 'zod agrees');

    const nested = minimal();
    (nested['certificates'] as Array<Record<string, unknown>>)[0]!['outptu'] = { combined: '/etc/postfix/tls/mx1.pem' };
    assert.equal(validate(nested), false);
    assert.ok(validate.errors?.some((e) => e.params['additionalProperty'] === 'outptu'), JSON.stringify(validate.errors));

    const mtaSts = minimal();
    (mtaSts['certificates'] as Array<Record<string, unknown>>)[0]!['mtaSts'] = { domain: 'example.com', policyURL: 'https://x.test/' };
    assert.equal(validate(mtaSts), false);
    assert.ok(validate.errors?.some((e) => e.params['additionalProperty'] === 'policyURL'), JSON.stringify(validate.errors));
  });

  it('wrong shapes fail: missing required keys, bad enum values, bad host:port', async () => {
    const validate = await validator();
    assert.equal(validate({ certificates: [] }), false, 'acme missing, certificates empty');
    const badUsage = minimal();
    (badUsage['certificates'] as Array<Record<string, unknown>>)[0]!['usage'] = ['server', 'peer'];
    assert.equal(validate(badUsage), false, 'usage enum');
    const badDns = minimal();
    (badDns['certificates'] as Array<Record<string, unknown>>)[0]!['mtaSts'] = { domain: 'example.com', dnsServer: '127.0.0.1' };
    assert.equal(validate(badDns), false, 'dnsServer needs a port');
  });
});
