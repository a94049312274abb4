// `mxcert account show|update|rollover-key`: the ACME account of
// acme.directory (RFC 8555 §7.3.2, §7.3.3, §7.3.5). Nothing secret is
// printed: the key's thumbprint (RFC 7638) identifies it.
import { readFile } from 'node:fs/promises';
import { loadConfig, readSecret, resolveConfigPath } from '../config/load.js';
import { configSchema, type Config } from '../config/schema.js';
import { AcmeService } from '../acme/client.js';
import type { AccountInfo } from '../acme/account.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock } from '../store/lock.js';
import type { Logger } from '../log.js';
import type { CommandContext } from './context.js';

/** An AcmeService for `directory` (default acme.directory) with the config's CA trust, email and EAB. */
export async function acmeServiceFor(config: Config, logger: Logger, directory = config.acme.directory): Promise<AcmeService> {
  const eab =
    config.acme.eab && directory === config.acme.directory
      ? {
          kid: config.acme.eab.kid,
          hmacKey: config.acme.eab.hmacKey ?? (await readSecret({ secretFile: config.acme.eab.hmacKeyFile, secretEnv: config.acme.eab.hmacKeyEnv })),
        }
      : undefined;
  return new AcmeService({
    directoryUrl: directory,
    email: config.acme.email,
    eab,
    caBundlePem: config.acme.caBundle ? await readFile(config.acme.caBundle, 'utf8') : undefined,
    termsOfServiceAgreed: config.acme.termsOfServiceAgreed,
    accounts: new StateStore(config.stateDir).accountStore(directory),
    logger,
    preferredChain: config.acme.preferredChain,
  });
}

function render(info: AccountInfo, directory: string): string {
  return [
    `directory:  ${directory}`,
    `account:    ${info.url}`,
    `status:     ${info.status}`,
    `contact:    ${info.contact.length ? info.contact.join(', ') : '(none)'}`,
    `key:        ${info.keyAlgorithm}, thumbprint ${info.thumbprint}`,
    '',
  ].join('\n');
}

function print(info: AccountInfo, directory: string, json: boolean): void {
  process.stdout.write(json ? JSON.stringify({ directory, ...info }) + '\n' : render(info, directory));
}

export async function accountShowCommand(ctx: CommandContext, o: { json: boolean }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const acme = await acmeServiceFor(config, ctx.logger);
  try {
    const info = await acme.accountCommands().show();
    if (!info) {
      process.stderr.write(`mxcert: no ACME account is registered with ${config.acme.directory} yet (mxcert renew registers one)\n`);
      return 1;
    }
    print(info, config.acme.directory, o.json);
    return 0;
  } finally {
    acme.close();
  }
}

/** Runs `fn` under the agent lock: these commands rewrite the stored account. */
async function withLockedAccount(ctx: CommandContext, wait: number, command: string, fn: (config: Config, acme: AcmeService) => Promise<number>): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const store = new StateStore(config.stateDir);
  await store.ensure();
  const lock = await acquireLock(config.stateDir, { command, waitMs: wait * 1000 });
  const acme = await acmeServiceFor(config, ctx.logger).catch(async (err: unknown) => {
    await lock.release();
    throw err;
  });
  try {
    return await fn(config, acme);
  } finally {
    acme.close();
    await lock.release();
  }
}

export async function accountUpdateCommand(ctx: CommandContext, o: { email: string; json: boolean; wait: number }): Promise<number> {
  if (!configSchema.shape.acme.shape.email.safeParse(o.email).success) {
    process.stderr.write(`mxcert: --email ${JSON.stringify(o.email)} is not an e-mail address\n`);
    return 2;
  }
  return withLockedAccount(ctx, o.wait, 'account update', async (config, acme) => {
    const info = await acme.accountCommands().updateEmail(o.email);
    print(info, config.acme.directory, o.json);
    if (config.acme.email !== o.email && !o.json) {
      process.stdout.write(`note: acme.email in ${config.source} is ${config.acme.email ? `still ${config.acme.email}` : 'unset'}; it is only used when an account is registered\n`);
    }
    return 0;
  });
}

export async function accountRolloverKeyCommand(ctx: CommandContext, o: { json: boolean; wait: number }): Promise<number> {
  return withLockedAccount(ctx, o.wait, 'account rollover-key', async (config, acme) => {
    const r = await acme.accountCommands().rolloverKey();
    if (o.json) process.stdout.write(JSON.stringify({ directory: config.acme.directory, ...r }) + '\n');
    else process.stdout.write(`account ${r.url}: key rolled over\n  old thumbprint ${r.oldThumbprint}\n  new thumbprint ${r.newThumbprint}\n`);
    return 0;
  });
}
