// DANE reconciles against the key in the output files (the key the MTA was
// given). That read must not follow a symlink planted at the output path, nor
// trust a directory another user controls: the key found there would become
// the key mxcert publishes TLSA records for.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CertificateConfig } from '../../src/config/schema.js';
import { generateKeyPem } from '../../src/keys/keygen.js';
import { silentLogger } from '../../src/log.js';
import { readDeployedKeyPem } from '../../src/renew/orchestrator.js';

const isRoot = process.geteuid?.() === 0;

describe('readDeployedKeyPem', () => {
  let dir: string;
  let deployed: string;
  let other: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mxcert-deployed-key-'));
    deployed = await generateKeyPem('ecdsa-p256');
    other = await generateKeyPem('ecdsa-p256');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const certWithKeyIn = (out: string) => ({ name: 'mx1', output: { key: path.join(out, '{name}-{keytype}.key') } }) as unknown as CertificateConfig;

  it('reads the key file mxcert deployed', async () => {
    const out = path.join(dir, 'plain');
    await mkdir(out, { mode: 0o700 });
    await writeFile(path.join(out, 'mx1-ecdsa-p256.key'), deployed, { mode: 0o600 });
    assert.equal(await readDeployedKeyPem(certWithKeyIn(out), 'ecdsa-p256', silentLogger), deployed);
  });

  it('does not follow a symlink at the key path to some other key', async () => {
    const out = path.join(dir, 'linked');
    await mkdir(out, { mode: 0o700 });
    const elsewhere = path.join(dir, 'other.key');
    await writeFile(elsewhere, other, { mode: 0o600 });
    await symlink(elsewhere, path.join(out, 'mx1-ecdsa-p256.key'));
    assert.equal(await readDeployedKeyPem(certWithKeyIn(out), 'ecdsa-p256', silentLogger), undefined);
  });

  it('does not trust a key in a directory another user owns', { skip: !isRoot && 'needs root to chown' }, async () => {
    const out = path.join(dir, 'theirs');
    await mkdir(out, { mode: 0o755 });
    await writeFile(path.join(out, 'mx1-ecdsa-p256.key'), other, { mode: 0o600 });
    await chown(out, 65534, 65534);
    assert.equal(await readDeployedKeyPem(certWithKeyIn(out), 'ecdsa-p256', silentLogger), undefined);
  });
});
