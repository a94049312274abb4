// A private etcd v3 cluster (Debian's etcd-server 3.4) for the fleet tests:
// three members on loopback with free ports and their own data dirs in one
// temp dir, optionally serving clients over TLS with client certificates
// required (peers stay on plain loopback http), optionally with etcd's own
// user/password authentication. Members are stopped, killed and restarted
// one at a time by PID, so tests can take quorum away and give it back; every
// wait polls `etcdctl endpoint health` with a deadline.
//
// Raft timings are shortened (heartbeat 50 ms, election 500 ms) so a member
// that was stopped is replaced as raft leader within a second and leases of
// 2 s are allowed (etcd's floor is 1.5 × the election timeout).

import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { issueLoopbackCert, makeLoopbackPki } from './pki.js';
import {
  freePort,
  logTail,
  pidAlive,
  pollUntil,
  registerTempDir,
  removeTempDir,
  run,
  startDaemon,
  stopPid,
  untrackPid,
  type Daemon,
  type RunResult,
} from './proc.js';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';

export interface EtcdClusterOptions {
  /** Members (default 3). */
  size?: number;
  /** Clients over https with client certificates required (--client-cert-auth). */
  tls?: boolean;
  /** etcd authentication on: a `root` user, and a user with read/write on `authPrefix` only. */
  auth?: boolean;
  /** The prefix the auth user may use (default `/mxcert/`). */
  authPrefix?: string;
  heartbeatMs?: number;
  electionMs?: number;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logPath: string;
  /** The running process, or undefined while stopped. */
  daemon?: Daemon;
}

export interface EtcdTls {
  caFile: string;
  /** A client certificate (CN=mxcert) and its key (0600), signed by the cluster's CA. */
  certFile: string;
  keyFile: string;
  /** A client certificate from another CA, which the cluster must refuse. */
  foreignCertFile: string;
  foreignKeyFile: string;
}

export interface EtcdAuth {
  username: string;
  password: string;
  /** The password alone (no newline), mode 0600. */
  passwordFile: string;
  rootPassword: string;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client URL, in member order. */
  endpoints: string[];
  tls?: EtcdTls;
  auth?: EtcdAuth;
  dir: string;
  /** The raft election timeout the members run with (ms). */
  electionMs: number;
  /** Runs etcdctl (API v3) as root against `endpoints` (default: every member). */
  etcdctl(args: string[], opts?: { endpoints?: string[]; allowFailure?: boolean }): Promise<RunResult>;
  /** SIGTERM to member `i`, waits until it is gone. */
  stopMember(i: number): Promise<void>;
  /** SIGKILL to member `i`, waits until it is gone. */
  killMember(i: number): Promise<void>;
  /** Starts a stopped member again on its data dir and ports; does not wait for health. */
  startMember(i: number): Promise<void>;
  /** Polls until each of `members` (default: every running one) reports healthy (has a raft leader and serves a read). */
  waitHealthy(opts?: { members?: number[]; deadlineMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

interface Ports {
  client: number;
  peer: number;
}

function memberArgs(m: EtcdMember, cluster: { members: string; token: string }, opts: Required<Pick<EtcdClusterOptions, 'heartbeatMs' | 'electionMs'>>, tls?: { cert: string; key: string; ca: string }): string[] {
  const args = [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl,
    '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl,
    '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', cluster.members,
    '--initial-cluster-state', 'new',
    // The same for every member (it seeds the cluster ID), unique per cluster.
    '--initial-cluster-token', cluster.token,
    '--heartbeat-interval', String(opts.heartbeatMs),
    '--election-timeout', String(opts.electionMs),
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    // No metrics or pprof listeners of their own; nothing else on the host is touched.
    '--enable-pprof=false',
  ];
  if (tls) args.push('--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth');
  return args;
}

async function allocatePorts(n: number): Promise<Ports[]> {
  const seen = new Set<number>();
  const next = async (): Promise<number> => {
    for (;;) {
      const p = await freePort();
      if (!seen.has(p)) {
        seen.add(p);
        return p;
      }
    }
  };
  const out: Ports[] = [];
  for (let i = 0; i < n; i++) out.push({ client: await next(), peer: await next() });
  return out;
}

/** Starts the cluster and waits until every member is healthy (and auth, when asked for, is set up). */
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  const timing = { heartbeatMs: opts.heartbeatMs ?? 50, electionMs: opts.electionMs ?? 500 };
  const root = await mkdtemp(path.join(os.tmpdir(), 'mxcert-etcd-'));
  registerTempDir(root);
  const scheme = opts.tls ? 'https' : 'http';
  const ports = await allocatePorts(size);
  const members: EtcdMember[] = ports.map((p, i) => ({
    name: `e${i + 1}`,
    clientUrl: `${scheme}://127.0.0.1:${p.client}`,
    peerUrl: `http://127.0.0.1:${p.peer}`,
    dataDir: path.join(root, `e${i + 1}`, 'data'),
    logPath: path.join(root, `e${i + 1}`, 'etcd.log'),
  }));
  for (const m of members) await mkdir(path.dirname(m.dataDir), { recursive: true, mode: 0o700 });
  const initialCluster = { members: members.map((m) => `${m.name}=${m.peerUrl}`).join(','), token: path.basename(root) };

  let tls: EtcdTls | undefined;
  let serverTls: { cert: string; key: string; ca: string } | undefined;
  if (opts.tls) {
    const pkiDir = path.join(root, 'pki');
    await mkdir(pkiDir, { mode: 0o700 });
    const pki = await makeLoopbackPki(pkiDir, 'mxcert etcd test CA');
    // etcd's gRPC gateway dials its own listener with the server certificate, so it needs clientAuth too.
    const server = await issueLoopbackCert(pki, pkiDir, 'etcd-server', { cn: 'etcd', serverAuth: true, clientAuth: true });
    const client = await issueLoopbackCert(pki, pkiDir, 'client', { cn: 'mxcert', clientAuth: true });
    const foreignDir = path.join(pkiDir, 'foreign');
    await mkdir(foreignDir, { mode: 0o700 });
    const foreignPki = await makeLoopbackPki(foreignDir, 'some other CA');
    const foreign = await issueLoopbackCert(foreignPki, foreignDir, 'client', { cn: 'mxcert', clientAuth: true });
    serverTls = { cert: server.certPath, key: server.keyPath, ca: pki.caCertPath };
    tls = { caFile: pki.caCertPath, certFile: client.certPath, keyFile: client.keyPath, foreignCertFile: foreign.certPath, foreignKeyFile: foreign.keyPath };
  }

  const rootPassword = randomBytes(12).toString('hex');
  let authEnabled = false;
  const etcdctl: EtcdCluster['etcdctl'] = (args, o = {}) => {
    const flags = [`--endpoints=${(o.endpoints ?? members.map((m) => m.clientUrl)).join(',')}`, '--dial-timeout=1s', '--command-timeout=2s'];
    if (tls) flags.push(`--cacert=${tls.caFile}`, `--cert=${tls.certFile}`, `--key=${tls.keyFile}`);
    if (authEnabled) flags.push(`--user=root:${rootPassword}`);
    return run(ETCDCTL_BIN, [...flags, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, allowFailure: o.allowFailure, timeoutMs: 10_000 });
  };

  const launch = (i: number): void => {
    const m = members[i]!;
    if (m.daemon && !m.daemon.hasExited()) throw new Error(`etcd member ${m.name} is already running (PID ${m.daemon.pid})`);
    m.daemon = startDaemon({
      name: `etcd ${m.name}`,
      command: ETCD_BIN,
      args: memberArgs(m, initialCluster, timing, serverTls),
      cwd: path.dirname(m.dataDir),
      logPath: m.logPath,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
  };

  const running = (): number[] => members.flatMap((m, i) => (m.daemon && !m.daemon.hasExited() ? [i] : []));

  const waitHealthy: EtcdCluster['waitHealthy'] = async (o = {}) => {
    const which = o.members ?? running();
    for (const i of which) {
      const m = members[i]!;
      await pollUntil(
        async () => {
          if (!m.daemon || m.daemon.hasExited()) throw new Error(`etcd member ${m.name} is not running`);
          const r = await etcdctl(['endpoint', 'health'], { endpoints: [m.clientUrl], allowFailure: true });
          if (r.code === 0 && /is healthy/.test(r.stdout + r.stderr)) return true;
          throw new Error((r.stdout + r.stderr).trim().split('\n').pop() ?? `exit ${r.code}`);
        },
        { deadlineMs: o.deadlineMs ?? 20_000, intervalMs: 100, what: `etcd member ${m.name} (${m.clientUrl}) to be healthy`, detail: () => logTail(m.logPath, 15) },
      );
    }
  };

  const halt = async (i: number, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    const m = members[i]!;
    const d = m.daemon;
    if (!d) return;
    if (signal === 'SIGKILL') {
      try {
        process.kill(d.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await pollUntil(() => (pidAlive(d.pid) ? undefined : true), { deadlineMs: 5000, intervalMs: 20, what: `etcd ${m.name} (PID ${d.pid}) to die` });
      untrackPid(d.pid);
    } else {
      await stopPid(d.pid);
    }
    // The daemon's process handle is unref'd: its exit event alone does not
    // keep the event loop alive, so a test awaiting only this would end
    // with "Promise resolution is still pending". Hold a timer meanwhile.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      await d.exited;
    } finally {
      clearInterval(keepAlive);
    }
    m.daemon = undefined;
  };

  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    tls,
    dir: root,
    electionMs: timing.electionMs,
    etcdctl,
    stopMember: (i) => halt(i, 'SIGTERM'),
    killMember: (i) => halt(i, 'SIGKILL'),
    async startMember(i) {
      launch(i);
    },
    waitHealthy,
    async stop() {
      for (let i = 0; i < members.length; i++) await halt(i, 'SIGTERM');
      await removeTempDir(root);
    },
  };

  try {
    for (let i = 0; i < size; i++) launch(i);
    await waitHealthy();
    if (opts.auth) {
      cluster.auth = await enableAuth(etcdctl, root, rootPassword, opts.authPrefix ?? '/mxcert/');
      authEnabled = true;
    }
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
  return cluster;
}

/**
 * etcd's role-based access (etcd 3.4 "auth"): a root user (required before
 * `auth enable`) and an `mxcert` user whose role may read and write keys
 * under `prefix` only.
 */
async function enableAuth(etcdctl: EtcdCluster['etcdctl'], dir: string, rootPassword: string, prefix: string): Promise<EtcdAuth> {
  const username = 'mxcert';
  const password = randomBytes(12).toString('hex');
  const passwordFile = path.join(dir, 'etcd-password');
  await writeFile(passwordFile, password, { mode: 0o600 });
  await etcdctl(['user', 'add', `root:${rootPassword}`]);
  await etcdctl(['user', 'add', `${username}:${password}`]);
  await etcdctl(['role', 'add', 'mxcert-fleet']);
  await etcdctl(['role', 'grant-permission', 'mxcert-fleet', '--prefix=true', 'readwrite', prefix]);
  await etcdctl(['user', 'grant-role', username, 'mxcert-fleet']);
  await etcdctl(['auth', 'enable']);
  return { username, password, passwordFile, rootPassword };
}
