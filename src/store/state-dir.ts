// Creating and checking the stateDir (docs/architecture.md, "Files on disk": 0700). Apart from
// state-store.ts so that the long-lived daemon can do it without loading the
// store's writers (idle memory: docs/architecture.md, "The daemon and its children").
import { chmod, mkdir, stat } from 'node:fs/promises';
import { StateError } from '../errors.js';

export async function ensureStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const st = await stat(stateDir);
  if (!st.isDirectory()) throw new StateError(`stateDir ${stateDir} is not a directory`);
  if (st.mode & 0o022) {
    throw new StateError(`stateDir ${stateDir} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); use 0700`);
  }
  if (st.mode & 0o077) await chmod(stateDir, 0o700);
}
