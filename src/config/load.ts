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
import { inlineSecretProblems, readConfigFile } from './fs-checks.js';
import { inDocumentOrder, zodProblems } from './problems.js';
import { configSchema, type Config } from './schema.js';
import { semanticProblems, validParts, type Parts } from './semantic.js';
import { parseYaml } from './yaml.js';

// Kept here for the modules that import them with loadConfig.
export { DEFAULT_CONFIG_PATH, resolveConfigPath } from './config-path.js';
export { readSecret, readSecretsFrom } from './secrets.js';

export async function loadConfig(file: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Config> {
  const env = opts.env ?? process.env;
  const source = path.resolve(file);

  const read = await readConfigFile(source);
  const raw = parseYaml(read.text);
  if (!raw.ok) throw new ConfigError([...read.problems, ...raw.problems]);
  if (raw.value === null || raw.value === undefined) {
    throw new ConfigError([...read.problems, { path: '', message: `config file ${source} is empty` }]);
  }

  const parsed = configSchema.safeParse(raw.value);
  const problems: ConfigProblem[] = [...read.problems, ...inlineSecretProblems(raw.value, read.mode)];
  if (!parsed.success) problems.push(...zodProblems(parsed.error.issues, raw.value, configSchema));

  const parts: Parts = parsed.success
    ? { acme: parsed.data.acme, certificates: parsed.data.certificates.map((cert, index) => ({ index, cert })) }
    : validParts(raw.value);
  problems.push(...(await semanticProblems(parts, env)));

  if (!parsed.success || problems.length > 0) throw new ConfigError(inDocumentOrder(problems, raw.doc));
  // Whatever runs hooks in this process never hands them these secrets.
  withholdFromHooks(secretEnvNames(parsed.data));
  return { ...parsed.data, source };
}
