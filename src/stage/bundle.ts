// The file contents deployed for one issued certificate (docs/architecture.md `output`).
// Pure: the deployer decides which of them are written where.

export interface Bundle {
  /** The private key alone. */
  key: string;
  /** The leaf alone. */
  cert: string;
  /** The issuers alone (certbot's chain.pem). */
  chain: string;
  /** Leaf then issuers (certbot's fullchain.pem, nginx, Dovecot ssl_cert). */
  fullchain: string;
  /**
   * Key, leaf, issuers in one file: the order Postfix's smtpd_tls_chain_files
   * requires (postconf(5): "the private key first, followed by the
   * corresponding certificate chain starting with the leaf"), so key and
   * certificate change together in a single atomic rename (docs/architecture.md, "Files on disk").
   */
  combined: string;
}

/** Each PEM ends in exactly one newline, so concatenations never glue "-----END" to "-----BEGIN". */
function block(pem: string): string {
  const trimmed = pem.replace(/\r\n/g, '\n').trim();
  if (!trimmed) throw new Error('empty PEM in bundle');
  return `${trimmed}\n`;
}

export function buildBundle(input: { keyPem: string; leafPem: string; intermediatesPem: string[] }): Bundle {
  const key = block(input.keyPem);
  const cert = block(input.leafPem);
  const chain = input.intermediatesPem.map(block).join('');
  return { key, cert, chain, fullchain: cert + chain, combined: key + cert + chain };
}
