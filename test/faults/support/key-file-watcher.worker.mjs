// Worker thread for key-file-watcher.ts: polls one output directory as fast
// as it can (synchronous fs calls in a tight loop, no event-loop turns) and
// records, for every file that holds a private key — the combined file, any
// temporary file next to it, anything else whose bytes contain a PRIVATE KEY
// block — the mode it had when read, and whether each version of the combined
// file was whole (key + leaf + issuer, key matching leaf). Plain JavaScript so
// the worker needs no TypeScript loader.
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, constants } from 'node:fs';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

const { dir, combinedName, stopFlag } = workerData;
const stop = new Int32Array(stopFlag);
const combinedPath = path.join(dir, combinedName);
const tmpPrefix = `.${combinedName}.`;

const PEM_RE = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g;

function combinedProblem(text) {
  const blocks = [...text.matchAll(PEM_RE)].map((m) => ({ label: m[1], pem: m[0] }));
  if (blocks.length < 3) return `${blocks.length} PEM blocks (want key, leaf, intermediate)`;
  if (text.replace(PEM_RE, '').trim() !== '') return 'text outside PEM blocks';
  if (!/PRIVATE KEY/.test(blocks[0].label)) return `first block is ${blocks[0].label}`;
  if (!blocks.slice(1).every((b) => b.label === 'CERTIFICATE')) return 'non-certificate after the key';
  try {
    const key = createPrivateKey(blocks[0].pem);
    const leaf = new X509Certificate(blocks[1].pem);
    for (const b of blocks.slice(2)) new X509Certificate(b.pem);
    const ours = createPublicKey(key).export({ type: 'spki', format: 'der' });
    if (!ours.equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))) return 'the key does not match the leaf';
  } catch (err) {
    return `unparseable: ${err.message}`;
  }
  return undefined;
}

const stats = {
  reads: 0,
  combinedReads: 0,
  missing: 0,
  tempSightings: 0,
  /** "kind mode" → count, kind being combined, temp or other:NAME. */
  modes: {},
  /** Every (kind, mode, name) seen with group/other bits set. */
  loose: [],
  /** Distinct whole combined versions (by leaf serial). */
  versions: 0,
  problems: [],
  startedAt: Date.now(),
};
const seenVersions = new Set();
let lastText;

function record(kind, name, mode) {
  const perm = mode & 0o7777;
  const k = `${kind} ${perm.toString(8).padStart(4, '0')}`;
  stats.modes[k] = (stats.modes[k] ?? 0) + 1;
  if (perm & 0o077 && stats.loose.length < 50) stats.loose.push({ kind, name, mode: perm.toString(8) });
}

/** Open, fstat, read: the mode belongs to exactly the bytes read. */
function readWithMode(file) {
  let fd;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    return err.code === 'ENOENT' ? undefined : { error: err.code ?? String(err) };
  }
  try {
    const st = fstatSync(fd);
    const buf = readFileSync(fd);
    return { mode: st.mode, text: buf.toString('utf8') };
  } finally {
    closeSync(fd);
  }
}

while (Atomics.load(stop, 0) === 0) {
  stats.reads++;
  const c = readWithMode(combinedPath);
  if (c === undefined) stats.missing++;
  else if (c.error) stats.problems.length < 20 && stats.problems.push(`combined: ${c.error}`);
  else {
    stats.combinedReads++;
    record('combined', combinedName, c.mode);
    if (c.text !== lastText) {
      lastText = c.text;
      const p = combinedProblem(c.text);
      if (p) {
        if (stats.problems.length < 20) stats.problems.push(`combined: ${p} (${c.text.length} bytes)`);
      } else {
        const leaf = new X509Certificate(c.text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)[0]);
        if (!seenVersions.has(leaf.serialNumber)) {
          seenVersions.add(leaf.serialNumber);
          stats.versions++;
        }
      }
    }
  }
  let names = [];
  try {
    names = readdirSync(dir);
  } catch {
    names = [];
  }
  for (const name of names) {
    if (name === combinedName) continue;
    const f = readWithMode(path.join(dir, name));
    if (!f || f.error) continue;
    if (name.startsWith(tmpPrefix)) {
      stats.tempSightings++;
      record('temp', name, f.mode);
    } else if (f.text.includes('PRIVATE KEY')) {
      record(`other:${name}`, name, f.mode);
    }
  }
}
parentPort.postMessage(stats);
