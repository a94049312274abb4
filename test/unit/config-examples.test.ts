// The shipped examples are documentation users copy; they must stay valid
// against the schema. Secret files and webroots do not exist here, so only
// the schema is checked, not loadConfig's file checks.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { configSchema } from '../../src/config/schema.js';

const root = new URL('../../config/', import.meta.url);

async function parseExample(name: string) {
  const raw: unknown = parse(await readFile(new URL(name, root), 'utf8'));
  const r = configSchema.safeParse(raw);
  assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues, null, 2));
  return r.data;
}

describe('example configs', () => {
  it('example.yaml: Postfix MX with dns-01 over RFC 2136 and dual keys', async () => {
    const cfg = await parseExample('example.yaml');
    const c = cfg.certificates[0]!;
    assert.deepEqual(c.keys, ['ecdsa-p256', 'rsa-2048']);
    assert.equal(c.output.combined, '/etc/postfix/tls/mx1-{keytype}.pem');
    assert.deepEqual(c.hooks.deploy, ['/usr/lib/mxcert/hooks/postfix-reload']);
    assert.deepEqual(c.verify.smtp, ['127.0.0.1:25']);
    assert.equal(c.challenge.type, 'dns-01');
    if (c.challenge.type === 'dns-01') {
      assert.equal(c.challenge.dns.provider, 'rfc2136');
      assert.equal(c.challenge.dns.tsig.secretFile, '/etc/mxcert/tsig.key');
    }
  });

  it('http-01.example.yaml: built-in listener', async () => {
    const cfg = await parseExample('http-01.example.yaml');
    const c = cfg.certificates[0]!;
    assert.equal(c.challenge.type, 'http-01');
    if (c.challenge.type === 'http-01') assert.equal(c.challenge.http.listen, '[::]:80');
  });
});

describe('every shipped example in config/ is valid', () => {
  it('parses against the schema', async () => {
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(root)).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 7, `examples: ${files.join(', ')}`);
    for (const f of files) await parseExample(f);
  });
  it('the DANE examples enable DANE with a publisher', async () => {
    for (const f of ['dane-rfc2136.example.yaml', 'dane-pdns.example.yaml']) {
      const c = (await parseExample(f)).certificates[0]!;
      assert.equal(c.dane?.enabled, true, f);
      assert.ok(c.dane?.publisher, f);
    }
  });
});
