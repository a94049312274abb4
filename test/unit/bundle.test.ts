import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildBundle } from '../../src/stage/bundle.js';
import { splitPem } from '../../src/validate/chain-check.js';
import { makePki } from './pki-fixtures.js';

describe('buildBundle', () => {
  it('orders key, leaf, intermediates (Postfix smtpd_tls_chain_files) and ends each PEM with a newline', async () => {
    const { leaf, intermediate, root } = await makePki(new Date());
    // Inputs without final newlines, with CRLFs and trailing blank lines: none may glue blocks together.
    const b = buildBundle({
      keyPem: leaf.keyPem.trimEnd(),
      leafPem: leaf.pem.replace(/\n/g, '\r\n'),
      intermediatesPem: [intermediate.pem.trimEnd(), root.pem + '\n\n'],
    });
    assert.equal(b.key, leaf.keyPem);
    assert.equal(b.cert, leaf.pem);
    assert.equal(b.chain, intermediate.pem + root.pem);
    assert.equal(b.fullchain, leaf.pem + intermediate.pem + root.pem);
    assert.equal(b.combined, leaf.keyPem + leaf.pem + intermediate.pem + root.pem);
    assert.ok(b.combined.indexOf('PRIVATE KEY') < b.combined.indexOf('CERTIFICATE'));
    assert.deepEqual(splitPem(b.combined), [leaf.pem, intermediate.pem, root.pem]);
    for (const v of Object.values(b)) {
      assert.ok(v.endsWith('-----\n'));
      assert.ok(!v.includes('\r'));
      assert.ok(!v.includes('----------'));
    }
  });

  it('has an empty chain when the leaf comes straight from a root', async () => {
    const { leaf } = await makePki(new Date());
    const b = buildBundle({ keyPem: leaf.keyPem, leafPem: leaf.pem, intermediatesPem: [] });
    assert.equal(b.chain, '');
    assert.equal(b.fullchain, leaf.pem);
    assert.equal(b.combined, leaf.keyPem + leaf.pem);
  });

  it('refuses an empty PEM', () => {
    assert.throws(() => buildBundle({ keyPem: '', leafPem: 'x', intermediatesPem: [] }));
  });
});
