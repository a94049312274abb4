// Secret files as operators have them (test/unit/fixtures/key-files): what
// ddns-confgen and tsig-keygen write, hand-edited BIND key files with
// comments and several keys, a bare base64 secret, certbot's rfc2136 INI.
// Each fixture's expected secret, key name and algorithm, or its problem.
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keyBlocks, secretFromKeyFile, type KeyFileResult } from '../../src/config/key-files.js';
import { readSecret } from '../../src/config/secrets.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'key-files');
const fixture = (name: string) => readFile(path.join(FIXTURES, name), 'utf8');

// The fixtures' secrets: base64 of readable text, so a leak is easy to spot.
const ALPHA = 'Zml4dHVyZSBzZWNyZXQgb2Yga2V5IGFscGhhLCAzMmI=';
const BETA = 'Zml4dHVyZSBzZWNyZXQgb2Yga2V5IGJldGEsIDMyYnk=';
const GAMMA = 'Zml4dHVyZSBzZWNyZXQgb2Yga2V5IGdhbW1hLCAzMmI=';
// Written by the BIND tools themselves.
const DDNS_CONFGEN = 'ohB7LWWuLAgqvzLj2vNbKHavZq36ZcYbpfmuhJbdkNA=';
const TSIG_KEYGEN = '0E7vrO0rjk4OCJK5DZ52Rybymiamv4PrgX0Er4ZIzPkDmj1ppTbJ/H4tBw1bxlthzyDnWOdOWPZ0uzY53Pxp1Q==';

const CERTBOT_MD5_NOTE = ' (the file names no dns_rfc2136_algorithm; certbot then signs with HMAC-MD5)';

const cases: Array<{ file: string; keyName?: string; want: KeyFileResult }> = [
  { file: 'ddns-confgen.key', want: { ok: true, value: DDNS_CONFGEN, keyName: 'mx-acme.example.org', algorithm: 'hmac-sha256' } },
  { file: 'tsig-keygen.key', want: { ok: true, value: TSIG_KEYGEN, keyName: 'mxcert', algorithm: 'hmac-sha512' } },
  { file: 'comments.key', want: { ok: true, value: ALPHA, keyName: 'current', algorithm: 'hmac-sha256' } },
  { file: 'trailing-comments.key', want: { ok: true, value: ALPHA, keyName: 'current', algorithm: 'hmac-sha256' } },
  { file: 'several-keys.key', keyName: 'alpha.example', want: { ok: true, value: ALPHA, keyName: 'alpha.example', algorithm: 'hmac-sha256' } },
  { file: 'several-keys.key', keyName: 'alpha.example.', want: { ok: true, value: ALPHA, keyName: 'alpha.example', algorithm: 'hmac-sha256' } },
  { file: 'several-keys.key', keyName: 'beta', want: { ok: true, value: BETA, keyName: 'beta', algorithm: 'hmac-sha384' } },
  { file: 'several-keys.key', keyName: 'gamma', want: { ok: true, value: GAMMA, keyName: 'gamma', algorithm: 'hmac-sha512' } },
  {
    file: 'several-keys.key',
    keyName: 'delta',
    want: { ok: false, message: '3 key blocks ("alpha.example", "beta", "gamma") and none named "delta"' },
  },
  {
    file: 'several-keys.key',
    want: { ok: false, message: '3 key blocks ("alpha.example", "beta", "gamma") and none named (no name given)' },
  },
  { file: 'no-secret.key', want: { ok: false, message: 'key block "incomplete" has no secret statement' } },
  { file: 'raw-base64.key', want: { ok: true, value: ALPHA } },
  { file: 'raw-base64.key', keyName: 'ignored', want: { ok: true, value: ALPHA } },
  { file: 'empty.key', want: { ok: false, message: 'file is empty' } },
  { file: 'certbot.ini', want: { ok: true, value: BETA, keyName: 'certbot-key.', algorithm: 'HMAC-SHA512' } },
  {
    file: 'certbot-no-algorithm.ini',
    want: { ok: true, value: GAMMA, keyName: 'certbot-key', algorithm: 'hmac-md5', algorithmNote: CERTBOT_MD5_NOTE },
  },
  { file: 'certbot-no-secret.ini', want: { ok: false, message: 'certbot credentials file has no dns_rfc2136_secret' } },
];

describe('secret files (key-files.ts)', () => {
  for (const c of cases) {
    it(`${c.file}${c.keyName === undefined ? '' : ` for key ${c.keyName}`}`, async () => {
      const got = secretFromKeyFile(await fixture(c.file), c.keyName);
      // keyName/algorithm are absent, not undefined, when the file states none.
      assert.deepEqual(JSON.parse(JSON.stringify(got)), c.want);
      if (!got.ok) for (const s of [ALPHA, BETA, GAMMA]) assert.ok(!got.message.includes(s), 'a message never holds a secret');
    });
  }

  it('comments hide key blocks, on their own lines or after a statement: only the live one is seen', async () => {
    for (const f of ['comments.key', 'trailing-comments.key']) assert.deepEqual(keyBlocks(await fixture(f)).map((b) => b.name), ['current'], f);
  });

  it('a comment marker inside a quoted string is text, not a comment', () => {
    const bind = 'key "a#b//c" { algorithm hmac-sha256; secret "ab//cd/*ef==" ; };';
    assert.deepEqual(secretFromKeyFile(bind), { ok: true, value: 'ab//cd/*ef==', keyName: 'a#b//c', algorithm: 'hmac-sha256' });
  });

  it('readSecret reads a fixture through the 0600 rule', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mxcert-key-files-'));
    try {
      const f = path.join(dir, 'several-keys.key');
      await copyFile(path.join(FIXTURES, 'several-keys.key'), f);
      await chmod(f, 0o644);
      await assert.rejects(readSecret({ secretFile: f, name: 'beta' }), /readable by others \(mode 0644\); use 0600/);
      await chmod(f, 0o600);
      assert.equal(await readSecret({ secretFile: f, name: 'beta' }), BETA);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
