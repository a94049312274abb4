// `mxcert config check`: the same loading the agent does, with the problems
// returned as data so the CLI can print them one per line and exit 2.
import { ConfigError, type ConfigProblem } from '../errors.js';
import { loadConfig } from './load.js';
import type { Config } from './schema.js';

export type CheckResult = { ok: true; config: Config } | { ok: false; problems: ConfigProblem[] };

/** Load and validate; config problems come back as a value, anything else still throws. */
export async function checkConfig(path: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CheckResult> {
  try {
    return { ok: true, config: await loadConfig(path, opts) };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.problems };
    throw err;
  }
}

/**
 * One line per problem, `PATH: MESSAGE`. Problems about the file as a whole
 * (unreadable, YAML syntax) have no YAML path, so the file name stands in.
 */
export function formatProblems(problems: readonly ConfigProblem[], source: string): string[] {
  return problems.map((p) => `${p.path || source}: ${p.message}`);
}
