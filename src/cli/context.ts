// What every command module receives from the command line (src/cli/main.ts
// builds it). Kept apart from main.ts, which imports the command modules, so
// that a command never imports its own dispatcher.
import type { Logger, OutputFormat } from '../log.js';

/** Exit codes of every command: see `mxcert --help`. */
export const EXIT = { ok: 0, failed: 1, usage: 2, locked: 3 } as const;

/** The options that come before the command name. */
export interface GlobalOpts {
  config?: string;
  logLevel?: string;
  /** `--format text|json`: logs and results. */
  format?: OutputFormat;
}

export interface CommandContext extends GlobalOpts {
  logger: Logger;
}
