// The source text of Postfix's tls_server_sni_maps table (postconf(5)), as
// mxcert writes it (docs/architecture.md, "SNI tables"). Pure.
//
// Each line maps a lookup key to the combined files (key, then chain: the
// format of smtpd_tls_chain_files) of every key type of one certificate.
// Postfix looks up the name the client sent, then each parent domain with a
// leading dot (`mail.example.com`, `.example.com`, `.com`); so a wildcard
// `*.example.com` is written as `.example.com`. That key also answers deeper
// names (`a.b.example.com`), which the wildcard does not cover: such a client
// gets the wildcard certificate rather than the default one, and a more
// specific key (an exact name, or `.b.example.com`) still wins.
import { DeployError } from '../errors.js';
import { canonicalName, compareDnsNames, firstClaims, type SniNote, type SniSource } from './sni-names.js';

export interface PostfixSniEntry {
  /** The lookup key: a name, or `.parent` for a wildcard. */
  key: string;
  cert: string;
  /** Combined files, one per key type, in the config's order. */
  files: string[];
}

/** The lookup key Postfix tries for `domain` (a wildcard becomes its parent with a leading dot). */
export function postfixSniKey(domain: string): string {
  const name = canonicalName(domain);
  return name.startsWith('*.') ? name.slice(1) : name;
}

/**
 * Why Postfix could not read `path` back from a map value, or undefined.
 * postmap splits a value into file names at whitespace and commas.
 */
export function postfixMapPathProblem(path: string): string | undefined {
  if (/[\s,]/.test(path)) return `${JSON.stringify(path)} contains whitespace or a comma, which separate file names in a Postfix table value; use a path without them`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) return `${JSON.stringify(path)} contains a control character`;
  return undefined;
}

/**
 * The entries of the map: every name of every server certificate with a
 * combined file that exists (`present`), each key type's file on one line.
 */
export function postfixSniEntries(sources: readonly SniSource[], present: (path: string) => boolean): { entries: PostfixSniEntry[]; notes: SniNote[] } {
  const notes: SniNote[] = [];
  const filesOf = (s: SniSource): string[] | undefined => {
    const configured = s.files.flatMap((f) => (f.combined ? [f.combined] : []));
    if (configured.length === 0) return undefined;
    const files = configured.filter(present);
    if (files.length === 0) {
      notes.push({ level: 'info', text: `postfix: certificate ${s.cert} has no combined file yet (${configured.join(', ')}); its names are left out until it is deployed` });
      return undefined;
    }
    return files;
  };
  const { claims, notes: clashes } = firstClaims(sources, 'postfix', postfixSniKey, filesOf);
  const entries = [...claims].map(([key, c]) => ({ key, cert: c.cert, files: c.value }));
  entries.sort((a, b) => compareDnsNames(a.key, b.key));
  return { entries, notes: [...notes, ...clashes] };
}

const HEADER = [
  '# Postfix tls_server_sni_maps, written by mxcert; do not edit (mxcert replaces it).',
  '# Built with "postmap -F": the database holds the contents of these files, private',
  '# keys included, so mxcert rebuilds it after every deploy ("mxcert sni write").',
];

/** The map's source text; throws DeployError for a path postmap would misread. */
export function renderPostfixSniMap(entries: readonly PostfixSniEntry[]): string {
  const lines = [...HEADER];
  for (const e of entries) {
    for (const f of e.files) {
      const problem = postfixMapPathProblem(f);
      if (problem) throw new DeployError(`SNI map entry for ${e.key}: ${problem}`);
    }
    lines.push(`${e.key} ${e.files.join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}
