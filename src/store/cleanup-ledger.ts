// Challenge responses that may still be out there: stateDir/pending-cleanups.json.
//
// A dns-01 TXT record is entered here as soon as the server has accepted the
// UPDATE that added it, before mxcert waits for it to propagate, and leaves
// once it is removed (a successful delete, or every authoritative server
// confirming it absent). So a run that dies or fails between the two leaves
// an entry, and a later pass removes the record; a record that was never
// added (its name outside the zone, an update the server refused) never gets
// an entry, so there is nothing that could warn for ever. The same response
// (challenge config, owner, value) is entered once however often it is
// presented (a CA may hand back a pending authorization with the same token).
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../deploy/atomic-write.js';
import type { ChallengeInput, CleanupJournal } from '../obtain/solver.js';

export const PENDING_CLEANUPS_FILE = 'pending-cleanups.json';

export interface PendingCleanup {
  /** Which challenge config added it (where the record was put, not how it is checked). */
  key: string;
  type: 'dns-01' | 'http-01';
  /** What is out there: `_acme-challenge.NAME.` (dns-01) or `NAME/.well-known/acme-challenge/TOKEN` (http-01). */
  owner: string;
  challenge: ChallengeInput;
  /** When it was added. */
  since: string;
  /** Failed removals so far, and the last one's error. */
  attempts: number;
  lastError?: string;
}

interface LedgerFile {
  version: 2;
  entries: PendingCleanup[];
}

function sameResponse(a: PendingCleanup, b: { key: string; owner: string; challenge: ChallengeInput }): boolean {
  return a.key === b.key && a.owner.toLowerCase() === b.owner.toLowerCase() && a.challenge.value === b.challenge.value;
}

/** The owner a legacy entry (before owners were recorded) stands for. */
function legacyOwner(key: string, ch: ChallengeInput): { type: 'dns-01' | 'http-01'; owner: string } {
  const id = ch.identifier.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '');
  const type = (JSON.parse(key) as { type?: string }).type === 'http-01' ? 'http-01' : 'dns-01';
  return { type, owner: type === 'dns-01' ? `_acme-challenge.${id}.` : `${id}/.well-known/acme-challenge/${ch.token}` };
}

/** Read the ledger without any side effect (status). Unreadable or absent: empty. */
export async function readPendingCleanups(stateDir: string): Promise<PendingCleanup[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path.join(stateDir, PENDING_CLEANUPS_FILE), 'utf8'));
  } catch {
    return [];
  }
  if (raw && typeof raw === 'object' && (raw as LedgerFile).version === 2 && Array.isArray((raw as LedgerFile).entries)) {
    return (raw as LedgerFile).entries;
  }
  // The earlier layout: { [key]: ChallengeInput[] }, no owners, duplicates possible.
  const out: PendingCleanup[] = [];
  for (const [key, list] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const ch of list as ChallengeInput[]) {
      try {
        const entry = { key, ...legacyOwner(key, ch), challenge: ch, since: new Date(0).toISOString(), attempts: 0 };
        if (!out.some((e) => sameResponse(e, entry))) out.push(entry);
      } catch {
        // Not an entry we can act on.
      }
    }
  }
  return out;
}

export class CleanupLedger {
  private readonly file: string;
  /** Changes are applied one at a time: units run concurrently and share the file. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly stateDir: string,
    private readonly now: () => Date,
  ) {
    this.file = path.join(stateDir, PENDING_CLEANUPS_FILE);
  }

  read(): Promise<PendingCleanup[]> {
    return readPendingCleanups(this.stateDir);
  }

  private change(f: (entries: PendingCleanup[]) => PendingCleanup[]): Promise<void> {
    const run = this.queue.then(async () => {
      const before = await this.read();
      const after = f(before.map((e) => ({ ...e })));
      if (JSON.stringify(after) === JSON.stringify(before)) return;
      if (after.length === 0) await rm(this.file, { force: true });
      else await writeFileAtomic(this.file, JSON.stringify({ version: 2, entries: after } satisfies LedgerFile, null, 2) + '\n', { mode: 0o600 });
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The journal one challenge config's solver writes to. */
  journal(key: string, type: 'dns-01' | 'http-01'): CleanupJournal {
    return {
      added: (challenge, owner) =>
        this.change((entries) =>
          entries.some((e) => sameResponse(e, { key, owner, challenge }))
            ? entries
            : [...entries, { key, type, owner, challenge, since: this.now().toISOString(), attempts: 0 }],
        ),
      removed: (challenge) =>
        this.change((entries) =>
          entries.filter((e) => !(e.key === key && e.challenge.value === challenge.value && e.challenge.identifier.toLowerCase() === challenge.identifier.toLowerCase())),
        ),
    };
  }

  /**
   * Try once more to remove every entry whose challenge config is still
   * configured (`cleanupFor`); an entry leaves on success. Entries of a
   * config that is gone stay for the operator (status lists them).
   */
  async retry(
    cleanupFor: (key: string) => ((ch: ChallengeInput) => Promise<void>) | undefined,
    log: { info(o: object, m: string): void; warn(o: object, m: string): void },
  ): Promise<void> {
    for (const e of await this.read()) {
      const cleanup = cleanupFor(e.key);
      if (!cleanup) continue;
      try {
        await cleanup(e.challenge);
        await this.journal(e.key, e.type).removed(e.challenge);
        log.info({ owner: e.owner }, 'removed a challenge response left by an earlier run');
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        await this.change((entries) => entries.map((x) => (sameResponse(x, e) ? { ...x, attempts: x.attempts + 1, lastError: message } : x)));
        log.warn({ owner: e.owner, since: e.since, err: message }, 'a challenge response from an earlier run still cannot be removed');
      }
    }
  }
}
