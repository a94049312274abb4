// Dovecot's `local_name` blocks for SNI (Dovecot 2.3), as mxcert writes them
// into an include file (docs/architecture.md, "SNI tables"). Pure.
//
// Which files: a key type with both a `key` and a `fullchain` output uses
// them (ssl_key, ssl_cert), as Dovecot setups usually do; otherwise the
// combined file serves as both, since Dovecot's PEM reading takes the
// certificates from it for ssl_cert and the key for ssl_key. A second key
// type becomes ssl_alt_cert / ssl_alt_key (Dovecot serves ECDSA and RSA side
// by side); Dovecot has no third slot.
//
// Quoting: Dovecot 2.3 reads `ssl_cert = </path` verbatim to the end of the
// line, with no quoting: a '#' starts a comment wherever it stands, and
// whitespace at the end is dropped. Such paths are refused. Names are quoted
// (`local_name "mail.example.com"`), which Dovecot accepts for any name.
import { DeployError } from '../errors.js';
import { canonicalName, compareDnsNames, firstClaims, type SniKeyFiles, type SniNote, type SniSource } from './sni-names.js';

export interface DovecotPair {
  cert: string;
  key: string;
}

export interface DovecotSniEntry {
  /** As Dovecot matches it: a name, or a wildcard `*.example.com` (Dovecot matches one label). */
  name: string;
  cert: string;
  main: DovecotPair;
  alt?: DovecotPair;
}

/** Why Dovecot could not read `path` back from `ssl_cert = <path`, or undefined. */
export function dovecotPathProblem(path: string): string | undefined {
  if (path.includes('#')) return `${JSON.stringify(path)} contains '#', which Dovecot's config parser takes for the start of a comment; use a path without it`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) return `${JSON.stringify(path)} contains a control character`;
  if (/\s$/.test(path)) return `${JSON.stringify(path)} ends with whitespace, which Dovecot drops`;
  return undefined;
}

/** The files Dovecot is given for one key type, if those files exist. */
export function dovecotPair(f: SniKeyFiles, present: (path: string) => boolean): DovecotPair | undefined {
  if (f.key && f.fullchain && present(f.key) && present(f.fullchain)) return { cert: f.fullchain, key: f.key };
  if (f.combined && present(f.combined)) return { cert: f.combined, key: f.combined };
  return undefined;
}

/** The files Dovecot could be given for one key type, whether or not they exist yet (for the config check). */
export function dovecotPaths(f: SniKeyFiles): string[] {
  return [...(f.key && f.fullchain ? [f.key, f.fullchain] : []), ...(f.combined ? [f.combined] : [])];
}

export function dovecotSniEntries(sources: readonly SniSource[], present: (path: string) => boolean): { entries: DovecotSniEntry[]; notes: SniNote[] } {
  const notes: SniNote[] = [];
  const pairsOf = (s: SniSource): { main: DovecotPair; alt?: DovecotPair } | undefined => {
    const usable = s.files.filter((f) => dovecotPaths(f).length > 0);
    if (usable.length === 0) return undefined;
    const pairs = usable.flatMap((f) => {
      const p = dovecotPair(f, present);
      return p ? [{ keyType: f.keyType, ...p }] : [];
    });
    if (pairs.length === 0) {
      notes.push({ level: 'info', text: `dovecot: certificate ${s.cert} has no deployed files yet; its names are left out until it is deployed` });
      return undefined;
    }
    if (pairs.length > 2) {
      notes.push({ level: 'warn', text: `dovecot: certificate ${s.cert}: Dovecot serves two key types per name (ssl_cert, ssl_alt_cert); ${pairs.slice(2).map((p) => p.keyType).join(', ')} left out` });
    }
    const [main, alt] = pairs;
    return { main: { cert: main!.cert, key: main!.key }, ...(alt ? { alt: { cert: alt.cert, key: alt.key } } : {}) };
  };
  const { claims, notes: clashes } = firstClaims(sources, 'dovecot', canonicalName, pairsOf);
  const entries = [...claims].map(([name, c]) => ({ name, cert: c.cert, ...c.value }));
  entries.sort((a, b) => compareDnsNames(a.name, b.name));
  return { entries, notes: [...notes, ...clashes] };
}

const HEADER = [
  '# Dovecot SNI: one local_name block per name, written by mxcert; do not edit',
  '# (mxcert replaces it). Dovecot reads the files when it (re)loads its',
  '# configuration: reload it after mxcert deploys (hooks/dovecot-reload).',
];

function setting(name: string, path: string, forName: string): string {
  const problem = dovecotPathProblem(path);
  if (problem) throw new DeployError(`Dovecot SNI entry for ${forName}: ${problem}`);
  return `  ${name} = <${path}`;
}

/** The include file's text; throws DeployError for a path Dovecot would misread. */
export function renderDovecotSniConf(entries: readonly DovecotSniEntry[]): string {
  const lines = [...HEADER];
  for (const e of entries) {
    // Names come from the config's domain syntax (letters, digits, '-', '.', a leading '*.'),
    // so the quotes need no escaping; refuse anything else rather than write it.
    if (!/^(\*\.)?[a-z0-9.-]+$/.test(e.name)) throw new DeployError(`Dovecot SNI entry: ${JSON.stringify(e.name)} is not a DNS name`);
    lines.push('', `local_name "${e.name}" {`, setting('ssl_cert', e.main.cert, e.name), setting('ssl_key', e.main.key, e.name));
    if (e.alt) lines.push(setting('ssl_alt_cert', e.alt.cert, e.name), setting('ssl_alt_key', e.alt.key, e.name));
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}
