// `mxcert fleet status` and `mxcert fleet remove MEMBER` (docs/architecture.md,
// "Fleet"). Loaded only when one of them runs, and it alone loads the etcd
// client (src/fleet/etcd-client.ts): other commands never pay for gRPC.
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { FLEET_MEMBER_RE, type Config, type FleetConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import { connectFleetEtcd } from '../fleet/etcd-client.js';
import { loadFleetKey } from '../fleet/secret-files.js';
import { fleetStatusView } from '../fleet/status.js';
import { FleetStore } from '../fleet/store.js';
import { EXIT, type CommandContext } from './context.js';

async function fleetOf(ctx: CommandContext): Promise<{ config: Config; fleet: FleetConfig } | undefined> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  if (!config.fleet) {
    process.stderr.write(`mxcert: ${config.source} has no fleet block; this host is not a fleet member\n`);
    return undefined;
  }
  return { config, fleet: config.fleet };
}

async function withStore<T>(fleet: FleetConfig, fn: (store: FleetStore) => Promise<T>): Promise<T> {
  const etcd = await connectFleetEtcd(fleet);
  try {
    return await fn(new FleetStore(etcd));
  } finally {
    etcd.close();
  }
}

/** The leader, every member with its reports and removal, the stored lineages: one JSON document on stdout. */
export async function fleetStatusCommand(ctx: CommandContext): Promise<number> {
  const loaded = await fleetOf(ctx);
  if (!loaded) return EXIT.usage;
  const { fleet } = loaded;
  const keyId = await loadFleetKey(fleet.keyEncryption.keyFile).then(
    (k) => ({ id: k.id }),
    (err: unknown) => ({ error: describeError(err) }),
  );
  const view = await withStore(fleet, async (store) => {
    const [leader, reports, removed, lineages] = await Promise.all([store.leader(), store.listReports(), store.listRemoved(), store.lineages()]);
    return fleetStatusView({ config: fleet, keyId, leader, reports, removed, lineages: lineages.lineages });
  });
  process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
  return EXIT.ok;
}

/**
 * Take MEMBER out of the fleet for good: writes `removed/MEMBER`, which a
 * DANE retire stops waiting for. Idempotent. A name that is neither in
 * fleet.members nor known to etcd is refused as a likely typo.
 */
export async function fleetRemoveCommand(ctx: CommandContext, member: string, o: { json: boolean }): Promise<number> {
  if (!FLEET_MEMBER_RE.test(member)) {
    process.stderr.write(`mxcert: ${JSON.stringify(member)} is not a member name (a lower-case DNS label)\n`);
    return EXIT.usage;
  }
  const loaded = await fleetOf(ctx);
  if (!loaded) return EXIT.usage;
  const { fleet } = loaded;
  return withStore(fleet, async (store) => {
    if (!fleet.members.includes(member)) {
      const reports = await store.listReports();
      const known = reports.some((r) => !(r instanceof Error) && r.value.member === member);
      if (!known) {
        process.stderr.write(`mxcert: ${member} is neither in fleet.members (${fleet.members.join(', ')}) nor has it reported to the fleet; nothing removed\n`);
        return EXIT.usage;
      }
    }
    const rec = await store.markRemoved(member, fleet.member, new Date());
    if (o.json) process.stdout.write(`${JSON.stringify({ member, removedAt: rec.value.removedAt, removedBy: rec.value.removedBy })}\n`);
    else process.stdout.write(`${member} is removed from the fleet (since ${rec.value.removedAt}, by ${rec.value.removedBy})\n`);
    if (fleet.members.includes(member) && !o.json) {
      process.stdout.write(`note: also take ${member} out of fleet.members in every member's config\n`);
    }
    return EXIT.ok;
  });
}
