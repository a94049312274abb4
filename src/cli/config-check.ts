import { checkConfig } from '../config/check.js';
import { resolveConfigPath } from '../config/load.js';
import type { CommandContext } from './context.js';

export async function configCheckCommand(ctx: CommandContext): Promise<number> {
  const file = resolveConfigPath(ctx.config);
  const r = await checkConfig(file);
  if (r.ok) {
    const n = r.config.certificates.length;
    process.stdout.write(`${file}: ok (${n} certificate${n === 1 ? '' : 's'})\n`);
    return 0;
  }
  for (const p of r.problems) process.stderr.write(`${p.path || '(config)'}: ${p.message}\n`);
  process.stderr.write(`${file}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}\n`);
  return 2;
}
