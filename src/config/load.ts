// Loading the config file: read it (src/config/fs-checks.ts), parse the YAML
// (src/config/yaml.ts), validate it against the schema (src/config/
// problems.ts renders what fails), then check what the schema cannot see
// (src/config/semantic.ts: files on disk, secrets, relations between
// certificates). Every problem names its YAML path and all of them are
// reported at once, in the order of the file, so `mxcert config check` fixes
// a file in one round instead of one typo per run.
import path from 'node:path';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { secretEnvNames, withholdFromHooks } from '../hooks/environment.js';
import { inlineSecretProblems, readConfigFile, type ConfigFileRead } from './fs-checks.js';
import { inDocumentOrder, zodProblems } from './problems.js';
import { configSchema, type CertificateConfig, type Config } from './schema.js';
import { validParts } from './partial-parts.js';
import { semanticProblems, type Parts } from './semantic.js';
import { parseYaml } from './yaml.js';

// Kept here for the modules that import them with loadConfig.
export { DEFAULT_CONFIG_PATH, resolveConfigPath } from './config-path.js';
export { readSecret, readSecretsFrom } from './secrets.js';

/** Load and validate the config; every problem at once, as a ConfigError. */
export async function loadConfig(file: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Config> {
  const r = await examineConfig(file, opts);
  if (!r.config || r.problems.length > 0) throw new ConfigError(r.problems, r.cause === undefined ? undefined : { cause: r.cause });
  // Whatever runs hooks in this process never hands them these secrets.
  withholdFromHooks(secretEnvNames(r.config));
  return r.config;
}

/** What `mxcert status` can still use of a config with problems: the state dir and the certificates that pass the schema. */
export interface UsableConfig {
  source: string;
  stateDir: string;
  certificates: CertificateConfig[];
  /** When it passed the schema: what the failure fingerprint covers besides the certificate. */
  acme?: Config['acme'];
}

export interface Examined {
  config?: Config;
  usable?: UsableConfig;
  problems: ConfigProblem[];
  cause?: unknown;
  /** Whether the file holds a secret written inline (acme.eab.hmacKey and the like), whatever its mode. */
  inlineSecrets?: boolean;
}

/**
 * The config and every problem with it, without throwing on problems:
 * `config` when the file passes the schema (even if files it names are
 * missing), `usable` whenever a state dir can be made out, so status can show
 * what is deployed exactly when something is wrong.
 */
export async function examineConfig(file: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Examined> {
  const source = path.resolve(file);
  let read: ConfigFileRead;
  try {
    read = await readConfigFile(source);
  } catch (err) {
    if (err instanceof ConfigError) return { problems: err.problems, cause: (err as { cause?: unknown }).cause };
    throw err;
  }
  return examineRead(source, read, opts);
}

/** What examineConfig finds, for a file already read (so a caller can key what it learns by exactly these bytes). */
export async function examineRead(source: string, read: ConfigFileRead, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Examined> {
  const env = opts.env ?? process.env;
  const raw = parseYaml(read.text);
  if (!raw.ok) return { problems: [...read.problems, ...raw.problems] };
  if (raw.value === null || raw.value === undefined) {
    return { problems: [...read.problems, { path: '', message: `config file ${source} is empty` }] };
  }

  const parsed = configSchema.safeParse(raw.value);
  const problems: ConfigProblem[] = [...read.problems, ...inlineSecretProblems(raw.value, read.mode)];
  const inlineSecrets = inlineSecretProblems(raw.value, 0o777).length > 0;
  if (!parsed.success) problems.push(...zodProblems(parsed.error.issues, raw.value, configSchema));

  // When the whole file fails the schema, still check the parts that parse on
  // their own, so a missing secret file is reported together with a typo
  // elsewhere rather than on the next run.
  const parts: Parts = parsed.success
    ? { acme: parsed.data.acme, certificates: parsed.data.certificates.map((cert, index) => ({ index, cert })), sni: parsed.data.sni, fleet: parsed.data.fleet, fleetGiven: parsed.data.fleet !== undefined }
    : validParts(raw.value);
  problems.push(...(await semanticProblems(parts, env)));

  const sorted = inDocumentOrder(problems, raw.doc);
  if (parsed.success) {
    const config = { ...parsed.data, source };
    return { config, usable: { source, stateDir: config.stateDir, certificates: config.certificates, acme: config.acme }, problems: sorted, inlineSecrets };
  }
  const stateDir = configSchema.shape.stateDir.safeParse((raw.value as Record<string, unknown>)?.['stateDir']);
  const usable = stateDir.success ? { source, stateDir: stateDir.data, certificates: parts.certificates.map((c) => c.cert) } : undefined;
  return { usable, problems: sorted };
}
