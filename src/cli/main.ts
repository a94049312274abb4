// mxcert command line (docs/architecture.md). Exit codes: 0 ok (also "nothing due"),
// 1 a certificate failed, 2 usage or config error, 3 the state lock is held.
// The renewal machinery (ACME, DNS, chain checks) is imported only by the
// commands that need them, so `mxcert status` starts fast; `mxcert run`
// started plainly (as the systemd unit does) skips even commander, see
// plainRunArgs.
import type { Command } from 'commander';
import { createRequire } from 'node:module';
import { ConfigError, LockHeldError, describeError } from '../errors.js';
import { createLogger, OUTPUT_FORMATS, type Logger, type OutputFormat } from '../log.js';
import { EXIT, type CommandContext, type GlobalOpts } from './context.js';

export { EXIT };

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

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

const EXIT_CODES_HELP = `
Exit codes:
  0  success, including "nothing due"
  1  a certificate (or the command) failed
  2  usage or config error; nothing on disk changed
  3  another mxcert holds the state lock

Output:
  Text on a terminal, JSON lines (logs on stderr, results on stdout) otherwise;
  --format overrides both. Times are shown in UTC as 2026-12-07 23:50:24Z.
  From cron, use: mxcert renew --quiet --format text
  (silent unless a certificate failed or changed; cron mails what is printed).
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

/** MXCERT_LOG_FORMAT (set by `--format` for the daemon's children), checked like MXCERT_LOG_LEVEL. */
export function logFormatEnvProblem(env: NodeJS.ProcessEnv): string | undefined {
  const v = env.MXCERT_LOG_FORMAT;
  if (v === undefined || v === '' || (OUTPUT_FORMATS as readonly string[]).includes(v)) return undefined;
  return `MXCERT_LOG_FORMAT=${JSON.stringify(v)} is not an output format; use one of ${OUTPUT_FORMATS.join(', ')}`;
}

/**
 * The global options of `mxcert run` when it is started plainly: only `run`
 * and the global options in their usual spellings (`-c PATH`, `--config
 * PATH`, `--config=PATH`, `--log-level LEVEL`, `--log-level=LEVEL`).
 * The daemon lives for months and every module it loads stays resident, so
 * that case skips commander (idle memory: docs/architecture.md, "The daemon and its children"). Anything else (help, other
 * spellings, unknown options, a bad level) gives undefined and goes through
 * commander, with its messages and exit codes.
 */
export function plainRunArgs(args: readonly string[]): GlobalOpts | undefined {
  return plainCommandArgs(args, 'run', [], false)?.g;
}

/**
 * `mxcert status` started plainly: the global options as for run, plus
 * `--format text|json`, and `--json`, `--wide` after the command name. A
 * person waits for status at a terminal, and loading commander was a tenth
 * of its start-up. Anything else goes through commander, as for run.
 */
export function plainStatusArgs(args: readonly string[]): { g: GlobalOpts; json: boolean; wide: boolean } | undefined {
  const r = plainCommandArgs(args, 'status', ['--json', '--wide'], true);
  return r && { g: r.g, json: r.flags.has('--json'), wide: r.flags.has('--wide') };
}

function plainCommandArgs(args: readonly string[], command: string, flags: readonly string[], format: boolean): { g: GlobalOpts; flags: Set<string> } | undefined {
  const g: GlobalOpts = {};
  const given = new Set<string>();
  let seen = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = /^(--config|--log-level|--format)=(.*)$/s.exec(a);
    let name: string | undefined;
    let value: string | undefined;
    if (eq) [, name, value] = eq;
    else if (a === '-c' || a === '--config' || a === '--log-level' || a === '--format') {
      name = a === '-c' ? '--config' : a;
      value = args[++i];
      // A missing value, or one that looks like an option: let commander judge.
      if (value === undefined || value.startsWith('-')) return undefined;
    } else if (a === command && !seen) {
      seen = true;
      continue;
    } else if (seen && flags.includes(a) && !given.has(a)) {
      given.add(a);
      continue;
    } else return undefined;
    if (name === '--config') g.config = value;
    else if (name === '--log-level' && LOG_LEVELS.includes(value!)) g.logLevel = value;
    else if (name === '--format' && format && (OUTPUT_FORMATS as readonly string[]).includes(value!)) g.format = value as OutputFormat;
    else return undefined;
  }
  return seen ? { g, flags: given } : undefined;
}

export async function main(argv: string[]): Promise<number> {
  const badLevel = logLevelEnvProblem(process.env) ?? logFormatEnvProblem(process.env);
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
  const plainStatus = plainStatusArgs(argv.slice(2));
  if (plainStatus) {
    try {
      const { statusCommand } = await import('./status.js');
      return await statusCommand(contextFor(plainStatus.g), { json: plainStatus.json, wide: plainStatus.wide });
    } catch (err) {
      return failure(err);
    }
  }

  const commander = await import('commander');
  const program = buildProgram(commander);
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ExitCode) return err.code;
    if (err instanceof commander.CommanderError) {
      // `--help` and `--version` succeed; help shown because no subcommand
      // was given (`mxcert`, `mxcert config`) is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return EXIT.usage;
    }
    return failure(err);
  }
}

type Commander = typeof import('commander');
/** A `--wait SECONDS` style option parser. */
type OptionParser = (v: string) => number;

/** A repeatable option's values, in order. */
const certList = (v: string, acc: string[]) => [...acc, v];

/** The global options and every command; each command's module is loaded only when it runs. */
function buildProgram(commander: Commander): Command {
  /** `--wait SECONDS`, parsed once for every command that takes the lock (bad input: exit 2). */
  const seconds = (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new commander.InvalidArgumentError('takes a number of seconds');
    return n;
  };
  const program = new commander.Command();
  program
    .name('mxcert')
    .description('Certificate lifecycle agent for mail hosts: ACME renewal, atomic MTA files, reload hooks, live STARTTLS verification.')
    .version(version(), '-V, --version')
    .option('-c, --config <path>', 'config file (default: $MXCERT_CONFIG, then /etc/mxcert/config.yaml)')
    .addOption(new commander.Option('--log-level <level>', 'log level').choices(LOG_LEVELS))
    .addOption(new commander.Option('--format <format>', 'logs and results as text or JSON lines (default: text on a terminal, else json)').choices(OUTPUT_FORMATS))
    .addHelpText('after', EXIT_CODES_HELP)
    // `mxcert renew --help` shows --format and --log-level too.
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('renew')
    .description('one pass over all (or the named) certificates: renew what is due, deploy, reload, verify')
    .option('-f, --force', 'renew now regardless of timing (validation still applies)', false)
    .option('--cert <name>', 'only this certificate (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('-n, --dry-run', 'print the plan and test the challenge path (publish a test token, check it, remove it; with acme.staging a full order there); deploys nothing', false)
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .option('-q, --quiet', 'print nothing unless a certificate failed or changed (renewed, DANE records published or rolled over), or something warned; for cron', false)
    .addHelpText('after', '\nFrom cron: mxcert renew --quiet --format text  (cron mails only failures and changes, as text)\n')
    .action(async (o: { force: boolean; cert: string[]; dryRun: boolean; wait: number; quiet: boolean }) => {
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
    .option('--json', 'machine-readable output (docs/status.schema.json); same as --format json', false)
    .option('--wide', 'one line per certificate and key type with every column (for a wide terminal)', false)
    .action(async (o: { json: boolean; wide: boolean }) => {
      const { statusCommand } = await import('./status.js');
      throw new ExitCode(await statusCommand(globals(program), o));
    });

  addDaneCommands(program, seconds);
  addLifecycleCommands(program, seconds, commander);
  addConfigCommands(program, seconds);
  addFleetCommands(program);
  return program;
}

/** `tlsa`, `check`, `rollover` (src/cli/dane.ts), `dane retire`, `delete` (src/cli/dane-retire.ts). */
function addDaneCommands(program: Command, seconds: OptionParser): void {
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
}

/** `revoke`, `account …` (src/cli/revoke.ts, src/cli/account.ts). */
function addLifecycleCommands(program: Command, seconds: OptionParser, commander: Commander): void {
  program
    .command('revoke')
    .description('revoke the current certificate (RFC 8555 §7.6); the next pass replaces it; keyCompromise on a DANE certificate also starts the emergency rollover')
    .requiredOption('--cert <name>', 'the certificate')
    .option('--key-type <type>', 'only this key type (default: every key type of the certificate)')
    .addOption(new commander.Option('--reason <reason>', 'RFC 5280 reason').choices(['unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged']).default('unspecified'))
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { cert: string; keyType?: string; reason: string; wait: number }) => {
      const { revokeCommand } = await import('./revoke.js');
      throw new ExitCode(await revokeCommand(globals(program), o));
    });

  const account = program.command('account').description('the ACME account of acme.directory (RFC 8555 §7.3)');
  account
    .command('show')
    .description('URL, contact, status and key thumbprint of the account (no secrets)')
    .option('--json', 'machine-readable output', false)
    .action(async (o: { json: boolean }) => {
      const { accountShowCommand } = await import('./account.js');
      throw new ExitCode(await accountShowCommand(globals(program), o));
    });
  account
    .command('update')
    .description("replace the account's contact address (RFC 8555 §7.3.2)")
    .requiredOption('--email <address>', 'the new contact address')
    .option('--json', 'machine-readable output', false)
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { email: string; json: boolean; wait: number }) => {
      const { accountUpdateCommand } = await import('./account.js');
      throw new ExitCode(await accountUpdateCommand(globals(program), o));
    });
  account
    .command('rollover-key')
    .description('replace the account key (RFC 8555 §7.3.5); the new key is stored only once the CA accepted it')
    .option('--json', 'machine-readable output', false)
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { json: boolean; wait: number }) => {
      const { accountRolloverKeyCommand } = await import('./account.js');
      throw new ExitCode(await accountRolloverKeyCommand(globals(program), o));
    });
}

/** `config check`, `sni write`, `import-certbot`. */
function addConfigCommands(program: Command, seconds: OptionParser): void {
  const config = program.command('config').description('configuration helpers');
  config
    .command('check')
    .description('load and validate the config; print every problem with its YAML path')
    .action(async () => {
      const { configCheckCommand } = await import('./config-check.js');
      throw new ExitCode(await configCheckCommand(globals(program)));
    });

  const sni = program.command('sni').description("the MTAs' SNI tables (config sni:): Postfix's tls_server_sni_maps, Dovecot's local_name blocks");
  sni
    .command('write')
    .description('rebuild them now from the config and the deployed files (postmap -F; written atomically); renew and the daemon do this after every deploy')
    .option('--wait <seconds>', 'wait this long for the state lock', seconds, 0)
    .action(async (o: { wait: number }) => {
      const { sniWriteCommand } = await import('./sni.js');
      throw new ExitCode(await sniWriteCommand(globals(program), o));
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
}

/** `fleet status`, `fleet remove` (src/cli/fleet.ts, which alone loads the etcd client). */
function addFleetCommands(program: Command): void {
  const fleet = program.command('fleet').description('fleet mode: several MX hosts sharing certificates through etcd');
  fleet
    .command('status')
    .description('the leader, every member with what it serves and its last report, removed members, the stored lineages (JSON)')
    .action(async () => {
      const { fleetStatusCommand } = await import('./fleet.js');
      throw new ExitCode(await fleetStatusCommand(globals(program)));
    });
  fleet
    .command('remove')
    .description('take MEMBER out of the fleet for good: DANE retire stops waiting for it')
    .argument('<member>', 'the member name (as in fleet.members)')
    .option('--json', 'machine-readable output', false)
    .action(async (member: string, o: { json: boolean }) => {
      const { fleetRemoveCommand } = await import('./fleet.js');
      throw new ExitCode(await fleetRemoveCommand(globals(program), member, o));
    });
}

/** `mxcert run`: the daemon (src/daemon/run.ts), which validates its config before it takes any lock. */
async function runCommand(g: GlobalOpts): Promise<number> {
  const { runDaemon } = await import('../daemon/run.js');
  const { resolveConfigPath } = await import('../config/config-path.js');
  return runDaemon({ configPath: resolveConfigPath(g.config), logger: createLogger({ level: g.logLevel, format: passFormatOn(g.format) }) });
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

function globals(program: Command): CommandContext {
  return contextFor(program.opts<GlobalOpts>());
}

function contextFor(g: GlobalOpts): CommandContext {
  const format = passFormatOn(g.format);
  // Made on first use: a command that logs nothing (status) never loads pino.
  let logger: Logger | undefined;
  return {
    ...g,
    get logger() {
      return (logger ??= createLogger({ level: g.logLevel, format }));
    },
  };
}

/** `--format` holds for the processes mxcert starts too (the daemon's config and pass children). */
function passFormatOn(format: OutputFormat | undefined): OutputFormat | undefined {
  if (format) process.env.MXCERT_LOG_FORMAT = format;
  return format;
}
