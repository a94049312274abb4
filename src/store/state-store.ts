// stateDir layout (docs/architecture.md, "Files on disk"). Contract, in the spirit of certmagic's Storage:
// - every write is atomic (temp + fsync + rename + dir fsync); a reader sees a
//   whole old file or a whole new one;
// - files holding private keys are 0600 from their first byte;
// - a version directory is written once and never modified afterwards; the
//   only mutable file per (certificate, key type) is state.json, which names
//   the current and previous versions, so switching versions is one rename.
//
//   stateDir/                       0700
//     lock                          agent lock (see lock.ts)
//     accounts/H/key.pem, account.json  ACME account per directory URL (H = its hash)
//     accounts/H/key-rollover.pem   a key rollover's new key, until the CA's answer is settled
//     certs/NAME/KEYTYPE/
//       state.json                  current/previous version ids, last result
//       versions/ID/                key.pem (0600), cert.pem, chain.pem, meta.json
//       staged/ID/                  an issued, validated certificate whose deploy failed:
//                                   all 0600, deployed from here on a later attempt
//                                   instead of ordering again, then moved to versions/
//       failed/ID/                  chains that failed validation, kept for inspection
//       lineage/                    certbot-style lineage for RENEWED_LINEAGE hooks
import { constants, readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { assertSafeTarget, createFileExclusive, syncDirectory, writeFileAtomic } from '../deploy/atomic-write.js';
import type { AccountStore, StoredAccount } from '../acme/client.js';
import { StateError } from '../errors.js';
import { ensureStateDir } from './state-dir.js';

export interface VersionMeta {
  id: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  names: string[];
  issuer: string;
  spkiSha256: string;
  /** ARI CertID (RFC 9773 §4.1), computed once at issuance. */
  certId?: string;
  keyType: string;
  issuedAt: string;
  orderUrl?: string;
}

export interface StoredVersion {
  meta: VersionMeta;
  keyPem: string;
  leafPem: string;
  intermediatesPem: string[];
}

export interface LastResult {
  at: string;
  result: 'success' | 'failure';
  error?: string;
  code?: string;
  /** Which step failed: obtain, validate, deploy, hooks, verify. */
  step?: string;
  /** With a failure: configFingerprint() of the config it failed under (no secret in it). */
  configFingerprint?: string;
}

/** ARI state (RFC 9773), persisted so the chosen instant survives restarts. */
export interface AriState {
  certId: string;
  windowStart: string;
  windowEnd: string;
  /** The instant picked in the window; re-picked only when the window changes. */
  chosen: string;
  explanationURL?: string;
  fetchedAt: string;
  /** Do not ask the CA again before this (Retry-After, clamped). */
  nextCheck: string;
  lastError?: string;
}

export interface CertState {
  current?: string;
  previous?: string;
  last?: LastResult;
  consecutiveFailures: number;
  /** The CA's Retry-After after a failure (or a rate limit), as an instant. */
  retryAfterUntil?: string;
  ari?: AriState;
  /** Set by `mxcert revoke`: that version is revoked and the next pass replaces it. */
  revoked?: RevokedMark;
}

export interface RevokedMark {
  /** The version id that was revoked (state.current at the time). */
  version: string;
  serial: string;
  /** RFC 5280 reason name, e.g. keyCompromise. */
  reason: string;
  at: string;
}

const KEY_MODE = 0o600;
const PENDING_ACCOUNT_KEY = 'key-rollover.pem';
const PUBLIC_MODE = 0o644;

export class StateStore {
  constructor(readonly stateDir: string) {}

  /** Create stateDir 0700, or refuse one that others can write to. */
  async ensure(): Promise<void> {
    await ensureStateDir(this.stateDir);
  }

  private async dir(...parts: string[]): Promise<string> {
    const d = path.join(this.stateDir, ...parts);
    await mkdir(d, { recursive: true, mode: 0o700 });
    return d;
  }

  certDir(name: string, keyType: string): string {
    return path.join(this.stateDir, 'certs', name, keyType);
  }

  /**
   * Accounts are per ACME directory (as certbot keys them by server): an
   * account registered with one CA means nothing to another, and switching
   * `acme.directory` (staging → production) must not reuse it.
   */
  accountStore(directoryUrl: string): AccountStore {
    const sub = createHash('sha256').update(directoryUrl).digest('hex').slice(0, 16);
    return {
      load: async (): Promise<StoredAccount | undefined> => {
        const d = path.join(this.stateDir, 'accounts', sub);
        const keyPem = await readFile(path.join(d, 'key.pem'), 'utf8').catch(() => undefined);
        if (!keyPem) return undefined;
        const meta = await readJson<{ url?: string }>(path.join(d, 'account.json'));
        return { keyPem, url: meta?.url };
      },
      save: async (acct: StoredAccount): Promise<void> => {
        const d = await this.dir('accounts', sub);
        await writeFileAtomic(path.join(d, 'key.pem'), acct.keyPem, { mode: KEY_MODE });
        await writeFileAtomic(path.join(d, 'account.json'), JSON.stringify({ directory: directoryUrl, url: acct.url }, null, 2) + '\n', { mode: KEY_MODE });
      },
      // A key rollover's new key until the CA's answer is settled (src/acme/account.ts).
      loadPendingKey: async (): Promise<string | undefined> =>
        readFile(path.join(this.stateDir, 'accounts', sub, PENDING_ACCOUNT_KEY), 'utf8').catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return undefined;
          throw new StateError(`cannot read the pending account key: ${err.message}`, { cause: err });
        }),
      savePendingKey: async (keyPem: string): Promise<void> => {
        const d = await this.dir('accounts', sub);
        await writeFileAtomic(path.join(d, PENDING_ACCOUNT_KEY), keyPem, { mode: KEY_MODE });
      },
      clearPendingKey: async (): Promise<void> => {
        await rm(path.join(this.stateDir, 'accounts', sub, PENDING_ACCOUNT_KEY), { force: true });
      },
    };
  }

  async readState(name: string, keyType: string): Promise<CertState> {
    const s = await readJson<CertState>(path.join(this.certDir(name, keyType), 'state.json'));
    return s ?? { consecutiveFailures: 0 };
  }

  async writeState(name: string, keyType: string, state: CertState): Promise<void> {
    const d = await this.dir('certs', name, keyType);
    await writeFileAtomic(path.join(d, 'state.json'), JSON.stringify(state, null, 2) + '\n', { mode: KEY_MODE });
  }

  /** Write an issued version once; returns its id. */
  async saveVersion(name: string, keyType: string, v: NewVersion): Promise<string> {
    const id = versionId(v);
    const d = await this.dir('certs', name, keyType, 'versions', id);
    await writeVersionFiles(d, id, v, PUBLIC_MODE);
    return id;
  }

  /**
   * Keep an issued, validated certificate that could not be deployed, so
   * the next attempt deploys it instead of ordering again (a CA limits
   * duplicate certificates: Let's Encrypt allows 5 a week). One per unit:
   * an older staged certificate is removed. Every file is 0600, and the
   * directory appears whole: written under a temporary name, then renamed.
   */
  async saveStaged(name: string, keyType: string, v: NewVersion): Promise<string> {
    const id = versionId(v);
    const sdir = await this.dir('certs', name, keyType, 'staged');
    const tmp = path.join(sdir, `.${id}.${process.pid}.tmp`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { mode: 0o700 });
    await writeFreshVersionDir(tmp, id, v);
    await this.dropStaged(name, keyType, path.basename(tmp));
    await rename(tmp, path.join(sdir, id));
    await syncDir(sdir);
    return id;
  }

  /** The staged certificate, if one is waiting to be deployed. */
  async loadStaged(name: string, keyType: string): Promise<StoredVersion | undefined> {
    const id = await this.stagedId(name, keyType);
    return id ? this.loadFrom(path.join(this.certDir(name, keyType), 'staged', id)) : undefined;
  }

  /** The staged certificate's metadata alone (for status). */
  async loadStagedMeta(name: string, keyType: string): Promise<VersionMeta | undefined> {
    const id = await this.stagedId(name, keyType);
    return id ? readJson<VersionMeta>(path.join(this.certDir(name, keyType), 'staged', id, 'meta.json')) : undefined;
  }

  private async stagedId(name: string, keyType: string): Promise<string | undefined> {
    return newestStaged(await readdir(path.join(this.certDir(name, keyType), 'staged')).catch(() => [] as string[]));
  }

  // Synchronous readers for `mxcert status`, which reads a few small files
  // per unit and nothing else: for a thousand units the promise and
  // thread-pool round trip of each asynchronous read cost several times the
  // reads themselves. Same files, same answers as the methods above.

  readStateSync(name: string, keyType: string): CertState {
    return readJsonSync<CertState>(path.join(this.certDir(name, keyType), 'state.json')) ?? { consecutiveFailures: 0 };
  }

  loadMetaSync(name: string, keyType: string, id: string): VersionMeta | undefined {
    return readJsonSync<VersionMeta>(path.join(this.certDir(name, keyType), 'versions', id, 'meta.json'));
  }

  loadStagedMetaSync(name: string, keyType: string): VersionMeta | undefined {
    const dir = path.join(this.certDir(name, keyType), 'staged');
    let ids: string[];
    try {
      ids = readdirSync(dir);
    } catch {
      return undefined;
    }
    const id = newestStaged(ids);
    return id ? readJsonSync<VersionMeta>(path.join(dir, id, 'meta.json')) : undefined;
  }

  /** The staged certificate was deployed: it becomes a version (one rename; a version is never rewritten). */
  async promoteStaged(name: string, keyType: string, id: string): Promise<void> {
    const vdir = await this.dir('certs', name, keyType, 'versions');
    await rename(path.join(this.certDir(name, keyType), 'staged', id), path.join(vdir, id));
    await syncDir(vdir);
    await syncDir(path.join(this.certDir(name, keyType), 'staged'));
  }

  /** Forget any staged certificate (too old, other names, or replaced), and unfinished writes; `keep` is one being written. */
  async dropStaged(name: string, keyType: string, keep?: string): Promise<void> {
    const sdir = path.join(this.certDir(name, keyType), 'staged');
    const ids = await readdir(sdir).catch(() => [] as string[]);
    await Promise.all(ids.filter((i) => i !== keep).map((i) => rm(path.join(sdir, i), { recursive: true, force: true })));
  }

  async loadVersion(name: string, keyType: string, id: string): Promise<StoredVersion | undefined> {
    return this.loadFrom(path.join(this.certDir(name, keyType), 'versions', id));
  }

  private async loadFrom(d: string): Promise<StoredVersion | undefined> {
    const meta = await readJson<VersionMeta>(path.join(d, 'meta.json'));
    if (!meta) return undefined;
    const [keyPem, leafPem, chain] = await Promise.all(
      ['key.pem', 'cert.pem', 'chain.pem'].map((f) => readFile(path.join(d, f), 'utf8')),
    );
    return { meta, keyPem: keyPem!, leafPem: leafPem!, intermediatesPem: splitCerts(chain!) };
  }

  /** A version's metadata alone (status needs no key or certificate). */
  async loadMeta(name: string, keyType: string, id: string): Promise<VersionMeta | undefined> {
    return readJson<VersionMeta>(path.join(this.certDir(name, keyType), 'versions', id, 'meta.json'));
  }

  async currentVersion(name: string, keyType: string): Promise<StoredVersion | undefined> {
    const st = await this.readState(name, keyType);
    return st.current ? this.loadVersion(name, keyType, st.current) : undefined;
  }

  /** Keep a chain that failed validation for inspection; it is never deployed. */
  async saveFailed(name: string, keyType: string, chainPem: string, error: string, at: Date): Promise<string> {
    const d = await this.dir('certs', name, keyType, 'failed', at.toISOString().replace(/[:.]/g, ''));
    await writeFileAtomic(path.join(d, 'chain.pem'), chainPem, { mode: PUBLIC_MODE });
    await writeFileAtomic(path.join(d, 'error.txt'), error + '\n', { mode: PUBLIC_MODE });
    return d;
  }

  async lineageDir(name: string, keyType: string): Promise<string> {
    return this.dir('certs', name, keyType, 'lineage');
  }

  /** Remove versions other than current and previous. */
  async prune(name: string, keyType: string): Promise<void> {
    const st = await this.readState(name, keyType);
    const keep = new Set([st.current, st.previous].filter(Boolean));
    const vdir = path.join(this.certDir(name, keyType), 'versions');
    const ids = await readdir(vdir).catch(() => [] as string[]);
    await Promise.all(ids.filter((id) => !keep.has(id)).map((id) => rm(path.join(vdir, id), { recursive: true, force: true })));
  }

  /** Names of certificates and key types that have state. */
  async listCertificates(): Promise<Array<{ name: string; keyType: string }>> {
    const out: Array<{ name: string; keyType: string }> = [];
    const root = path.join(this.stateDir, 'certs');
    for (const name of await readdir(root).catch(() => [] as string[])) {
      for (const keyType of await readdir(path.join(root, name)).catch(() => [] as string[])) out.push({ name, keyType });
    }
    return out;
  }
}

type NewVersion = Omit<StoredVersion, 'meta'> & { meta: Omit<VersionMeta, 'id'> };

function versionId(v: NewVersion): string {
  return `${v.meta.issuedAt.replace(/[:.]/g, '')}-${v.meta.serial.slice(0, 16)}`;
}

/** key.pem always 0600; meta.json last, so a directory with meta.json is complete. */
async function writeVersionFiles(d: string, id: string, v: NewVersion, publicMode: number): Promise<void> {
  await writeFileAtomic(path.join(d, 'key.pem'), v.keyPem, { mode: KEY_MODE });
  await writeFileAtomic(path.join(d, 'cert.pem'), v.leafPem, { mode: publicMode });
  await writeFileAtomic(path.join(d, 'chain.pem'), v.intermediatesPem.join(''), { mode: publicMode });
  await writeFileAtomic(path.join(d, 'meta.json'), JSON.stringify({ ...v.meta, id }, null, 2) + '\n', { mode: publicMode });
}

/**
 * A staged version's files, in `dir`: a directory just created under a
 * dot-name that nothing reads and that is renamed into place whole. Inside
 * it a file needs no temporary and rename of its own, nor the directory an
 * fsync after each file (what writeFileAtomic does for a file others read):
 * each file is created 0600 with O_EXCL, written and fsynced, and the
 * directory is fsynced once, before the caller's rename makes it visible.
 * Same guarantees, four fewer renames and directory fsyncs per certificate.
 */
async function writeFreshVersionDir(dir: string, id: string, v: NewVersion): Promise<void> {
  await assertSafeTarget(path.join(dir, 'meta.json'));
  await createFileExclusive(path.join(dir, 'key.pem'), v.keyPem, { mode: KEY_MODE });
  await createFileExclusive(path.join(dir, 'cert.pem'), v.leafPem, { mode: KEY_MODE });
  await createFileExclusive(path.join(dir, 'chain.pem'), v.intermediatesPem.join(''), { mode: KEY_MODE });
  // meta.json last: a version directory with meta.json is complete.
  await createFileExclusive(path.join(dir, 'meta.json'), JSON.stringify({ ...v.meta, id }, null, 2) + '\n', { mode: KEY_MODE });
  await syncDirectory(dir);
}

/** Make a rename in `dir` durable. Some filesystems cannot fsync a directory; the rename is atomic there anyway. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  } finally {
    await fh.close();
  }
}

function splitCerts(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((c) => (c.endsWith('\n') ? c : c + '\n')) ?? [];
}

/** Ids start with the issue time, so the last is the newest; dot-names are unfinished writes. */
function newestStaged(ids: string[]): string | undefined {
  return ids.filter((i) => !i.startsWith('.')).sort().at(-1);
}

function readJsonSync<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}
