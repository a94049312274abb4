// Writes Dovecot's SNI include file (docs/architecture.md, "SNI tables")
// atomically, and only when its text changes: it names files, not their
// contents, so it changes when certificates, names or paths do, not on every
// renewal. Dovecot reads the named files when it (re)loads its config, which
// the deploy hook (hooks/dovecot-reload) does after every deploy anyway.
import { readDeployed, writeFileAtomic } from './atomic-write.js';

/** Paths only, no key material: readable like the rest of /etc/dovecot/conf.d. */
const INCLUDE_MODE = 0o644;

/** Replace `file` with `text` unless it holds exactly that already; true when written. */
export async function installDovecotInclude(file: string, text: string): Promise<boolean> {
  const live = await readDeployed(file);
  if (live?.toString('utf8') === text) return false;
  await writeFileAtomic(file, text, { mode: INCLUDE_MODE });
  return true;
}
