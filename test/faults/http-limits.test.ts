// API clients against misbehaving servers (docs/architecture.md, "Security
// model"): real local HTTPS servers (a throwaway CA from test/env/pki.ts,
// trusted the way acme.caBundle is) and plain HTTP ones, on loopback.
// - ACME transport: one total deadline per request (a trickling server,
//   a TCP peer that never shakes hands, an HTTPS server that never answers),
//   a body cap (by Content-Length and by bytes received), no 3xx accepted,
//   no request to an http:// URL.
// - The ACME client does not repeat a request whose deadline passed, and
//   its error names the deadline as configured.
// - PowerDNS publisher: a redirect is an error and the API key never reaches
//   the other origin; total deadline; body cap; plain http only to loopback.
// Behaviour, not speed: each case checks the error and, on the server side,
// that the client closed the connection before the server had finished.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeLoopbackPki } from '../env/pki.js';
import { pollUntil } from '../env/proc.js';
import { AcmeTransport, BodyTooLargeError, DeadlineError, InsecureUrlError, RedirectError } from '../../src/acme/transport.js';
import { AcmeService } from '../../src/acme/client.js';
import { PdnsApiError, PdnsTlsaPublisher } from '../../src/dane/publish-pdns.js';
import { silentLogger } from '../../src/log.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  origin: string;
  /** Requests seen: method, path and the X-API-Key header. */
  hits: Array<{ method: string; path: string; apiKey?: string }>;
  close(): Promise<void>;
}

/** How one response ended on the server's side. */
interface Outcome {
  /** Bytes of the body the server handed to its socket. */
  sent: number;
  /** Resolves true when the connection closed before the server had sent everything. */
  cutOff: Promise<boolean>;
}

function watch(res: ServerResponse): Outcome {
  const o: Outcome = {
    sent: 0,
    cutOff: new Promise((resolve) => {
      res.once('finish', () => resolve(false));
      res.once('close', () => resolve(!res.writableFinished));
    }),
  };
  return o;
}

/** Writes `total` bytes of spaces with backpressure, stopping when the client goes. */
async function stream(res: ServerResponse, o: Outcome, total: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  while (o.sent < total && !res.destroyed) {
    const ok = res.write(chunk);
    o.sent += chunk.length;
    if (!ok) await new Promise((r) => (res.once('drain', r), res.once('close', r)));
  }
  if (!res.destroyed) res.end();
}

/** One byte every `everyMs`, `total` bytes in all, stopping when the client goes. */
function trickle(res: ServerResponse, o: Outcome, total: number, everyMs: number): void {
  const timer = setInterval(() => {
    if (res.destroyed) return clearInterval(timer);
    res.write('x');
    if (++o.sent >= total) {
      clearInterval(timer);
      res.end();
    }
  }, everyMs);
  res.once('close', () => clearInterval(timer));
}

async function listen(server: http.Server | https.Server, scheme: 'http' | 'https', hits: TestServer['hits']): Promise<TestServer> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe('faults: deadlines, body caps, redirects and plain http in the API clients', { timeout: 120_000 }, () => {
  let dir: string;
  let key: Buffer;
  let cert: Buffer;
  let ca: string;
  const servers: TestServer[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-http-limits-'));
    const pki = await makeLoopbackPki(dir, 'mxcert http-limits test CA');
    [key, cert, ca] = await Promise.all([readFile(pki.keyPath), readFile(pki.certPath), readFile(pki.caCertPath, 'utf8')]);
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  function record(hits: TestServer['hits'], handler: Handler): Handler {
    return (req, res) => {
      const apiKey = req.headers['x-api-key'];
      hits.push({ method: req.method ?? '', path: req.url ?? '', ...(typeof apiKey === 'string' ? { apiKey } : {}) });
      handler(req, res);
    };
  }

  async function httpsServer(handler: Handler): Promise<TestServer> {
    const hits: TestServer['hits'] = [];
    const s = await listen(https.createServer({ key, cert }, record(hits, handler)), 'https', hits);
    servers.push(s);
    return s;
  }

  async function httpServer(handler: Handler): Promise<TestServer> {
    const hits: TestServer['hits'] = [];
    const s = await listen(http.createServer(record(hits, handler)), 'http', hits);
    servers.push(s);
    return s;
  }

  /** Accepts TCP connections and never says a word (no TLS handshake either). */
  async function silentTcpServer(): Promise<{ origin: string; sockets: net.Socket[]; closedByClient: () => number }> {
    const sockets: net.Socket[] = [];
    let closed = 0;
    const server = net.createServer((sock) => {
      sockets.push(sock);
      // Read (and drop) the ClientHello: a socket nobody reads never sees the peer's FIN.
      sock.resume();
      sock.on('error', () => {});
      sock.on('close', () => closed++);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({
      origin: '',
      hits: [],
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    });
    return { origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets, closedByClient: () => closed };
  }

  const jws = { protected: 'e30', payload: 'e30', signature: 'AA' };

  // ------------------------------------------------------------ ACME transport

  it('a body trickling 1 byte every 100 ms fails at the total deadline, and the client hangs up mid-trickle', async () => {
    let outcome: Outcome | undefined;
    const srv = await httpsServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      outcome = watch(res);
      trickle(res, outcome, 100, 100); // 10 s of trickle against a 1 s deadline
    });
    const t = new AcmeTransport({ caBundlePem: ca, timeoutMs: 1000 });
    try {
      await assert.rejects(t.get(`${srv.origin}/trickle`), (err: unknown) => {
        assert.ok(err instanceof DeadlineError, `a DeadlineError, got ${String(err)}`);
        assert.equal(err.phase, 'body');
        assert.match(err.message, /^response from https:\/\/127\.0\.0\.1:\d+\/trickle stalled: \d+ bytes in 1 s \(the deadline for the whole request\)$/);
        return true;
      });
      assert.ok(outcome, 'the server answered');
      assert.equal(await outcome.cutOff, true, 'the client closed the connection while the server was still trickling');
      assert.ok(outcome.sent < 100, `the trickle did not run to its end (${outcome.sent} of 100 bytes)`);
    } finally {
      t.close();
    }
  });

  it('a body over the cap (no Content-Length) is cut off: BodyTooLargeError, the server could not send it all', async () => {
    let outcome: Outcome | undefined;
    const srv = await httpsServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      outcome = watch(res);
      void stream(res, outcome, 32 << 20);
    });
    const t = new AcmeTransport({ caBundlePem: ca, maxBodyBytes: 64 * 1024 });
    try {
      await assert.rejects(t.get(`${srv.origin}/huge`), (err: unknown) => {
        assert.ok(err instanceof BodyTooLargeError, `a BodyTooLargeError, got ${String(err)}`);
        assert.match(err.message, /^response body from https:\/\/127\.0\.0\.1:\d+\/huge exceeded 64 KiB; the transfer was cut off$/);
        return true;
      });
      assert.ok(outcome);
      assert.equal(await outcome.cutOff, true, 'the connection closed before the server finished sending');
    } finally {
      t.close();
    }
  });

  it('a Content-Length over the cap is refused on the headers, before the body is read', async () => {
    let outcome: Outcome | undefined;
    const srv = await httpsServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/pem-certificate-chain', 'content-length': String(256 << 20) });
      outcome = watch(res);
      res.write('-----BEGIN CERTIFICATE-----\n'); // and then nothing: only the headers can end this quickly
    });
    const t = new AcmeTransport({ caBundlePem: ca, timeoutMs: 20_000 });
    try {
      await assert.rejects(t.post(`${srv.origin}/cert`, jws), (err: unknown) => {
        assert.ok(err instanceof BodyTooLargeError, `a BodyTooLargeError, got ${String(err)}`);
        assert.match(err.message, /exceeded 1 MiB \(Content-Length 268435456\)/);
        return true;
      });
      assert.ok(outcome);
      assert.equal(await outcome.cutOff, true, 'the client closed the connection');
    } finally {
      t.close();
    }
  });

  it('a peer that accepts the connection and never answers the TLS handshake: the error names the deadline as set', async () => {
    const silent = await silentTcpServer();
    const t = new AcmeTransport({ caBundlePem: ca, timeoutMs: 500 });
    try {
      await assert.rejects(t.get(`${silent.origin}/dir`), (err: unknown) => {
        assert.ok(err instanceof DeadlineError, `a DeadlineError, got ${String(err)}`);
        assert.equal(err.message, `no response from ${silent.origin}/dir within 500 ms (connected, but the TLS handshake was not answered) (the deadline for the whole request)`);
        return true;
      });
      await pollUntil(() => (silent.closedByClient() === 1 ? true : undefined), { deadlineMs: 5000, what: 'the client to close its connection' });
      assert.equal(silent.sockets.length, 1, 'one connection');
    } finally {
      t.close();
    }
  });

  it('an HTTPS server that takes the request and never answers: "no response … within"', async () => {
    let outcome: Outcome | undefined;
    const srv = await httpsServer((req, res) => {
      req.resume();
      outcome = watch(res);
    });
    const t = new AcmeTransport({ caBundlePem: ca, timeoutMs: 800 });
    try {
      await assert.rejects(t.post(`${srv.origin}/new-order`, jws), (err: unknown) => {
        assert.ok(err instanceof DeadlineError, `a DeadlineError, got ${String(err)}`);
        assert.equal(err.message, `no response from ${srv.origin}/new-order within 800 ms (the deadline for the whole request)`);
        return true;
      });
      assert.ok(outcome);
      assert.equal(await outcome.cutOff, true, 'the client closed the connection');
    } finally {
      t.close();
    }
  });

  it('the ACME client does not repeat a request whose deadline passed: one connection, the deadline named truthfully', { timeout: 20_000 }, async () => {
    const silent = await silentTcpServer();
    const svc = new AcmeService({
      directoryUrl: `${silent.origin}/dir`,
      caBundlePem: ca,
      termsOfServiceAgreed: true,
      accounts: { load: async () => undefined, save: async () => {} },
      logger: silentLogger,
      requestTimeoutMs: 500,
    });
    try {
      await assert.rejects(svc.checkProfile('shortlived'), (err: unknown) => {
        assert.match((err as Error).message, new RegExp(`^directory failed: no response from ${silent.origin}/dir within 500 ms `));
        return true;
      });
      assert.equal(silent.sockets.length, 1, 'the request was not repeated');
    } finally {
      svc.close();
    }
  });

  it('a 3xx is an error naming status and Location, and nothing goes to the Location', async () => {
    const elsewhere = await httpsServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    const srv = await httpsServer((req, res) => {
      req.resume();
      res.writeHead(req.method === 'POST' ? 307 : 302, { location: `${elsewhere.origin}/elsewhere` });
      res.end();
    });
    const t = new AcmeTransport({ caBundlePem: ca });
    try {
      for (const [status, send] of [
        [302, () => t.get(`${srv.origin}/dir`)],
        [307, () => t.post(`${srv.origin}/new-acct`, jws)],
      ] as const) {
        await assert.rejects(send(), (err: unknown) => {
          assert.ok(err instanceof RedirectError, `a RedirectError, got ${String(err)}`);
          assert.equal(err.status, status);
          assert.match(err.message, new RegExp(`^HTTP ${status} from ${srv.origin}/\\S+ redirecting to ${elsewhere.origin}/elsewhere: API requests follow no redirects`));
          return true;
        });
      }
      assert.equal(srv.hits.length, 2);
      assert.deepEqual(elsewhere.hits, [], 'nothing was sent to the Location');
    } finally {
      t.close();
    }
  });

  it('an http:// URL is refused before anything is sent, naming the URL and where it came from', async () => {
    const plain = await httpServer((req, res) => {
      req.resume();
      res.writeHead(201, { 'content-type': 'application/json', location: 'http://127.0.0.1/acct/1' });
      res.end('{}');
    });
    const t = new AcmeTransport({ caBundlePem: ca });
    try {
      await assert.rejects(t.post(`${plain.origin}/new-acct`, jws, { from: 'the directory (newAccount)' }), (err: unknown) => {
        assert.ok(err instanceof InsecureUrlError, `an InsecureUrlError, got ${String(err)}`);
        assert.equal(err.from, 'the directory (newAccount)');
        assert.equal(err.message, `refusing ${plain.origin}/new-acct (from the directory (newAccount)): ACME is https only (RFC 8555 §6.1); nothing was sent to it`);
        return true;
      });
      await assert.rejects(t.get(`${plain.origin}/dir`), InsecureUrlError);
      assert.deepEqual(plain.hits, [], 'the plain http server saw no request');
    } finally {
      t.close();
    }
  });

  // ------------------------------------------------------------ PowerDNS API

  const owner = '_25._tcp.mx1.example.test';
  const API_KEY = 'pdns-api-key-that-must-stay-home';
  function publisher(url: string, extra: { timeoutMs?: number; maxBodyBytes?: number } = {}): PdnsTlsaPublisher {
    return new PdnsTlsaPublisher({ url, apiKey: API_KEY, zone: 'example.test', dnsServer: { host: '127.0.0.1', port: 53 }, logger: silentLogger, ...extra });
  }

  it('pdns: a redirect to another origin is an error, and the API key never reaches it', async () => {
    const thief = await httpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'example.test.', rrsets: [] }));
    });
    const api = await httpServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: `${thief.origin}${req.url}` });
      res.end();
    });
    await assert.rejects(publisher(api.origin).read(owner), (err: unknown) => {
      assert.ok(err instanceof PdnsApiError, `a PdnsApiError, got ${String(err)}`);
      assert.equal(err.status, 307);
      assert.match(err.message, new RegExp(`HTTP 307 redirecting to ${thief.origin}/api/v1/servers/localhost/zones/example\\.test\\.: API requests follow no redirects`));
      assert.ok(!err.message.includes(API_KEY));
      return true;
    });
    assert.equal(api.hits.length, 1);
    assert.equal(api.hits[0]?.apiKey, API_KEY, 'the configured server got the key');
    assert.deepEqual(thief.hits, [], 'the other origin got nothing, the key least of all');
  });

  it('pdns: a body over the cap is cut off, and the server could not send it all', async () => {
    let outcome: Outcome | undefined;
    const api = await httpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      outcome = watch(res);
      void stream(res, outcome, 32 << 20);
    });
    await assert.rejects(publisher(api.origin, { maxBodyBytes: 64 * 1024 }).read(owner), (err: unknown) => {
      assert.ok(err instanceof PdnsApiError, `a PdnsApiError, got ${String(err)}`);
      assert.match(err.message, /: response body from http:\/\/127\.0\.0\.1:\d+\/api\/v1\/servers\/localhost\/zones\/example\.test\. exceeded 64 KiB; the transfer was cut off$/);
      return true;
    });
    assert.ok(outcome);
    assert.equal(await outcome.cutOff, true, 'the connection closed before the server finished sending');
  });

  it('pdns: a trickling body fails at the total deadline, the client hanging up mid-trickle', async () => {
    let outcome: Outcome | undefined;
    const api = await httpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      outcome = watch(res);
      trickle(res, outcome, 100, 100);
    });
    await assert.rejects(publisher(api.origin, { timeoutMs: 1000 }).read(owner), (err: unknown) => {
      assert.ok(err instanceof PdnsApiError, `a PdnsApiError, got ${String(err)}`);
      assert.match(err.message, /: response from http:\/\/127\.0\.0\.1:\d+\/api\/v1\/servers\/localhost\/zones\/example\.test\. stalled: \d+ bytes in 1 s \(the deadline for the whole request\)$/);
      return true;
    });
    assert.ok(outcome);
    assert.equal(await outcome.cutOff, true, 'the client closed the connection while the server was still trickling');
    assert.ok(outcome.sent < 100);
  });

  it('pdns: plain http only to loopback; https anywhere', () => {
    for (const url of ['http://192.0.2.10:8081', 'http://pdns.example.net:8081', 'http://mx1.localhost:8081']) {
      assert.throws(() => publisher(url), (err: unknown) => {
        assert.ok(err instanceof PdnsApiError, `${url}: a PdnsApiError, got ${String(err)}`);
        assert.match(err.message, /plain http:\/\/ is allowed only to loopback \(127\.0\.0\.0\/8, ::1, localhost\)/);
        return true;
      });
    }
    for (const url of ['http://127.0.0.1:8081', 'http://[::1]:8081', 'http://localhost:8081', 'https://pdns.example.net:8443']) {
      assert.doesNotThrow(() => publisher(url), url);
    }
  });
});
