// A DNS forwarder on loopback (UDP and TCP) in front of a real BIND, used as
// one of the "authoritative servers" mxcert must see a challenge TXT on. While
// held it answers nothing, so mxcert's dns-01 step sits in its "wait until
// every server serves it" loop for as long as the test wants: the window in
// which the tests stop BIND or kill Pebble, i.e. a real mid-order instant
// instead of a guessed sleep. Every query name is recorded, so the test knows
// the TXT has been added and mxcert is now waiting.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export interface DnsGate {
  /** host:port for a `nameservers` entry. */
  address: string;
  port: number;
  /** Lower-cased query names (no trailing dot) with their type, in arrival order. */
  readonly queries: Array<{ name: string; type: string }>;
  /** Stop answering (queries are dropped; TCP connections are left hanging). */
  hold(): void;
  /** Forward again. */
  release(): void;
  stop(): Promise<void>;
}

function queryOf(msg: Buffer): { name: string; type: string } | undefined {
  try {
    const q = dnsPacket.decode(msg).questions?.[0];
    return q ? { name: q.name.toLowerCase().replace(/\.$/, ''), type: q.type } : undefined;
  } catch {
    return undefined;
  }
}

/** One framed TCP query to the upstream; resolves with the framed answer. */
function tcpForward(upstream: { host: string; port: number }, framed: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(upstream);
    const chunks: Buffer[] = [];
    sock.setTimeout(3000);
    sock.on('connect', () => sock.write(framed));
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
        sock.destroy();
        resolve(all.subarray(0, 2 + all.readUInt16BE(0)));
      }
    });
    sock.on('timeout', () => sock.destroy(new Error('upstream timeout')));
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('upstream closed')));
  });
}

export async function startDnsGate(upstream: { host: string; port: number }): Promise<DnsGate> {
  let held = false;
  const queries: Array<{ name: string; type: string }> = [];
  const sockets = new Set<net.Socket>();

  const tcp = net.createServer((conn) => {
    sockets.add(conn);
    conn.on('close', () => sockets.delete(conn));
    conn.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    conn.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const framed = buf.subarray(0, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(framed.length);
        const q = queryOf(framed.subarray(2));
        if (q) queries.push(q);
        if (held) continue;
        tcpForward(upstream, framed).then(
          (answer) => {
            if (!conn.destroyed) conn.write(answer);
          },
          () => conn.destroy(),
        );
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (tcp.address() as net.AddressInfo).port;

  // Same port for UDP, as a real nameserver has.
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, '127.0.0.1', () => resolve());
  });
  udp.on('message', (msg, rinfo) => {
    const q = queryOf(msg);
    if (q) queries.push(q);
    if (held) return;
    const out = dgram.createSocket('udp4');
    const timer = setTimeout(() => out.close(), 3000);
    out.on('message', (answer) => {
      clearTimeout(timer);
      udp.send(answer, rinfo.port, rinfo.address);
      out.close();
    });
    out.on('error', () => {
      clearTimeout(timer);
      out.close();
    });
    out.send(msg, upstream.port, upstream.host);
  });

  return {
    address: `127.0.0.1:${port}`,
    port,
    queries,
    hold() {
      held = true;
    },
    release() {
      held = false;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}
