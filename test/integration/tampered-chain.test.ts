// A chain that fails its checks is kept for inspection and never deployed.
// Real Pebble issues, the ACME front (test/support/acme-front.ts) rewrites the
// certificate download one way per case, and the real mxcert CLI must refuse
// it naming the check that caught it, leave the deployed files and what
// Postfix serves untouched, and keep the rejected chain under
// <stateDir>/certs/mx1/ecdsa-p256/failed/<time>/.
//
// Which check trips follows the order in src/validate/chain-check.ts (parse,
// key-match, names, chain-order, signature, validity; first failure wins):
// - out-of-order: the certificate for our key is found at position 2, which
//   the key-match step already reports as `chain-order`;
// - expired: the leaf is re-signed by Pebble's real intermediate (key from
//   Pebble's management API), so the chain leads to the trust anchor and
//   `validity` is what fails.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { startAcmeFront, type AcmeFront, type TamperMode } from '../support/acme-front.js';
import { pollUntil } from '../env/proc.js';

const CASES: Array<{ mode: TamperMode; check: string; why: string; detail: RegExp }> = [
  { mode: 'other-key', check: 'key-match', why: 'no certificate in the chain is for our key', detail: /is not the private key's/ },
  { mode: 'missing-name', check: 'names', why: 'our key, but only the first of the two names', detail: /does not cover mail\.example\.test\b/ },
  { mode: 'out-of-order', check: 'chain-order', why: 'intermediate first, leaf second', detail: /at position 2/ },
  { mode: 'expired', check: 'validity', why: 'leaf signed by the real intermediate, expired an hour ago', detail: /the leaf expired at/ },
  { mode: 'garbage', check: 'parse', why: 'no PEM at all', detail: /no certificate in the chain/ },
];

interface RenewLine {
  cert: string;
  keyType: string;
  status: string;
  step?: string;
  error?: string;
  code?: string;
}

function firstCertPem(text: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text);
  assert.ok(m, 'a certificate');
  return m[0] + '\n';
}

describe('a tampered certificate download is refused, kept for inspection and never deployed', { timeout: 600_000 }, () => {
  let sb: Sandbox;
  let front: AcmeFront;
  let cfg: string;
  let failedRoot: string;
  /** The combined file and served leaf from the one good renewal. */
  let goodCombined: string;
  let goodLeaf: X509Certificate;

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    front = await startAcmeFront({ pebble: sb.pebble });
    const c = sb.baseConfig({ challenge: 'dns-01' });
    // Two names, so missing-name can drop one and keep a plausible leaf.
    c.certificates[0].domains = ['mx1.example.test', 'mail.example.test'];
    c.acme.directory = front.directoryUrl;
    c.acme.caBundle = front.caBundlePath;
    cfg = await sb.writeConfig(c, path.join(sb.dir, 'front.yaml'));
    failedRoot = path.join(sb.stateDir, 'certs', 'mx1', 'ecdsa-p256', 'failed');

    // One good renewal first, so there are deployed files to protect.
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    goodCombined = await readFile(sb.combinedPath(), 'utf8');
    goodLeaf = new X509Certificate(firstCertPem(goodCombined));
    await pollUntil(
      async () => (new X509Certificate(await servedLeafPem(sb.postfix.port)).raw.equals(goodLeaf.raw) ? true : undefined),
      { deadlineMs: 10_000, what: 'Postfix to serve the good certificate' },
    );
  });
  after(async () => {
    await front?.stop();
    await sb?.stop();
  });

  for (const { mode, check, why, detail } of CASES) {
    it(`${mode} (${why}) → exit 1 naming "${check}"`, async () => {
      const failedBefore = new Set(await readdir(failedRoot).catch(() => [] as string[]));
      const downloads = front.certDownloads;
      front.tamper(mode);
      let r;
      try {
        r = await sb.cli(['renew', '--force', '--config', cfg]);
      } finally {
        front.tamper(undefined);
      }
      const out = r.stdout + r.stderr;
      assert.equal(r.code, 1, out);
      assert.equal(front.certDownloads, downloads + 1, 'Pebble issued and the front tampered with the download');

      // Non-TTY stdout: one JSON line per certificate and key type.
      const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as RenewLine);
      const unit = lines.find((l) => l.cert === 'mx1' && l.keyType === 'ecdsa-p256');
      assert.ok(unit, `a result line for mx1/ecdsa-p256 in:\n${r.stdout}`);
      assert.equal(unit.status, 'failed');
      assert.equal(unit.step, 'validate', out);
      assert.equal(unit.code, 'validation', out);
      // "validate: <check>: …" — the step, then the check that failed first.
      assert.match(unit.error ?? '', new RegExp(`^(validate: )?${check}: `), `error names the ${check} check`);
      assert.match(unit.error ?? '', detail);

      assert.equal(await readFile(sb.combinedPath(), 'utf8'), goodCombined, 'combined file byte-identical');
      const served = new X509Certificate(await servedLeafPem(sb.postfix.port));
      assert.ok(served.raw.equals(goodLeaf.raw), `Postfix still serves serial ${goodLeaf.serialNumber}, got ${served.serialNumber}`);

      const added = (await readdir(failedRoot)).filter((d) => !failedBefore.has(d));
      assert.equal(added.length, 1, `one new directory under ${failedRoot}`);
      const kept = path.join(failedRoot, added[0]!);
      const chain = await readFile(path.join(kept, 'chain.pem'), 'utf8');
      const error = await readFile(path.join(kept, 'error.txt'), 'utf8');
      assert.ok(error.startsWith(`${check}: `), `error.txt names ${check}: ${error}`);
      if (mode === 'garbage') {
        assert.doesNotMatch(chain, /BEGIN CERTIFICATE/);
        assert.match(chain, /not a PEM certificate chain/, 'the rejected bytes as received');
      } else {
        // The kept chain is the tampered one, not Pebble's.
        const keptLeaf = new X509Certificate(firstCertPem(chain));
        assert.ok(!keptLeaf.raw.equals(goodLeaf.raw));
        if (mode === 'out-of-order') assert.equal(keptLeaf.ca, true, 'the intermediate comes first');
        else if (mode === 'expired') {
          assert.match(keptLeaf.issuer, /Pebble Intermediate/, 're-signed by the real intermediate');
          assert.ok(new Date(keptLeaf.validTo).getTime() < Date.now(), 'and already expired');
        } else assert.match(keptLeaf.issuer, /acme-front/, 'signed by the front’s throwaway CA');
      }

      const st = JSON.parse((await sb.cli(['status', '--json', '--config', cfg])).stdout) as {
        certificates: Array<{ serial: string; lastResult: string }>;
      };
      assert.equal(st.certificates[0]!.lastResult, 'failure');
      assert.equal(st.certificates[0]!.serial, goodLeaf.serialNumber.toLowerCase(), 'state still names the good certificate');
    });
  }

  it('with tampering off again the next renewal deploys', async () => {
    const r = await sb.cli(['renew', '--force', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.notEqual(await readFile(sb.combinedPath(), 'utf8'), goodCombined);
  });
});
