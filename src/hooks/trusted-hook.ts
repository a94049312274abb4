// A hook runs as root, so whoever can change it, or any directory above it,
// runs code as root. Checked again right before each run, since the config
// check may be days old (docs/architecture.md, "Security model").
import { HookError } from '../errors.js';
import { checkTrustedPath } from '../security/trusted-path.js';

/** Throw HookError unless `file` is an absolute path to a hook that passes the ownership rule. */
export async function assertTrustedHook(file: string): Promise<void> {
  if (!file.startsWith('/')) throw new HookError(`hook ${file} is not an absolute path; mxcert does not search PATH for hooks`, {});
  // A root-owned symlink in a trusted directory (/bin -> usr/bin) is fine;
  // its target is checked like the rest of the path.
  const r = await checkTrustedPath(file, { what: 'hook', kind: 'file', allowSymlinks: true });
  if (r.ok) return;
  if (r.reason === 'missing') {
    // Name the missing directory when it is not the hook itself.
    const which = r.detail === `${file} does not exist` ? '' : ` (${r.detail})`;
    throw new HookError(`hook ${file} does not exist${which}`, {});
  }
  throw new HookError(`refusing to run hook ${file}: ${r.detail}`, {});
}
