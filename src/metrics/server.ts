// The daemon's metrics endpoint: `GET /metrics` in the Prometheus text format
// on `metrics.listen`, nothing else. Loopback only unless the config says
// `metrics.allowNonLoopback: true` (the schema already refuses it; checked
// again here for callers that build a Config in code).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema.js';
import { MetricsError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { UnitOutcome } from '../renew/orchestrator.js';
import { parseListen } from '../util/host-port.js';
import { isLoopbackHost } from './loopback.js';
import { MxcertMetrics } from './metrics.js';

export interface MetricsEndpoint {
  /** Where it listens, e.g. 127.0.0.1:9469 (the real port when 0 was configured). */
  readonly address: string;
  readonly metrics: MxcertMetrics;
  /** After a pass: count its outcomes (undefined if the pass itself failed) and re-read stateDir. */
  afterPass(config: Config, outcomes: readonly UnitOutcome[] | undefined, now: Date): Promise<void>;
  stop(): Promise<void>;
}

export async function startMetricsServer(config: Config, logger: Logger, now: Date = new Date()): Promise<MetricsEndpoint> {
  const m = config.metrics;
  if (!m) throw new MetricsError('metrics.listen is not configured');
  const { host, port } = parseListen(m.listen);
  if (!m.allowNonLoopback && !isLoopbackHost(host)) {
    throw new MetricsError(`metrics.listen: ${host} is not a loopback address; set metrics.allowNonLoopback: true to serve metrics beyond this host`);
  }
  const log = logger.child({ component: 'metrics' });
  const metrics = new MxcertMetrics();
  await metrics.refresh(config, now).catch((err: unknown) => log.warn({ err: describeError(err) }, 'could not read stateDir for metrics'));

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found; metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    metrics.text().then(
      (body) => {
        res.writeHead(200, { 'content-type': metrics.contentType() });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        log.error({ err: describeError(err) }, 'collecting metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting metrics failed\n');
      },
    );
  });
  // Scrapers keep connections open; they must not hold the daemon up at SIGTERM.
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new MetricsError(`metrics.listen: cannot listen on ${m.listen}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EADDRNOTAVAIL' ? 'address not available on this host' : err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: describeError(err) }, 'metrics server error'));
  const addr = server.address() as AddressInfo;
  const address = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  log.info({ address, path: '/metrics' }, 'metrics endpoint listening');

  return {
    address,
    metrics,
    async afterPass(cfg, outcomes, at) {
      metrics.recordPass(outcomes, at);
      try {
        await metrics.refresh(cfg, at);
      } catch (err) {
        log.warn({ err: describeError(err) }, 'could not read stateDir for metrics; keeping the previous values');
      }
    },
    stop() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
