// Schema issues → config problems: one problem per mistake, at the YAML path
// of the line to fix, in words an operator can act on (`unknown key "outptu";
// did you mean "output"?`), never echoing a secret; and every problem sorted
// into the order of the file.
import { isNode, type Document } from 'yaml';
import { z } from 'zod';
import type { ConfigProblem } from '../errors.js';
import { formatPath, parsePath, valueAt, type PathSegment } from './yaml.js';

// Problems come from the schema, the file system and cross-checks; listing
// them in the order of the file makes the output easy to work through.
export function inDocumentOrder(problems: ConfigProblem[], doc: Document): ConfigProblem[] {
  const offset = (p: string): number => {
    const segs = parsePath(p);
    for (let k = segs.length; k > 0; k--) {
      const node = doc.getIn(segs.slice(0, k), true);
      if (isNode(node) && node.range) return node.range[0];
    }
    return -1;
  };
  return problems
    .map((p, i) => ({ p, i, at: offset(p.path) }))
    .sort((a, b) => a.at - b.at || a.i - b.i)
    .map((x) => x.p);
}

// Echoing a bad value helps ("got rsa-1024"), but a secret pasted into the
// wrong field must not end up in logs. Values under secret-sounding keys are
// never shown; elsewhere only short ones are (base64 HMAC keys and API keys
// are longer than any enum value or duration).
const SECRET_KEY_RE = /secret|hmackey|password|apikey|token/i;
const MAX_SHOWN = 20;

function showable(segments: readonly PathSegment[], value: unknown): boolean {
  const last = segments[segments.length - 1];
  if (typeof last === 'string' && SECRET_KEY_RE.test(last)) return false;
  return typeof value !== 'string' || value.length <= MAX_SHOWN;
}

/** `, got "x"` when the value may be shown, else nothing. */
function got(segments: readonly PathSegment[], value: unknown): string {
  return showable(segments, value) ? `, got ${JSON.stringify(value)}` : '';
}

/** The problems of a failed safeParse of `data` against `schema`. */
export function zodProblems(issues: readonly z.ZodIssue[], data: unknown, schema: z.ZodTypeAny): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  const push = (p: ConfigProblem) => {
    const k = `${p.path}\0${p.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(p);
    }
  };
  for (const issue of issues) {
    if (issue.code === z.ZodIssueCode.unrecognized_keys) {
      // One problem per key, pointing at the key itself: that is the line to fix.
      const known = knownKeysAt(schema, issue.path, data);
      for (const key of issue.keys) {
        const hint = suggest(key, known);
        push({ path: formatPath([...issue.path, key]), message: `unknown key "${key}"${hint ? `; did you mean "${hint}"?` : ''}` });
      }
      continue;
    }
    let message = issueMessage(issue, data);
    // Messages written in the schema (durations) quote the value themselves.
    const value = valueAt(data, issue.path);
    if (typeof value === 'string' && value && !showable(issue.path, value)) {
      message = message.replaceAll(JSON.stringify(value), '(value not shown)').replaceAll(value, '(value not shown)');
    }
    push({ path: formatPath(issue.path), message });
  }
  return out;
}

const TYPE_NAMES: Record<string, string> = { object: 'mapping', array: 'list' };
const typeName = (t: string) => TYPE_NAMES[t] ?? t;

function issueMessage(issue: z.ZodIssue, data: unknown): string {
  const last = issue.path[issue.path.length - 1];
  switch (issue.code) {
    case z.ZodIssueCode.invalid_type: {
      if (issue.received === 'undefined') return 'required';
      let msg = `expected ${typeName(issue.expected)}, got ${typeName(issue.received)}`;
      // YAML 1.2 reads an unquoted 0600 as the decimal number 600.
      if (issue.received === 'number' && (last === 'mode' || last === 'publicMode')) msg += '; quote octal modes, e.g. "0600"';
      return msg;
    }
    case z.ZodIssueCode.invalid_union_discriminator: {
      const allowed = issue.options.map((o) => JSON.stringify(o)).join(', ');
      const value = valueAt(data, issue.path);
      return value === undefined ? `required; one of ${allowed}` : `must be one of ${allowed}${got(issue.path, value)}`;
    }
    case z.ZodIssueCode.invalid_enum_value: {
      const allowed = issue.options.map((o) => JSON.stringify(o)).join(', ');
      return `must be one of ${allowed}${got(issue.path, issue.received)}`;
    }
    case z.ZodIssueCode.invalid_literal:
      return `must be ${JSON.stringify(issue.expected)}${got(issue.path, issue.received)}`;
    case z.ZodIssueCode.invalid_union:
      return unionMessage(issue, data);
    case z.ZodIssueCode.too_small:
      if (issue.type === 'array') return issue.minimum === 1 ? 'must not be empty' : `must have at least ${issue.minimum} entries`;
      if (issue.type === 'string') return issue.minimum === 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`;
      return `must be at least ${issue.minimum}`;
    case z.ZodIssueCode.too_big:
      if (issue.type === 'array') return `must have at most ${issue.maximum} entries`;
      if (issue.type === 'string') return `must be at most ${issue.maximum} characters`;
      return `must be at most ${issue.maximum}`;
    case z.ZodIssueCode.invalid_string:
      if (issue.validation === 'url') return 'must be a URL';
      if (issue.validation === 'email') return 'must be an email address';
      // Regexes in the schema carry their own explanation.
      return issue.message === 'Invalid' ? 'invalid format' : issue.message;
    case z.ZodIssueCode.not_multiple_of:
      return `must be a multiple of ${String(issue.multipleOf)}`;
    default:
      return issue.message;
  }
}

// A union fails with one issue list per branch. If every branch failed on
// the type of the value itself, say which types would do; otherwise the
// branch that got past the type check explains the real problem.
function unionMessage(issue: z.ZodInvalidUnionIssue, data: unknown): string {
  const here = formatPath(issue.path);
  const branches = issue.unionErrors.map((e) => e.issues);
  const typeOnly = (list: z.ZodIssue[]) =>
    list.length === 1 && list[0]!.code === z.ZodIssueCode.invalid_type && formatPath(list[0]!.path) === here;
  const deeper = branches.find((b) => b.length > 0 && !typeOnly(b));
  if (deeper) {
    const first = deeper[0]!;
    const msg = first.code === z.ZodIssueCode.unrecognized_keys ? `unknown key(s) ${first.keys.map((k) => `"${k}"`).join(', ')}` : issueMessage(first, data);
    const at = formatPath(first.path);
    return at === here ? msg : `${at}: ${msg}`;
  }
  const expected = [...new Set(branches.flatMap((b) => (b[0]?.code === z.ZodIssueCode.invalid_type ? [typeName(b[0].expected)] : [])))];
  const first = branches[0]?.[0];
  if (first?.code === z.ZodIssueCode.invalid_type) {
    if (first.received === 'undefined') return 'required';
    return `expected ${expected.join(' or ')}, got ${typeName(first.received)}`;
  }
  return 'invalid value';
}

/** The keys the schema allows at `segments`, following the data through discriminated unions. */
function knownKeysAt(schema: z.ZodTypeAny, segments: readonly PathSegment[], data: unknown): string[] {
  let cur: z.ZodTypeAny | undefined = schema;
  let value = data;
  for (let i = 0; ; i++) {
    cur = unwrap(cur, value);
    if (!cur) return [];
    if (i === segments.length) break;
    const seg = segments[i]!;
    value = (value as Record<PathSegment, unknown> | undefined)?.[seg];
    if (cur instanceof z.ZodObject) cur = (cur.shape as Record<string, z.ZodTypeAny>)[String(seg)];
    else if (cur instanceof z.ZodArray) cur = cur.element as z.ZodTypeAny;
    else return [];
  }
  return cur instanceof z.ZodObject ? Object.keys(cur.shape as object) : [];
}

function unwrap(schema: z.ZodTypeAny | undefined, value: unknown): z.ZodTypeAny | undefined {
  let s = schema;
  for (;;) {
    if (s instanceof z.ZodEffects) s = s.innerType();
    else if (s instanceof z.ZodDefault) s = s.removeDefault();
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap();
    else if (s instanceof z.ZodDiscriminatedUnion) {
      const tag = (value as Record<string, unknown> | undefined)?.[s.discriminator];
      s = s.optionsMap.get(tag as z.Primitive);
    } else return s;
  }
}

function suggest(key: string, known: readonly string[]): string | undefined {
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (!best || d < best.d) best = { k, d };
  }
  if (!best) return undefined;
  const limit = key.length <= 4 ? 1 : 2;
  return best.d <= limit ? best.k : undefined;
}

// Optimal string alignment distance: Levenshtein plus swapping two
// neighbours as one edit, the commonest typo (outptu → output).
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
