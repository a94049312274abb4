// Trust for a private or test CA's HTTPS endpoint (acme.caBundle,
// mtaSts.caBundle): Node's bundled roots plus the configured certificates.
import tls from 'node:tls';

// Distinct bundles in one process: one per configured caBundle, so a handful
// at most; the bound only keeps a long-lived process from collecting them.
const MAX_CONTEXTS = 8;
const contexts = new Map<string, tls.SecureContext>();

/**
 * A TLS context trusting Node's bundled Mozilla roots (`tls.rootCertificates`)
 * plus every certificate in `pem`, through the documented `ca` option only,
 * so a Node update cannot silently change what is trusted.
 *
 * Handing ~140 roots to OpenSSL costs 20–45 ms of CPU per context, so the
 * context is built once per bundle content and shared for the life of the
 * process (one pass, or one daemon pass child). `ca` replaces the default
 * store, so under `node --use-openssl-ca` the OpenSSL store (SSL_CERT_FILE,
 * the system's certificate directory) is not consulted for these
 * connections; the bundle must hold what they need beyond Mozilla's roots.
 */
export function withExtraTrust(pem: string): tls.SecureContext {
  const cached = contexts.get(pem);
  if (cached) return cached;
  const ctx = tls.createSecureContext({ ca: [...tls.rootCertificates, pem] });
  if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
  contexts.set(pem, ctx);
  return ctx;
}
