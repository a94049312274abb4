// Small PEM helpers shared by the fault tests.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';

export function pemBlocks(text: string): Array<{ label: string; pem: string }> {
  return [...text.matchAll(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g)].map((m) => ({ label: m[1]!, pem: m[0] }));
}

/**
 * Why `text` is not a whole combined file (key, leaf, at least one issuer;
 * the key matching the leaf; nothing else), or undefined if it is one.
 */
export function combinedProblem(text: string): string | undefined {
  const blocks = pemBlocks(text);
  if (blocks.length < 3) return `${blocks.length} PEM blocks (want key, leaf, intermediate)`;
  if (text.replace(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g, '').trim() !== '') return 'text outside PEM blocks';
  if (!/PRIVATE KEY/.test(blocks[0]!.label)) return `first block is ${blocks[0]!.label}`;
  if (!blocks.slice(1).every((b) => b.label === 'CERTIFICATE')) return 'non-certificate after the key';
  try {
    const key = createPrivateKey(blocks[0]!.pem);
    const leaf = new X509Certificate(blocks[1]!.pem);
    for (const b of blocks.slice(2)) new X509Certificate(b.pem);
    const ours = createPublicKey(key).export({ type: 'spki', format: 'der' });
    const theirs = leaf.publicKey.export({ type: 'spki', format: 'der' });
    if (!ours.equals(theirs)) return 'the key does not match the leaf';
    if (!leaf.checkPrivateKey(key)) return 'checkPrivateKey failed';
  } catch (err) {
    return `unparseable: ${(err as Error).message}`;
  }
  return undefined;
}

/** The leaf (second block) of a combined file. */
export function combinedLeaf(text: string): X509Certificate {
  const leaf = pemBlocks(text).find((b) => b.label === 'CERTIFICATE');
  if (!leaf) throw new Error('no certificate in the combined file');
  return new X509Certificate(leaf.pem);
}
