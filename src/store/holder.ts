// Who holds a lock file, and is that process still the one that wrote it
// (docs/architecture.md, "Security model"). A PID alone is not an identity:
// after a crash or a reboot the number is handed to an unrelated process,
// and a lock judged by `kill(pid, 0)` then stays "held" for ever (the daemon
// exits 3 and systemd keeps it down) or, worse, a signal meant for mxcert
// reaches that process. On Linux a process is identified by its PID plus its
// start time (field 22 of /proc/PID/stat, clock ticks since boot) within
// one boot (/proc/sys/kernel/random/boot_id): no two processes of one boot
// share both. Without /proc (not Linux) only `kill(pid, 0)` is left.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** What a lock file records about its holder. */
export interface HolderRecord {
  pid: number;
  host: string;
  since: string;
  command: string;
  /** Field 22 of /proc/PID/stat; absent without /proc and in locks of older versions. */
  startTime?: string;
  bootId?: string;
  /** Random, so two lock files never have the same content. */
  nonce?: string;
}

/** The host this process runs on; `bootId` is undefined where there is no /proc. */
export interface HostFacts {
  host: string;
  bootId?: string;
}

/** What can be learnt about a PID right now. */
export interface ProcessFacts {
  /** `kill(pid, 0)`: EPERM means the process exists but is not ours to signal. */
  signal: 'alive' | 'eperm' | 'gone';
  /** Field 22 of /proc/PID/stat; undefined when /proc/PID cannot be read. */
  startTime?: string;
  /** How long ago the process started (from its start time and /proc/uptime). */
  ageMs?: number;
}

export type Verdict = 'live' | 'stale' | 'foreign';

/**
 * A lock without a recorded start time (written by an older version) names
 * its holder only by PID; a process that started more than this long after
 * the lock file was written cannot have written it. The margin absorbs the
 * tick and second rounding of the two clocks compared.
 */
export const LEGACY_AGE_MARGIN_MS = 5_000;

/**
 * Is the holder recorded in a lock still running? Pure: the facts are
 * gathered by the caller. A lock from another host is never judged (no PID
 * there means anything here).
 */
export function judgeHolder(holder: HolderRecord, here: HostFacts, proc: ProcessFacts, lockAgeMs: number): Verdict {
  if (holder.host !== here.host) return 'foreign';
  // Written in an earlier boot: every process of that boot is gone.
  if (here.bootId !== undefined && holder.bootId !== undefined && holder.bootId !== here.bootId) return 'stale';
  if (proc.signal === 'gone') return 'stale';
  // Without /proc, kill(pid, 0) is all there is (EPERM: exists, so held).
  if (here.bootId === undefined) return 'live';
  // The process exists (kill says so) but /proc/PID is hidden from us: under
  // hidepid=invisible (systemd's ProtectProc=invisible) a root process with
  // more capabilities than ours is not listed. Its identity cannot be checked,
  // so it is taken to be the holder, as an EPERM from kill is.
  if (proc.startTime === undefined) return 'live';
  if (holder.startTime !== undefined) return holder.startTime === proc.startTime ? 'live' : 'stale';
  if (proc.ageMs !== undefined && proc.ageMs < lockAgeMs - LEGACY_AGE_MARGIN_MS) return 'stale';
  return 'live';
}

/** kill(pid, 0), with the kill function injectable for tests. */
export function signalZero(pid: number, kill: (pid: number, signal: 0) => unknown = process.kill): ProcessFacts['signal'] {
  try {
    kill(pid, 0);
    return 'alive';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? 'eperm' : 'gone';
  }
}

/** Field 22 (starttime) of a /proc/PID/stat line. The command name (field 2) may hold spaces and parentheses. */
export function parseStartTime(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // Fields from 3 on follow the command name; field 22 is the 20th of those.
  const v = stat.slice(close + 1).trim().split(/\s+/)[19];
  return v !== undefined && /^\d+$/.test(v) ? v : undefined;
}

/** USER_HZ: /proc reports times in these ticks per second on every Linux architecture node runs on. */
const TICKS_PER_SECOND = 100;

async function readStartTime(pid: number): Promise<string | undefined> {
  return parseStartTime(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));
}

let hostFacts: Promise<HostFacts> | undefined;

/** This host: name and, on Linux, the boot id (undefined without /proc). */
export function localHost(): Promise<HostFacts> {
  hostFacts ??= (async () => {
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
    const self = await readStartTime(process.pid);
    return { host: os.hostname(), bootId: bootId && self ? bootId : undefined };
  })();
  return hostFacts;
}

/** The record this process writes into a lock it takes. */
export async function selfRecord(command: string, since: Date, nonce: string): Promise<HolderRecord> {
  const here = await localHost();
  const rec: HolderRecord = { pid: process.pid, host: here.host, since: since.toISOString(), command, nonce };
  if (here.bootId !== undefined) {
    rec.startTime = await readStartTime(process.pid);
    rec.bootId = here.bootId;
  }
  return rec;
}

export async function processFacts(pid: number): Promise<ProcessFacts> {
  const signal = signalZero(pid);
  if (signal === 'gone') return { signal };
  const startTime = await readStartTime(pid);
  if (startTime === undefined) return { signal };
  const uptime = Number.parseFloat(await readFile('/proc/uptime', 'utf8').catch(() => ''));
  const ageMs = Number.isFinite(uptime) ? uptime * 1000 - (Number(startTime) * 1000) / TICKS_PER_SECOND : undefined;
  return { signal, startTime, ageMs };
}

/** Is this record's process, right now, the one that wrote it? (Full identity; no legacy or hidden-process leniency.) */
export async function provenHolder(rec: HolderRecord): Promise<boolean> {
  const here = await localHost();
  if (here.bootId === undefined || rec.host !== here.host || rec.bootId !== here.bootId || rec.startTime === undefined) return false;
  return (await readStartTime(rec.pid)) === rec.startTime;
}

/**
 * Does this argv (from /proc/PID/cmdline) look like `mxcert run`: node
 * running the mxcert launcher or its bundle, with the `run` command?
 */
export function looksLikeMxcertRun(argv: readonly string[]): boolean {
  if (argv.length < 3 || !/^node(js)?[\d.-]*$/.test(path.basename(argv[0]!))) return false;
  const entry = argv.findIndex((a, i) => i > 0 && isMxcertEntry(a));
  return entry > 0 && argv.slice(entry + 1).includes('run');
}

function isMxcertEntry(arg: string): boolean {
  const base = path.basename(arg);
  return base === 'mxcert' || base === 'mxcert.js' || arg.endsWith('/dist/bundle/main.js');
}

export async function readCmdline(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
}
