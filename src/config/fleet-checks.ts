// What the schema cannot see of a fleet (docs/architecture.md, "Fleet"):
// a certificate marked `fleet: true` needs the top-level block, and the
// files the block names must be usable: the keyEncryption key holds exactly
// 32 bytes, the etcd client key and password pass the secret-file rules
// (src/fleet/secret-files.ts), the CA and client certificate are PEM.
import type { ConfigProblem } from '../errors.js';
import { readFleetSecretFile } from '../fleet/secret-files.js';
import { parseFleetKey } from '../fleet/seal.js';
import { checkCaBundle } from './fs-checks.js';
import type { CertificateConfig, FleetConfig } from './schema.js';

/**
 * `fleet` holds the parts of the block that parse (undefined when absent);
 * `given` says whether the file has one at all, so an invalid block is not
 * also reported as a missing one.
 */
export async function fleetProblems(
  fleet: { keyEncryption?: FleetConfig['keyEncryption']; etcd?: FleetConfig['etcd'] } | undefined,
  given: boolean,
  certificates: { index: number; cert: CertificateConfig }[],
): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  if (!given) {
    for (const { index, cert } of certificates) {
      if (cert.fleet) out.push({ path: `certificates[${index}].fleet`, message: 'a fleet certificate needs the top-level fleet block (member, members, etcd, keyEncryption)' });
    }
  }
  if (!fleet) return out;
  const checks: Promise<ConfigProblem[]>[] = [];
  if (fleet.keyEncryption) checks.push(keyFileProblems(fleet.keyEncryption.keyFile, 'fleet.keyEncryption.keyFile'));
  const tls = fleet.etcd?.tls;
  if (tls?.caFile) checks.push(checkCaBundle(tls.caFile, 'fleet.etcd.tls.caFile'));
  if (tls?.certFile) checks.push(checkCaBundle(tls.certFile, 'fleet.etcd.tls.certFile'));
  if (tls?.keyFile) checks.push(secretProblems(tls.keyFile, 'fleet.etcd.tls.keyFile', (c) => (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(c.toString('latin1')) ? undefined : 'no PEM private key in file')));
  if (fleet.etcd?.auth) checks.push(secretProblems(fleet.etcd.auth.passwordFile, 'fleet.etcd.auth.passwordFile', (c) => (c.toString('utf8').trim() === '' ? 'file is empty' : undefined)));
  return [...out, ...(await Promise.all(checks)).flat()];
}

async function keyFileProblems(file: string, at: string): Promise<ConfigProblem[]> {
  return secretProblems(file, at, (c) => {
    const k = parseFleetKey(c);
    return k.ok ? undefined : k.message;
  });
}

async function secretProblems(file: string, at: string, content: (c: Buffer) => string | undefined): Promise<ConfigProblem[]> {
  const r = await readFleetSecretFile(file);
  if (!r.ok) return [{ path: at, message: r.message }];
  const bad = content(r.content);
  return bad ? [{ path: at, message: `${file}: ${bad}` }] : [];
}
