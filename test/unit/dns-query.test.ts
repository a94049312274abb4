import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { buildQuery, queryDns, soaSerial, toDnsResponse, txtValues, type DnsResponse } from '../../src/dns/query.js';
import { findAuthoritativeServers, parseHostPort, waitUntilServedEverywhere } from '../../src/dns/authoritative.js';
import { DnsUpdateError, Rfc2136Updater } from '../../src/dns/rfc2136.js';
import { quoteTxt } from '../../src/dns/update-ops.js';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsError } from '../../src/errors.js';
import { FakeClock } from '../../src/clock.js';

type Handler = (q: dnsPacket.DecodedPacket) => dnsPacket.Packet | undefined;

function reply(q: dnsPacket.Packet, extra: Partial<dnsPacket.Packet>): dnsPacket.Packet {
  return { type: 'response', id: q.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: q.questions, ...extra };
}

/** A TCP DNS server on loopback; `dribble` sends the reply one byte at a time. */
async function tcpServer(handler: Handler, opts: { dribble?: boolean } = {}): Promise<{ port: number; server: Server; closed: () => number }> {
  let closedSockets = 0;
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => {
      closedSockets++;
      sockets.delete(sock);
    });
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', async (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2 || buf.length < buf.readUInt16BE(0) + 2) return;
      const q = dnsPacket.decode(buf.subarray(2, buf.readUInt16BE(0) + 2));
      const r = handler(q);
      if (!r) return; // silent server
      const out = dnsPacket.streamEncode(r);
      if (!opts.dribble) return void sock.write(out);
      for (const b of out) {
        sock.write(Buffer.from([b]));
        await new Promise((res) => setImmediate(res));
      }
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((res) => server.close(res));
  });
  return { port: (server.address() as AddressInfo).port, server, closed: () => closedSockets };
}

async function udpServer(handler: Handler, port = 0): Promise<{ port: number; sock: UdpSocket }> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const r = handler(dnsPacket.decode(msg));
    if (r) sock.send(dnsPacket.encode(r), rinfo.port, rinfo.address);
  });
  await new Promise<void>((res) => sock.bind(port, '127.0.0.1', res));
  after(() => sock.close());
  return { port: sock.address().port, sock };
}

const OWNER = '_acme-challenge.mx1.example.test';

describe('dns-packet round trip', () => {
  it('encodes a query with DO, without RD, and decodes it back through the TCP framing', () => {
    const q = buildQuery(`${OWNER}.`, 'txt', { dnssec: true, id: 4242 });
    const wire = dnsPacket.streamEncode(q);
    assert.equal(wire.readUInt16BE(0), wire.length - 2, 'two-byte length prefix');
    const back = dnsPacket.streamDecode(wire) as dnsPacket.DecodedPacket;
    assert.equal(back.id, 4242);
    assert.equal(back.flag_rd, false);
    assert.deepEqual(back.questions, [{ name: OWNER, type: 'TXT', class: 'IN' }]);
    const opt = back.additionals?.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer | undefined;
    assert.ok(opt, 'EDNS0 OPT present');
    assert.equal(opt.flag_do, true);
    assert.equal(opt.udpPayloadSize, 4096);
  });

  it('sets RD only when asked, and DO only with dnssec', () => {
    const back = dnsPacket.decode(dnsPacket.encode(buildQuery('example.test', 'SOA', { recursion: true })));
    assert.equal(back.flag_rd, true);
    const opt = back.additionals?.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer;
    assert.equal(opt.flag_do, false);
  });

  it('turns a decoded response into DnsResponse; txtValues joins chunks per record; soaSerial reads the authority SOA', () => {
    const q = buildQuery(OWNER, 'TXT', { id: 7 });
    const resp: dnsPacket.Packet = reply(q, {
      answers: [
        { type: 'TXT', name: OWNER.toUpperCase(), ttl: 60, data: ['abc', 'def'] },
        { type: 'TXT', name: OWNER, ttl: 60, data: 'second' },
        { type: 'TXT', name: 'other.example.test', ttl: 60, data: 'not mine' },
      ],
      authorities: [
        { type: 'SOA', name: 'example.test', ttl: 5, data: { mname: 'ns1.example.test', rname: 'hostmaster.example.test', serial: 2024060101 } },
      ],
    });
    const r = toDnsResponse(dnsPacket.decode(dnsPacket.encode(resp)));
    assert.equal(r.rcode, 'NOERROR');
    assert.equal(r.authoritative, true);
    assert.deepEqual(txtValues(r, `${OWNER}.`), ['abcdef', 'second']);
    assert.equal(soaSerial(r), 2024060101);
    assert.equal(soaSerial({ ...r, authorities: [] }), undefined);
  });

  it('reports the rcode of negative answers', () => {
    const q = buildQuery(OWNER, 'TXT', { id: 9 });
    const r = toDnsResponse(dnsPacket.decode(dnsPacket.encode({ ...reply(q, {}), flags: dnsPacket.AUTHORITATIVE_ANSWER | 3 })));
    assert.equal(r.rcode, 'NXDOMAIN');
    assert.deepEqual(txtValues(r, OWNER), []);
  });
});

describe('parseHostPort', () => {
  it('parses IPv4, bracketed IPv6, host names and default ports', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
    assert.deepEqual(parseHostPort('[::1]:53'), { host: '::1', port: 53 });
    assert.deepEqual(parseHostPort('[2001:db8::53]:5300'), { host: '2001:db8::53', port: 5300 });
    assert.deepEqual(parseHostPort('ns1.example.test:5353'), { host: 'ns1.example.test', port: 5353 });
    assert.deepEqual(parseHostPort('192.0.2.1'), { host: '192.0.2.1', port: 53 });
    assert.deepEqual(parseHostPort('::1'), { host: '::1', port: 53 }, 'bare IPv6 is all address');
    assert.deepEqual(parseHostPort('[::1]', 5353), { host: '::1', port: 5353 });
  });

  it('rejects malformed input with DnsError', () => {
    for (const bad of ['127.0.0.1:0', '127.0.0.1:70000', '[::1:53', '[example.test]:53', 'a b:53', '', '1.2.3.4:x']) {
      assert.throws(() => parseHostPort(bad), DnsError, bad);
    }
  });
});

describe('quoteTxt', () => {
  it('quotes, escapes and splits into 255-octet strings', () => {
    assert.equal(quoteTxt('abc'), '"abc"');
    assert.equal(quoteTxt(''), '""');
    assert.equal(quoteTxt('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoteTxt('x\ny;'), '"x\\010y;"', 'a newline can never end the nsupdate line');
    assert.equal(quoteTxt('é'), '"\\195\\169"');
    const long = quoteTxt('z'.repeat(300));
    assert.equal(long, `"${'z'.repeat(255)}" "${'z'.repeat(45)}"`);
  });
});

describe('Rfc2136Updater with a stand-in nsupdate', () => {
  const secret = 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=';

  // Records what nsupdate would see: argv, stdin, and the key file's modes and contents.
  async function fakeNsupdate(exitCode = 0, stderr = ''): Promise<{ path: string; seen: () => Promise<Record<string, string>> }> {
    const dir = await mkdtemp(join(tmpdir(), 'fake-nsupdate-'));
    after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'nsupdate');
    await writeFile(
      path,
      `#!/bin/sh
out=${dir}
printf '%s\n' "$@" > "$out/argv"
cat > "$out/stdin"
while [ $# -gt 0 ]; do [ "$1" = -k ] && key="$2"; shift; done
stat -c %a "$key" > "$out/keymode"
stat -c %a "$(dirname "$key")" > "$out/dirmode"
cp "$key" "$out/keyfile"
echo "$key" > "$out/keypath"
printf '%s' '${stderr}' >&2
exit ${exitCode}
`,
    );
    await chmod(path, 0o755);
    const seen = async (): Promise<Record<string, string>> => {
      const out: Record<string, string> = {};
      for (const f of ['argv', 'stdin', 'keymode', 'dirmode', 'keyfile', 'keypath']) out[f] = (await readFile(join(dir, f), 'utf8')).trim();
      return out;
    };
    return { path, seen };
  }

  it('sends one script on stdin, keeps the secret in a 0600 key file in a 0700 dir, and removes it', async () => {
    const fake = await fakeNsupdate();
    const u = new Rfc2136Updater({
      server: { host: '::1', port: 5353 },
      zone: 'example.test',
      tsig: { name: 'mxcert', algorithm: 'hmac-sha256', secret },
      nsupdatePath: fake.path,
    });
    await u.update({
      prerequisites: [{ kind: 'nxrrset', name: '_25._tcp.mx1.example.test', type: 'tlsa' }],
      deletes: [{ name: '_acme-challenge.mx1.example.test', type: 'TXT', data: 'old"value' }],
      adds: [{ name: '_acme-challenge.mx1.example.test.', type: 'TXT', ttl: 60, data: 'new' }],
    });
    const seen = await fake.seen();
    assert.equal(seen.argv!.includes(secret), false, 'secret not on the command line');
    assert.equal(seen.stdin!.includes(secret), false);
    assert.deepEqual(seen.stdin!.split('\n'), [
      'server ::1 5353',
      'zone example.test.',
      'prereq nxrrset _25._tcp.mx1.example.test. TLSA',
      'update delete _acme-challenge.mx1.example.test. TXT "old\\"value"',
      'update add _acme-challenge.mx1.example.test. 60 TXT "new"',
      'send',
    ]);
    assert.match(seen.argv!, /^-v\n-t\n\d+\n-k\n/);
    assert.equal(seen.keymode, '600');
    assert.equal(seen.dirmode, '700');
    assert.match(seen.keyfile!, new RegExp(`key "mxcert" \\{\\s*algorithm hmac-sha256;\\s*secret "${secret.replace(/[+/=]/g, '\\$&')}";`));
    await assert.rejects(readdir(join(seen.keypath!, '..')), { code: 'ENOENT' });
  });

  it('maps nsupdate failures to DnsUpdateError with the rcode, and scrubs the secret from any output', async () => {
    const fake = await fakeNsupdate(2, `; TSIG error with server: tsig indicates error\nupdate failed: NOTAUTH(BADSIG) ${secret}`);
    const u = new Rfc2136Updater({ server: { host: '127.0.0.1', port: 5353 }, zone: 'example.test', tsig: { name: 'mxcert', algorithm: 'hmac-sha256', secret }, nsupdatePath: fake.path });
    await assert.rejects(u.update({ adds: [{ name: 'x.example.test', type: 'TXT', ttl: 5, data: 'v' }] }), (err: unknown) => {
      assert.ok(err instanceof DnsUpdateError);
      assert.equal(err.rcode, 'NOTAUTH');
      assert.equal(err.tsigError, 'BADSIG');
      assert.equal(err.prerequisiteFailed, false);
      assert.match(err.message, /^update refused by 127\.0\.0\.1:5353: NOTAUTH\(BADSIG\) \(TSIG key rejected/);
      assert.equal(err.message.includes(secret), false);
      return true;
    });
  });

  it('refuses names outside the zone, script injection and a non-base64 secret, without echoing the secret', async () => {
    const u = new Rfc2136Updater({ server: { host: '127.0.0.1', port: 5353 }, zone: 'example.test', tsig: { name: 'mxcert', algorithm: 'hmac-sha256', secret }, nsupdatePath: '/nonexistent' });
    await assert.rejects(u.update({ adds: [{ name: 'x.other.test', type: 'TXT', ttl: 5, data: 'v' }] }), /not in zone example\.test\./);
    await assert.rejects(u.update({ adds: [{ name: 'x.example.test\nsend', type: 'TXT', ttl: 5, data: 'v' }] }), /invalid owner name/);
    await assert.rejects(u.update({ adds: [{ name: 'x.example.test', type: 'TLSA', ttl: 5, data: '3 1 1 ab\nupdate add y.example.test 5 TXT z' }] }), /invalid TLSA data/);
    assert.throws(
      () => new Rfc2136Updater({ server: { host: '127.0.0.1', port: 53 }, zone: 'example.test', tsig: { name: 'k', algorithm: 'hmac-sha256', secret: 'abc"; };' } }),
      (err: unknown) => err instanceof DnsError && !err.message.includes('abc"'),
    );
  });
});

describe('queryDns', () => {
  it('reassembles a TCP reply that arrives one byte at a time, and closes the socket', async () => {
    const srv = await tcpServer((q) => reply(q, { answers: [{ type: 'TXT', name: OWNER, ttl: 5, data: ['tok', 'en'] }] }), { dribble: true });
    const r = await queryDns({ host: '127.0.0.1', port: srv.port }, OWNER, 'TXT', { dnssec: true });
    assert.deepEqual(txtValues(r, OWNER), ['token']);
    await waitFor(() => srv.closed() === 1);
  });

  it('times out on a silent server with DnsError naming the server, and destroys the socket', async () => {
    const srv = await tcpServer(() => undefined);
    const t0 = Date.now();
    await assert.rejects(queryDns({ host: '127.0.0.1', port: srv.port }, OWNER, 'TXT', { timeoutMs: 150 }), (err: unknown) => {
      assert.ok(err instanceof DnsError);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${srv.port}`));
      assert.match(err.message, /within 150 ms/);
      return true;
    });
    assert.ok(Date.now() - t0 < 2000);
    await waitFor(() => srv.closed() === 1);
  });

  it('rejects a reply with the wrong ID', async () => {
    const srv = await tcpServer((q) => ({ ...reply(q, {}), id: ((q.id ?? 0) + 1) & 0xffff }));
    await assert.rejects(queryDns({ host: '127.0.0.1', port: srv.port }, OWNER, 'TXT'), /does not match/);
  });

  it('fails fast with DnsError when nothing listens', async () => {
    const srv = await tcpServer(() => undefined);
    const port = srv.port;
    await new Promise((res) => srv.server.close(res));
    await assert.rejects(queryDns({ host: '127.0.0.1', port }, OWNER, 'TXT'), (err: unknown) => err instanceof DnsError && /ECONNREFUSED/.test(err.message));
  });

  it('over UDP, retries a truncated answer over TCP', async () => {
    const tcp = await tcpServer((q) => reply(q, { answers: [{ type: 'TXT', name: OWNER, ttl: 5, data: 'full' }] }));
    await udpServer((q) => ({ ...reply(q, {}), flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.TRUNCATED_RESPONSE }), tcp.port);
    const r = await queryDns({ host: '127.0.0.1', port: tcp.port }, OWNER, 'TXT', { tcp: false });
    assert.deepEqual(txtValues(r, OWNER), ['full']);
  });
});

describe('waitUntilServedEverywhere', () => {
  const hasToken = (r: DnsResponse): boolean => txtValues(r, OWNER).includes('token');

  it('resolves once every server answers authoritatively with the record', async () => {
    let asked = 0;
    const lagging = await tcpServer((q) => reply(q, { answers: ++asked >= 3 ? [{ type: 'TXT', name: OWNER, ttl: 5, data: 'token' }] : [] }));
    const ready = await tcpServer((q) => reply(q, { answers: [{ type: 'TXT', name: OWNER, ttl: 5, data: 'token' }] }));
    await waitUntilServedEverywhere(
      [{ host: '127.0.0.1', port: lagging.port }, { host: '127.0.0.1', port: ready.port }],
      OWNER,
      'TXT',
      hasToken,
      { timeoutMs: 5000 },
    );
    assert.equal(asked, 3);
  });

  it('does not accept a non-authoritative answer, and names the server that lacks it', async () => {
    const good = await tcpServer((q) => reply(q, { answers: [{ type: 'TXT', name: OWNER, ttl: 5, data: 'token' }] }));
    const notAa = await tcpServer((q) => ({ ...reply(q, { answers: [{ type: 'TXT', name: OWNER, ttl: 5, data: 'token' }] }), flags: 0 }));
    const clock = new FakeClock(0);
    await assert.rejects(
      waitUntilServedEverywhere(
        [{ host: '127.0.0.1', port: good.port }, { host: '127.0.0.1', port: notAa.port }],
        OWNER,
        'TXT',
        hasToken,
        { timeoutMs: 3000, clock },
      ),
      (err: unknown) => {
        assert.ok(err instanceof DnsError);
        assert.match(err.message, new RegExp(`not served by 127\\.0\\.0\\.1:${notAa.port} after`));
        assert.doesNotMatch(err.message, new RegExp(`:${good.port}\\b`));
        assert.match(err.message, /not authoritative/);
        return true;
      },
    );
  });
});

describe('findAuthoritativeServers', () => {
  it('uses in-zone glue from the primary, the resolver for out-of-zone NS, the primary port, and dedupes', async () => {
    const srv = await tcpServer((q) => {
      const qq = q.questions?.[0];
      if (qq?.type === 'NS') {
        return reply(q, {
          answers: [
            { type: 'NS', name: 'example.test', ttl: 5, data: 'ns1.example.test' },
            { type: 'NS', name: 'example.test', ttl: 5, data: 'ns2.example.test' },
            { type: 'NS', name: 'example.test', ttl: 5, data: 'ns.elsewhere.test' },
          ],
          additionals: [{ type: 'A', name: 'ns1.example.test', ttl: 5, data: '127.0.0.1' }],
        });
      }
      if (qq?.name === 'ns2.example.test' && qq.type === 'A') return reply(q, { answers: [{ type: 'A', name: qq.name, ttl: 5, data: '127.0.0.1' }] });
      if (qq?.name === 'ns2.example.test' && qq.type === 'AAAA') return reply(q, { answers: [{ type: 'AAAA', name: qq.name, ttl: 5, data: '::1' }] });
      return reply(q, {});
    });
    const resolved: string[] = [];
    const servers = await findAuthoritativeServers('example.test.', {
      primary: { host: '127.0.0.1', port: srv.port },
      resolver: async (n) => {
        resolved.push(n);
        return ['192.0.2.53'];
      },
    });
    assert.deepEqual(resolved, ['ns.elsewhere.test']);
    assert.deepEqual(servers, [
      { host: '127.0.0.1', port: srv.port },
      { host: '::1', port: srv.port },
      { host: '192.0.2.53', port: srv.port },
    ]);
  });

  it('returns explicit servers as given (resolving names), deduplicated', async () => {
    const servers = await findAuthoritativeServers('example.test', {
      primary: { host: '127.0.0.1', port: 1 },
      explicit: [parseHostPort('127.0.0.1:5353'), parseHostPort('[::1]:5354'), parseHostPort('127.0.0.1:5353'), parseHostPort('ns.example.test:5355')],
      resolver: async () => ['127.0.0.2'],
    });
    assert.deepEqual(servers, [
      { host: '127.0.0.1', port: 5353 },
      { host: '::1', port: 5354 },
      { host: '127.0.0.2', port: 5355 },
    ]);
  });
});

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((res) => setTimeout(res, 5));
  assert.ok(cond(), 'condition not reached');
}
