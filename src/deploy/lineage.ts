// A certbot-style lineage directory (docs/architecture.md, "The pipeline" RENEWED_LINEAGE), so certbot
// deploy hooks that read $RENEWED_LINEAGE/privkey.pem etc. work unchanged.
import { chmod, lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { DeployError } from '../errors.js';
import type { Bundle } from '../stage/bundle.js';
import { writeFilesAtomic } from './atomic-write.js';

const DIR_MODE = 0o700;
const KEY_MODE = 0o600;
const PUBLIC_MODE = 0o644;

export async function writeLineage(dir: string, bundle: Pick<Bundle, 'key' | 'cert' | 'chain' | 'fullchain'>): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
    const st = await lstat(dir);
    if (!st.isDirectory()) throw new DeployError(`lineage ${dir} is not a directory (a symlink is refused too)`);
    // mkdir leaves an existing directory's mode alone (and umask applies to a new one).
    if ((st.mode & 0o777) !== DIR_MODE) await chmod(dir, DIR_MODE);
  } catch (err) {
    if (err instanceof DeployError) throw err;
    throw new DeployError(`cannot create lineage directory ${dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // Hooks run only after all four are written, so they never see a mixed set.
  await writeFilesAtomic([
    { target: path.join(dir, 'privkey.pem'), data: bundle.key, opts: { mode: KEY_MODE } },
    { target: path.join(dir, 'cert.pem'), data: bundle.cert, opts: { mode: PUBLIC_MODE } },
    { target: path.join(dir, 'chain.pem'), data: bundle.chain, opts: { mode: PUBLIC_MODE } },
    { target: path.join(dir, 'fullchain.pem'), data: bundle.fullchain, opts: { mode: PUBLIC_MODE } },
  ]);
}
