import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { checkChain, MAX_CERT_OCTETS, MAX_CHAIN_CERTS, MAX_CHAIN_PEM_CHARS, sanCovers, splitPem, type ChainCheckInput } from '../../src/validate/chain-check.js';
import { ValidationError } from '../../src/errors.js';
import { CertFieldsError } from '../../src/util/cert-fields.js';
import { DAY, makeIntermediate, makeIssuer, makeLeaf, makePki, makeRoot, newKeys, type Issued, type TestPki } from './pki-fixtures.js';
import { atv, buildCert, cn, EC_KEY, ext, name, rdn, sanExt } from './der-cert.js';
import * as der from './der-write.js';

const NOW = new Date('2025-06-01T12:00:00Z');

async function rejectsWith(input: ChainCheckInput, check: ValidationError['check'], message?: RegExp): Promise<void> {
  await assert.rejects(checkChain(input), (err: unknown) => {
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    assert.equal(err.check, check, `wrong check: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('checkChain', () => {
  let pki: TestPki;
  let good: ChainCheckInput;

  before(async () => {
    pki = await makePki(NOW, ['mx1.example.test', 'MX2.Example.Test']);
    good = {
      keyPem: pki.leaf.keyPem,
      chainPem: pki.leaf.pem + pki.intermediate.pem,
      domains: ['mx1.example.test', 'mx2.example.test'],
      now: NOW,
    };
  });

  it('accepts a good chain and reports its facts', async () => {
    const c = await checkChain(good);
    assert.equal(c.leafPem, pki.leaf.pem);
    assert.deepEqual(c.intermediatesPem, [pki.intermediate.pem]);
    assert.equal(c.serial, new X509Certificate(pki.leaf.pem).serialNumber.toLowerCase());
    assert.match(c.serial, /^[0-9a-f]+$/);
    assert.equal(c.notBefore.getTime(), pki.leaf.cert.notBefore.getTime());
    assert.equal(c.notAfter.getTime(), pki.leaf.cert.notAfter.getTime());
    assert.deepEqual(c.names, ['mx1.example.test', 'MX2.Example.Test']);
    const spki = new X509Certificate(pki.leaf.pem).publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(c.spkiSha256, createHash('sha256').update(spki).digest('hex'));
    assert.equal(c.issuer, 'CN=mxcert Test Intermediate');
  });

  it('accepts a chain that ends with the root, and anchors it in trusted roots', async () => {
    const chainPem = pki.leaf.pem + pki.intermediate.pem + pki.root.pem;
    const c = await checkChain({ ...good, chainPem, trustedRootsPem: [pki.root.pem] });
    assert.equal(c.intermediatesPem.length, 2);
    await checkChain({ ...good, trustedRootsPem: [pki.root.pem] });
  });

  it('tolerates CRLF, text between blocks and a missing final newline', async () => {
    const messy = `subject=CN=leaf\r\n${pki.leaf.pem.replace(/\n/g, '\r\n')}issuer=x\n${pki.intermediate.pem.trimEnd()}`;
    const c = await checkChain({ ...good, chainPem: messy });
    assert.equal(c.leafPem, pki.leaf.pem);
    assert.deepEqual(c.intermediatesPem, [pki.intermediate.pem]);
  });

  it('parse: no certificate, or garbage inside a block, or an unreadable key', async () => {
    await rejectsWith({ ...good, chainPem: '' }, 'parse', /no certificate/);
    await rejectsWith({ ...good, chainPem: pki.leaf.keyPem }, 'parse');
    await rejectsWith({ ...good, chainPem: `${pki.leaf.pem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n` }, 'parse', /certificate 2/);
    await rejectsWith({ ...good, keyPem: 'not a key' }, 'parse', /private key/);
  });

  it('key-match: a leaf for another key', async () => {
    const other = await makeLeaf(pki.intermediate, NOW, { names: ['mx1.example.test', 'mx2.example.test'] });
    await rejectsWith({ ...good, keyPem: other.keyPem }, 'key-match', /SPKI sha256 [0-9a-f]{64}/);
  });

  it('names: a configured name the leaf does not cover is named', async () => {
    await rejectsWith(
      { ...good, domains: ['mx1.example.test', 'mx3.example.test', 'mx2.example.test', 'mail.example.test'] },
      'names',
      /mx3\.example\.test, mail\.example\.test/,
    );
  });

  it('names: a leaf without SANs covers nothing (no CN fallback)', async () => {
    const leaf = await makeLeaf(pki.intermediate, NOW, { names: [] });
    await rejectsWith({ ...good, keyPem: leaf.keyPem, chainPem: leaf.pem + pki.intermediate.pem, domains: ['mx1.example.test'] }, 'names');
  });

  it('names: a wildcard covers exactly one left-most label', async () => {
    const leaf = await makeLeaf(pki.intermediate, NOW, { names: ['*.Example.test'] });
    const base = { ...good, keyPem: leaf.keyPem, chainPem: leaf.pem + pki.intermediate.pem };
    await checkChain({ ...base, domains: ['mx1.example.test', 'MX2.EXAMPLE.TEST.', '*.example.test'] });
    await rejectsWith({ ...base, domains: ['example.test'] }, 'names', /example\.test/);
    await rejectsWith({ ...base, domains: ['a.mx1.example.test'] }, 'names', /a\.mx1\.example\.test/);
    await rejectsWith({ ...base, domains: ['mx1.other.test'] }, 'names');
  });

  it('sanCovers', () => {
    assert.equal(sanCovers('mx.example.test', 'MX.example.test.'), true);
    assert.equal(sanCovers('*.example.test', 'a.example.test'), true);
    assert.equal(sanCovers('*.example.test', 'example.test'), false);
    assert.equal(sanCovers('*.example.test', '.example.test'), false);
    assert.equal(sanCovers('*.example.test', 'a.b.example.test'), false);
    assert.equal(sanCovers('a.example.test', '*.example.test'), false);
    assert.equal(sanCovers('*.test', 'example.test'), true);
  });

  it('chain-order: issuers before the leaf', async () => {
    await rejectsWith({ ...good, chainPem: pki.intermediate.pem + pki.leaf.pem }, 'chain-order', /position 2.*first/);
  });

  it('chain-order: swapped issuers', async () => {
    const chainPem = pki.leaf.pem + pki.root.pem + pki.intermediate.pem;
    await rejectsWith({ ...good, chainPem }, 'chain-order', /certificate 1 .*issued by "CN=mxcert Test Intermediate"/);
  });

  it('chain-order: an unrelated extra certificate, at the end or in the middle', async () => {
    const stranger = await makeRoot('Unrelated CA', NOW);
    await rejectsWith({ ...good, chainPem: good.chainPem + stranger.pem }, 'chain-order', /Unrelated CA/);
    await rejectsWith({ ...good, chainPem: pki.leaf.pem + stranger.pem + pki.intermediate.pem }, 'chain-order');
  });

  it('chain-order: a repeated certificate', async () => {
    await rejectsWith({ ...good, chainPem: good.chainPem + pki.root.pem + pki.root.pem }, 'chain-order', /repeats certificate 3/);
  });

  it('signature: leaf signed by a different key under the right issuer name', async () => {
    const impostor = await newKeys();
    const leaf = await makeLeaf(pki.intermediate, NOW, {
      names: ['mx1.example.test', 'mx2.example.test'],
      signingKeys: impostor,
    });
    await rejectsWith({ ...good, keyPem: leaf.keyPem, chainPem: leaf.pem + pki.intermediate.pem }, 'signature', /certificate 1 .*not signed/);
  });

  it('signature: intermediate not signed by the root that follows it', async () => {
    const fakeRootKeys = await newKeys();
    const inter = await makeIntermediate('mxcert Test Intermediate', pki.root, NOW, { signingKeys: fakeRootKeys });
    const leaf = await makeLeaf(inter, NOW, { names: ['mx1.example.test', 'mx2.example.test'] });
    await rejectsWith(
      { ...good, keyPem: leaf.keyPem, chainPem: leaf.pem + inter.pem + pki.root.pem },
      'signature',
      /certificate 2/,
    );
  });

  it('signature: a chain that does not lead to a trusted root', async () => {
    const otherRoot = await makeRoot('Other Root', NOW);
    await rejectsWith({ ...good, trustedRootsPem: [otherRoot.pem] }, 'signature', /trusted root.*Other Root/);
    // Same name as the real root, different key: the name alone must not do.
    const twin = await makeRoot('mxcert Test Root', NOW);
    await rejectsWith({ ...good, trustedRootsPem: [twin.pem] }, 'signature');
    await checkChain({ ...good, trustedRootsPem: [twin.pem + pki.root.pem] });
  });

  it('validity: expired and not-yet-valid leaf, with inclusive bounds', async () => {
    const leaf = pki.leaf.cert;
    await rejectsWith({ ...good, now: new Date(leaf.notAfter.getTime() + 1000) }, 'validity', /leaf expired/);
    await rejectsWith({ ...good, now: new Date(leaf.notBefore.getTime() - 1000) }, 'validity', /leaf is not valid before/);
    await checkChain({ ...good, now: leaf.notAfter });
    await checkChain({ ...good, now: leaf.notBefore });
  });

  it('validity: an expired intermediate fails although the leaf is valid', async () => {
    const inter = await makeIntermediate('Short Intermediate', pki.root, NOW, {
      notBefore: new Date(NOW.getTime() - 10 * DAY),
      notAfter: new Date(NOW.getTime() - DAY),
    });
    const leaf = await makeLeaf(inter, NOW, { names: ['mx1.example.test', 'mx2.example.test'] });
    await rejectsWith({ ...good, keyPem: leaf.keyPem, chainPem: leaf.pem + inter.pem }, 'validity', /certificate 2 .*Short Intermediate.*expired/);
  });

  it('parse: a leaf whose subjectAltName or validity cannot be read', async () => {
    const keyPem = EC_KEY.export({ type: 'pkcs8', format: 'pem' }) as string;
    const times = { notBefore: der.utcTime(new Date(NOW.getTime() - DAY)), notAfter: der.utcTime(new Date(NOW.getTime() + DAY)) };
    const base = { serial: Buffer.from([1]), issuer: cn('x'), subject: cn('x'), ...times };
    // SAN extnValue claims 5 octets inside a 2-octet SEQUENCE.
    const badSan = buildCert({ ...base, extensions: [ext('2.5.29.17', Buffer.from('3002820568', 'hex'))] });
    await rejectsWith({ keyPem, chainPem: badSan, domains: ['x'], now: NOW }, 'parse', /certificate 1 of the chain is not a readable X\.509 certificate: its extensions are not readable/);
    // UTCTime without seconds (RFC 5280 §4.1.2.5.1 requires them).
    const badTime = buildCert({ ...base, notBefore: der.tlv(der.TAG.UTC_TIME, Buffer.from('2505311200Z')), extensions: [sanExt('x')] });
    await rejectsWith({ keyPem, chainPem: badTime, domains: ['x'], now: NOW }, 'parse', /certificate 1 of the chain .*notBefore .*UTCTime YYMMDDHHMMSSZ/);
  });

  it('names certificates in messages by their subject, multi-valued and escaped RDNs included', async () => {
    const keyPem = EC_KEY.export({ type: 'pkcs8', format: 'pem' }) as string;
    const times = { notBefore: der.utcTime(new Date(NOW.getTime() - DAY)), notAfter: der.utcTime(new Date(NOW.getTime() + DAY)) };
    const issuer = name(
      rdn(atv('2.5.4.6', der.printableString('DE'))),
      rdn(atv('2.5.4.10', der.utf8String('Example, Inc.'))),
      rdn(atv('2.5.4.11', der.utf8String('Mail')), atv('2.5.4.3', der.utf8String('Int'))), // DER sorts the SET: CN first
    );
    const leaf = buildCert({ serial: Buffer.from([1]), issuer, subject: name(), ...times, extensions: [sanExt('mx1.example.test')] });
    await rejectsWith(
      { keyPem, chainPem: leaf + pki.intermediate.pem, domains: ['mx1.example.test'], now: NOW },
      'chain-order',
      /^chain-order: certificate 1 \(empty subject\) is issued by "C=DE, O=Example\\, Inc\., CN=Int\+OU=Mail", but the next one is certificate 2 \(CN=mxcert Test Intermediate\) \(out of order, or not part of this chain\)$/,
    );
  });

  it('checks run in the documented order', async () => {
    // Wrong names and out of validity: names is reported first.
    await rejectsWith({ ...good, domains: ['nope.example.test'], now: new Date(NOW.getTime() + 1000 * DAY) }, 'names');
  });
});

describe('splitPem', () => {
  it('returns normalised certificate blocks only', async () => {
    const pki = await makePki(NOW);
    const blocks = splitPem(`junk\n${pki.leaf.keyPem}${pki.leaf.pem}\n\n${pki.intermediate.pem}`);
    assert.deepEqual(blocks, [pki.leaf.pem, pki.intermediate.pem]);
    for (const b of blocks) {
      assert.ok(b.endsWith('-----END CERTIFICATE-----\n'));
      for (const line of b.split('\n')) assert.ok(line.length <= 64);
    }
    assert.deepEqual(splitPem('nothing here'), []);
  });
});

// RFC 5280 §6.1.4 (k)–(n): every certificate that issues another in the path
// must be a CA allowed to sign certificates, within its pathLenConstraint.
// Each case is also put to `openssl verify` (OpenSSL 3), which must agree.
describe('checkChain: issuers must be CAs', () => {
  const KU = x509.KeyUsageFlags;
  let dir: string;
  let root: Issued;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'mxcert-chain-ca-'));
    root = await makeRoot('mxcert CA-check Root', NOW);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** `openssl verify` of `leaf` with `anchor` trusted and `intermediates` untrusted, at NOW. */
  function opensslVerify(anchor: Issued, intermediates: Issued[], leaf: Issued): { ok: boolean; output: string } {
    const file = (name: string, text: string): string => {
      const p = path.join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const args = ['verify', '-attime', String(Math.floor(NOW.getTime() / 1000)), '-CAfile', file('anchor.pem', anchor.pem)];
    if (intermediates.length) args.push('-untrusted', file('untrusted.pem', intermediates.map((c) => c.pem).join('')));
    args.push(file('leaf.pem', leaf.pem));
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'openssl must be installed');
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  }

  function input(leaf: Issued, intermediates: Issued[], anchor: Issued): ChainCheckInput {
    return { keyPem: leaf.keyPem, chainPem: [leaf, ...intermediates].map((c) => c.pem).join(''), domains: ['mx1.example.test'], now: NOW, trustedRootsPem: [anchor.pem] };
  }

  async function bothReject(leaf: Issued, intermediates: Issued[], anchor: Issued, ours: RegExp, openssl: RegExp): Promise<void> {
    await rejectsWith(input(leaf, intermediates, anchor), 'issuer', ours);
    // The same chain with the anchor sent too: the in-chain root is checked the same way.
    const v = opensslVerify(anchor, intermediates, leaf);
    assert.equal(v.ok, false, `openssl accepted it: ${v.output}`);
    assert.match(v.output, openssl);
  }

  async function bothAccept(leaf: Issued, intermediates: Issued[], anchor: Issued): Promise<void> {
    await checkChain(input(leaf, intermediates, anchor));
    await checkChain({ ...input(leaf, intermediates, anchor), chainPem: [leaf, ...intermediates, anchor].map((c) => c.pem).join('') });
    const v = opensslVerify(anchor, intermediates, leaf);
    assert.ok(v.ok, v.output);
  }

  it('root → end-entity (CA:FALSE, digitalSignature) → leaf fails', async () => {
    const ee = await makeIssuer('End Entity', root, NOW, { basicConstraints: { ca: false }, keyUsage: KU.digitalSignature });
    const leaf = await makeLeaf(ee, NOW);
    await bothReject(leaf, [ee], root, /^issuer: certificate 2 \(CN=End Entity\) issued certificate 1 but is not a CA: its basicConstraints say cA FALSE \(RFC 5280 §6\.1\.4 \(k\)\)$/, /invalid CA certificate|key usage does not include certificate signing/);
  });

  it('root → certificate without basicConstraints (keyUsage keyCertSign) → leaf fails', async () => {
    const noBc = await makeIssuer('No Basic Constraints', root, NOW, { basicConstraints: null, keyUsage: KU.keyCertSign });
    const leaf = await makeLeaf(noBc, NOW);
    await bothReject(leaf, [noBc], root, /certificate 2 \(CN=No Basic Constraints\) issued certificate 1 but is not a CA: it has no basicConstraints extension/, /invalid CA certificate/);
  });

  it('root → intermediate whose keyUsage lacks keyCertSign → leaf fails', async () => {
    const inter = await makeIssuer('No CertSign', root, NOW, { basicConstraints: { ca: true }, keyUsage: KU.digitalSignature | KU.cRLSign });
    const leaf = await makeLeaf(inter, NOW);
    await bothReject(leaf, [inter], root, /certificate 2 \(CN=No CertSign\) issued certificate 1 but its keyUsage does not include keyCertSign/, /key usage does not include certificate signing/);
  });

  it('root → intermediate pathLen:0 → intermediate → leaf fails', async () => {
    const top = await makeIssuer('PathLen Zero', root, NOW, { basicConstraints: { ca: true, pathLength: 0 }, keyUsage: KU.keyCertSign });
    const lower = await makeIssuer('Below PathLen Zero', top, NOW, { basicConstraints: { ca: true }, keyUsage: KU.keyCertSign });
    const leaf = await makeLeaf(lower, NOW);
    await bothReject(leaf, [lower, top], root, /certificate 3 \(CN=PathLen Zero\) allows 0 CA certificate\(s\) below it \(pathLenConstraint\), but the path has 1 \(RFC 5280 §6\.1\.4 \(l\), \(m\)\)/, /path length constraint exceeded/);
  });

  it('the trust anchor counts too: a root with pathLen:0 above an intermediate, a root that is not a CA', async () => {
    const tight = await makeIssuer('Tight Root', undefined, NOW, { basicConstraints: { ca: true, pathLength: 0 }, keyUsage: KU.keyCertSign });
    const inter = await makeIntermediate('Under Tight Root', tight, NOW);
    await bothReject(await makeLeaf(inter, NOW), [inter], tight, /^issuer: the trusted root "CN=Tight Root" allows 0 CA certificate\(s\) below it/, /path length constraint exceeded/);
    const eeRoot = await makeIssuer('End Entity Root', undefined, NOW, { basicConstraints: { ca: false }, keyUsage: KU.digitalSignature });
    await bothReject(await makeLeaf(eeRoot, NOW), [], eeRoot, /^issuer: the trusted root "CN=End Entity Root" issued certificate 1 but is not a CA/, /invalid CA certificate|key usage does not include certificate signing/);
  });

  it('without trusted roots, the last certificate sent is checked as an issuer all the same', async () => {
    const ee = await makeIssuer('End Entity', root, NOW, { basicConstraints: { ca: false }, keyUsage: KU.digitalSignature });
    const leaf = await makeLeaf(ee, NOW);
    await rejectsWith({ keyPem: leaf.keyPem, chainPem: leaf.pem + ee.pem, domains: ['mx1.example.test'], now: NOW }, 'issuer', /certificate 2 \(CN=End Entity\)/);
  });

  it('valid chains pass: pathLen exactly used up, no keyUsage at all, a self-issued CA under pathLen:0', async () => {
    const one = await makeIssuer('PathLen One', root, NOW, { basicConstraints: { ca: true, pathLength: 1 }, keyUsage: KU.keyCertSign | KU.cRLSign });
    const zero = await makeIssuer('PathLen Zero Below One', one, NOW, { basicConstraints: { ca: true, pathLength: 0 }, keyUsage: KU.keyCertSign });
    await bothAccept(await makeLeaf(zero, NOW), [zero, one], root);

    const noKu = await makeIssuer('No Key Usage', root, NOW, { basicConstraints: { ca: true }, keyUsage: null });
    await bothAccept(await makeLeaf(noKu, NOW), [noKu], root);

    // RFC 5280 §6.1.4 (l): a self-issued certificate (key rollover) does not count against pathLen.
    const top = await makeIssuer('Rolling CA', root, NOW, { basicConstraints: { ca: true, pathLength: 0 }, keyUsage: KU.keyCertSign, keyIds: true });
    const rolled = await makeIssuer('Rolling CA', top, NOW, { basicConstraints: { ca: true, pathLength: 0 }, keyUsage: KU.keyCertSign, keyIds: true });
    await bothAccept(await makeLeaf(rolled, NOW), [rolled, top], root);
  });
});

// Bounds before parsing (docs/architecture.md, "Security model"): a
// certificate is refused on its size before OpenSSL or @peculiar/x509 see it,
// and OpenSSL reads each certificate before @peculiar/x509 does.
// Exact messages and edges: what the operator reads in the log and in the
// kept chain's error, and where each check draws its line.
describe('checkChain: messages, causes and edges', () => {
  let pki: TestPki;
  let good: ChainCheckInput;
  const failure = async (input: ChainCheckInput): Promise<ValidationError> => {
    const err = await checkChain(input).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ValidationError, `expected ValidationError, got ${String(err)}`);
    return err;
  };
  before(async () => {
    pki = await makePki(NOW, ['mx1.example.test', 'mx2.example.test']);
    good = { keyPem: pki.leaf.keyPem, chainPem: pki.leaf.pem + pki.intermediate.pem, domains: ['mx1.example.test'], now: NOW };
  });

  it('names: the leaf\'s DNS names listed, or "none"', async () => {
    assert.equal((await failure({ ...good, domains: ['mx3.example.test'] })).message,
      'names: the leaf does not cover mx3.example.test (its DNS names: mx1.example.test, mx2.example.test)');
    const noSan = await makeLeaf(pki.intermediate, NOW, { names: [] });
    assert.equal((await failure({ ...good, keyPem: noSan.keyPem, chainPem: noSan.pem + pki.intermediate.pem })).message,
      'names: the leaf does not cover mx1.example.test (its DNS names: none)');
  });

  it('chain-order and signature messages count certificates from 1', async () => {
    assert.equal((await failure({ ...good, chainPem: pki.leaf.pem + pki.intermediate.pem + pki.intermediate.pem })).message,
      'chain-order: certificate 3 (CN=mxcert Test Intermediate) repeats certificate 2');
    const otherKeys = await newKeys();
    const forged = await makeLeaf(pki.intermediate, NOW, { signingKeys: otherKeys });
    assert.equal((await failure({ ...good, keyPem: forged.keyPem, chainPem: forged.pem + pki.intermediate.pem })).message,
      'signature: certificate 1 (CN=mx1.example.test) is not signed by the key of certificate 2 (CN=mxcert Test Intermediate)');
  });

  it('trusted roots: a root with the issuer\'s name but another key is no anchor; the message lists the roots', async () => {
    const impostor = await makeRoot('mxcert Test Root', NOW);
    const other = await makeRoot('Other Root', NOW);
    assert.equal((await failure({ ...good, trustedRootsPem: [impostor.pem, other.pem] })).message,
      'signature: the chain does not lead to a trusted root: certificate 2 (CN=mxcert Test Intermediate) is issued by "CN=mxcert Test Root", ' +
        'trusted: "CN=mxcert Test Root", "CN=Other Root"');
    assert.match((await failure({ ...good, trustedRootsPem: [] })).message, /, trusted: none$/);
    await checkChain({ ...good, trustedRootsPem: [impostor.pem, pki.root.pem] });
  });

  it('trusted roots: the root\'s key under another name is no anchor either (RFC 5280 §6.1.1: name and key)', async () => {
    const renamed = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '7e57',
      name: 'CN=Renamed Test Root',
      notBefore: new Date(NOW.getTime() - DAY),
      notAfter: new Date(NOW.getTime() + 10 * DAY),
      keys: pki.root.keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    assert.match((await failure({ ...good, trustedRootsPem: [renamed.toString('pem')] })).message,
      /^signature: the chain does not lead to a trusted root: .* trusted: "CN=Renamed Test Root"$/);
  });

  it('an unreadable trusted root is named by its position', async () => {
    const bad = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    assert.match((await failure({ ...good, trustedRootsPem: [pki.root.pem, bad] })).message, /^parse: trusted root 2 is not a readable X\.509 certificate: /);
  });

  it('parse errors keep their cause', async () => {
    const notCert = await failure({ ...good, chainPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' });
    assert.ok(notCert.cause instanceof Error, 'OpenSSL\'s error');
    const times = { notBefore: der.tlv(der.TAG.UTC_TIME, Buffer.from('2505311200Z')), notAfter: der.utcTime(new Date(NOW.getTime() + DAY)) };
    const badTime = buildCert({ serial: Buffer.from([1]), issuer: cn('x'), subject: cn('x'), ...times, extensions: [sanExt('x')] });
    const fields = await failure({ ...good, keyPem: EC_KEY.export({ type: 'pkcs8', format: 'pem' }) as string, chainPem: badTime });
    assert.ok(fields.cause instanceof CertFieldsError, String(fields.cause));
    const key = await failure({ ...good, keyPem: 'not a key' });
    assert.ok(key.cause instanceof Error);
  });

  it('the caps are inclusive: 16 certificates and 1 MiB of PEM pass them', async () => {
    const sixteen = pki.leaf.pem + pki.intermediate.pem.repeat(MAX_CHAIN_CERTS - 1);
    assert.equal((await failure({ ...good, chainPem: sixteen })).check, 'chain-order', 'judged, not refused by the count');
    const chain = pki.leaf.pem + pki.intermediate.pem;
    const padded = chain + ' '.repeat(MAX_CHAIN_PEM_CHARS - chain.length);
    assert.equal(padded.length, MAX_CHAIN_PEM_CHARS);
    await checkChain({ ...good, chainPem: padded });
  });

  it('splitPem: a BEGIN without END, an empty block, blocks shorter than the END line', () => {
    assert.deepEqual(splitPem('-----BEGIN CERTIFICATE-----\nQUJD\n'), []);
    assert.deepEqual(splitPem('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----'), ['-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n']);
    assert.deepEqual(splitPem('-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nQg==\n-----END CERTIFICATE-----\n'), [
      '-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n',
      '-----BEGIN CERTIFICATE-----\nQg==\n-----END CERTIFICATE-----\n',
    ]);
  });

  it('sanCovers: only a "*." prefix is a wildcard', () => {
    assert.equal(sanCovers('xxexample.test', 'mx.example.test'), false);
    assert.equal(sanCovers('*xexample.test', 'mx.example.test'), false);
    assert.equal(sanCovers('*.example.test', 'mx.example.test'), true);
  });
});

describe('checkChain: bounded work on hostile input', () => {
  const keyPem = EC_KEY.export({ type: 'pkcs8', format: 'pem' }) as string;
  const times = { notBefore: der.utcTime(new Date(NOW.getTime() - DAY)), notAfter: der.utcTime(new Date(NOW.getTime() + DAY)) };
  /** A certificate whose one extra extension has an OID of `octets` contents octets (1.2.<one huge arc>). */
  const withLongOid = (octets: number): string => {
    const contents = Buffer.concat([Buffer.from([0x2a]), Buffer.alloc(octets - 2, 0x81), Buffer.from([0x01])]);
    const longExt = der.sequence(der.tlv(der.TAG.OID, contents), der.octetString(der.nullValue()));
    return buildCert({ serial: Buffer.from([1]), issuer: cn('x'), subject: cn('x'), ...times, extensions: [sanExt('mx1.example.test'), longExt] });
  };

  it('a certificate with a 256 KiB OID is refused on its size, naming the limit', async () => {
    await rejectsWith(
      { keyPem, chainPem: withLongOid(256 * 1024), domains: ['mx1.example.test'], now: NOW },
      'parse',
      new RegExp(`^parse: certificate 1 of the chain is not a readable X\\.509 certificate: it is \\d+ octets of DER, more than the ${MAX_CERT_OCTETS} accepted$`),
    );
  });

  it('the size cap counts DER octets exactly, padding included: 65536 pass it, 65537 do not', async () => {
    // Not certificates: what matters is which step refuses them.
    for (const n of [MAX_CERT_OCTETS - 1, MAX_CERT_OCTETS]) {
      await rejectsWith({ keyPem, chainPem: der.toPem(Buffer.alloc(n, 0x30), 'CERTIFICATE'), domains: [], now: NOW }, 'parse', /certificate 1 of the chain is not a readable X\.509 certificate: (?!it is)/);
    }
    for (const n of [MAX_CERT_OCTETS + 1, MAX_CERT_OCTETS + 2, MAX_CERT_OCTETS + 3]) {
      await rejectsWith({ keyPem, chainPem: der.toPem(Buffer.alloc(n, 0x30), 'CERTIFICATE'), domains: [], now: NOW }, 'parse', new RegExp(`it is ${n} octets of DER, more than the 65536 accepted`));
    }
  });

  it('a certificate under the size cap with a 60 KiB OID in an unknown extension is read, not misread', async () => {
    // asn1js keeps no arc above 2^56, so the OID reads as "1.2": neither a
    // known extension nor a duplicate, and the certificate is judged on the rest.
    const checked = await checkChain({ keyPem, chainPem: withLongOid(60 * 1024), domains: ['mx1.example.test'], now: NOW });
    assert.deepEqual(checked.names, ['mx1.example.test']);
  });

  it('an extension whose OID only starts like subjectAltName is not read as one', async () => {
    const oid = Buffer.concat([der.oid('2.5.29.17').subarray(2), Buffer.alloc(9, 0x81), Buffer.from([0x01])]);
    const posing = der.sequence(der.tlv(der.TAG.OID, oid), der.octetString(der.sequence(der.implicit(2, der.ia5String('mx1.example.test')))));
    const leaf = buildCert({ serial: Buffer.from([1]), issuer: cn('x'), subject: cn('x'), ...times, extensions: [posing] });
    await rejectsWith({ keyPem, chainPem: leaf, domains: ['mx1.example.test'], now: NOW }, 'parse', /certificate 1 of the chain .*OpenSSL finds no subjectAltName/);
  });

  it('too many certificates, or too much PEM, are refused before parsing', async () => {
    const pki = await makePki(NOW);
    await rejectsWith({ keyPem: pki.leaf.keyPem, chainPem: pki.leaf.pem.repeat(MAX_CHAIN_CERTS + 1), domains: [], now: NOW }, 'parse', /17 certificates, more than the 16 accepted/);
    const padded = pki.leaf.pem + ' '.repeat(MAX_CHAIN_PEM_CHARS) + pki.intermediate.pem;
    await rejectsWith({ keyPem: pki.leaf.keyPem, chainPem: padded, domains: [], now: NOW }, 'parse', /characters of PEM, more than the 1048576 accepted/);
  });
});
