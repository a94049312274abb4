// Writes a certificate's output files (docs/architecture.md `output`, §3) and keeps what
// was there before, so a failed deploy hook or live verification can put the
// previous files back (docs/architecture.md, "The pipeline", §6 step 6).
import { DeployError, describeError } from '../errors.js';
import { readRegularNoFollow } from '../security/trusted-path.js';
import { assertSafeTarget, removeFile, writeFileAtomic } from './atomic-write.js';

export type OutputKind = 'combined' | 'key' | 'cert' | 'chain' | 'fullchain';

export interface OutputFile {
  kind: OutputKind;
  path: string;
  content: string;
  mode: number;
  uid?: number;
  gid?: number;
}

export interface DeployResult {
  /** Paths written, in order. */
  written: string[];
  /** Put every written path back as it was: previous content, mode and owner, or absent. */
  restore(): Promise<void>;
}

interface Snapshot {
  path: string;
  previous?: { content: Buffer; mode: number; uid: number; gid: number };
}

const KEY_KINDS: ReadonlySet<OutputKind> = new Set(['combined', 'key']);
/** Owner read/write plus group read: enough for an MTA that reads keys through its group, nothing more. */
const MAX_KEY_MODE = 0o640;

const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;

function checkFiles(files: OutputFile[]): void {
  const seen = new Map<string, OutputKind>();
  for (const f of files) {
    if (!f.path.startsWith('/')) throw new DeployError(`output ${f.kind}: path must be absolute: ${f.path}`);
    const other = seen.get(f.path);
    if (other) throw new DeployError(`outputs ${other} and ${f.kind} both write ${f.path}`);
    seen.set(f.path, f.kind);
    if (f.mode & ~0o777) throw new DeployError(`output ${f.kind} ${f.path}: mode ${f.mode.toString(8)} has special bits`);
    if (KEY_KINDS.has(f.kind) && f.mode & ~MAX_KEY_MODE) {
      throw new DeployError(
        `refusing mode ${octal(f.mode)} for ${f.path}: it holds a private key, so at most 0640 (owner rw, group r)`,
      );
    }
  }
}

// Content, mode and owner come from one O_NOFOLLOW descriptor: a file
// swapped for a symlink after assertSafeTarget is refused, never read through
// (restoring it would copy whatever the link points to into the output).
async function snapshot(target: string): Promise<Snapshot> {
  const kept = await readRegularNoFollow(target);
  if (!kept) return { path: target };
  return { path: target, previous: { content: kept.content, mode: kept.mode, uid: kept.uid, gid: kept.gid } };
}

async function restoreOne(s: Snapshot): Promise<void> {
  if (!s.previous) {
    await removeFile(s.path);
    return;
  }
  const { content, mode, uid, gid } = s.previous;
  // Only ask for an owner change when the new file would not get it anyway,
  // so an unprivileged agent can restore its own files.
  const euid = process.geteuid?.();
  const egid = process.getegid?.();
  await writeFileAtomic(s.path, content, {
    mode,
    uid: uid !== euid ? uid : undefined,
    gid: gid !== egid ? gid : undefined,
  });
}

async function restoreAll(snapshots: Snapshot[]): Promise<void> {
  const failures: string[] = [];
  let firstErr: unknown;
  // Reverse order: the combined file (usually first) is the one the MTA reads, put it back last.
  for (const s of [...snapshots].reverse()) {
    try {
      await restoreOne(s);
    } catch (err) {
      firstErr ??= err;
      failures.push(describeError(err));
    }
  }
  if (failures.length > 0) {
    throw new DeployError(`restoring previous files failed: ${failures.join('; ')}`, { cause: firstErr });
  }
}

/**
 * Validate every target before touching any (so bad input changes nothing),
 * snapshot what is there, then write each file atomically. If a write fails
 * the files already written are restored before the error is thrown.
 */
export async function deployOutputs(files: OutputFile[]): Promise<DeployResult> {
  checkFiles(files);
  for (const f of files) await assertSafeTarget(f.path);

  const snapshots: Snapshot[] = [];
  for (const f of files) {
    try {
      snapshots.push(await snapshot(f.path));
    } catch (err) {
      throw new DeployError(`cannot read the current ${f.path}: ${describeError(err)}`, { cause: err });
    }
  }

  const written: string[] = [];
  for (const [i, f] of files.entries()) {
    try {
      await writeFileAtomic(f.path, f.content, { mode: f.mode, uid: f.uid, gid: f.gid });
    } catch (err) {
      try {
        await restoreAll(snapshots.slice(0, i));
      } catch (restoreErr) {
        throw new DeployError(`${describeError(err)}; and ${describeError(restoreErr)}`, { cause: err });
      }
      throw err;
    }
    written.push(f.path);
  }

  return {
    written,
    restore: () => restoreAll(snapshots),
  };
}
