// Throwaway X.509 material made with the openssl CLI: a CA and a loopback
// server certificate for Pebble's own HTTPS listener (the Debian package ships
// none), and self-signed placeholders for Postfix before the first issuance.

import { writeFile, readFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { run } from './proc.js';

export interface LoopbackPki {
  caCertPath: string;
  caKeyPath: string;
  certPath: string;
  keyPath: string;
}

// P-256 keeps generation instant; Go's TLS stack (Pebble) and Node both accept it.
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

/**
 * Creates, in `dir`, a CA and a server certificate valid for 127.0.0.1,
 * localhost and ::1, signed by that CA.
 */
export async function makeLoopbackPki(dir: string, caName = 'mxcert test CA'): Promise<LoopbackPki> {
  const caKeyPath = path.join(dir, 'ca.key');
  const caCertPath = path.join(dir, 'ca.pem');
  const keyPath = path.join(dir, 'server.key');
  const csrPath = path.join(dir, 'server.csr');
  const certPath = path.join(dir, 'server.pem');
  const extPath = path.join(dir, 'server.ext');

  await run('openssl', [
    'req', '-x509', '-nodes', ...EC_KEY,
    '-keyout', caKeyPath, '-out', caCertPath,
    '-days', '2', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', [
    'req', '-new', '-nodes', ...EC_KEY,
    '-keyout', keyPath, '-out', csrPath, '-subj', '/CN=localhost',
  ]);
  // `x509 -req` ignores CSR extensions, so SANs come from an extension file.
  await writeFile(
    extPath,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
      '',
    ].join('\n'),
  );
  await run('openssl', [
    'x509', '-req', '-in', csrPath, '-CA', caCertPath, '-CAkey', caKeyPath,
    '-CAcreateserial', '-days', '2', '-extfile', extPath, '-out', certPath,
  ]);
  await chmod(caKeyPath, 0o600);
  await chmod(keyPath, 0o600);
  return { caCertPath, caKeyPath, certPath, keyPath };
}

/**
 * Writes a self-signed key + certificate for `names` to `combinedPath` in the
 * order Postfix's smtpd_tls_chain_files expects: key first, then certificate.
 */
export async function writeSelfSignedCombined(combinedPath: string, names: string[], workDir: string): Promise<void> {
  const keyPath = path.join(workDir, 'placeholder.key');
  const certPath = path.join(workDir, 'placeholder.pem');
  const cn = names[0] ?? 'localhost';
  await run('openssl', [
    'req', '-x509', '-nodes', ...EC_KEY,
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
  ]);
  const combined = (await readFile(keyPath, 'utf8')) + (await readFile(certPath, 'utf8'));
  await writeFile(combinedPath, combined, { mode: 0o600 });
}

export interface IssuedCert {
  certPath: string;
  keyPath: string;
}

/**
 * Issues a certificate signed by `pki`'s CA into `dir` (NAME.pem, NAME.key,
 * the key 0600). `serverAuth` certificates name the loopback addresses;
 * `clientAuth` ones carry `cn` as their subject, which a server that maps
 * client certificates to users (etcd's --client-cert-auth) reads.
 */
export async function issueLoopbackCert(
  pki: LoopbackPki,
  dir: string,
  name: string,
  opts: { cn: string; serverAuth?: boolean; clientAuth?: boolean },
): Promise<IssuedCert> {
  const keyPath = path.join(dir, `${name}.key`);
  const csrPath = path.join(dir, `${name}.csr`);
  const certPath = path.join(dir, `${name}.pem`);
  const extPath = path.join(dir, `${name}.ext`);
  await run('openssl', ['req', '-new', '-nodes', ...EC_KEY, '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${opts.cn}`]);
  const eku = [opts.serverAuth ? 'serverAuth' : '', opts.clientAuth ? 'clientAuth' : ''].filter(Boolean).join(',');
  const ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature'];
  if (eku) ext.push(`extendedKeyUsage=${eku}`);
  if (opts.serverAuth) ext.push('subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost');
  await writeFile(extPath, `${ext.join('\n')}\n`);
  await run('openssl', [
    'x509', '-req', '-in', csrPath, '-CA', pki.caCertPath, '-CAkey', pki.caKeyPath,
    '-CAcreateserial', '-days', '2', '-extfile', extPath, '-out', certPath,
  ]);
  await chmod(keyPath, 0o600);
  return { certPath, keyPath };
}
