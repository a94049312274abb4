// The YAML layer of the config: text → plain data plus the parsed document
// (kept so problems can be sorted by where they sit in the file), and the
// YAML path notation every problem uses (`certificates[0].output.combined`).
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { ConfigProblem } from '../errors.js';

// The YAML path notation lives apart, so code that only names paths does not load the parser.
export { formatPath, parsePath, valueAt, type PathSegment } from './yaml-path.js';

/**
 * How far aliases may expand (uses of an anchor × the aliases inside it). The
 * parser's default of 100 refuses a host with a few hundred certificates that
 * share one `challenge` block through an anchor, which is exactly how such a
 * config is written (and how yaml.stringify writes shared objects). The config
 * is a root-owned file, not hostile input, so the limit only has to stop a
 * runaway expansion: a billion-laughs document still fails at a few hundred
 * thousand expansions, long before it costs memory or time.
 */
export const MAX_ALIAS_EXPANSION = 200_000;

export type ParsedYaml = { ok: true; value: unknown; doc: Document } | { ok: false; problems: ConfigProblem[] };

export function parseYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  // prettyErrors would append a source excerpt to each message; that excerpt
  // could contain an inline secret (acme.eab.hmacKey), so positions are
  // computed here instead.
  // merge: `<<: *defaults` is how people share a challenge or hooks block
  // between certificates (YAML 1.1 merge keys, which YAML 1.2 dropped).
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: '', message: `YAML syntax error at line ${line}, column ${col}: ${firstLine(e.message)}` };
      }),
    };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSION }), doc };
  } catch (err) {
    // toJS throws on alias bombs (excessive alias expansion) and the like.
    return { ok: false, problems: [{ path: '', message: `YAML error: ${err instanceof Error ? firstLine(err.message) : String(err)}` }] };
  }
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0]!.trim();
}
