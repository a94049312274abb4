// Which URLs may carry API traffic (docs/architecture.md, "Security model"):
// ACME is https only (RFC 8555 §6.1); a DNS API (PowerDNS) may use plain http
// only to this machine, its usual deployment (http://127.0.0.1:8081), because
// its API key would otherwise cross the network in clear.
import net from 'node:net';

/**
 * A loopback address literal (127.0.0.0/8, ::1, ::ffff:127.x) or exactly
 * `localhost`. Other names are not trusted to be local: `*.localhost` and
 * everything else may resolve anywhere through DNS.
 */
export function isLoopbackUrlHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    // The URL parser's form: ::1 for every spelling of it, ::ffff:7f00:1 for ::ffff:127.0.0.1.
    const norm = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    if (norm === '::1') return true;
    const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(norm);
    return mapped ? parseInt(mapped[1]!, 16) >> 8 === 127 : false;
  }
  return false;
}

/** urlProblem's answer for a string that is no URL at all (a schema reports that already). */
export const NOT_A_URL = 'not a URL';

/**
 * Why `url` may not be used for API calls, or undefined when it may.
 * `loopbackHttp`: plain http is acceptable to a loopback host.
 */
export function urlProblem(url: string, opts: { loopbackHttp: boolean }): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return NOT_A_URL;
  }
  if (u.protocol === 'https:') return undefined;
  if (u.protocol !== 'http:') return `must be an https:// URL, not ${u.protocol}`;
  if (!opts.loopbackHttp) return 'must be an https:// URL; plain http is refused';
  if (isLoopbackUrlHost(u.hostname)) return undefined;
  return `plain http:// is allowed only to loopback (127.0.0.0/8, ::1, localhost), not to ${u.hostname}: the API key would cross the network in clear; use https://`;
}
