// Fleet renewal on real servers: a 3-node etcd cluster, one Pebble, one
// BIND (dns-01), and three members (mx-a, mx-b, mx-c), each with its own
// Postfix, output files, state directory and config, sharing one fleet
// prefix and fleet key. Each `mxcert renew` is a separate process, run on
// the members in turn, as their timers would. What Postfix serves is read
// with openssl; orders are counted from the members' own logs.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { servedLeafPem, startSandbox, type Sandbox } from '../support/sandbox.js';
import { fleetMemberConfig, memberPostfixes, type MemberSmtp } from '../support/fleet-rig.js';
import type { PostfixEnv } from '../env/postfix.js';
import { startEtcdCluster, type EtcdCluster } from '../env/etcd.js';
import type { RunResult } from '../env/proc.js';
import { openEtcd } from '../../src/fleet/etcd-client.js';
import { campaign } from '../../src/fleet/leader.js';
import type { FleetDryRun } from '../../src/fleet/dry-run-view.js';

const PREFIX = '/mxcert/fleet-renew/';
const NAMES = ['mx-a', 'mx-b', 'mx-c'] as const;
const DOMAIN = 'mx.example.test';

interface Member {
  name: string;
  cfg: string;
  port: number;
  combined: string;
  log: string[];
}

describe('a fleet of three renews with one order and serves one certificate', { timeout: 900_000 }, () => {
  let sb: Sandbox;
  let cluster: EtcdCluster;
  const postfixes: PostfixEnv[] = [];
  const members: Member[] = [];
  let fleetKey: string;
  let otherKey: string;

  async function writeMember(name: string, own: MemberSmtp, keyFile: string): Promise<string> {
    const cfg = fleetMemberConfig(sb, { name, names: NAMES, own, keyFile, endpoints: cluster.endpoints, prefix: PREFIX, domain: DOMAIN });
    return sb.writeConfig(cfg, path.join(sb.dir, `${name}${keyFile === otherKey ? '-wrongkey' : ''}.yaml`));
  }

  before(async () => {
    sb = await startSandbox({ pebble: { validitySeconds: 3600 } });
    cluster = await startEtcdCluster();
    fleetKey = path.join(sb.dir, 'fleet.key');
    otherKey = path.join(sb.dir, 'other-fleet.key');
    await writeFile(fleetKey, randomBytes(32).toString('hex'), { mode: 0o600 });
    await writeFile(otherKey, randomBytes(32).toString('hex'), { mode: 0o600 });
    const smtp = await memberPostfixes(sb, NAMES, DOMAIN, postfixes);
    for (const [i, name] of NAMES.entries()) {
      const own = smtp[i]!;
      members.push({ name, port: own.port, combined: own.combined, cfg: await writeMember(name, own, fleetKey), log: [] });
    }
  });
  after(async () => {
    for (const pf of postfixes) await pf.stop().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await sb?.stop();
  });

  const orders = (r: RunResult) => (r.stderr.match(/certificate issued/g) ?? []).length;

  async function renew(m: Member, args: string[] = [], cfg = m.cfg): Promise<RunResult> {
    const r = await sb.cli(['renew', ...args, '--config', cfg]);
    m.log.push(`$ mxcert renew ${args.join(' ')} (${m.name}) → ${r.code}\n${r.stdout}${r.stderr.split('\n').slice(-15).join('\n')}`);
    return r;
  }

  /** Renew on every member in turn; returns the orders placed, asserting every pass succeeded. */
  async function round(args: string[][] = [[], [], []]): Promise<number> {
    let n = 0;
    for (const [i, m] of members.entries()) {
      const r = await renew(m, args[i]);
      assert.equal(r.code, 0, `${m.name}: renew failed:\n${m.log.at(-1)}`);
      n += orders(r);
    }
    return n;
  }

  const served = async (m: Member) => new X509Certificate(await servedLeafPem(m.port, { servername: DOMAIN })).serialNumber;
  const servedAll = () => Promise.all(members.map(served));

  async function assertConverged(what: string): Promise<string> {
    const serials = await servedAll();
    assert.equal(new Set(serials).size, 1, `${what}: every member serves one serial, got ${serials.join(', ')}`);
    const cn = new X509Certificate(await servedLeafPem(members[0]!.port, { servername: DOMAIN })).subjectAltName;
    assert.match(cn ?? '', /DNS:mx\.example\.test/, `${what}: the fleet certificate, not a placeholder`);
    return serials[0]!;
  }

  it('one ACME order for the first issuance and for a forced renewal; all three serve the same serial', async () => {
    assert.equal(await round(), 1, 'exactly one order across the three members');
    const first = await assertConverged('after the first round');
    assert.equal(await round(), 0, 'nothing is due: no order');
    assert.equal(await assertConverged('after the second round'), first);

    // --force on one member: it leads its pass and orders once; the others deploy the lineage.
    assert.equal(await round([['--force'], [], []]), 1, 'a forced renewal is one order');
    const second = await assertConverged('after the forced renewal');
    assert.notEqual(second, first);
    // A member whose pass deployed before the forced order converges on its next pass.
    assert.equal(await round(), 0);
    assert.equal(await assertConverged('after another round'), second);

    // `mxcert status` on a member: the fleet's leader and what every member serves.
    const text = await sb.cli(['status', '--config', members[1]!.cfg]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /fleet \(this host: mx-b, prefix \/mxcert\/fleet-renew\/\):\n  leader: none/);
    for (const name of NAMES) assert.match(text.stdout, new RegExp(`  ${name}: mx: ecdsa-p256 serial [0-9a-f]+, SPKI [0-9a-f]{16}…; verified `, 'i'), `status names ${name}'s served certificate`);

    const status = await sb.cli(['fleet', 'status', '--config', members[0]!.cfg]);
    assert.equal(status.code, 0, status.stderr);
    const view = JSON.parse(status.stdout) as { members: Array<{ name: string; reports: Array<{ units: Record<string, { serial: string }> }> }> };
    for (const name of NAMES) {
      const rep = view.members.find((x) => x.name === name)?.reports[0];
      assert.ok(rep, `${name} reported`);
      assert.equal(BigInt(`0x${rep.units['ecdsa-p256']!.serial}`), BigInt(`0x${second}`), `${name} reports the served serial`);
    }
  });

  /** etcd's cluster revision: any write (a lease, a campaign, a report) moves it. */
  async function etcdRevision(): Promise<string> {
    const r = await cluster.etcdctl(['get', PREFIX, '--prefix', '--keys-only', '-w', 'json']);
    return String((JSON.parse(r.stdout) as { header: { revision: string | number } }).header.revision);
  }

  /** `renew --dry-run` on a member (JSON lines): the fleet view of its one unit. */
  async function dryRun(m: Member, args: string[] = []): Promise<{ r: RunResult; unit: { status: string; fleet?: FleetDryRun; error?: string } }> {
    const r = await renew(m, ['--dry-run', '--format', 'json', ...args]);
    const unit = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { cert?: string; keyType?: string; status: string; fleet?: FleetDryRun; error?: string }).find((u) => u.keyType);
    assert.ok(unit, `a unit line in:\n${r.stdout}`);
    return { r, unit };
  }

  it('renew --dry-run plans from the lineage in etcd, says who leads, orders and deploys, and writes nothing to etcd', async () => {
    const [a, b, c] = members;
    const rev0 = await etcdRevision();
    const same = await dryRun(b!);
    assert.equal(same.r.code, 0, b!.log.at(-1));
    assert.equal(same.unit.status, 'not-due');
    assert.equal(same.unit.fleet?.role, 'candidate');
    assert.equal(same.unit.fleet?.wouldOrder, false);
    assert.match(same.unit.fleet!.lines.join('\n'), /serves the lineage's serial [0-9a-f]+ already: nothing to deploy/);
    const forced = await dryRun(b!, ['--force']);
    assert.equal(forced.unit.status, 'planned');
    assert.equal(forced.unit.fleet?.wouldOrder, true, 'nobody leads: elected, it would order');
    assert.equal(orders(forced.r), 0);
    assert.equal(await etcdRevision(), rev0, 'dry runs wrote nothing to etcd');

    // A new lineage that mx-b does not serve yet: the dry run names its serial, mx-b keeps serving the old one.
    assert.equal(orders(await renew(a!, ['--force'])), 1);
    const lineage = JSON.parse((await cluster.etcdctl(['get', `${PREFIX}certs/mx/lineage`, '--print-value-only'])).stdout.trim()) as { units: Record<string, { serial: string }> };
    const newSerial = lineage.units['ecdsa-p256']!.serial;
    const servedBefore = await served(b!);
    const fileBefore = await readFile(b!.combined);
    const rev1 = await etcdRevision();
    const behind = await dryRun(b!);
    assert.equal(behind.r.code, 0, b!.log.at(-1));
    assert.equal(behind.unit.fleet?.wouldDeploy, newSerial);
    assert.match(behind.unit.fleet!.lines.join('\n'), new RegExp(`would deploy serial ${newSerial} \\(generation \\d+\\) from the stored lineage`));
    assert.deepEqual(await readFile(b!.combined), fileBefore, 'no file changed');
    assert.equal(await served(b!), servedBefore);
    assert.equal(await etcdRevision(), rev1, 'nothing written to etcd');

    // Another member leads: a forced dry run says this member would not order.
    const etcd = await openEtcd({ endpoints: cluster.endpoints, prefix: PREFIX, dialTimeoutMs: 2000, requestTimeoutMs: 2000 });
    const term = await campaign(etcd, { member: 'mx-c', ttlSeconds: 30 });
    try {
      const rev2 = await etcdRevision();
      const led = await dryRun(b!, ['--force']);
      assert.equal(led.unit.fleet?.leader, 'mx-c');
      assert.equal(led.unit.fleet?.role, 'member');
      assert.equal(led.unit.fleet?.wouldOrder, false);
      assert.equal(orders(led.r), 0);
      const text = await sb.cli(['renew', '--dry-run', '--force', '--format', 'text', '--config', b!.cfg]);
      assert.match(text.stdout, /mx \(ecdsa-p256\): fleet: mx-c leads the fleet: this pass would act as a member and order nothing\n/);
      assert.match(text.stdout, /mx \(ecdsa-p256\): the fleet's lineage is due \(forced\); this member would not order it\n/);
      assert.equal(await etcdRevision(), rev2, 'nothing written to etcd');
    } finally {
      await term.resign();
      etcd.close();
    }
    assert.equal(await round(), 0, 'the members converge on the new lineage');
    await assertConverged('after the dry runs');
    void c;
  });

  it('a member with another fleet key refuses the lineage, says why and keeps serving; the others are unaffected', async () => {
    const c = members[2]!;
    const before = await served(c);
    const r0 = await renew(members[0]!, ['--force']);
    assert.equal(r0.code, 0, members[0]!.log.at(-1));
    assert.equal(orders(r0), 1);
    const wrong = await writeMember(c.name, { port: c.port, configDir: postfixes[1]!.configDir, combined: c.combined }, otherKey);
    const fileBefore = await readFile(c.combined);
    const r = await renew(c, [], wrong);
    assert.notEqual(r.code, 0, 'the pass fails');
    assert.match(r.stdout + r.stderr, /sealed with key id [0-9a-f]{16}, this host has key id [0-9a-f]{16}/);
    assert.equal(orders(r), 0);
    assert.deepEqual(await readFile(c.combined), fileBefore, 'its files are untouched');
    assert.equal(await served(c), before, 'it keeps serving its certificate');
    const rb = await renew(members[1]!);
    assert.equal(rb.code, 0, members[1]!.log.at(-1));
    assert.equal(await served(members[1]!), await served(members[0]!), 'mx-b deploys the new lineage');
    // With the right key again it converges.
    const rc = await renew(c);
    assert.equal(rc.code, 0, c.log.at(-1));
    await assertConverged('after mx-c has the right key again');
  });

  it('a sealed key changed in etcd is refused by the member, which keeps serving', async () => {
    const [a, b] = members;
    const r0 = await renew(a!, ['--force']);
    assert.equal(r0.code, 0, a!.log.at(-1));
    const before = await served(b!);
    const key = `${PREFIX}certs/mx/lineage`;
    const got = await cluster.etcdctl(['get', key, '--print-value-only']);
    const lineage = JSON.parse(got.stdout.trim()) as { units: Record<string, { key: { ct: string } }> };
    const ct = Buffer.from(lineage.units['ecdsa-p256']!.key.ct, 'base64');
    ct[5] = ct[5]! ^ 0x01;
    lineage.units['ecdsa-p256']!.key.ct = ct.toString('base64');
    await cluster.etcdctl(['put', key, JSON.stringify(lineage)]);
    const fileBefore = await readFile(b!.combined);
    const r = await renew(b!);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /fails authentication/);
    assert.deepEqual(await readFile(b!.combined), fileBefore);
    assert.equal(await served(b!), before);
    // A new order replaces the tampered value; everyone converges.
    assert.equal(await round([['--force'], [], []]), 1);
    await assertConverged('after a fresh lineage');
  });

  it('one etcd node down: work goes on; two down: nothing changes, renew says etcd is unavailable and fails; quorum back: it works', async () => {
    await cluster.stopMember(2);
    try {
      assert.equal(await round([['--force'], [], []]), 1, 'one order with one etcd node down');
      await assertConverged('with one etcd node down');
      await cluster.stopMember(1);
      const m = members[0]!;
      const fileBefore = await readFile(m.combined);
      const servedBefore = await served(m);
      const r = await renew(m, ['--force']);
      assert.notEqual(r.code, 0, 'renew fails without quorum');
      assert.match(r.stdout, /etcd unavailable: keeping what is served/);
      assert.equal(orders(r), 0, 'no member orders alone');
      assert.deepEqual(await readFile(m.combined), fileBefore, 'nothing changed on disk');
      assert.equal(await served(m), servedBefore);
      // A dry run says the same and exits 1; it changes nothing either.
      const dry = await dryRun(m, ['--force']);
      assert.equal(dry.r.code, 1);
      assert.equal(dry.unit.status, 'failed');
      assert.match(dry.unit.error ?? '', /^etcd unavailable: keeping what is served .*the dry run cannot plan from the fleet's lineage/);
      assert.deepEqual(await readFile(m.combined), fileBefore);
    } finally {
      await cluster.startMember(1).catch(() => undefined);
      await cluster.startMember(2).catch(() => undefined);
    }
    await cluster.waitHealthy({ deadlineMs: 30_000 });
    assert.equal(await round([['--force'], [], []]), 1);
    await assertConverged('after quorum is back');
  });
});
