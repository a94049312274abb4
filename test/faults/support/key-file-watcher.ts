// Watches an output directory from a worker thread while the test kills
// mxcert at random instants (see key-file-watcher.worker.mjs for what it
// records). The test's own event loop stays free to spawn and kill.
import { Worker } from 'node:worker_threads';
import path from 'node:path';

export interface WatchStats {
  reads: number;
  combinedReads: number;
  /** Reads that found no combined file at all. */
  missing: number;
  /** Reads of a temporary file next to the combined file. */
  tempSightings: number;
  /** "combined 0600" / "temp 0600" / "other:NAME 0600" → how often read with that mode. */
  modes: Record<string, number>;
  /** Key-holding files seen with any group/other permission bit. */
  loose: Array<{ kind: string; name: string; mode: string }>;
  /** Distinct whole certificates seen in the combined file. */
  versions: number;
  /** Reads of the combined file that were not a whole, matching key + chain. */
  problems: string[];
  startedAt: number;
}

export interface KeyFileWatcher {
  stop(): Promise<WatchStats>;
}

export function watchKeyFiles(combinedPath: string): KeyFileWatcher {
  const stopFlag = new SharedArrayBuffer(4);
  const worker = new Worker(new URL('./key-file-watcher.worker.mjs', import.meta.url), {
    workerData: { dir: path.dirname(combinedPath), combinedName: path.basename(combinedPath), stopFlag },
    // The worker is plain JavaScript: no TypeScript loader needed there.
    execArgv: [],
  });
  const result = new Promise<WatchStats>((resolve, reject) => {
    worker.once('message', (m: WatchStats) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`watcher exited (${code}) without a report`)));
  });
  return {
    async stop() {
      Atomics.store(new Int32Array(stopFlag), 0, 1);
      const stats = await result;
      await worker.terminate();
      return stats;
    },
  };
}
