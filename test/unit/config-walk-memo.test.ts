// One config load walks each path component once (src/security/trusted-path.ts,
// EntryMemo) and lists each output directory once (src/config/fs-checks.ts).
// What is shared must never carry one path's verdict over to another: a
// sibling directory owned by nobody, a sticky directory that is fine above an
// output directory but not as one, a symlink among many regular files.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { examineConfig } from '../../src/config/load.js';

const NOBODY = 65534;
const root = mkdtempSync(path.join(tmpdir(), 'mxcert-walk-memo-'));
after(() => rmSync(root, { recursive: true, force: true }));

function dirAt(rel: string, mode: number, uid = 0): string {
  const d = path.join(root, rel);
  mkdirSync(d, { recursive: true });
  chmodSync(d, mode);
  chownSync(d, uid, uid);
  return d;
}

const cert = (name: string, dir: string, extra: Record<string, unknown> = {}) => ({
  name,
  domains: [`${name}.example.test`],
  challenge: { type: 'http-01', http: { listen: '127.0.0.1:5002' } },
  output: { combined: path.join(dir, `${name}-{keytype}.pem`) },
  ...extra,
});

async function problemsOf(certificates: unknown[]): Promise<string[]> {
  const file = path.join(root, `config-${certificates.length}-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify({ stateDir: path.join(root, 'state'), acme: { directory: 'https://acme.example.test/dir', email: 'a@example.test' }, certificates }), { mode: 0o600 });
  return (await examineConfig(file, { env: {} })).problems.map((p) => `${p.path}: ${p.message}`);
}

describe('checks shared within one config load', () => {
  it('a sibling output directory owned by nobody is refused for the second certificate sharing the parent', async () => {
    dirAt('shared', 0o755);
    const a = dirAt('shared/a', 0o700);
    const b = dirAt('shared/b', 0o700, NOBODY);
    const problems = await problemsOf([cert('mx0', a), cert('mx1', b), cert('mx2', a)]);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^certificates\[1\]\.output\.combined: refusing output directory .*\/shared\/b: directory .*\/shared\/b is owned by uid 65534/);
  });

  it('a sticky world-writable directory passes above an output directory, and is refused as one, whichever is checked first', async () => {
    const sticky = dirAt('sticky', 0o1777);
    const below = dirAt('sticky/ok', 0o700);
    for (const order of [[cert('mx3', below), cert('mx4', sticky)], [cert('mx4', sticky), cert('mx3', below)]]) {
      const problems = await problemsOf(order);
      const at = order[0]!.name === 'mx4' ? 0 : 1;
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0]!, new RegExp(`^certificates\\[${at}\\]\\.output\\.combined: refusing output directory .*/sticky: directory .*/sticky is writable by group or others \\(mode 01777\\)`));
    }
  });

  it('a hook in a directory owned by nobody is refused next to a trusted one in a sibling directory', async () => {
    dirAt('hooks', 0o755);
    const good = dirAt('hooks/good', 0o755);
    const bad = dirAt('hooks/bad', 0o755, NOBODY);
    for (const d of [good, bad]) {
      writeFileSync(path.join(d, 'reload'), '#!/bin/sh\nexit 0\n');
      chmodSync(path.join(d, 'reload'), 0o755);
    }
    const out = dirAt('hook-out', 0o700);
    const problems = await problemsOf([
      cert('mx5', out, { hooks: { deploy: [path.join(good, 'reload')] } }),
      cert('mx6', out, { hooks: { deploy: [path.join(bad, 'reload')] } }),
    ]);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0]!, /^certificates\[1\]\.hooks\.deploy\[0\]: refusing hook .*\/hooks\/bad\/reload: directory .*\/hooks\/bad is owned by uid 65534/);
  });

  it('one symlink and one directory among many regular output files in one directory are found', async () => {
    const out = dirAt('many', 0o700);
    const certs = Array.from({ length: 50 }, (_, i) => cert(`m${String(i).padStart(2, '0')}`, out));
    for (const c of certs) writeFileSync(path.join(out, `${c.name}-ecdsa-p256.pem`), 'x', { mode: 0o600 });
    rmSync(path.join(out, 'm17-ecdsa-p256.pem'));
    symlinkSync('/etc/passwd', path.join(out, 'm17-ecdsa-p256.pem'));
    rmSync(path.join(out, 'm33-ecdsa-p256.pem'));
    mkdirSync(path.join(out, 'm33-ecdsa-p256.pem'));
    const problems = await problemsOf(certs);
    assert.deepEqual(problems, [
      `certificates[17].output.combined: ${path.join(out, 'm17-ecdsa-p256.pem')} is a symlink; mxcert replaces files atomically and does not follow links`,
      `certificates[33].output.combined: ${path.join(out, 'm33-ecdsa-p256.pem')} exists and is not a regular file`,
    ]);
  });
});
