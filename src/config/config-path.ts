// Where the config lives. Kept apart from load.ts (YAML parser, schema) so
// that `mxcert run`, a long-lived process, can name the file without loading
// what validates it (docs/architecture.md, "The daemon and its children").

export const DEFAULT_CONFIG_PATH = '/etc/mxcert/config.yaml';

/** `--config`, else `$MXCERT_CONFIG`, else `/etc/mxcert/config.yaml`. */
export function resolveConfigPath(cliPath?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (cliPath) return cliPath;
  const fromEnv = env['MXCERT_CONFIG'];
  if (fromEnv) return fromEnv;
  return DEFAULT_CONFIG_PATH;
}
