// `mxcert tlsa`, `mxcert rollover`, `mxcert check` (docs/architecture.md).
import { X509Certificate } from 'node:crypto';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import type { CertificateConfig, Config } from '../config/schema.js';
import { StateStore } from '../store/state-store.js';
import { acquireLock, runningDaemon } from '../store/lock.js';
import { systemClock } from '../clock.js';
import { describeError } from '../errors.js';
import { requestRollover } from '../dane/rollover.js';
import { readJournal } from '../dane/journal.js';
import { wantedRecords, endpointOwners } from '../dane/zone-lines.js';
import { createPublisher } from '../dane/publisher.js';
import { observeTlsa, describeObservation } from '../dane/visibility.js';
import { tlsa311, hasTlsa, formatTlsa } from '../dane/tlsa.js';
import { queryDns } from '../dns/query.js';
import type { DnsServer } from '../dns/types.js';
import { probeEndpoint } from '../verify/starttls.js';
import type { CommandContext } from './context.js';

function selectCerts(config: Config, names: string[]): CertificateConfig[] | string {
  const unknown = names.filter((n) => !config.certificates.some((c) => c.name === n));
  if (unknown.length) return `no certificate named ${unknown.join(', ')} in ${config.source}`;
  return config.certificates.filter((c) => !names.length || names.includes(c.name));
}

export async function tlsaCommand(ctx: CommandContext, o: { cert: string[] }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const certs = selectCerts(config, o.cert);
  if (typeof certs === 'string') return fail(certs, 2);
  const store = new StateStore(config.stateDir);
  for (const cert of certs) {
    if (!cert.dane?.enabled) {
      const left = (await Promise.all(cert.keys.map((k) => readJournal(store, cert.name, k)))).some(Boolean);
      // With DANE state left, mxcert's records may still be published: say so rather than "nothing".
      process.stdout.write(left ? `; ${cert.name}: DANE is off in the config, but mxcert's records may still be published until \`mxcert dane retire --cert ${cert.name}\` has removed them\n` : `; ${cert.name}: DANE is not enabled\n`);
      continue;
    }
    const journals = await Promise.all(cert.keys.map(async (k) => ({ keyType: k, journal: await readJournal(store, cert.name, k) })));
    for (const line of wantedRecords(cert, journals, cert.dane.publisher?.ttl ?? 3600)) process.stdout.write(line + '\n');
  }
  return 0;
}

export async function rolloverCommand(ctx: CommandContext, o: { cert: string; emergency: boolean; wait: number }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const certs = selectCerts(config, [o.cert]);
  if (typeof certs === 'string') return fail(certs, 2);
  const cert = certs[0]!;
  if (!cert.dane?.enabled) return fail(`${cert.name}: DANE is not enabled; a rollover only makes sense with published TLSA records`, 2);
  const store = new StateStore(config.stateDir);
  await store.ensure();
  const lock = await acquireLock(config.stateDir, { command: 'rollover', waitMs: o.wait * 1000 });
  try {
    for (const keyType of cert.keys) {
      const ok = await requestRollover(store, cert.name, keyType, o.emergency, systemClock.now());
      if (!ok) return fail(`${cert.name}/${keyType}: no DANE state yet; run mxcert renew first`, 1);
      if (o.emergency) ctx.logger.warn({ cert: cert.name, keyType }, 'EMERGENCY rollover requested: the next key will be served without waiting for the hold');
    }
  } finally {
    await lock.release();
  }
  process.stdout.write(`${cert.name}: rollover requested${o.emergency ? ' (emergency)' : ''}; running a pass now\n`);
  const { renewCommand } = await import('./renew.js');
  const code = await renewCommand(ctx, { force: false, cert: [cert.name], dryRun: false, wait: o.wait });
  // A running daemon planned its next wake-up from the journal before the
  // request: without a nudge a rollover still holding would wait for its next tick.
  // Only a process proven to be the daemon is signalled (runningDaemon).
  const daemon = await runningDaemon(config.stateDir);
  if ('pid' in daemon) {
    try {
      process.kill(daemon.pid, 'SIGUSR1');
      ctx.logger.info({ pid: daemon.pid }, 'asked the running daemon to re-plan (SIGUSR1)');
    } catch (err) {
      ctx.logger.warn({ pid: daemon.pid, err: (err as Error).message }, 'could not signal the running daemon; it picks the rollover up on its next tick');
    }
  } else {
    ctx.logger.info({ why: daemon.none }, 'no running mxcert daemon found; none signalled (a daemon started later plans from the journal)');
  }
  return code;
}

/**
 * Connect to each endpoint address the way a DANE sender does and compare:
 * the served leaf with the deployed one, and its key with the TLSA RRset of
 * every authoritative server. Exit 1 on any mismatch.
 */
export async function checkCommand(ctx: CommandContext, o: { cert: string[] }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const certs = selectCerts(config, o.cert);
  if (typeof certs === 'string') return fail(certs, 2);
  const store = new StateStore(config.stateDir);
  let bad = 0;
  for (const cert of certs) {
    for (const keyType of cert.keys) {
      const deployed = await store.currentVersion(cert.name, keyType);
      const deployedLeaf = deployed ? new X509Certificate(deployed.leafPem) : undefined;
      const targets: Array<{ label: string; endpoint: string; serverName: string; owner?: string }> = cert.verify.smtp.map((e) => ({
        label: e,
        endpoint: e,
        serverName: cert.verify.serverName ?? cert.domains[0]!,
      }));
      let servers: DnsServer[] = [];
      if (cert.dane?.enabled) {
        const pub = await createPublisher(cert.dane.publisher, { logger: ctx.logger });
        servers = await pub.servers();
        const owners = endpointOwners(cert);
        for (const [i, e] of cert.dane.endpoints.entries()) {
          for (const type of ['A', 'AAAA'] as const) {
            const r = await queryDns(servers[0]!, e.host, type, { tcp: true }).catch(() => undefined);
            for (const a of r?.answers ?? []) {
              if (a.type === type && typeof a.data === 'string') {
                const ep = type === 'AAAA' ? `[${a.data}]:${e.port}` : `${a.data}:${e.port}`;
                targets.push({ label: `${e.host}:${e.port} (${a.data})`, endpoint: ep, serverName: e.host, owner: owners[i] });
              }
            }
          }
        }
      }
      for (const t of targets) {
        const problems: string[] = [];
        try {
          const served = await probeEndpoint(t.endpoint, { serverName: t.serverName, keyType });
          const leaf = new X509Certificate(served.chainDer[0]!);
          if (!deployedLeaf) problems.push('nothing deployed by mxcert yet');
          else if (!leaf.raw.equals(deployedLeaf.raw)) problems.push(`serves serial ${leaf.serialNumber.toLowerCase()}, deployed is ${deployedLeaf.serialNumber.toLowerCase()}`);
          if (t.owner) {
            const h = tlsa311(leaf.publicKey.export({ type: 'spki', format: 'der' }));
            for (const obs of await observeTlsa(servers, t.owner)) {
              if (!obs.ok || !obs.authoritative) problems.push(`no authoritative answer: ${describeObservation(obs)}`);
              else if (!obs.records.length) {
                // Senders would not fail (no RRset, no DANE), but the host is
                // unprotected while its config says DANE: the records were
                // deleted, or adoption has not published them yet.
                problems.push(`no TLSA records published at ${t.owner} on ${describeObservation(obs)} (DANE is enabled; the next pass publishes them)`);
              } else if (!hasTlsa(obs.records, h)) problems.push(`served key ${formatTlsa(h).slice(0, 24)}… missing from ${describeObservation(obs)}`);
            }
          }
        } catch (err) {
          problems.push(describeError(err));
        }
        if (problems.length) bad++;
        process.stdout.write(`${cert.name} ${keyType} ${t.label}: ${problems.length ? `MISMATCH: ${problems.join('; ')}` : 'ok'}\n`);
      }
    }
  }
  return bad ? 1 : 0;
}

function fail(msg: string, code: number): number {
  process.stderr.write(`mxcert: ${msg}\n`);
  return code;
}
