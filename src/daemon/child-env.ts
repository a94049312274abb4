// The environment of the daemon's children (config-child, pass-child). They
// are mxcert and need the secrets that `*Env` settings name, but get their
// values over the IPC channel, not in their environment: then neither a
// child's /proc/PID/environ nor anything it starts (hooks, nsupdate, getent)
// holds them (docs/architecture.md, "Security model"). The environment keeps
// what a hook inherits (PATH, LANG, LC_*, TZ, HOME) and what Node and the
// logger read; nothing else of the daemon's.
import { inheritedByHooks } from '../hooks/environment.js';

const FOR_CHILDREN: readonly string[] = [
  'TMPDIR',
  'NODE_OPTIONS',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'TERM',
  'NO_COLOR',
  'FORCE_COLOR',
  'MXCERT_LOG_LEVEL',
  'MXCERT_LOG_FORMAT',
];

/** `env` cut down to what a child may see, without any name in `secrets`. */
export function childEnv(env: NodeJS.ProcessEnv, secrets: ReadonlySet<string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && (inheritedByHooks(k) || FOR_CHILDREN.includes(k)) && !secrets.has(k)) out[k] = v;
  }
  return out;
}

/** The values of the variables named in `names` that are set in `env`, for the IPC request. */
export function secretValues(env: NodeJS.ProcessEnv, names: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = env[n];
    if (v !== undefined) out[n] = v;
  }
  return out;
}
