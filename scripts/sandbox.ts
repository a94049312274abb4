// `npm run sandbox`: the main job on a local sandbox of real servers.
// Starts BIND 9 (inline-signed example.test, TSIG updates, a secondary),
// Pebble and Postfix on loopback, writes a config for them, runs
// `mxcert renew --force` and `mxcert status`, shows what Postfix now serves,
// then stops every server (by PID). `--keep` leaves them running and records
// them in sandbox/servers.json; `--stop` stops what that file names.
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { REPO, servedLeafPem, startSandbox } from '../test/support/sandbox.js';
import { keepServersRunning, pidAlive, pollUntil, processStartTime } from '../test/env/proc.js';

const keep = process.argv.includes('--keep');
const stop = process.argv.includes('--stop');
// MXCERT_SANDBOX_DIR lets a test run the sandbox away from the checkout's own.
const dir = process.env.MXCERT_SANDBOX_DIR ?? path.join(REPO, 'sandbox');
const SERVERS_FILE = path.join(dir, 'servers.json');

interface KeptServers {
  servers: Array<{ pid: number; name: string; startTime?: string }>;
  tempDirs: string[];
}

/** `--keep`: leave the servers running and write down how to find them again. */
async function keepRunning(): Promise<void> {
  const kept = keepServersRunning(); // otherwise the exit hook stops them
  const record: KeptServers = {
    servers: kept.servers.map((s) => ({ ...s, startTime: processStartTime(s.pid) })),
    tempDirs: kept.tempDirs,
  };
  await writeFile(SERVERS_FILE, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
  process.stdout.write(
    `\n--keep: servers left running:\n${record.servers.map((s) => `  ${s.name} (pid ${s.pid})\n`).join('')}` +
      `Stop them with: bash scripts/sandbox.sh --stop\n`,
  );
}

/**
 * `--stop`: SIGTERM each server recorded by `--keep`, SIGKILL what is still
 * there after 10 s, then remove their temp dirs. A pid whose start time no
 * longer matches the record belongs to another process now and is left alone.
 */
async function stopKept(): Promise<number> {
  let record: KeptServers;
  try {
    record = JSON.parse(await readFile(SERVERS_FILE, 'utf8')) as KeptServers;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    process.stdout.write(`nothing to stop: no ${SERVERS_FILE} (start with: bash scripts/sandbox.sh --keep)\n`);
    return 0;
  }
  const ours = record.servers.filter((s) => {
    const same = s.startTime !== undefined && processStartTime(s.pid) === s.startTime;
    process.stdout.write(same ? `stopping ${s.name} (pid ${s.pid})\n` : `${s.name} (pid ${s.pid}) is no longer running\n`);
    return same;
  });
  for (const s of ours) process.kill(s.pid, 'SIGTERM');
  const gone = () => ours.every((s) => !pidAlive(s.pid) || processStartTime(s.pid) !== s.startTime);
  try {
    await pollUntil(() => gone() || undefined, { deadlineMs: 10_000, what: 'sandbox servers to exit' });
  } catch {
    for (const s of ours) if (pidAlive(s.pid) && processStartTime(s.pid) === s.startTime) process.kill(s.pid, 'SIGKILL');
    await pollUntil(() => gone() || undefined, { deadlineMs: 5_000, what: 'sandbox servers to exit after SIGKILL' });
  }
  for (const d of record.tempDirs) await rm(d, { recursive: true, force: true });
  await rm(SERVERS_FILE, { force: true });
  process.stdout.write('sandbox stopped\n');
  return 0;
}

async function main(): Promise<number> {
  if (stop) return stopKept();
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
    if (keep) await keepRunning();
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
