// `npm run sandbox`: the main job on a local sandbox of real servers.
// Starts BIND 9 (inline-signed example.test, TSIG updates, a secondary),
// Pebble and Postfix on loopback, writes a config for them, runs
// `mxcert renew --force` and `mxcert status`, shows what Postfix now serves,
// then stops every server (by PID). `--keep` leaves them running.
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { REPO, servedLeafPem, startSandbox } from '../test/support/sandbox.js';
import { keepServersRunning } from '../test/env/proc.js';

const keep = process.argv.includes('--keep');
const dir = path.join(REPO, 'sandbox');

async function main(): Promise<number> {
  // A clean slate each time: Pebble's CA and accounts are new on every start.
  await rm(dir, { recursive: true, force: true });
  process.stdout.write(`Starting BIND 9, Pebble and Postfix on loopback (in ${dir}) ...\n`);
  const sb = await startSandbox({ secondary: true, dir, pebble: { validitySeconds: 6 * 86400 } });
  try {
    const cfg = await sb.writeConfig(sb.baseConfig({ challenge: 'dns-01', keys: ['ecdsa-p256'] }));
    process.stdout.write(
      `  BIND primary 127.0.0.1:${sb.bind.primary.port}, secondary 127.0.0.1:${sb.bind.secondary?.port}\n` +
        `  Pebble ${sb.pebble.directoryUrl}\n  Postfix smtpd 127.0.0.1:${sb.postfix.port}\n  config ${cfg}\n\n`,
    );
    const show = (label: string, r: { code: number; stdout: string; stderr: string }) => {
      process.stdout.write(`$ ${label}   (exit ${r.code})\n${r.stdout}`);
      if (r.code !== 0) process.stdout.write(r.stderr);
    };
    const renew = await sb.cli(['renew', '--force', '--config', cfg]);
    show(`mxcert renew --force --config ${cfg}`, renew);
    const status = await sb.cli(['status', '--config', cfg]);
    show(`mxcert status --config ${cfg}`, status);
    if (renew.code !== 0) return renew.code;

    const served = new X509Certificate(await servedLeafPem(sb.postfix.port));
    const combined = await readFile(sb.combinedPath(), 'utf8');
    const deployed = new X509Certificate(combined.slice(combined.indexOf('-----BEGIN CERTIFICATE-----')));
    process.stdout.write(
      `\nPostfix (STARTTLS, read with openssl) serves serial ${served.serialNumber}, valid until ${served.validTo}` +
        `\n${served.raw.equals(deployed.raw) ? 'OK: that is the certificate mxcert deployed' : 'MISMATCH with the deployed certificate'} (${sb.combinedPath()})\n`,
    );
    if (keep) {
      keepServersRunning(); // otherwise the exit hook stops them
      process.stdout.write(`\n--keep: servers left running. Stop them with: kill ${sb.pebble.pid} and postfix -c ${sb.postfix.configDir} stop, rndc/kill named\n`);
    }
    return served.raw.equals(deployed.raw) ? 0 : 1;
  } finally {
    if (!keep) await sb.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sandbox failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
