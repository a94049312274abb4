// The environment every hook receives (docs/architecture.md, "The pipeline"). The RENEWED_* names are
// certbot's, so existing certbot deploy hooks run unchanged.
//
// A hook gets a clean environment, never mxcert's own (docs/architecture.md,
// "Security model"): mxcert runs as root with secrets in its environment
// (secretEnv, apiKeyEnv, hmacKeyEnv), and a hook is someone else's script
// that may log or forward whatever it is given. It receives:
//   - the variables below (MXCERT_*, RENEWED_*), set by mxcert per run;
//   - PATH, LANG, LC_*, TZ and HOME from mxcert's environment;
//   - what its config passes explicitly (hooks.env, dane.publisher.env);
// and never a variable that a `*Env` setting of the config names, whatever
// the source.

export type HookEvent = 'deploy' | 'failure' | 'warning' | 'tlsa-publish' | 'tlsa-retire';
export type HookOutputKind = 'combined' | 'key' | 'cert' | 'chain' | 'fullchain';

export interface HookEnvironmentInput {
  event: HookEvent;
  certName: string;
  domains: string[];
  keyType: string;
  /** Only the outputs that were written. */
  outputs: Partial<Record<HookOutputKind, string>>;
  /** certbot-style directory with privkey.pem, cert.pem, chain.pem, fullchain.pem. */
  lineageDir?: string;
  /** TLSA records in zone-file syntax, for tlsa-* events. */
  tlsa?: string[];
  /** The error message, for failure events. */
  error?: string;
}

const OUTPUT_VARS: Record<HookOutputKind, string> = {
  combined: 'MXCERT_COMBINED',
  key: 'MXCERT_KEY',
  cert: 'MXCERT_CERT',
  chain: 'MXCERT_CHAIN',
  fullchain: 'MXCERT_FULLCHAIN',
};

/** Every variable mxcert itself may set for a hook. */
export const HOOK_VARIABLES: readonly string[] = [
  'MXCERT_EVENT', 'MXCERT_CERT_NAME', 'MXCERT_DOMAINS', 'MXCERT_KEY_TYPE', ...Object.values(OUTPUT_VARS),
  'MXCERT_TLSA', 'MXCERT_TLSA_OWNER', 'MXCERT_TLSA_ADD', 'MXCERT_TLSA_REMOVE', 'MXCERT_TLSA_TTL',
  'MXCERT_ERROR', 'RENEWED_LINEAGE', 'RENEWED_DOMAINS',
];

export function hookEnvironment(input: HookEnvironmentInput): Record<string, string> {
  const domains = input.domains.join(' ');
  const env: Record<string, string> = {
    MXCERT_EVENT: input.event,
    MXCERT_CERT_NAME: input.certName,
    MXCERT_DOMAINS: domains,
    MXCERT_KEY_TYPE: input.keyType,
    RENEWED_DOMAINS: domains,
  };
  for (const [kind, name] of Object.entries(OUTPUT_VARS) as Array<[HookOutputKind, string]>) {
    const p = input.outputs[kind];
    if (p) env[name] = p;
  }
  if (input.lineageDir) env.RENEWED_LINEAGE = input.lineageDir;
  if (input.tlsa) env.MXCERT_TLSA = input.tlsa.join('\n');
  if (input.error !== undefined) env.MXCERT_ERROR = input.error;
  return env;
}

/** Taken from mxcert's own environment: what a script needs to find programs and format text and times. */
export function inheritedByHooks(name: string): boolean {
  return name === 'PATH' || name === 'HOME' || name === 'TZ' || name === 'LANG' || name.startsWith('LC_');
}

/** Settings of the shipped hooks that carry mxcert's prefix (hooks/notify-mail); a config may pass them. */
const HOOK_SETTINGS: readonly string[] = ['MXCERT_NOTIFY_TO'];

/** Names a config's hook `env` may not set: mxcert's own and certbot's variables. */
export function reservedHookVariable(name: string): boolean {
  return name.startsWith('RENEWED_') || (name.startsWith('MXCERT_') && !HOOK_SETTINGS.includes(name));
}

/**
 * Every environment variable a `*Env` setting of `config` names (secretEnv,
 * apiKeyEnv, hmacKeyEnv, and any such setting added later), wherever it sits.
 */
export function secretEnvNames(config: unknown): Set<string> {
  const names = new Set<string>();
  const walk = (node: unknown, depth: number): void => {
    if (!node || typeof node !== 'object' || depth > 32) return;
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if (/Env$/.test(k) && typeof v === 'string') names.add(v);
      else walk(v, depth + 1);
    }
  };
  walk(config, 0);
  return names;
}

// The names of secrets this process knows of, from every config it loaded or
// was handed (src/config/load.ts, src/daemon/pass-child.ts). Kept here, not
// passed by each caller, so no path to a hook can forget them.
const withheld = new Set<string>();

/** Never pass these variables to a hook, from any source, for the life of this process. */
export function withholdFromHooks(names: Iterable<string>): void {
  for (const n of names) withheld.add(n);
}

/**
 * The whole environment of one hook run: the inherited names from `inherited`
 * (mxcert's environment), then the config's `configured` variables (reserved
 * names skipped), then mxcert's `vars`; finally every withheld name removed.
 */
export function hookProcessEnv(
  vars: Record<string, string>,
  configured: Record<string, string> = {},
  inherited: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(inherited)) if (v !== undefined && inheritedByHooks(k)) env[k] = v;
  for (const [k, v] of Object.entries(configured)) if (!reservedHookVariable(k)) env[k] = v;
  Object.assign(env, vars);
  for (const k of withheld) delete env[k];
  return env;
}
