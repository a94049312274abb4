// TLSA publishing (docs/architecture.md, "DANE") against real servers: a DNSSEC inline-signing
// BIND primary with a secondary fed by zone transfer, and PowerDNS 4.7 with
// its HTTP API. Visibility is always judged the way the rollover will judge
// it: every server asked directly (observeTlsa) and the pure verdict
// (assessVisibility), polled with a deadline, never a fixed sleep.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { dig, querySoa, startBind, type BindEnv } from '../env/bind.js';
import { startPdns, type PdnsEnv } from '../env/pdns.js';
import { pollUntil, run } from '../env/proc.js';
import { createPublisher, type TlsaPublisher } from '../../src/dane/publisher.js';
import { secretEnvNames, withholdFromHooks } from '../../src/hooks/environment.js';
import { Rfc2136TlsaPublisher } from '../../src/dane/publish-rfc2136.js';
import { PdnsApiError, PdnsTlsaPublisher } from '../../src/dane/publish-pdns.js';
import { formatTlsa, parseTlsa, sameTlsaSet, tlsa311, tlsaOwner, type TlsaRecord } from '../../src/dane/tlsa.js';
import { assessVisibility, observeTlsa, type Observation, type VisibilityVerdict } from '../../src/dane/visibility.js';
import { publicKeySpkiDer, generateKeyPem } from '../../src/keys/keygen.js';
import type { DnsServer } from '../../src/dns/types.js';
import type { DaneHookPublisherConfig, DanePdnsPublisherConfig, DaneRfc2136PublisherConfig } from '../../src/config/schema.js';

const HOOK = fileURLToPath(new URL('../../hooks/nsupdate-tlsa', import.meta.url));
const TTL = 5;

const logLines: string[] = [];
// No redaction configured: the code under test must simply never log secrets.
const logger = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });

/** A random "3 1 1" record, standing in for a key's SPKI hash. */
function randomRecord(): TlsaRecord {
  return { usage: 3, selector: 1, matchingType: 1, data: randomBytes(32).toString('hex') };
}

/** Poll every server until the verdict agrees; fail with the last reasons at the deadline. */
async function waitVisible(
  servers: DnsServer[],
  owner: string,
  want: { present: TlsaRecord[]; absent: TlsaRecord[]; minSerial?: number },
): Promise<{ verdict: VisibilityVerdict; obs: Observation[] }> {
  let last: VisibilityVerdict | undefined;
  return pollUntil(
    async () => {
      const obs = await observeTlsa(servers, owner);
      last = assessVisibility(obs, want);
      return last.allAgree ? { verdict: last, obs } : undefined;
    },
    { deadlineMs: 20_000, intervalMs: 25, what: `TLSA at ${owner} on every server`, detail: () => (last?.lagging ?? []).join('\n') },
  );
}

/** The served RRset at one server, as a sorted list of presentation strings. */
async function servedAt(server: DnsServer, owner: string): Promise<string[]> {
  const [o] = await observeTlsa([server], owner);
  assert.ok(o?.ok, o?.error);
  return o.records.map(formatTlsa).sort();
}

/**
 * Run a command that never reads stdin. (proc.ts's run() writes to the
 * child's stdin, which races with a child that exits at once: EPIPE.)
 */
function runWithoutStdin(cmd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function assertNoSecrets(secrets: string[]): void {
  assert.ok(logLines.length > 0);
  for (const line of logLines) for (const s of secrets) assert.equal(line.includes(s), false, `secret in log: ${line}`);
}

describe('TLSA publishing against BIND 9 (primary + secondary, inline-signed)', { timeout: 240_000 }, () => {
  let bind: BindEnv;
  let primary: DnsServer;
  let secondary: DnsServer;
  let servers: DnsServer[];
  let scratch: string;

  const rfc2136Config = (): DaneRfc2136PublisherConfig => ({
    provider: 'rfc2136',
    server: '127.0.0.1',
    port: primary.port,
    zone: bind.zone,
    tsig: { name: bind.tsig.name, algorithm: 'hmac-sha256', secretFile: bind.tsig.secretFile },
    ttl: TTL,
    // The zone's NS records say port 53; the servers listen elsewhere.
    nameservers: [`127.0.0.1:${primary.port}`, `127.0.0.1:${secondary.port}`],
  });

  /**
   * An nsupdate that counts its runs. With `barrier`, the first runs wait
   * until that many have started; with `beforeFirst`, the first run applies
   * that (foreign) update script before its own.
   */
  async function countingNsupdate(opts: { barrier?: number; beforeFirst?: string } = {}): Promise<{ path: string; calls(): Promise<number> }> {
    const dir = await mkdtemp(path.join(scratch, 'nsupdate-'));
    const calls = path.join(dir, 'calls');
    const arrived = path.join(dir, 'arrived');
    const foreign = path.join(dir, 'foreign.txt');
    await mkdir(arrived);
    if (opts.beforeFirst) await writeFile(foreign, opts.beforeFirst);
    const script = `#!/bin/sh
echo run >> '${calls}'
: > '${arrived}'/$$
i=0
while [ "$(ls '${arrived}' | wc -l)" -lt ${opts.barrier ?? 0} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
if [ -e '${foreign}' ]; then
  nsupdate -v -k '${bind.tsig.keyFile}' < '${foreign}' || exit 99
  rm -f '${foreign}'
fi
exec nsupdate "$@"
`;
    const file = path.join(dir, 'nsupdate');
    await writeFile(file, script, { mode: 0o755 });
    return {
      path: file,
      calls: async () => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean).length,
    };
  }

  /** Someone else's change, made with plain nsupdate and the zone's key. */
  async function foreignUpdate(lines: string[]): Promise<void> {
    const script = [`server 127.0.0.1 ${primary.port}`, `zone ${bind.zone}.`, ...lines, 'send', ''].join('\n');
    await run('nsupdate', ['-v', '-k', bind.tsig.keyFile], { input: script });
  }

  before(async () => {
    bind = await startBind({ secondary: true, ttl: TTL });
    primary = bind.primary;
    secondary = bind.secondary!;
    servers = [primary, secondary];
    scratch = await mkdtemp(path.join(tmpdir(), 'mxcert-dane-test-'));
  });

  after(async () => {
    await bind?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('publishes {current, next} computed from real keys; both servers serve them, signed, at a serial ≥ the returned one', async () => {
    const publisher = await createPublisher(rfc2136Config(), { logger });
    assert.equal(publisher.name, 'rfc2136');
    assert.deepEqual(await publisher.servers(), servers);

    const current = tlsa311(publicKeySpkiDer(await generateKeyPem('ecdsa-p256')));
    const next = tlsa311(publicKeySpkiDer(await generateKeyPem('ecdsa-p256')));
    const owner = tlsaOwner(`mx1.${bind.zone}`, 25);
    const before = (await querySoa(primary, bind.zone)).serial!;

    const { serial } = await publisher.change(owner, { add: [current, next], remove: [] }, TTL);
    assert.ok(serial !== undefined && serial > before, `serial ${serial} after ${before}`);
    // change() returns once the primary serves it (inline signing lags the UPDATE reply).
    assert.deepEqual(await servedAt(primary, owner), [formatTlsa(current), formatTlsa(next)].sort());

    const { verdict, obs } = await waitVisible(servers, owner, { present: [current, next], absent: [], minSerial: serial });
    assert.equal(verdict.maxTtl, TTL);
    for (const o of obs) {
      assert.equal(o.authoritative, true);
      assert.ok(o.serial !== undefined && o.serial >= serial);
      assert.ok(o.rrsigExpiration, `RRSIG over TLSA from ${o.server.port}`);
      // BIND's default policy signs for days to weeks ahead.
      assert.ok(o.rrsigExpiration.getTime() > Date.now() + 86_400_000, o.rrsigExpiration.toISOString());
    }
    assert.ok(verdict.maxRrsigExpiration instanceof Date);
    assert.ok(sameTlsaSet(await publisher.read(owner), [current, next]));

    // Cross-check with dig: aa flag and an RRSIG covering TLSA.
    const out = await dig(secondary, ['+dnssec', '+tcp', owner, 'TLSA']);
    assert.match(out, /;; flags:[^;]*\baa\b/);
    assert.match(out, /\bRRSIG\s+TLSA\b/);
  });

  it('adds and removes only its own records: a foreign record survives both', async () => {
    const publisher = await createPublisher(rfc2136Config(), { logger });
    const owner = tlsaOwner(`mx2.${bind.zone}`, 25);
    const foreign = randomRecord();
    const ours = randomRecord();
    await foreignUpdate([`update add ${owner} ${TTL} TLSA ${formatTlsa(foreign)}`]);
    await waitVisible(servers, owner, { present: [foreign], absent: [] });

    const added = await publisher.change(owner, { add: [ours], remove: [] }, TTL);
    await waitVisible(servers, owner, { present: [foreign, ours], absent: [], minSerial: added.serial! });

    const removed = await publisher.change(owner, { add: [], remove: [ours] }, TTL);
    const { obs } = await waitVisible(servers, owner, { present: [foreign], absent: [ours], minSerial: removed.serial! });
    for (const o of obs) assert.deepEqual(o.records.map(formatTlsa), [formatTlsa(foreign)]);
  });

  it('one update swaps old for new (RETIRE) and leaves the others', async () => {
    const publisher = await createPublisher(rfc2136Config(), { logger });
    const owner = tlsaOwner(`mx1.${bind.zone}`, 465);
    const [old, next, newer] = [randomRecord(), randomRecord(), randomRecord()];
    await publisher.change(owner, { add: [old, next], remove: [] }, TTL);
    const { serial } = await publisher.change(owner, { add: [newer], remove: [old] }, TTL);
    await waitVisible(servers, owner, { present: [next, newer], absent: [old], minSerial: serial! });
    assert.ok(sameTlsaSet(await publisher.read(owner), [next, newer]));
  });

  it('re-applying a change that is already in place sends nothing and leaves the serial alone', async () => {
    const counter = await countingNsupdate();
    const publisher = new Rfc2136TlsaPublisher({
      server: primary,
      zone: bind.zone,
      tsig: { name: bind.tsig.name, algorithm: 'hmac-sha256', secret: bind.tsig.secret },
      nameservers: servers,
      logger,
      nsupdatePath: counter.path,
    });
    const owner = tlsaOwner(`mx1.${bind.zone}`, 587);
    const [a, b] = [randomRecord(), randomRecord()];
    const first = await publisher.change(owner, { add: [a, b], remove: [] }, TTL);
    assert.equal(await counter.calls(), 1);
    const serialBefore = (await querySoa(primary, bind.zone)).serial;
    assert.equal(serialBefore, first.serial);

    const again = await publisher.change(owner, { add: [a, b], remove: [] }, TTL);
    const removeAbsent = await publisher.change(owner, { add: [a], remove: [randomRecord()] }, TTL);
    assert.equal(await counter.calls(), 1, 'no UPDATE sent for a no-op');
    assert.equal(again.serial, serialBefore);
    assert.equal(removeAbsent.serial, serialBefore);
    assert.equal((await querySoa(primary, bind.zone)).serial, serialBefore);
  });

  it('two agents changing the same RRset at once both win: a failed prerequisite makes the loser re-read and retry', async () => {
    const owner = tlsaOwner(`mx1.${bind.zone}`, 2525);
    const existing = randomRecord();
    await foreignUpdate([`update add ${owner} ${TTL} TLSA ${formatTlsa(existing)}`]);
    await waitVisible([primary], owner, { present: [existing], absent: [] });

    // Both first attempts are held until both have read the RRset, so they
    // are built from the same view and exactly one prerequisite must fail.
    const counter = await countingNsupdate({ barrier: 2 });
    const agent = () =>
      new Rfc2136TlsaPublisher({
        server: primary,
        zone: bind.zone,
        tsig: { name: bind.tsig.name, algorithm: 'hmac-sha256', secret: bind.tsig.secret },
        nameservers: servers,
        logger,
        nsupdatePath: counter.path,
      });
    const [x, y] = [randomRecord(), randomRecord()];
    const linesBefore = logLines.length;
    const [rx, ry] = await Promise.all([agent().change(owner, { add: [x], remove: [] }, TTL), agent().change(owner, { add: [y], remove: [] }, TTL)]);
    assert.equal(await counter.calls(), 3, 'two first attempts and one retry');
    assert.ok(logLines.slice(linesBefore).some((l) => l.includes('changed since we read it')), 'the loser saw its prerequisite fail');

    const minSerial = Math.max(rx.serial!, ry.serial!);
    const { obs } = await waitVisible(servers, owner, { present: [existing, x, y], absent: [], minSerial });
    for (const o of obs) assert.equal(o.records.length, 3);
  });

  it('a change that lands between our read and our UPDATE fails the prerequisite; we re-read and apply on top of it', async () => {
    const owner = tlsaOwner(`mx2.${bind.zone}`, 587);
    const [f, z, a] = [randomRecord(), randomRecord(), randomRecord()];
    await foreignUpdate([`update add ${owner} ${TTL} TLSA ${formatTlsa(f)}`, `update add ${owner} ${TTL} TLSA ${formatTlsa(z)}`]);
    await waitVisible([primary], owner, { present: [f, z], absent: [] });
    // Our first UPDATE is built from {f, z}; just before it is sent, someone
    // else removes z. "RRset is exactly {f, z}" no longer holds.
    const counter = await countingNsupdate({
      beforeFirst: [`server 127.0.0.1 ${primary.port}`, `zone ${bind.zone}.`, `update delete ${owner} TLSA ${formatTlsa(z)}`, 'send', ''].join('\n'),
    });
    const publisher = new Rfc2136TlsaPublisher({
      server: primary,
      zone: bind.zone,
      tsig: { name: bind.tsig.name, algorithm: 'hmac-sha256', secret: bind.tsig.secret },
      nameservers: servers,
      logger,
      nsupdatePath: counter.path,
    });
    const linesBefore = logLines.length;
    const res = await publisher.change(owner, { add: [a], remove: [] }, TTL);
    assert.equal(await counter.calls(), 2, 'refused once, then applied');
    const retry = logLines.slice(linesBefore).find((l) => l.includes('changed since we read it'));
    assert.ok(retry, 'the prerequisite failure was seen');
    assert.match(retry, /"rcode":"NXRRSET"/);
    const { obs } = await waitVisible(servers, owner, { present: [f, a], absent: [z], minSerial: res.serial! });
    for (const o of obs) assert.equal(o.records.length, 2);
  });

  it('the shipped hooks/nsupdate-tlsa publishes and retires through the hook publisher, foreign records intact', async () => {
    const cfg: DaneHookPublisherConfig = {
      provider: 'hook',
      command: [HOOK],
      nameservers: [`127.0.0.1:${primary.port}`, `127.0.0.1:${secondary.port}`],
      ttl: TTL,
      timeout: 30_000,
      env: {
        NSUPDATE_SERVER: '127.0.0.1',
        NSUPDATE_PORT: String(primary.port),
        NSUPDATE_KEYFILE: bind.tsig.keyFile,
        NSUPDATE_ZONE: bind.zone,
      },
    };
    const publisher = await createPublisher(cfg, { logger, hookEnv: { MXCERT_CERT_NAME: 'mx1' } });
    assert.equal(publisher.name, 'hook');
    assert.deepEqual(await publisher.servers(), servers);
    const owner = tlsaOwner(`mx2.${bind.zone}`, 465);
    const [foreign, old, next, newer] = [randomRecord(), randomRecord(), randomRecord(), randomRecord()];
    await foreignUpdate([`update add ${owner} ${TTL} TLSA ${formatTlsa(foreign)}`]);
    await waitVisible([primary], owner, { present: [foreign], absent: [] });

    const linesBefore = logLines.length;
    const p = await publisher.change(owner, { add: [old, next], remove: [] }, TTL);
    await waitVisible(servers, owner, { present: [foreign, old, next], absent: [], minSerial: p.serial! });

    const r = await publisher.change(owner, { add: [newer], remove: [old] }, TTL);
    await waitVisible(servers, owner, { present: [foreign, next, newer], absent: [old], minSerial: r.serial! });
    const hookLines = logLines.slice(linesBefore).filter((l) => l.includes('nsupdate-tlsa:'));
    // publish, then (for the swap) publish + retire: three runs, publish before retire.
    assert.deepEqual(
      hookLines.map((l) => /nsupdate-tlsa: (tlsa-\w+)/.exec(l)?.[1]),
      ['tlsa-publish', 'tlsa-publish', 'tlsa-retire'],
    );

    // Already in place: the hook does not run.
    const before = logLines.length;
    await publisher.change(owner, { add: [newer], remove: [old] }, TTL);
    assert.equal(logLines.slice(before).some((l) => l.includes('running TLSA hook')), false);
  });

  it('the TLSA hook gets a clean environment: no secret, nothing unrelated; its variables, PATH/LANG/TZ/HOME and its config env', async () => {
    // A wrapper in a root-owned 0755 directory: dumps its environment, then does the real work.
    const hooksDir = await mkdtemp(path.join(tmpdir(), 'mxcert-tlsa-env-'));
    await chmod(hooksDir, 0o755);
    const dump = path.join(hooksDir, 'env.out');
    const wrapper = path.join(hooksDir, 'dump-then-nsupdate-tlsa');
    await writeFile(wrapper, `#!/bin/sh\nenv >> '${dump}'\necho ---- >> '${dump}'\nexec '${HOOK}'\n`, { mode: 0o755 });
    // What a loaded config with these settings makes mxcert withhold (src/config/load.ts does the same).
    withholdFromHooks(secretEnvNames({
      acme: { eab: { hmacKeyEnv: 'TLSA_T_EAB' } },
      certificates: [{ challenge: { dns: { tsig: { secretEnv: 'TLSA_T_TSIG' } } }, dane: { publisher: { apiKeyEnv: 'TLSA_T_PDNS' } } }],
    }));
    const values = { TLSA_T_EAB: 'eab-value-x1', TLSA_T_TSIG: 'tsig-value-x2', TLSA_T_PDNS: 'pdns-value-x3', TLSA_T_OTHER: 'unrelated-value-x4', LANG: 'C.UTF-8', TZ: 'UTC' };
    const saved = Object.fromEntries(Object.keys(values).map((k) => [k, process.env[k]]));
    Object.assign(process.env, values);
    try {
      const publisher = await createPublisher(
        {
          provider: 'hook',
          command: [wrapper],
          nameservers: [`127.0.0.1:${primary.port}`, `127.0.0.1:${secondary.port}`],
          ttl: TTL,
          timeout: 30_000,
          env: {
            NSUPDATE_SERVER: '127.0.0.1',
            NSUPDATE_PORT: String(primary.port),
            NSUPDATE_KEYFILE: bind.tsig.keyFile,
            NSUPDATE_ZONE: bind.zone,
            // Listed by the config, still never passed.
            TLSA_T_TSIG: 'listed-value-x5',
          },
        },
        { logger, hookEnv: { MXCERT_CERT_NAME: 'mx1' } },
      );
      const owner = tlsaOwner(`mx3.${bind.zone}`, 25);
      const rec = randomRecord();
      const res = await publisher.change(owner, { add: [rec], remove: [] }, TTL);
      await waitVisible(servers, owner, { present: [rec], absent: [], minSerial: res.serial! });
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    const text = await readFile(dump, 'utf8');
    await rm(hooksDir, { recursive: true, force: true });
    for (const v of ['eab-value-x1', 'tsig-value-x2', 'pdns-value-x3', 'unrelated-value-x4', 'listed-value-x5']) assert.equal(text.includes(v), false, `${v} reached the hook`);
    const env = new Map(text.split('----')[0]!.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
    assert.equal(env.get('MXCERT_EVENT'), 'tlsa-publish');
    assert.equal(env.get('MXCERT_CERT_NAME'), 'mx1');
    assert.equal(env.get('NSUPDATE_ZONE'), bind.zone);
    assert.equal(env.get('PATH'), process.env.PATH);
    assert.equal(env.get('HOME'), process.env.HOME);
    assert.equal(env.get('LANG'), 'C.UTF-8');
    assert.equal(env.get('TZ'), 'UTC');
    for (const k of ['TLSA_T_EAB', 'TLSA_T_TSIG', 'TLSA_T_PDNS', 'TLSA_T_OTHER']) assert.equal(env.has(k), false, k);
  });

  it('hooks/nsupdate-tlsa refuses malformed input before sending anything', async () => {
    const owner = tlsaOwner(`mx1.${bind.zone}`, 25);
    const beforeSerial = (await querySoa(primary, bind.zone)).serial;
    const env = {
      ...process.env,
      NSUPDATE_SERVER: '127.0.0.1',
      NSUPDATE_PORT: String(primary.port),
      NSUPDATE_KEYFILE: bind.tsig.keyFile,
      NSUPDATE_ZONE: bind.zone,
      MXCERT_EVENT: 'tlsa-publish',
      MXCERT_TLSA_OWNER: owner,
    };
    const good = formatTlsa(randomRecord());
    for (const [what, extra] of [
      ['injected command', { MXCERT_TLSA_ADD: `${good}\nupdate delete ${bind.zone}. NS` }],
      ['not hex', { MXCERT_TLSA_ADD: '3 1 1 xyz' }],
      ['owner with a space', { MXCERT_TLSA_ADD: good, MXCERT_TLSA_OWNER: `${owner} A` }],
      ['no key file', { MXCERT_TLSA_ADD: good, NSUPDATE_KEYFILE: '' }],
    ] as const) {
      const res = await runWithoutStdin(HOOK, { ...env, ...extra });
      assert.equal(res.code, 1, `${what}: ${res.stdout}${res.stderr}`);
      assert.match(res.stderr, /^nsupdate-tlsa: /m, what);
    }
    assert.equal((await querySoa(primary, bind.zone)).serial, beforeSerial, 'nothing was sent');
    assert.deepEqual(await servedAt(primary, owner), (await servedAt(secondary, owner)));
  });

  it('the gate names a secondary that is down or behind, and agrees once it has caught up', async () => {
    const publisher = await createPublisher(rfc2136Config(), { logger });
    const owner = tlsaOwner(`mx1.${bind.zone}`, 26);
    const rec = randomRecord();
    await bind.stopSecondary!();
    try {
      const { serial } = await publisher.change(owner, { add: [rec], remove: [] }, TTL);
      const obs = await observeTlsa(servers, owner);
      const v = assessVisibility(obs, { present: [rec], absent: [], minSerial: serial! });
      assert.equal(v.allAgree, false);
      assert.equal(v.lagging.length, 1, v.lagging.join('\n'));
      assert.match(v.lagging[0]!, new RegExp(`^127\\.0\\.0\\.1:${secondary.port}: no usable answer`));
    } finally {
      await bind.startSecondary!();
    }
    await waitVisible(servers, owner, { present: [rec], absent: [], minSerial: (await querySoa(primary, bind.zone)).serial! });
  });

  it('never logs the TSIG secret', () => {
    assertNoSecrets([bind.tsig.secret]);
  });

  it('leaves no TSIG key files behind', async () => {
    assert.deepEqual((await readdir(tmpdir())).filter((n) => n.startsWith('mxcert-tsig-')), []);
  });
});

describe('TLSA publishing through the PowerDNS 4.7 HTTP API', { timeout: 120_000 }, () => {
  let pdns: PdnsEnv;
  let servers: DnsServer[];

  const pdnsConfig = (over: Partial<DanePdnsPublisherConfig> = {}): DanePdnsPublisherConfig => ({
    provider: 'pdns',
    url: pdns.apiUrl,
    serverId: 'localhost',
    zone: pdns.zone,
    apiKeyFile: pdns.apiKeyFile,
    ttl: TTL,
    nameservers: [`127.0.0.1:${pdns.dns.port}`],
    port: pdns.dns.port,
    timeout: 10_000,
    ...over,
  });

  async function apiSerial(): Promise<number> {
    const r = await pdns.api('GET', `/servers/localhost/zones/${pdns.zone}.`);
    return (r.body as { edited_serial: number }).edited_serial;
  }

  async function foreignReplace(owner: string, records: TlsaRecord[]): Promise<void> {
    const r = await pdns.api('PATCH', `/servers/localhost/zones/${pdns.zone}.`, {
      rrsets: [{ name: owner, type: 'TLSA', ttl: TTL, changetype: 'REPLACE', records: records.map((x) => ({ content: formatTlsa(x), disabled: false })) }],
    });
    assert.equal(r.status, 204, JSON.stringify(r.body));
  }

  before(async () => {
    pdns = await startPdns({ zone: 'example.test' });
    servers = [pdns.dns];
  });

  after(async () => {
    await pdns?.stop();
  });

  it('publishes and removes its records; a foreign record survives; DNS serves it at the returned serial', async () => {
    const publisher = await createPublisher(pdnsConfig(), { logger });
    assert.equal(publisher.name, 'pdns');
    assert.deepEqual(await publisher.servers(), servers);
    const owner = tlsaOwner(`mx1.${pdns.zone}`, 25);
    const foreign = randomRecord();
    await foreignReplace(owner, [foreign]);

    const [current, next] = [randomRecord(), randomRecord()];
    const before = await apiSerial();
    const added = await publisher.change(owner, { add: [current, next], remove: [] }, TTL);
    assert.ok(added.serial !== undefined && added.serial > before, `serial ${added.serial} after ${before}`);
    const { verdict } = await waitVisible(servers, owner, { present: [foreign, current, next], absent: [], minSerial: added.serial });
    assert.equal(verdict.maxTtl, TTL);
    assert.equal(verdict.maxRrsigExpiration, undefined, 'unsigned zone: no RRSIG');
    assert.ok(sameTlsaSet(await publisher.read(owner), [foreign, current, next]));

    const removed = await publisher.change(owner, { add: [], remove: [current] }, TTL);
    await waitVisible(servers, owner, { present: [foreign, next], absent: [current], minSerial: removed.serial! });

    // Removing everything of ours leaves the foreign record alone.
    await publisher.change(owner, { add: [], remove: [next] }, TTL);
    assert.deepEqual(await servedAt(pdns.dns, owner), [formatTlsa(foreign)]);
  });

  it('removing the last record deletes the RRset', async () => {
    const publisher = await createPublisher(pdnsConfig(), { logger });
    const owner = tlsaOwner(`mx2.${pdns.zone}`, 25);
    const only = randomRecord();
    await publisher.change(owner, { add: [only], remove: [] }, TTL);
    assert.deepEqual(await servedAt(pdns.dns, owner), [formatTlsa(only)]);
    await publisher.change(owner, { add: [], remove: [only] }, TTL);
    assert.deepEqual(await publisher.read(owner), []);
    const [o] = await observeTlsa(servers, owner);
    assert.equal(o?.ok, true);
    assert.deepEqual(o?.records, []);
  });

  it('re-applying sends nothing: the serial stays', async () => {
    const publisher = await createPublisher(pdnsConfig(), { logger });
    const owner = tlsaOwner(`mx1.${pdns.zone}`, 587);
    const rec = randomRecord();
    const first = await publisher.change(owner, { add: [rec], remove: [] }, TTL);
    const again = await publisher.change(owner, { add: [rec], remove: [] }, TTL);
    assert.equal(again.serial, first.serial);
    assert.equal(await apiSerial(), first.serial);
  });

  it('keeps a disabled foreign record as it is', async () => {
    const publisher = await createPublisher(pdnsConfig(), { logger });
    const owner = tlsaOwner(`mx1.${pdns.zone}`, 26);
    const disabled = randomRecord();
    const r = await pdns.api('PATCH', `/servers/localhost/zones/${pdns.zone}.`, {
      rrsets: [{ name: owner, type: 'TLSA', ttl: TTL, changetype: 'REPLACE', records: [{ content: formatTlsa(disabled), disabled: true }] }],
    });
    assert.equal(r.status, 204);
    const ours = randomRecord();
    await publisher.change(owner, { add: [ours], remove: [] }, TTL);
    // The whole zone: 4.7's ?rrset_name= filter hides disabled records.
    const zone = await pdns.api('GET', `/servers/localhost/zones/${pdns.zone}.`);
    const rrsets = (zone.body as { rrsets: Array<{ name: string; type: string; records: Array<{ content: string; disabled: boolean }> }> }).rrsets;
    const recs = rrsets.find((x) => x.name === owner && x.type === 'TLSA')!.records;
    assert.deepEqual(
      recs.map((x) => ({ rec: formatTlsa(parseTlsa(x.content)), disabled: x.disabled })).sort((a, b) => a.rec.localeCompare(b.rec)),
      [{ rec: formatTlsa(disabled), disabled: true }, { rec: formatTlsa(ours), disabled: false }].sort((a, b) => a.rec.localeCompare(b.rec)),
    );
    assert.deepEqual(await servedAt(pdns.dns, owner), [formatTlsa(ours)]);
  });

  it('two agents adding at once both end up present (re-read after PATCH repairs the lost update)', async () => {
    const owner = tlsaOwner(`mx2.${pdns.zone}`, 587);
    const foreign = randomRecord();
    await foreignReplace(owner, [foreign]);
    const apiKey = pdns.apiKey;
    // Both GETs complete before either PATCH, and the PATCHes go one after
    // the other (concurrent ones would meet gsqlite3's "database is locked"
    // instead): the second PATCH wipes the first agent's record, which that
    // agent must notice on its verification read and redo.
    let gets = 0;
    let release!: () => void;
    const bothRead = new Promise<void>((r) => (release = r));
    let patchChain = Promise.resolve();
    const gatedFetch: typeof fetch = async (input, init) => {
      const method = init?.method ?? 'GET';
      if (method === 'PATCH') {
        const prev = patchChain;
        let done!: () => void;
        patchChain = new Promise<void>((r) => (done = r));
        await prev;
        try {
          return await fetch(input, init);
        } finally {
          done();
        }
      }
      const res = await fetch(input, init);
      if (method === 'GET' && ++gets <= 2) {
        if (gets === 2) release();
        await bothRead;
      }
      return res;
    };
    const agent = () =>
      new PdnsTlsaPublisher({
        url: pdns.apiUrl,
        apiKey,
        zone: pdns.zone,
        dnsServer: pdns.dns,
        nameservers: servers,
        logger,
        verifyDelayMs: 200,
        fetch: gatedFetch,
      });
    const [x, y] = [randomRecord(), randomRecord()];
    const linesBefore = logLines.length;
    await Promise.all([agent().change(owner, { add: [x], remove: [] }, TTL), agent().change(owner, { add: [y], remove: [] }, TTL)]);
    assert.ok(logLines.slice(linesBefore).some((l) => l.includes('overwritten concurrently')), 'a lost update was detected');
    await waitVisible(servers, owner, { present: [foreign, x, y], absent: [] });
  });

  it('retries a PATCH that PowerDNS fails with 500 (gsqlite3 "database is locked": another writer holds the database)', async () => {
    const owner = tlsaOwner(`mx1.${pdns.zone}`, 2525);
    const ours = randomRecord();
    // Another writer holds the database's write lock (BEGIN IMMEDIATE):
    // PowerDNS reads still work, its PATCH transaction fails with HTTP 500.
    const holder = spawn('sqlite3', [path.join(pdns.dir, 'pdns.sqlite3')], { stdio: ['pipe', 'pipe', 'inherit'] });
    const holderExited = new Promise((r) => holder.once('exit', r));
    let locked = '';
    holder.stdout.on('data', (d: Buffer) => (locked += d.toString()));
    holder.stdin.write("BEGIN IMMEDIATE;\nUPDATE records SET ttl = ttl WHERE 0;\nSELECT 'locked';\n");
    await pollUntil(async () => (locked.includes('locked') ? true : undefined), { deadlineMs: 10_000, what: 'sqlite3 to hold the write lock' });
    const linesBefore = logLines.length;
    const failures = () => logLines.slice(linesBefore).filter((l) => l.includes('failed the PATCH'));
    try {
      const publisher = new PdnsTlsaPublisher({ url: pdns.apiUrl, apiKey: pdns.apiKey, zone: pdns.zone, dnsServer: pdns.dns, logger, verifyDelayMs: 100 });
      const change = publisher.change(owner, { add: [ours], remove: [] }, TTL);
      // The first PATCH has failed and the publisher is about to retry: let the other writer finish.
      await pollUntil(async () => (failures().length > 0 ? true : undefined), { deadlineMs: 20_000, intervalMs: 5, what: 'a PATCH to fail with 500' });
      holder.stdin.end('COMMIT;\n');
      await holderExited;
      await change;
    } finally {
      if (holder.exitCode === null) holder.kill();
    }
    const first = JSON.parse(failures()[0]!) as { status: number; attempt: number };
    assert.equal(first.status, 500, 'PowerDNS answered 500');
    assert.equal(first.attempt, 1);
    await waitVisible(servers, owner, { present: [ours], absent: [] });
  });

  it('three agents adding at once all end up present', async (t) => {
    const linesBefore = logLines.length;
    const owner = tlsaOwner(`mx1.${pdns.zone}`, 2526);
    const agents = [0, 1, 2].map(
      () => new PdnsTlsaPublisher({ url: pdns.apiUrl, apiKey: pdns.apiKey, zone: pdns.zone, dnsServer: pdns.dns, logger, verifyDelayMs: 100 }),
    );
    const recs = agents.map(() => randomRecord());
    await Promise.all(agents.map((a, i) => a.change(owner, { add: [recs[i]!], remove: [] }, TTL)));
    await waitVisible(servers, owner, { present: recs, absent: [] });
    // How the writers collided depends on timing; report it, the outcome above is what counts.
    const recent = logLines.slice(linesBefore);
    t.diagnostic(`PATCH failures retried: ${recent.filter((l) => l.includes('failed the PATCH')).length}, lost updates redone: ${recent.filter((l) => l.includes('overwritten concurrently')).length}`);
  });

  it('a wrong API key is a clear error without the key in it', async () => {
    const keyFile = path.join(pdns.dir, 'wrong.key');
    const wrong = randomBytes(16).toString('hex');
    await writeFile(keyFile, wrong, { mode: 0o600 });
    const publisher: TlsaPublisher = await createPublisher(pdnsConfig({ apiKeyFile: keyFile }), { logger });
    await assert.rejects(publisher.read(tlsaOwner(`mx1.${pdns.zone}`, 25)), (err: unknown) => {
      assert.ok(err instanceof PdnsApiError);
      assert.equal(err.status, 401);
      assert.match(err.message, /API key rejected/);
      assert.equal(err.message.includes(wrong), false);
      return true;
    });
  });

  it('refuses an API key file others can read', async () => {
    const keyFile = path.join(pdns.dir, 'loose.key');
    await writeFile(keyFile, pdns.apiKey, { mode: 0o644 });
    await assert.rejects(createPublisher(pdnsConfig({ apiKeyFile: keyFile }), { logger }), /readable by others/);
  });

  it('never logs the API key', () => {
    assertNoSecrets([pdns.apiKey]);
  });
});
