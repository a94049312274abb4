// dns-01 against a real BIND 9: a DNSSEC inline-signing primary taking
// TSIG-signed updates, and a secondary fed by zone transfer.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { pino } from 'pino';
import { startBind, type BindEnv } from '../env/bind.js';
import { createDns01Solver } from '../../src/obtain/dns01.js';
import { queryDns, txtValues, type DnsResponse } from '../../src/dns/query.js';
import { findAuthoritativeServers, waitUntilServedEverywhere } from '../../src/dns/authoritative.js';
import { DnsUpdateError, Rfc2136Updater } from '../../src/dns/rfc2136.js';
import type { Rfc2136Config } from '../../src/config/schema.js';
import type { ChallengeInput } from '../../src/obtain/solver.js';
import type { DnsServer } from '../../src/dns/types.js';
import { DnsError } from '../../src/errors.js';
import { freePort } from '../env/proc.js';

let env: BindEnv;
let primary: DnsServer;
let secondary: DnsServer;
const logLines: string[] = [];
// No redaction configured: the code under test must simply never log the secret.
const logger = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });
const wrongSecret = randomBytes(32).toString('base64');
const errorMessages: string[] = [];

function config(over: Partial<Rfc2136Config> = {}): Rfc2136Config {
  return {
    provider: 'rfc2136',
    server: '127.0.0.1',
    port: env.primary.port,
    zone: env.zone,
    tsig: { name: env.tsig.name, algorithm: 'hmac-sha256', secretFile: env.tsig.secretFile },
    ttl: 5,
    propagationTimeout: 10_000,
    // The zone's NS records say port 53; the servers listen elsewhere.
    nameservers: [`127.0.0.1:${primary.port}`, `127.0.0.1:${secondary.port}`],
    ...over,
  };
}

function challenge(identifier: string): ChallengeInput {
  return { identifier, token: randomBytes(8).toString('hex'), value: randomBytes(32).toString('base64url') };
}

const ownerOf = (id: string): string => `_acme-challenge.${id}.`;

async function txtAt(server: DnsServer, owner: string, dnssec = false): Promise<DnsResponse> {
  return queryDns(server, owner, 'TXT', { tcp: true, recursion: false, dnssec });
}

async function tsigTempDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((n) => n.startsWith('mxcert-tsig-'));
}

describe('dns-01 over RFC 2136 against BIND 9', { timeout: 120_000 }, () => {
  before(async () => {
    env = await startBind({ secondary: true, ttl: 5 });
    primary = env.primary;
    secondary = env.secondary!;
  });

  after(async () => {
    await env?.stop();
  });

  it('present() returns only once primary and secondary both serve the TXT (authoritative, signed)', async () => {
    const solver = createDns01Solver(config(), { tsigSecret: env.tsig.secret, logger });
    const ch = challenge(`mx1.${env.zone}`);
    const owner = ownerOf(ch.identifier);
    try {
      await solver.present(ch);
      // Straight after present(): no waiting here, that is the point.
      const [p, s] = await Promise.all([txtAt(primary, owner, true), txtAt(secondary, owner, true)]);
      for (const [which, r] of [['primary', p], ['secondary', s]] as const) {
        assert.equal(r.rcode, 'NOERROR', which);
        assert.equal(r.authoritative, true, `${which} aa`);
        assert.ok(txtValues(r, owner).includes(ch.value), `${which} serves the value`);
        const rrsig = r.answers.find((a) => a.type === 'RRSIG' && (a.data as { typeCovered: string }).typeCovered === 'TXT');
        assert.ok(rrsig, `${which} returns an RRSIG over the TXT RRset when DO is set`);
      }
      // Without DO, no RRSIG: the DO bit is what asks for them.
      const plain = await txtAt(primary, owner, false);
      assert.equal(plain.answers.some((a) => a.type === 'RRSIG'), false);
    } finally {
      await solver.cleanup(ch);
      await solver.close();
    }
  });

  it('resolves a host name in cfg.server', async () => {
    const solver = createDns01Solver(config({ server: 'localhost' }), { tsigSecret: env.tsig.secret, logger });
    const ch = challenge(`mx2.${env.zone}`);
    try {
      await solver.present(ch);
      assert.ok(txtValues(await txtAt(secondary, ownerOf(ch.identifier)), ownerOf(ch.identifier)).includes(ch.value));
    } finally {
      await solver.cleanup(ch);
    }
  });

  it('keeps other TXT values at the same owner: concurrent present, cleanup removes only its own value, idempotently', async () => {
    const solver = createDns01Solver(config(), { tsigSecret: env.tsig.secret, logger });
    // Same owner for *.mx1 and mx1 (RFC 8555 §8.4 strips the wildcard label).
    const base = challenge(`mx1.${env.zone}`);
    const wildcard = challenge(`*.mx1.${env.zone}`);
    const owner = ownerOf(base.identifier);
    const before = await tsigTempDirs();
    await Promise.all([solver.present(base), solver.present(wildcard)]);
    for (const server of [primary, secondary]) {
      const values = txtValues(await txtAt(server, owner), owner);
      assert.ok(values.includes(base.value) && values.includes(wildcard.value), `both values at ${server.port}`);
    }

    await solver.cleanup(base);
    await waitUntilServedEverywhere(
      [primary, secondary],
      owner,
      'TXT',
      (r) => !txtValues(r, owner).includes(base.value) && txtValues(r, owner).includes(wildcard.value),
      { timeoutMs: 10_000 },
    );
    // Idempotent: the value is gone already, and a value never presented.
    await solver.cleanup(base);
    await solver.cleanup(challenge(`mx1.${env.zone}`));
    assert.deepEqual(txtValues(await txtAt(primary, owner), owner), [wildcard.value]);

    await solver.cleanup(wildcard);
    await waitUntilServedEverywhere([primary, secondary], owner, 'TXT', (r) => txtValues(r, owner).length === 0, { timeoutMs: 10_000 });
    const gone = await txtAt(primary, owner);
    assert.equal(gone.rcode, 'NXDOMAIN');
    // Key files are removed with their private directory after every update.
    assert.deepEqual(await tsigTempDirs(), before);
  });

  it('a wrong TSIG secret fails with a DnsError naming the rcode, never the secret', async () => {
    const solver = createDns01Solver(config(), { tsigSecret: wrongSecret, logger });
    const ch = challenge(`mx1.${env.zone}`);
    await assert.rejects(solver.present(ch), (err: unknown) => {
      assert.ok(err instanceof DnsError, String(err));
      errorMessages.push(err.message, String(err.stack));
      assert.match(err.message, /NOTAUTH/);
      assert.match(err.message, /BADSIG/);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${primary.port}`));
      assert.ok(err instanceof DnsUpdateError && err.rcode === 'NOTAUTH' && err.tsigError === 'BADSIG');
      assert.equal(err.message.includes(wrongSecret), false);
      assert.equal(err.message.includes(env.tsig.secret), false);
      return true;
    });
  });

  it('an unknown key name fails with BADKEY', async () => {
    const solver = createDns01Solver(config({ tsig: { name: 'nobody', algorithm: 'hmac-sha256', secretFile: env.tsig.secretFile } }), {
      tsigSecret: env.tsig.secret,
      logger,
    });
    await assert.rejects(solver.present(challenge(`mx1.${env.zone}`)), (err: unknown) => {
      assert.ok(err instanceof DnsUpdateError);
      errorMessages.push(err.message);
      assert.match(err.message, /NOTAUTH\(BADKEY\)/);
      return true;
    });
  });

  it('updater: prerequisite failures carry the rcode; update-policy refusals say REFUSED', async () => {
    const updater = new Rfc2136Updater({
      server: primary,
      zone: env.zone,
      tsig: { name: env.tsig.name, algorithm: 'hmac-sha256', secret: env.tsig.secret },
      logger,
    });
    const name = `_25._tcp.mx1.${env.zone}`;
    const tlsa = `3 1 1 ${randomBytes(32).toString('hex')}`;
    await updater.update({ prerequisites: [{ kind: 'nxrrset', name, type: 'TLSA' }], adds: [{ name, type: 'TLSA', ttl: 5, data: tlsa }] });
    try {
      await assert.rejects(
        updater.update({ prerequisites: [{ kind: 'nxrrset', name, type: 'TLSA' }], adds: [{ name, type: 'TLSA', ttl: 5, data: tlsa }] }),
        (err: unknown) => err instanceof DnsUpdateError && err.rcode === 'YXRRSET' && err.prerequisiteFailed,
      );
      // Value-dependent yxrrset (RFC 2136 §2.4.2) with a value that is not the whole RRset.
      await assert.rejects(
        updater.update({ prerequisites: [{ kind: 'yxrrset', name, type: 'TLSA', data: `3 1 1 ${'00'.repeat(32)}` }], deletes: [{ name, type: 'TLSA' }] }),
        (err: unknown) => err instanceof DnsUpdateError && err.rcode === 'NXRRSET' && err.prerequisiteFailed,
      );
      await assert.rejects(
        updater.update({ adds: [{ name: `new.${env.zone}`, type: 'A', ttl: 5, data: '192.0.2.1' }] }),
        (err: unknown) => err instanceof DnsUpdateError && err.rcode === 'REFUSED' && !err.prerequisiteFailed,
      );
    } finally {
      await updater.update({ prerequisites: [{ kind: 'yxrrset', name, type: 'TLSA', data: tlsa }], deletes: [{ name, type: 'TLSA', data: tlsa }] });
    }
    const r = await queryDns(primary, name, 'TLSA');
    assert.equal(r.answers.filter((a) => a.type === 'TLSA').length, 0);
  });

  it('discovers the servers from the NS RRset at the primary (every NS gets the primary port)', async () => {
    // ns1 and ns2 both point at 127.0.0.1: one address, deduplicated.
    assert.deepEqual(await findAuthoritativeServers(env.zone, { primary }), [{ host: '127.0.0.1', port: primary.port }]);
  });

  it('times out naming the secondary when it is down, after the primary already serves the value', async () => {
    const solver = createDns01Solver(config({ propagationTimeout: 1500 }), { tsigSecret: env.tsig.secret, logger });
    const ch = challenge(`mx1.${env.zone}`);
    const owner = ownerOf(ch.identifier);
    await env.stopSecondary!();
    try {
      const t0 = Date.now();
      await assert.rejects(solver.present(ch), (err: unknown) => {
        assert.ok(err instanceof DnsError, String(err));
        errorMessages.push(err.message);
        assert.match(err.message, new RegExp(`not served by 127\\.0\\.0\\.1:${secondary.port} after 1500 ms`));
        assert.doesNotMatch(err.message, new RegExp(`127\\.0\\.0\\.1:${primary.port}`), 'the primary is not the one lacking it');
        assert.match(err.message, /ECONNREFUSED/);
        return true;
      });
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= 1400 && elapsed < 5000, `gave up at the deadline (${elapsed} ms)`);
      assert.ok(txtValues(await txtAt(primary, owner), owner).includes(ch.value));
    } finally {
      await solver.cleanup(ch);
      // The secondary stays down for the rest of this file: a restarted BIND
      // secondary reloads its stale on-disk copy and only refreshes on its SOA
      // refresh timer (60 s), so startSecondary() would wait out its deadline.
    }
  });

  it('cleanup journal: an entry only for a TXT the server accepted; it leaves on delete, or when every server confirms it absent', async () => {
    // The secondary is down from here on: check the primary only.
    const only = { nameservers: [`127.0.0.1:${primary.port}`] };
    const events: string[] = [];
    const journal = {
      added: async (c: ChallengeInput, owner: string) => void events.push(`added ${owner} ${c.value}`),
      removed: async (c: ChallengeInput) => void events.push(`removed ${c.value}`),
    };
    const solver = createDns01Solver(config(only), { tsigSecret: env.tsig.secret, logger, journal });
    // A name outside the zone: refused before any update, so nothing to record.
    const outside = challenge('mx3.elsewhere.test');
    await assert.rejects(solver.present(outside), /is not in the configured zone/);
    assert.deepEqual(events, []);
    await solver.cleanup(outside);
    assert.deepEqual(events, [`removed ${outside.value}`], 'its cleanup succeeds: there is nothing to remove');

    events.length = 0;
    const ch = challenge(`mx1.${env.zone}`);
    await solver.present(ch);
    assert.deepEqual(events, [`added ${ownerOf(ch.identifier)} ${ch.value}`]);

    // The delete cannot reach the server, and the record is still served: the entry stays.
    const deadServer = createDns01Solver(config({ ...only, port: await freePort() }), { tsigSecret: env.tsig.secret, logger, journal });
    await assert.rejects(deadServer.cleanup(ch), /cannot reach/);
    assert.equal(events.length, 1, 'not removed');
    await solver.cleanup(ch);
    assert.deepEqual(events.slice(1), [`removed ${ch.value}`]);
    assert.equal(txtValues(await txtAt(primary, ownerOf(ch.identifier)), ownerOf(ch.identifier)).includes(ch.value), false);

    // The delete cannot reach the server, but no server serves the record (it was removed by hand): the entry leaves.
    events.length = 0;
    await deadServer.cleanup(ch);
    assert.deepEqual(events, [`removed ${ch.value}`]);
  });

  it('never logs the TSIG secret (nor puts it into an error)', () => {
    assert.ok(logLines.length > 10, `captured ${logLines.length} log lines`);
    assert.ok(logLines.some((l) => l.includes('sending DNS update')));
    for (const text of [...logLines, ...errorMessages]) {
      assert.equal(text.includes(env.tsig.secret), false, `secret in: ${text}`);
      assert.equal(text.includes(wrongSecret), false, `wrong secret in: ${text}`);
    }
  });
});
