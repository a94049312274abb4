// The connection to etcd (docs/architecture.md, "Fleet"). The `etcd3`
// package (and gRPC under it, ~30 MB resident and half a second to load) is
// imported here only, with a dynamic import, and this module is itself only
// imported when a config has a fleet block: a host without a fleet never
// loads it.
//
// Every call runs under one absolute deadline (`requestTimeout`) shared by
// the client's retries, so a member cut off from etcd gets a typed
// EtcdUnavailableError within the deadline instead of hanging; a refusal
// (wrong password, certificate or permission) is an EtcdAccessError. TLS
// files and the password are read when connecting, through the secret-file
// rules (src/fleet/secret-files.ts), never kept in the config.
import { readFile } from 'node:fs/promises';
import type { Etcd3, IOptions, Namespace, WatchBuilder, Watcher } from 'etcd3';
import { errnoText } from '../config/errno-text.js';
import type { FleetConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { EtcdAccessError, EtcdUnavailableError } from './errors.js';
import { fleetSecret } from './secret-files.js';

type Etcd3Module = typeof import('etcd3');

export interface EtcdConnectOptions {
  endpoints: string[];
  /** The fleet prefix; every key the fleet code uses is relative to it. */
  prefix: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
  dialTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Per-call options for etcd3 builders: the absolute deadline of the call. */
export interface CallOpts {
  deadline: Date;
}

export interface FleetEtcd {
  readonly client: Etcd3;
  /** The view of etcd under the fleet prefix. */
  readonly ns: Namespace;
  readonly prefix: string;
  readonly endpoints: readonly string[];
  readonly requestTimeoutMs: number;
  readonly dialTimeoutMs: number;
  /** The etcd3 module, for its error classes and enums. */
  readonly lib: Etcd3Module;
  /**
   * Run one etcd operation under the request deadline (or `timeoutMs`).
   * `what` names it in errors ("read certs/mx/lineage"). Failures come back
   * as EtcdUnavailableError or EtcdAccessError; other errors pass unchanged.
   */
  call<T>(what: string, op: (o: CallOpts) => Promise<T>, timeoutMs?: number): Promise<T>;
  /** One linearizable read within the dial timeout: proves the endpoints, TLS, auth and quorum. */
  probe(): Promise<void>;
  /**
   * A watcher on the fleet prefix (`build` sets key or prefix and start
   * revision). close() cancels it: a watcher left open would keep
   * reconnecting, and the process alive, after the client is closed.
   */
  watch(build: (b: WatchBuilder) => WatchBuilder): Watcher;
  /** Cancels the open watchers and closes the connections. */
  close(): void;
}

let loaded: Promise<Etcd3Module> | undefined;
/** The etcd3 package, loaded once, on first use. */
export function loadEtcd3(): Promise<Etcd3Module> {
  loaded ??= import('etcd3');
  return loaded;
}

/** Connect as the config's fleet block says: TLS files and password read now. Does not touch the network. */
export async function connectFleetEtcd(fleet: FleetConfig): Promise<FleetEtcd> {
  const e = fleet.etcd;
  const tls = e.tls
    ? {
        ca: e.tls.caFile ? await fleetPublicFile(e.tls.caFile, 'fleet.etcd.tls.caFile') : undefined,
        cert: e.tls.certFile ? await fleetPublicFile(e.tls.certFile, 'fleet.etcd.tls.certFile') : undefined,
        key: e.tls.keyFile ? await fleetSecret(e.tls.keyFile, 'fleet.etcd.tls.keyFile') : undefined,
      }
    : undefined;
  const auth = e.auth ? { username: e.auth.username, password: (await fleetSecret(e.auth.passwordFile, 'fleet.etcd.auth.passwordFile')).toString('utf8').trim() } : undefined;
  return openEtcd({ endpoints: e.endpoints, prefix: e.prefix, tls, auth, dialTimeoutMs: e.dialTimeout, requestTimeoutMs: e.requestTimeout });
}

/** Public material (CA, client certificate): a plain read; an unreadable file is a config problem at its path. */
async function fleetPublicFile(file: string, at: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new ConfigError([{ path: at, message: `cannot read ${file}: ${errnoText(err)}` }], { cause: err });
  }
}

/**
 * Watch streams reconnect after this backoff (etcd3's default grows to 30 s;
 * a member should see lineage changes again soon after etcd is back):
 * 100 ms doubling to 2 s.
 */
function watchBackoff(attempt = 0): { duration: number; next: () => ReturnType<typeof watchBackoff> } {
  return { duration: Math.min(2000, 100 * 2 ** attempt), next: () => watchBackoff(attempt + 1) };
}

export async function openEtcd(o: EtcdConnectOptions): Promise<FleetEtcd> {
  const lib = await loadEtcd3();
  const options: IOptions = {
    hosts: o.endpoints,
    // A stream (watch, lease keep-alive) lives on; every unary call has a deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + o.requestTimeoutMs }),
    grpcOptions: {
      // A dead peer on a quiet connection is noticed by gRPC keep-alive pings
      // (etcd allows one every 5 s by default: --grpc-keepalive-min-time).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': o.dialTimeoutMs,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': Math.max(1000, o.dialTimeoutMs),
    },
    faultHandling: { watchBackoff: { next: () => watchBackoff() } as never },
  };
  if (o.tls) {
    // grpc-js: a null root certificate means the system's roots.
    options.credentials = { rootCertificate: o.tls.ca ?? (null as unknown as Buffer), privateKey: o.tls.key, certChain: o.tls.cert };
  }
  if (o.auth) options.auth = { ...o.auth, callOptions: () => ({ deadline: Date.now() + o.dialTimeoutMs }) };
  const client = new lib.Etcd3(options);
  const ns = client.namespace(o.prefix);
  const call = <T>(what: string, op: (c: CallOpts) => Promise<T>, timeoutMs = o.requestTimeoutMs): Promise<T> =>
    withDeadline(lib, o.endpoints, what, op, timeoutMs);
  const watchers = new Set<Watcher>();
  return {
    client,
    ns,
    lib,
    prefix: o.prefix,
    endpoints: o.endpoints,
    requestTimeoutMs: o.requestTimeoutMs,
    dialTimeoutMs: o.dialTimeoutMs,
    call,
    probe: () => call('connect', (c) => ns.get('leader').options(c).exec(), o.dialTimeoutMs).then(() => undefined),
    watch(build) {
      const w = build(ns.watch()).watcher();
      watchers.add(w);
      w.once('end', () => watchers.delete(w));
      return w;
    },
    close() {
      // Not awaited: a cancel waits for etcd, which may be what is gone; once detached, nothing reconnects.
      for (const w of watchers) void w.cancel().catch(() => undefined);
      watchers.clear();
      client.close();
    },
  };
}

/**
 * Run `op` with an absolute deadline it passes to etcd3 (shared by the
 * client's retries), and a timer of our own a little later, in case a
 * step (the auth token exchange, a reconnect) does not honour it.
 */
async function withDeadline<T>(lib: Etcd3Module, endpoints: readonly string[], what: string, op: (c: CallOpts) => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = new Date(Date.now() + timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EtcdUnavailableError(`etcd (${endpoints.join(', ')}) unavailable: could not ${what}: no answer within ${timeoutMs} ms`)), timeoutMs + 250);
  });
  try {
    return await Promise.race([op({ deadline }), late]);
  } catch (err) {
    throw etcdError(lib, endpoints, what, timeoutMs, err);
  } finally {
    clearTimeout(timer);
  }
}

/** An etcd3/gRPC failure as the typed error the fleet code acts on. */
export function etcdError(lib: Etcd3Module, endpoints: readonly string[], what: string, timeoutMs: number, err: unknown): unknown {
  if (err instanceof EtcdUnavailableError || err instanceof EtcdAccessError) return err;
  // The cause is shown after our message (describeError) unless the message holds its text: keep them equal.
  if (err instanceof Error) err.message = grpcText(err.message);
  if (
    err instanceof lib.EtcdAuthenticationFailedError ||
    err instanceof lib.EtcdPermissionDeniedError ||
    err instanceof lib.EtcdRoleNotGrantedError ||
    err instanceof lib.EtcdUserNotFoundError ||
    err instanceof lib.GRPCUnauthenticatedError
  ) {
    return new EtcdAccessError(`etcd refused to let us ${what}: ${grpcText((err as Error).message)}`, { cause: err });
  }
  // etcd3 stops calling an endpoint for 5 s after 3 failures in a row (its circuit breaker).
  const circuitOpen = (err as { isBrokenCircuitError?: unknown } | undefined)?.isBrokenCircuitError === true;
  const etcdSide = circuitOpen || err instanceof lib.GRPCGenericError || err instanceof lib.EtcdError || err instanceof lib.ClientClosedError;
  if (etcdSide) {
    const why = err instanceof lib.GRPCDeadlineExceededError
      ? `no answer within ${timeoutMs} ms`
      : circuitOpen
        ? 'every endpoint failed repeatedly just now; retried after a pause'
        : grpcText((err as Error).message);
    return new EtcdUnavailableError(`etcd (${endpoints.join(', ')}) unavailable: could not ${what}: ${why}`, { cause: err });
  }
  return err;
}

/** gRPC's message without its empty trailing notes ("… Resolution note: "). */
function grpcText(message: string): string {
  return message.replace(/\s*Resolution note:\s*$/, '').trim();
}
