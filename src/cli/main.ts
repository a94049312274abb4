// mxcert command line (DESIGN §1). Exit codes: 0 ok (also "nothing due"),
// 1 a certificate failed, 2 usage or config error, 3 the state lock is held.
// The renewal machinery (ACME, DNS, chain checks) is imported only by the
// commands that need them, so `mxcert status` starts fast; `mxcert run`
// started plainly (as the systemd unit does) skips even commander, see
// plainRunArgs.
import type { Command } from 'commander';
import { createRequire } from 'node:module';
import { ConfigError, LockHeldError, describeError } from '../errors.js';
import { createLogger } from '../log.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, locked: 3 } as const;

// A write beyond RLIMIT_FSIZE must fail with EFBIG (reported, old files kept),
// not kill us. Node ignores SIGXFSZ, but execa's signal-exit listens to it
// and, on unloading, leaves it at the default action (terminate); a
// permanent listener keeps Node's handler installed and signal-exit passive.
process.on('SIGXFSZ', () => undefined);

class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function version(): string {
  const req = createRequire(import.meta.url);
  for (const p of ['../../package.json', '../../../package.json']) {
    try {
      return (req(p) as { version: string }).version;
    } catch {
      /* try the next layout (src vs dist) */
    }
  }
  return '0.0.0';
}

interface GlobalOpts {
  config?: string;
  logLevel?: string;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

const EXIT_CODES_HELP = `
Exit codes:
  0  success, including "nothing due"
  1  a certificate (or the command) failed
  2  usage or config error; nothing on disk changed
  3  another mxcert holds the state lock
`;

/**
 * MXCERT_LOG_LEVEL is read by every process mxcert starts; a bad value is a
 * usage error (exit 2), not a crash systemd would restart every 30 s.
 */
export function logLevelEnvProblem(env: NodeJS.ProcessEnv): string | undefined {
  const v = env.MXCERT_LOG_LEVEL;
  if (v === undefined || v === '' || LOG_LEVELS.includes(v)) return undefined;
  return `MXCERT_LOG_LEVEL=${JSON.stringify(v)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`;
}

/**
 * The global options of `mxcert run` when it is started plainly: only `run`
 * and the global options in their usual spellings (`-c PATH`, `--config
 * PATH`, `--config=PATH`, `--log-level LEVEL`, `--log-level=LEVEL`).
 * The daemon lives for months and every module it loads stays resident, so
 * that case skips commander (issue 6: idle RSS). Anything else (help, other
 * spellings, unknown options, a bad level) gives undefined and goes through
 * commander, with its messages and exit codes.
 */
export function plainRunArgs(args: readonly string[]): GlobalOpts | undefined {
  const g: GlobalOpts = {};
  let command: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = /^(--config|--log-level)=(.*)$/s.exec(a);
    let name: string | undefined;
    let value: string | undefined;
    if (eq) [, name, value] = eq;
    else if (a === '-c' || a === '--config' || a === '--log-level') {
      name = a === '-c' ? '--config' : a;
      value = args[++i];
      // A missing value, or one that looks like an option: let commander judge.
      if (value === undefined || value.startsWith('-')) return undefined;
    } else if (a === 'run' && command === undefined) {
      command = a;
      continue;
    } else return undefined;
    if (name === '--config') g.config = value;
    else if (LOG_LEVELS.includes(value!)) g.logLevel = value;
    else return undefined;
  }
  return command === 'run' ? g : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const badLevel = logLevelEnvProblem(process.env);
  if (badLevel) {
    process.stderr.write(`mxcert: ${badLevel}\n`);
    return EXIT.usage;
  }
  const plain = plainRunArgs(argv.slice(2));
  if (plain) {
    try {
      return await runCommand(plain);
    } catch (err) {
      return failure(err);
    }
  }

  const { Command, CommanderError, InvalidArgumentError, Option } = await import('commander');
  /** `--wait SECONDS`, parsed once for every command that takes the lock (bad input: exit 2). */
  const seconds = (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('takes a number of seconds');
    return n;
  };
  const program = new Command();
  program
    .name('mxcert')
    .description('Certificate lifecycle agent for mail hosts: ACME renewal, atomic MTA files, reload hooks, live STARTTLS verification.')
    .version(version(), '-V, --version')
    .option('-c, --config <path>', 'config file (default: $MXCERT_CONFIG, then /etc/mxcert/config.yaml)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('renew')
    .description('one pass over all (or the named) certificates: renew what is due, deploy, reload, verify')
    .option('-f, --force', 'renew now regardless of timing (validation still applies)', false)
    .option('--cert <name>', 'only this certificate (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('-n, --dry-run', 'print the plan and touch nothing', false)
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { force: boolean; cert: string[]; dryRun: boolean; wait: number }) => {
      const { renewCommand } = await import('./renew.js');
      throw new ExitCode(await renewCommand(globals(program), o));
    });

  program
    .command('run')
    .description('daemon: check every certificate on the schedule, renew when due; SIGHUP reloads the config, SIGTERM/SIGINT finish the current step and exit 0')
    .action(async () => {
      throw new ExitCode(await runCommand(program.opts<GlobalOpts>()));
    });

  program
    .command('status')
    .description('per certificate and key type: names, serial, expiry, next renewal and why, last result')
    .option('--json', 'machine-readable output', false)
    .action(async (o: { json: boolean }) => {
      const { statusCommand } = await import('./status.js');
      throw new ExitCode(await statusCommand(globals(program), o));
    });

  const certList = (v: string, acc: string[]) => [...acc, v];
  program
    .command('tlsa')
    .description('the TLSA records mxcert wants published (current + next), in zone-file syntax')
    .option('--cert <name>', 'only this certificate (repeatable)', certList, [] as string[])
    .action(async (o: { cert: string[] }) => {
      const { tlsaCommand } = await import('./dane.js');
      throw new ExitCode(await tlsaCommand(globals(program), o));
    });

  program
    .command('check')
    .description('STARTTLS to each endpoint: the served chain must be the deployed one and match the TLSA RRset on every authoritative server; exit 1 on any mismatch')
    .option('--cert <name>', 'only this certificate (repeatable)', certList, [] as string[])
    .action(async (o: { cert: string[] }) => {
      const { checkCommand } = await import('./dane.js');
      throw new ExitCode(await checkCommand(globals(program), o));
    });

  program
    .command('rollover')
    .description('start a DANE key rollover now (the hold is still honoured unless --emergency)')
    .requiredOption('--cert <name>', 'the certificate')
    .option('--emergency', 'swap to the already-published next key without waiting for the hold', false)
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { cert: string; emergency: boolean; wait: number }) => {
      const { rolloverCommand } = await import('./dane.js');
      throw new ExitCode(await rolloverCommand(globals(program), o));
    });

  const dane = program.command('dane').description('DANE helpers');
  dane
    .command('retire')
    .description("remove mxcert's TLSA records for a certificate whose DANE is switched off, wait until no authoritative server serves them and caches have expired, then free its keys")
    .requiredOption('--cert <name>', 'the certificate')
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { cert: string; wait: number }) => {
      const { daneRetireCommand } = await import('./dane-retire.js');
      throw new ExitCode(await daneRetireCommand(globals(program), o));
    });

  program
    .command('delete')
    .description('take a certificate out of service: retire its TLSA records (if any) and remove its state; output files stay unless --remove-outputs')
    .requiredOption('--cert <name>', 'the certificate')
    .option('--remove-outputs', 'also remove its output files (it must still be in the config)', false)
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { cert: string; removeOutputs: boolean; wait: number }) => {
      const { deleteCommand } = await import('./dane-retire.js');
      throw new ExitCode(await deleteCommand(globals(program), o));
    });

  const config = program.command('config').description('configuration helpers');
  config
    .command('check')
    .description('load and validate the config; print every problem with its YAML path')
    .action(async () => {
      const { configCheckCommand } = await import('./config-check.js');
      throw new ExitCode(await configCheckCommand(globals(program)));
    });

  program
    .command('import-certbot')
    .description("print mxcert config for the certificates certbot manages (CONFIG_DIR/renewal/*.conf); writes nothing")
    .option('--config-dir <dir>', "certbot's config directory", '/etc/letsencrypt')
    .option('--output-dir <dir>', "where mxcert is to write each certificate's files (DIR/NAME/)", '/etc/mxcert/live')
    .option('--mta-config <file>', 'MTA config file to search for certbot paths (repeatable; default: Postfix, Dovecot, Exim files in /etc)', certList, [] as string[])
    .option('--no-dns', "guess each dns-01 zone instead of asking the credentials' DNS server (SOA), as certbot does")
    .action(async (o: { configDir: string; outputDir: string; mtaConfig: string[]; dns: boolean }) => {
      const { importCertbotCommand } = await import('./import-certbot.js');
      throw new ExitCode(await importCertbotCommand(o));
    });

  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ExitCode) return err.code;
    if (err instanceof CommanderError) {
      // `--help` and `--version` succeed; help shown because no subcommand
      // was given (`mxcert`, `mxcert config`) is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return EXIT.usage;
    }
    return failure(err);
  }
}

/** `mxcert run`: the daemon (src/daemon/run.ts), which validates its config before it takes any lock. */
async function runCommand(g: GlobalOpts): Promise<number> {
  const { runDaemon } = await import('../daemon/run.js');
  const { resolveConfigPath } = await import('../config/config-path.js');
  return runDaemon({ configPath: resolveConfigPath(g.config), logger: createLogger({ level: g.logLevel }) });
}

/** A command that threw: config problems with their YAML paths (2), a held lock (3), anything else (1). */
function failure(err: unknown): number {
  if (err instanceof ConfigError) {
    for (const p of err.problems) process.stderr.write(`${p.path || '(config)'}: ${p.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof LockHeldError) {
    process.stderr.write(`mxcert: ${err.message}\n`);
    return EXIT.locked;
  }
  process.stderr.write(`mxcert: ${describeError(err)}\n`);
  return EXIT.failed;
}

function globals(program: Command): GlobalOpts & { logger: ReturnType<typeof createLogger> } {
  const g = program.opts<GlobalOpts>();
  return { ...g, logger: createLogger({ level: g.logLevel }) };
}

export type CommandContext = ReturnType<typeof globals>;
