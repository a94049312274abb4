// The environment every hook receives (DESIGN §4). The RENEWED_* names are
// certbot's, so existing certbot deploy hooks run unchanged.

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

/**
 * Every variable hookEnvironment may set. A hook must not inherit a stale one
 * from mxcert's own environment (say MXCERT_KEY when no key file was written).
 */
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
