// `mxcert sni write`: rebuild the MTAs' SNI tables now from the config and
// the deployed files (docs/architecture.md, "SNI tables"), e.g. after
// setting up `sni:` or before pointing Postfix's tls_server_sni_maps at the
// map for the first time. The deploy pipeline does the same after each
// deploy; this takes the agent lock so it never runs beside a pass.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { SniTables, type SniReport } from '../deploy/sni.js';
import { describeError } from '../errors.js';
import { defaultFormat } from '../log.js';
import { acquireLock } from '../store/lock.js';
import { StateStore } from '../store/state-store.js';
import type { CommandContext } from './context.js';

export async function sniWriteCommand(ctx: CommandContext, o: { wait: number }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  if (!config.sni) {
    process.stderr.write(`mxcert: ${config.source} has no sni block; nothing to write\n`);
    return 2;
  }
  const store = new StateStore(config.stateDir);
  await store.ensure();
  const lock = await acquireLock(config.stateDir, { command: 'sni write', waitMs: o.wait * 1000 });
  let report: SniReport;
  try {
    report = await new SniTables(config.sni, config.certificates, ctx.logger).write(ctx.logger, { force: true });
  } catch (err) {
    process.stdout.write(`sni: FAILED: ${describeError(err)}\n`);
    return 1;
  } finally {
    await lock.release();
  }
  const json = (ctx.format ?? defaultFormat(process.stdout.isTTY)) === 'json';
  process.stdout.write(json ? `${JSON.stringify(report)}\n` : reportText(report));
  return 0;
}

/** One line per table, then what was left out and why. */
export function reportText(r: SniReport): string {
  const lines: string[] = [];
  const count = (names: number, certs: number) => `${names} name${names === 1 ? '' : 's'} from ${certs} certificate${certs === 1 ? '' : 's'}`;
  if (r.postfix) lines.push(`postfix: ${r.postfix.type}:${r.postfix.map}: ${count(r.postfix.names, r.postfix.certificates)}; rebuilt with postmap -F`);
  if (r.dovecot) lines.push(`dovecot: ${r.dovecot.include}: ${count(r.dovecot.names, r.dovecot.certificates)}; ${r.dovecot.written ? 'written' : 'unchanged'}`);
  for (const n of r.notes) lines.push(`${n.level === 'warn' ? 'warning' : 'note'}: ${n.text}`);
  return `${lines.join('\n')}\n`;
}
