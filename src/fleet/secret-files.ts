// The fleet's secret files: the keyEncryption key, the etcd client key and
// the etcd password (docs/architecture.md, "Security model"). Each must be a
// regular file that only root can write, like every directory above it (the
// rule of src/security/trusted-path.ts), and that group and others cannot
// read (the secret-file rule of src/config/secrets.ts). The file is read
// through the descriptor whose mode was checked; messages name the file,
// never its content.
import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';
import { secretModeProblem } from '../config/secrets.js';
import { ConfigError } from '../errors.js';
import { checkTrustedPath } from '../security/trusted-path.js';
import { errnoText } from '../config/errno-text.js';
import { parseFleetKey, type FleetKey } from './seal.js';

/** Larger than any key, certificate chain or password; a bigger file is not one of ours. */
const MAX_SECRET_BYTES = 256 * 1024;

export type SecretRead = { ok: true; content: Buffer } | { ok: false; message: string };

/** Read a fleet secret file, or say why it may not be used. */
export async function readFleetSecretFile(file: string): Promise<SecretRead> {
  const trust = await checkTrustedPath(file, { what: 'secret file', kind: 'file', allowSymlinks: true });
  if (!trust.ok) return { ok: false, message: trust.reason === 'untrusted' ? trust.message : trust.detail };
  let fh;
  try {
    fh = await open(file, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${errnoText(err)}` };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, message: `${file} is not a regular file` };
    const bad = secretModeProblem(st.mode);
    if (bad) return { ok: false, message: `${file}: ${bad}` };
    if (st.size > MAX_SECRET_BYTES) return { ok: false, message: `${file} is larger than ${MAX_SECRET_BYTES} bytes` };
    return { ok: true, content: await fh.readFile() };
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${errnoText(err)}` };
  } finally {
    await fh.close();
  }
}

/** readFleetSecretFile for use at run time: the content, or a ConfigError at `at` (the YAML path). */
export async function fleetSecret(file: string, at: string): Promise<Buffer> {
  const r = await readFleetSecretFile(file);
  if (!r.ok) throw new ConfigError([{ path: at, message: r.message }]);
  return r.content;
}

/** The fleet key from `keyEncryption.keyFile`, or a ConfigError naming the file and what is wrong. */
export async function loadFleetKey(file: string, at = 'fleet.keyEncryption.keyFile'): Promise<FleetKey> {
  const parsed = parseFleetKey(await fleetSecret(file, at));
  if (!parsed.ok) throw new ConfigError([{ path: at, message: `${file}: ${parsed.message}` }]);
  return parsed.key;
}
