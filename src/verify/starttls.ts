// Live verification: connect the way a sending MTA does (STARTTLS, RFC 3207,
// on 25/587/anything else; implicit TLS on 465, RFC 8314) and read back the
// certificate the server actually presents.
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { VerifyError } from '../errors.js';
import { pollUntil, systemClock, type Clock } from '../clock.js';
import { parseListen } from '../util/host-port.js';
import type { Logger } from '../log.js';
import { announceWait } from '../util/announce-wait.js';

export interface ServedChain {
  /** DER of each certificate the server sent, leaf first. */
  chainDer: Buffer[];
  leafSerial: string;
  protocol: string | null;
}

/** Reads SMTP replies (RFC 5321 §4.2: `250-...` continues, `250 ...` ends). */
function readReply(sock: net.Socket, timeoutMs: number): Promise<{ code: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const lines: string[] = [];
    const timer = setTimeout(() => finish(new VerifyError(`no SMTP reply within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          finish(undefined, { code: Number(line.slice(0, 3)), lines });
          return;
        }
      }
    };
    const onErr = (err: Error) => finish(err);
    const onClose = () => finish(new VerifyError('connection closed before a complete SMTP reply'));
    function finish(err?: Error, val?: { code: number; lines: string[] }) {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', onErr);
      sock.off('close', onClose);
      if (err) reject(err);
      else resolve(val!);
    }
    sock.on('data', onData);
    sock.once('error', onErr);
    sock.once('close', onClose);
  });
}

function collectChain(sock: tls.TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  let cert = sock.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  const seen = new Set<string>();
  while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}

// A server holding both an ECDSA and an RSA chain (Postfix dual certificates)
// picks by the client's signature algorithms, so offering only one family lets
// us see the certificate of each key type in turn (RFC 8446 §4.2.3).
const SIGALGS: Record<'ecdsa' | 'rsa', string> = {
  ecdsa: 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512',
  rsa: 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:rsa_pkcs1_sha256:rsa_pkcs1_sha384:rsa_pkcs1_sha512',
};

function tlsOptions(servername: string | undefined, keyType: string | undefined): tls.ConnectionOptions {
  const family = keyType?.startsWith('rsa') ? 'rsa' : keyType?.startsWith('ecdsa') ? 'ecdsa' : undefined;
  return { servername, rejectUnauthorized: false, ...(family ? { sigalgs: SIGALGS[family] } : {}) };
}

/** One probe: returns what the endpoint serves right now. */
export async function probeEndpoint(
  endpoint: string,
  opts: { serverName?: string; timeoutMs?: number; keyType?: string } = {},
): Promise<ServedChain> {
  const { host, port } = parseListen(endpoint);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const servername = opts.serverName && net.isIP(opts.serverName) === 0 ? opts.serverName : undefined;
  const raw = net.connect({ host, port });
  raw.setTimeout(timeoutMs, () => raw.destroy(new VerifyError(`timeout talking to ${endpoint}`)));
  try {
    let socket: tls.TLSSocket;
    if (port === 465) {
      await new Promise<void>((resolve, reject) => {
        raw.once('connect', resolve);
        raw.once('error', reject);
      });
      socket = tls.connect({ socket: raw, ...tlsOptions(servername, opts.keyType) });
    } else {
      const banner = await readReply(raw, timeoutMs);
      if (banner.code !== 220) throw new VerifyError(`unexpected greeting: ${banner.lines.join(' | ')}`);
      raw.write('EHLO mxcert.invalid\r\n');
      const ehlo = await readReply(raw, timeoutMs);
      if (ehlo.code !== 250) throw new VerifyError(`EHLO refused: ${ehlo.lines.join(' | ')}`);
      if (!ehlo.lines.some((l) => /^250[- ]STARTTLS\b/i.test(l))) throw new VerifyError('server does not offer STARTTLS');
      raw.write('STARTTLS\r\n');
      const go = await readReply(raw, timeoutMs);
      if (go.code !== 220) throw new VerifyError(`STARTTLS refused: ${go.lines.join(' | ')}`);
      socket = tls.connect({ socket: raw, ...tlsOptions(servername, opts.keyType) });
    }
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const chainDer = collectChain(socket);
    if (chainDer.length === 0) throw new VerifyError('server presented no certificate');
    const leaf = new X509Certificate(chainDer[0]!);
    const result = { chainDer, leafSerial: leaf.serialNumber.toLowerCase(), protocol: socket.getProtocol() };
    if (port !== 465) socket.write('QUIT\r\n');
    socket.destroy();
    return result;
  } finally {
    raw.destroy();
  }
}

/**
 * After a reload the MTA takes a moment before new connections get the new
 * certificate (Postfix: ~100 ms; running smtpd processes keep the old one), so
 * poll each endpoint until it serves `expectedLeafDer`, up to `timeoutMs`.
 */
export async function verifyServed(
  endpoints: string[],
  expectedLeafDer: Buffer,
  opts: { serverName?: string; timeoutMs: number; keyType?: string; clock?: Clock; logger?: Logger },
): Promise<void> {
  const clock = opts.clock ?? systemClock;
  const failures: string[] = [];
  await Promise.all(
    endpoints.map(async (ep) => {
      let last = 'nothing yet';
      // An MTA that is down (or slow to reload) would otherwise mean silence until the deadline.
      const stopAnnouncing = opts.logger
        ? announceWait(opts.logger, () => `${ep} to serve the new certificate (last try: ${last})`, clock.now().getTime() + opts.timeoutMs, { fields: { endpoint: ep } })
        : () => undefined;
      try {
        await pollUntil(
          async () => {
            try {
              const served = await probeEndpoint(ep, { serverName: opts.serverName, keyType: opts.keyType, timeoutMs: Math.min(5000, opts.timeoutMs) });
              if (served.chainDer[0]!.equals(expectedLeafDer)) return true;
              last = `serves serial ${served.leafSerial}`;
            } catch (err) {
              last = err instanceof Error ? err.message : String(err);
            }
            return undefined;
          },
          { timeoutMs: opts.timeoutMs, intervalMs: 50, maxIntervalMs: 500, what: `${ep} to serve the new certificate`, clock },
        );
        opts.logger?.info({ endpoint: ep }, 'endpoint serves the new certificate');
      } catch {
        failures.push(`${ep}: ${last}`);
      } finally {
        stopAnnouncing();
      }
    }),
  );
  if (failures.length) {
    const expected = new X509Certificate(expectedLeafDer).serialNumber.toLowerCase();
    throw new VerifyError(`not serving the new certificate (serial ${expected}) after ${opts.timeoutMs} ms: ${failures.join('; ')}`);
  }
}
