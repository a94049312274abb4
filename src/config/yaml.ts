// The YAML layer of the config: text → plain data plus the parsed document
// (kept so problems can be sorted by where they sit in the file), and the
// YAML path notation every problem uses (`certificates[0].output.combined`).
import { LineCounter, parseDocument, type Document } from 'yaml';
import type { ConfigProblem } from '../errors.js';

export type PathSegment = string | number;

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

/** `certificates[0].challenge.dns.tsig.secretFile` */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** The inverse of formatPath. */
export function parsePath(p: string): PathSegment[] {
  const out: PathSegment[] = [];
  for (const m of p.matchAll(/\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|([^.[\]]+)/g)) {
    if (m[1] !== undefined) out.push(Number(m[1]));
    else if (m[2] !== undefined) out.push(JSON.parse(m[2]) as string);
    else if (m[3] !== undefined) out.push(m[3]);
  }
  return out;
}

/** The value at `segments` in plain data, or undefined. */
export function valueAt(data: unknown, segments: readonly PathSegment[]): unknown {
  let cur = data;
  for (const seg of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PathSegment, unknown>)[seg];
  }
  return cur;
}
