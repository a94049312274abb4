// Trust for a private or test CA's HTTPS endpoint (acme.caBundle,
// mtaSts.caBundle): the system roots plus the configured certificates.
import tls from 'node:tls';

/**
 * A TLS context trusting the system roots plus every certificate in `pem`,
 * made once and shared by the connections that need it.
 *
 * Why not `ca: [...tls.rootCertificates, pem]`, the documented route: that
 * hands ~140 PEM strings to OpenSSL one by one, 20–45 ms of CPU per context
 * (measured for issue 6). Adding to a context built on the default store
 * takes ~1 ms, because Node parses its bundled roots once per process and
 * shares them. `context.addCACert` is the native method behind `ca`; if a
 * Node version lacks it, the documented route is used.
 */
export function withExtraTrust(pem: string): tls.SecureContext {
  const ctx = tls.createSecureContext();
  const native = (ctx as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return tls.createSecureContext({ ca: [...tls.rootCertificates, pem] });
  native.addCACert(pem);
  return ctx;
}
