// A stand-in fleet member for the election tests: its own process, so the
// tests can kill -9 it or SIGSTOP it like a real host. It campaigns for
// leadership again and again, and reports on stdout, one JSON line each:
//   {"event":"elected","member":…,"createRevision":…,"leaseId":…,"t":…}
//   {"event":"lost","member":…,"reason":…,"t":…}
//   {"event":"write","ok":true|false,"code":…,"message":…,"t":…}
// A line "write" on stdin makes it write the lineage of certificate `mx`
// with the fence of its latest term, whether or not that term is still
// alive: what a leader that was paused and does not know it was deposed
// would do. etcd must refuse it (NotLeaderError) once another member leads.
//
// Environment: FLEET_ENDPOINTS (comma-separated), FLEET_PREFIX,
// FLEET_MEMBER, FLEET_TTL (seconds), FLEET_REQUEST_TIMEOUT_MS.
import { createInterface } from 'node:readline';
import { openEtcd } from '../../src/fleet/etcd-client.js';
import { campaign, type LeaderTerm } from '../../src/fleet/leader.js';
import { ABSENT, FleetStore, type Lineage } from '../../src/fleet/store.js';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const member = env('FLEET_MEMBER');
const ttlSeconds = Number(env('FLEET_TTL'));
const etcd = await openEtcd({
  endpoints: env('FLEET_ENDPOINTS').split(','),
  prefix: env('FLEET_PREFIX'),
  dialTimeoutMs: 2000,
  requestTimeoutMs: Number(process.env.FLEET_REQUEST_TIMEOUT_MS ?? 2000),
});
const store = new FleetStore(etcd);
let latest: LeaderTerm | undefined;

function say(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...event, member, t: Date.now() })}\n`);
}

function lineage(): Lineage {
  return { v: 1, generation: 1, units: {}, updatedBy: member, updatedAt: new Date().toISOString() };
}

async function write(): Promise<void> {
  if (!latest) return say({ event: 'write', ok: false, code: 'never-elected' });
  try {
    const cur = await store.getLineage('mx');
    await store.putLineage('mx', lineage(), cur?.revision ?? ABSENT, latest.fence);
    say({ event: 'write', ok: true });
  } catch (err) {
    say({ event: 'write', ok: false, code: (err as { code?: string }).code, message: (err as Error).message });
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'write') void write();
});

for (;;) {
  const term = await campaign(etcd, { member, ttlSeconds });
  latest = term;
  say({ event: 'elected', createRevision: term.createRevision, leaseId: term.fence.leaseId });
  const reason = await new Promise<string>((resolve) => term.once('lost', (err: { reason: string }) => resolve(err.reason)));
  say({ event: 'lost', reason });
}
