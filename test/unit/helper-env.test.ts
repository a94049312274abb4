// The programs mxcert runs for itself (nsupdate, getent) get a clean
// environment, like a hook's (docs/architecture.md, "Security model"): under
// `mxcert renew` from a shell, mxcert's own environment holds the secrets
// that `*Env` settings name, and neither program needs them.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveOwner } from '../../src/deploy/atomic-write.js';
import { Rfc2136Updater } from '../../src/dns/rfc2136.js';

// As `tsig.secretEnv: MXCERT_TEST_TSIG_SECRET` would have it set.
const SECRET_NAME = 'MXCERT_TEST_TSIG_SECRET';
const SECRET = 'c2VjcmV0LWluLW14Y2VydHMtZW52aXJvbm1lbnQtb25seQ==';

let dir: string;
const saved = { path: process.env.PATH, secret: process.env[SECRET_NAME] };

/** A program at `file` that writes its environment to `dump`, then runs `then` (or exits 0). */
async function dumper(file: string, dump: string, then?: string): Promise<void> {
  await writeFile(file, `#!/bin/sh\nenv > '${dump}'\n${then ?? 'cat > /dev/null; exit 0'}\n`);
  await chmod(file, 0o755);
}

function variables(dump: string): Map<string, string> {
  return new Map(dump.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mxcert-helper-env-'));
  process.env[SECRET_NAME] = SECRET;
  process.env.LANG = 'C.UTF-8';
});
after(async () => {
  process.env.PATH = saved.path;
  if (saved.secret === undefined) delete process.env[SECRET_NAME];
  else process.env[SECRET_NAME] = saved.secret;
  await rm(dir, { recursive: true, force: true });
});

describe('environment of helper programs', () => {
  it('nsupdate gets PATH, LANG and LC_ALL=C, never a secret from mxcert\'s environment', async () => {
    const nsupdate = path.join(dir, 'nsupdate');
    const dump = path.join(dir, 'nsupdate.env');
    await dumper(nsupdate, dump);
    const updater = new Rfc2136Updater({
      server: { host: '127.0.0.1', port: 53 },
      zone: 'example.test',
      tsig: { name: 'mxcert', algorithm: 'hmac-sha256', secret: 'dHNpZy1rZXktZm9yLXRoZS10ZXN0' },
      nsupdatePath: nsupdate,
    });
    await updater.update({ adds: [{ name: '_acme-challenge.example.test', type: 'TXT', ttl: 60, data: 'token' }] });
    const text = await readFile(dump, 'utf8');
    assert.ok(!text.includes(SECRET), 'the secret is not in nsupdate\'s environment');
    const env = variables(text);
    assert.equal(env.has(SECRET_NAME), false);
    assert.equal(env.get('PATH'), process.env.PATH);
    assert.equal(env.get('LANG'), 'C.UTF-8');
    assert.equal(env.get('LC_ALL'), 'C');
  });

  it('getent gets PATH and LANG, never a secret from mxcert\'s environment', async () => {
    const bin = path.join(dir, 'bin');
    await mkdir(bin);
    const dump = path.join(dir, 'getent.env');
    await dumper(path.join(bin, 'getent'), dump, 'exec /usr/bin/getent "$@"');
    process.env.PATH = `${bin}:${saved.path}`;
    try {
      assert.deepEqual(resolveOwner('nobody', 'nogroup'), { uid: 65534, gid: 65534 });
    } finally {
      process.env.PATH = saved.path;
    }
    const text = await readFile(dump, 'utf8');
    assert.ok(!text.includes(SECRET), 'the secret is not in getent\'s environment');
    const env = variables(text);
    assert.equal(env.has(SECRET_NAME), false);
    assert.equal(env.get('PATH'), `${bin}:${saved.path}`);
    assert.equal(env.get('LANG'), 'C.UTF-8');
  });
});
