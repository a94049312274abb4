// `mxcert status` computes a unit's config fingerprint only when its last
// failure recorded one (src/cli/status.ts): a failure with the same config
// still shows its backoff, one with a config changed since does not
// (docs/architecture.md, "When to renew").
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { statusCommand } from '../../src/cli/status.js';
import { loadConfig } from '../../src/config/load.js';
import { configFingerprint } from '../../src/schedule/config-fingerprint.js';
import { StateStore } from '../../src/store/state-store.js';
import { silentLogger } from '../../src/log.js';

const dir = mkdtempSync(path.join(tmpdir(), 'mxcert-status-backoff-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function statusJson(config: string): Promise<Array<{ cert: string; nextRenewalReason: string; backoffUntil: string | null }>> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    await statusCommand({ config, logger: silentLogger }, { json: true });
  } finally {
    process.stdout.write = write;
  }
  return (JSON.parse(out) as { certificates: Array<{ cert: string; nextRenewalReason: string; backoffUntil: string | null }> }).certificates;
}

describe('status and the failure backoff', () => {
  it('shows the backoff of a failure with the config it failed with, and lifts it for a config changed since', async () => {
    mkdirSync(path.join(dir, 'out'), { mode: 0o700 });
    const stateDir = path.join(dir, 'state');
    const config = path.join(dir, 'config.yaml');
    const cert = (name: string) => ({
      name,
      domains: [`${name}.example.test`],
      challenge: { type: 'http-01', http: { listen: '127.0.0.1:5002' } },
      output: { combined: path.join(dir, 'out', `${name}-{keytype}.pem`) },
    });
    writeFileSync(config, stringify({ stateDir, acme: { directory: 'https://127.0.0.1:14000/dir', email: 'a@example.test' }, certificates: [cert('same'), cert('changed'), cert('none')] }), { mode: 0o600 });
    const loaded = await loadConfig(config, { env: {} });
    const store = new StateStore(stateDir);
    const failedAt = new Date(Date.now() - 60_000).toISOString();
    const failure = (configFingerprint?: string) => ({ consecutiveFailures: 2, last: { at: failedAt, result: 'failure' as const, error: 'obtain: refused', step: 'obtain', ...(configFingerprint ? { configFingerprint } : {}) } });
    await store.writeState('same', 'ecdsa-p256', failure(configFingerprint(loaded.acme, loaded.certificates[0]!, 'ecdsa-p256')));
    await store.writeState('changed', 'ecdsa-p256', failure('0'.repeat(64)));
    await store.writeState('none', 'ecdsa-p256', failure());

    const rows = Object.fromEntries((await statusJson(config)).map((r) => [r.cert, r]));
    assert.equal(rows['same']!.nextRenewalReason, 'backoff');
    assert.ok(rows['same']!.backoffUntil);
    assert.notEqual(rows['changed']!.nextRenewalReason, 'backoff', 'the config changed since the failure: no backoff');
    assert.equal(rows['none']!.nextRenewalReason, 'backoff', 'a failure from before fingerprints: the backoff applies');
  });
});
