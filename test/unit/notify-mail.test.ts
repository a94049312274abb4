// hooks/notify-mail composes a message and hands it to sendmail(1). Here a
// stand-in sendmail records its argv and stdin; delivery through a real
// Postfix is the job of the operations tests.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const hook = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../hooks/notify-mail');

describe('hooks/notify-mail', () => {
  it('mails the recipient the certificate, names and error, via sendmail -t -i', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-notify-'));
    const fake = path.join(dir, 'sendmail');
    await writeFile(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/argv\ncat > ${dir}/stdin\n`, { mode: 0o755 });
    await promisify(execFile)(hook, ['hostmaster@example.test'], {
      env: {
        PATH: process.env.PATH,
        SENDMAIL: fake,
        POSTFIX_CONFIG_DIR: '/tmp/pf',
        MXCERT_EVENT: 'failure',
        MXCERT_CERT_NAME: 'mx1',
        MXCERT_KEY_TYPE: 'ecdsa-p256',
        MXCERT_DOMAINS: 'mx1.example.test',
        MXCERT_ERROR: 'obtain: newOrder failed [rateLimited]: too many certificates',
      },
    });
    assert.deepEqual((await readFile(path.join(dir, 'argv'), 'utf8')).trim().split('\n'), ['-C', '/tmp/pf', '-t', '-i']);
    const msg = await readFile(path.join(dir, 'stdin'), 'utf8');
    assert.match(msg, /^To: hostmaster@example\.test$/m);
    assert.match(msg, /^Subject: mxcert failure: mx1 \(ecdsa-p256\) on /m);
    assert.match(msg, /^Auto-Submitted: auto-generated$/m);
    assert.match(msg, /\[rateLimited\]: too many certificates/);
    assert.match(msg, /Names: mx1\.example\.test/);
  });
});
