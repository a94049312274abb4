import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';
import { buildQuery, queryDns, soaSerial, toDnsResponse, txtValues, type DnsResponse } from '../../src/dns/query.js';
import { findAuthoritativeServers, parseHostPort, waitUntilServedEverywhere } from '../../src/dns/authoritative.js';
import { quoteTxt } from '../../src/dns/rfc2136.js';
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
