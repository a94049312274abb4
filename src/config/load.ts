// Loading the config file (DESIGN §2): read, parse YAML, validate against the
// schema, then check what the schema cannot see (files on disk, environment,
// relations between certificates). Every problem names its YAML path and all
// of them are reported at once, so `mxcert config check` fixes a file in one
// round instead of one typo per run.
import { constants as fsc } from 'node:fs';
import { access, lstat, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { isCertbotCredentials, normalizeTsigAlgorithm, sameKeyName, secretFromCertbotCredentials } from './certbot-credentials.js';
import { certificateSchema, configSchema, type CertificateConfig, type Config, type HookCommand, type ParsedConfig } from './schema.js';
import { secretEnvNames, withholdFromHooks } from '../hooks/environment.js';
import { checkTrustedPath } from '../security/trusted-path.js';
import { asRootHint, isPermissionError, permissionDenied } from '../util/errno.js';

export { DEFAULT_CONFIG_PATH, resolveConfigPath } from './config-path.js';

type Env = NodeJS.ProcessEnv;
type PathSegment = string | number;

/** Fill `{keytype}` and `{name}` in an output path template. */
export function expandOutputPath(template: string, vars: { keytype: string; name: string }): string {
  return template.replaceAll('{keytype}', vars.keytype).replaceAll('{name}', vars.name);
}

export async function loadConfig(file: string, opts: { env?: Env } = {}): Promise<Config> {
  const env = opts.env ?? process.env;
  const source = path.resolve(file);

  const read = await readConfigFile(source);
  const fileProblems = read.problems;
  const text = read.text;

  const raw = parseYaml(text);
  if (!raw.ok) throw new ConfigError([...fileProblems, ...raw.problems]);
  if (raw.value === null || raw.value === undefined) {
    throw new ConfigError([...fileProblems, { path: '', message: `config file ${source} is empty` }]);
  }

  const parsed = configSchema.safeParse(raw.value);
  const problems: ConfigProblem[] = [...fileProblems, ...inlineSecretProblems(raw.value, read.mode)];
  if (!parsed.success) problems.push(...zodProblems(parsed.error.issues, raw.value));

  // When the whole file fails the schema, still check the parts that parse on
  // their own, so a missing secret file is reported together with a typo
  // elsewhere rather than on the next run.
  const parts: Parts = parsed.success
    ? { acme: parsed.data.acme, certificates: parsed.data.certificates.map((cert, index) => ({ index, cert })) }
    : validParts(raw.value);
  problems.push(...(await semanticProblems(parts, env)));

  if (!parsed.success || problems.length > 0) throw new ConfigError(inDocumentOrder(problems, raw.doc));
  // Whatever runs hooks in this process never hands them these secrets.
  withholdFromHooks(secretEnvNames(parsed.data));
  return { ...parsed.data, source };
}

// ---------------------------------------------------------------------------
// The file itself (docs/architecture.md, "Security model")

/**
 * Read the config through one descriptor, so the mode that decides whether
 * it may hold inline secrets is the mode of what was read. A config that
 * anyone but root can write (it, or a directory above it) is refused: its
 * hooks and output paths decide what root runs and writes. A root-owned
 * symlink to it (config management) is followed like the rest of the path.
 */
async function readConfigFile(source: string): Promise<{ text: string; mode: number; problems: ConfigProblem[] }> {
  const problems: ConfigProblem[] = [];
  const trust = await checkTrustedPath(source, { what: 'config file', kind: 'file', allowSymlinks: true });
  // Missing files and the like are reported by the read below, in its words.
  if (!trust.ok && trust.reason === 'untrusted') problems.push({ path: '', message: trust.message });
  const fail = (why: string, cause?: unknown): never => {
    throw new ConfigError([...problems, { path: '', message: `cannot read config file ${source}: ${why}` }], { cause });
  };
  const fh = await open(source, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY).catch((err: unknown) =>
    fail(isPermissionError(err) ? `permission denied${asRootHint()}` : errnoText(err), err),
  );
  try {
    const st = await fh.stat();
    if (!st.isFile()) fail(st.isDirectory() ? 'is a directory' : 'not a regular file');
    return { text: await fh.readFile('utf8'), mode: st.mode & 0o777, problems };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return fail(errnoText(err), err);
  } finally {
    await fh.close();
  }
}

/** Names of hook environment variables that look like they hold a secret. */
const SECRET_ENV_NAME_RE = /secret|passw(or)?d|token|api_?key|hmac|private/i;

/**
 * YAML paths of secrets written into the config itself: `acme.eab.hmacKey`,
 * and hook publisher environment entries whose names look like secrets
 * (`dane.publisher.env` is documented as "no secrets here"). Refused when
 * group or others may read the file: a readable secret is a leaked one.
 */
export function inlineSecretProblems(raw: unknown, mode: number): ConfigProblem[] {
  if (!(mode & 0o044)) return [];
  const modeText = (mode & 0o777).toString(8).padStart(4, '0');
  const readable = `readable by ${mode & 0o004 ? 'others' : 'group'} (mode ${modeText})`;
  const out: ConfigProblem[] = [];
  const obj = (v: unknown): Record<string, unknown> | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const root = obj(raw);
  const eab = obj(obj(root?.['acme'])?.['eab']);
  if (eab && eab['hmacKey'] !== undefined) {
    out.push({ path: 'acme.eab.hmacKey', message: `an inline secret, and the config file is ${readable}; use hmacKeyFile (mode 0600) or hmacKeyEnv, or make the config 0600` });
  }
  const certs = Array.isArray(root?.['certificates']) ? (root['certificates'] as unknown[]) : [];
  certs.forEach((c, i) => {
    const hookEnv = obj(obj(obj(obj(c)?.['dane'])?.['publisher'])?.['env']);
    for (const name of Object.keys(hookEnv ?? {})) {
      if (!SECRET_ENV_NAME_RE.test(name)) continue;
      out.push({ path: formatPath(['certificates', i, 'dane', 'publisher', 'env', name]), message: `looks like a secret, and the config file is ${readable}; pass the hook a file name instead, or make the config 0600` });
    }
  });
  return out;
}

// ---------------------------------------------------------------------------
// YAML

/**
 * How far aliases may expand (uses of an anchor × the aliases inside it). The
 * parser's default of 100 refuses a host with a few hundred certificates that
 * share one `challenge` block through an anchor, which is exactly how such a
 * config is written (and how yaml.stringify writes shared objects). The config
 * is a root-owned file, not hostile input, so the limit only has to stop a
 * runaway expansion: a billion-laughs document still fails at a few hundred
 * thousand expansions, long before it costs memory or time.
 */
const MAX_ALIAS_EXPANSION = 200_000;

function parseYaml(text: string): { ok: true; value: unknown; doc: Document } | { ok: false; problems: ConfigProblem[] } {
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

// Problems come from the schema, the file system and cross-checks; listing
// them in the order of the file makes the output easy to work through.
function inDocumentOrder(problems: ConfigProblem[], doc: Document): ConfigProblem[] {
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

function parsePath(p: string): PathSegment[] {
  const out: PathSegment[] = [];
  for (const m of p.matchAll(/\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|([^.[\]]+)/g)) {
    if (m[1] !== undefined) out.push(Number(m[1]));
    else if (m[2] !== undefined) out.push(JSON.parse(m[2]) as string);
    else if (m[3] !== undefined) out.push(m[3]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Schema issues → problems

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

function zodProblems(issues: readonly z.ZodIssue[], data: unknown): ConfigProblem[] {
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
      const known = knownKeysAt(configSchema, issue.path, data);
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

function valueAt(data: unknown, segments: readonly PathSegment[]): unknown {
  let cur = data;
  for (const seg of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PathSegment, unknown>)[seg];
  }
  return cur;
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

// ---------------------------------------------------------------------------
// Semantic checks: what the schema cannot see

interface Parts {
  acme: ParsedConfig['acme'] | undefined;
  certificates: { index: number; cert: CertificateConfig }[];
}

function validParts(raw: unknown): Parts {
  const obj = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const acme = configSchema.shape.acme.safeParse(obj['acme']);
  const certs = Array.isArray(obj['certificates']) ? obj['certificates'] : [];
  const certificates: Parts['certificates'] = [];
  certs.forEach((c, index) => {
    const r = certificateSchema.safeParse(c);
    if (r.success) certificates.push({ index, cert: r.data });
  });
  return { acme: acme.success ? acme.data : undefined, certificates };
}

const OUTPUT_KINDS = ['combined', 'key', 'cert', 'chain', 'fullchain'] as const;
const PLACEHOLDER_RE = /\{([^}]*)\}/g;
const KNOWN_PLACEHOLDERS = new Set(['keytype', 'name']);

async function semanticProblems(parts: Parts, env: Env): Promise<ConfigProblem[]> {
  const checks: Promise<ConfigProblem[]>[] = [];
  const sync: ConfigProblem[] = [];

  const acme = parts.acme;
  if (acme?.caBundle) checks.push(checkCaBundle(acme.caBundle, 'acme.caBundle'));
  if (acme?.trustAnchors) checks.push(checkCaBundle(acme.trustAnchors, 'acme.trustAnchors'));
  if (acme?.eab) {
    const given = (['hmacKey', 'hmacKeyFile', 'hmacKeyEnv'] as const).filter((k) => acme.eab![k] !== undefined);
    if (given.length === 0) sync.push({ path: 'acme.eab.hmacKey', message: 'required (or hmacKeyFile, hmacKeyEnv)' });
    if (given.length > 1) sync.push({ path: `acme.eab.${given[1]}`, message: `give only one of ${given.join(', ')}` });
    if (acme.eab.hmacKeyFile) checks.push(checkSecretFile(acme.eab.hmacKeyFile, 'acme.eab.hmacKeyFile', false));
    if (acme.eab.hmacKeyEnv) sync.push(...checkSecretEnv(acme.eab.hmacKeyEnv, 'acme.eab.hmacKeyEnv', env));
  }

  for (const { index, cert } of parts.certificates) {
    const at = `certificates[${index}]`;
    if (cert.challenge.type === 'dns-01') {
      const tsig = cert.challenge.dns.tsig;
      const base = `${at}.challenge.dns.tsig`;
      if (tsig.secretFile && tsig.secretEnv) sync.push({ path: `${base}.secretEnv`, message: 'give only one of secretFile or secretEnv' });
      if (tsig.secretFile) checks.push(checkSecretFile(tsig.secretFile, `${base}.secretFile`, true, tsig.name, tsig.algorithm));
      if (tsig.secretEnv) sync.push(...checkSecretEnv(tsig.secretEnv, `${base}.secretEnv`, env));
    } else if (cert.challenge.http.webroot) {
      checks.push(checkWebroot(cert.challenge.http.webroot, `${at}.challenge.http.webroot`));
    }
    if (cert.dane?.publisher) checks.push(checkPublisherSecrets(cert.dane.publisher, `${at}.dane.publisher`, env));
    // Read only after a renewal, so a typo here would otherwise surface as a
    // warning days later instead of now.
    if (cert.mtaSts?.caBundle) checks.push(checkCaBundle(cert.mtaSts.caBundle, `${at}.mtaSts.caBundle`));
  }

  for (const { index, cert } of parts.certificates) {
    checks.push(outputTargetProblems(index, cert), hookProblems(index, cert));
  }
  sync.push(...duplicateNames(parts.certificates), ...outputProblems(parts.certificates), ...hookEnvSecretProblems(parts));
  return [...sync, ...(await Promise.all(checks)).flat()];
}

/**
 * Each output's directory must exist and, with every directory above it, be
 * a real directory owned by root and writable by no one else; the target
 * must not be a symlink (DESIGN §3, docs/architecture.md "Security model"):
 * found at config time, not after a certificate has been ordered.
 */
async function outputTargetProblems(index: number, cert: CertificateConfig): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  for (const kind of OUTPUT_KINDS) {
    const template = cert.output[kind];
    if (template === undefined || !path.isAbsolute(template) || template.endsWith('/')) continue;
    const at = `certificates[${index}].output.${kind}`;
    for (const keytype of cert.keys) {
      const file = path.normalize(expandOutputPath(template, { keytype, name: cert.name }));
      if (seen.has(at)) break;
      const problem = await outputFileProblem(file);
      if (problem) {
        out.push({ path: at, message: problem });
        seen.add(at);
      }
    }
  }
  return out;
}

async function outputFileProblem(file: string): Promise<string | undefined> {
  const dir = path.dirname(file);
  const trust = await checkTrustedPath(dir, { what: 'output directory', kind: 'dir' });
  if (!trust.ok) return trust.reason === 'missing' && trust.detail === `${dir} does not exist` ? `directory ${dir} does not exist` : trust.message;
  let f;
  try {
    f = await lstat(file);
  } catch (err) {
    if (isPermissionError(err)) return permissionDenied('inspecting', file);
    // Not there yet is fine: the first deploy creates it.
  }
  if (f?.isSymbolicLink()) return `${file} is a symlink; mxcert replaces files atomically and does not follow links`;
  if (f && !f.isFile()) return `${file} exists and is not a regular file`;
  return undefined;
}

/**
 * Hooks must exist, be executable and be trusted (owned by root, like every
 * directory above them, and writable by no one else: a hook runs as root)
 * before anything is ordered. The DANE hook publisher's command too.
 */
async function hookProblems(index: number, cert: CertificateConfig): Promise<ConfigProblem[]> {
  const hooks: { at: string; h: HookCommand }[] = [];
  for (const which of ['deploy', 'failure'] as const) {
    for (const [i, h] of cert.hooks[which].entries()) hooks.push({ at: `certificates[${index}].hooks.${which}[${i}]`, h });
  }
  const publisher = cert.dane?.publisher;
  if (publisher?.provider === 'hook') hooks.push({ at: `certificates[${index}].dane.publisher.command`, h: publisher.command });
  const out: ConfigProblem[] = [];
  for (const { at, h } of hooks) {
    const argv0 = typeof h === 'string' ? h : h[0];
    if (!argv0 || !path.isAbsolute(argv0)) {
      // A plain string is an absPath in the schema, which reports it already.
      if (typeof h !== 'string') out.push({ path: at, message: 'the command must be an absolute path' });
      continue;
    }
    const problem = await hookFileProblem(argv0);
    if (problem) out.push({ path: at, message: problem });
  }
  return out;
}

/** A hook's env may not list a variable that a `*Env` setting names: hooks never get secrets (src/hooks/environment.ts). */
function hookEnvSecretProblems(parts: Parts): ConfigProblem[] {
  const secrets = secretEnvNames(parts);
  const out: ConfigProblem[] = [];
  for (const { index, cert } of parts.certificates) {
    const pub = cert.dane?.publisher;
    const lists: Array<[string, Record<string, string> | undefined]> = [
      [`certificates[${index}].hooks.env`, cert.hooks.env],
      [`certificates[${index}].dane.publisher.env`, pub?.provider === 'hook' ? pub.env : undefined],
    ];
    for (const [at, env] of lists) {
      for (const name of Object.keys(env ?? {})) {
        if (secrets.has(name)) out.push({ path: `${at}.${name}`, message: `${name} is named by a secretEnv/apiKeyEnv/hmacKeyEnv setting; hooks never get a secret` });
      }
    }
  }
  return out;
}

async function hookFileProblem(argv0: string): Promise<string | undefined> {
  let st;
  try {
    st = await stat(argv0);
  } catch (err) {
    // Only a hook that is not there "does not exist": one mxcert may not look at is another problem.
    if (isPermissionError(err)) return `hook: ${permissionDenied('reading', argv0)}`;
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? `hook ${argv0} does not exist` : `hook ${argv0}: ${errnoText(err)}`;
  }
  if (!st.isFile()) return `hook ${argv0} is not a regular file`;
  if (!(await access(argv0, fsc.X_OK).then(() => true, () => false))) return `hook ${argv0} is not executable`;
  const trust = await checkTrustedPath(argv0, { what: 'hook', kind: 'file', allowSymlinks: true });
  return trust.ok ? undefined : trust.message;
}

function duplicateNames(certs: Parts['certificates']): ConfigProblem[] {
  const first = new Map<string, number>();
  const out: ConfigProblem[] = [];
  for (const { index, cert } of certs) {
    const prev = first.get(cert.name);
    if (prev === undefined) first.set(cert.name, index);
    else out.push({ path: `certificates[${index}].name`, message: `duplicate name "${cert.name}" (also certificates[${prev}].name)` });
  }
  return out;
}

function outputProblems(certs: Parts['certificates']): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  // Expanded path → who writes it first.
  const owners = new Map<string, { index: number; kind: string }>();
  const reported = new Set<string>();

  for (const { index, cert } of certs) {
    for (const kind of OUTPUT_KINDS) {
      const template = cert.output[kind];
      if (template === undefined) continue;
      const at = `certificates[${index}].output.${kind}`;

      const unknown = [...template.matchAll(PLACEHOLDER_RE)].map((m) => m[1]!).filter((n) => !KNOWN_PLACEHOLDERS.has(n));
      if (unknown.length > 0) {
        out.push({ path: at, message: `unknown placeholder ${unknown.map((n) => `{${n}}`).join(', ')}; use {keytype} or {name}` });
      }
      if (template.endsWith('/')) out.push({ path: at, message: 'must name a file, not a directory' });

      const perKeytypeClash = cert.keys.length > 1 && !template.includes('{keytype}');
      if (perKeytypeClash) {
        out.push({ path: at, message: `must contain {keytype}: this certificate has ${cert.keys.length} key types (${cert.keys.join(', ')}) that would write the same file` });
      }

      for (const keytype of cert.keys) {
        const file = path.normalize(expandOutputPath(template, { keytype, name: cert.name }));
        const owner = owners.get(file);
        if (!owner) {
          owners.set(file, { index, kind });
          continue;
        }
        // Already explained by the {keytype} problem above.
        if (owner.index === index && owner.kind === kind) continue;
        if (reported.has(at)) continue;
        reported.add(at);
        const other = `certificates[${owner.index}].output.${owner.kind}`;
        out.push({ path: at, message: `conflicting output: ${file} is also written by ${other}` });
      }
    }
  }
  return out;
}

// dane.publisher's shape belongs to the publisher module; whatever secret
// references it holds still deserve the same checks as the TSIG ones.
async function checkPublisherSecrets(publisher: Record<string, unknown>, at: string, env: Env): Promise<ConfigProblem[]> {
  const checks: Promise<ConfigProblem[]>[] = [];
  const sync: ConfigProblem[] = [];
  const walk = (node: unknown, p: string) => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return;
    const obj = node as Record<string, unknown>;
    for (const [k, v] of Object.entries(obj)) {
      const kp = `${p}.${k}`;
      if (/^(secret|apiKey|hmacKey)File$/.test(k) && typeof v === 'string') {
        const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
        checks.push(checkSecretFile(v, kp, k === 'secretFile', str(obj['name']), str(obj['algorithm'])));
      } else if (/^(secret|apiKey|hmacKey)Env$/.test(k) && typeof v === 'string') {
        sync.push(...checkSecretEnv(v, kp, env));
      } else walk(v, kp);
    }
  };
  walk(publisher, at);
  return [...sync, ...(await Promise.all(checks)).flat()];
}

function checkSecretEnv(name: string, at: string, env: Env): ConfigProblem[] {
  const v = env[name];
  if (v === undefined) return [{ path: at, message: `environment variable ${name} is not set` }];
  if (v.trim() === '') return [{ path: at, message: `environment variable ${name} is empty` }];
  return [];
}

async function checkSecretFile(file: string, at: string, tsig: boolean, keyName?: string, algorithm?: string): Promise<ConfigProblem[]> {
  const r = await openSecretFile(file);
  if (!r.ok) return [{ path: at, message: r.message }];
  const secret = extractSecret(r.content, keyName);
  if (!secret.ok) return [{ path: at, message: secret.message }];
  if (tsig && !BASE64_RE.test(secret.value.replace(/\s+/g, ''))) return [{ path: at, message: 'TSIG secret is not valid base64' }];
  return tsig ? keyFileMismatch(secret, file, at, keyName, algorithm) : [];
}

/**
 * A key file that names its key (BIND block, certbot credentials) must name
 * the key and algorithm the config signs with, or the server refuses every
 * update (RFC 8945 §5.2: BADKEY). Found here instead of at the first renewal.
 */
function keyFileMismatch(secret: ExtractedSecret, file: string, at: string, keyName?: string, algorithm?: string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const sibling = (k: string) => at.replace(/\.secretFile$/, `.${k}`);
  if (keyName !== undefined && secret.keyName !== undefined && !sameKeyName(secret.keyName, keyName)) {
    out.push({ path: sibling('name'), message: `"${keyName}" is not the key in ${file}, which is for key "${secret.keyName}"; use the name the DNS server knows` });
  }
  if (algorithm !== undefined && secret.algorithm !== undefined && normalizeTsigAlgorithm(secret.algorithm) !== normalizeTsigAlgorithm(algorithm)) {
    out.push({ path: sibling('algorithm'), message: `${algorithm} differs from ${file}, which uses ${normalizeTsigAlgorithm(secret.algorithm)}${secret.algorithmNote ?? ''}` });
  }
  return out;
}

async function checkCaBundle(file: string, at: string): Promise<ConfigProblem[]> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return [{ path: at, message: 'not a regular file' }];
    const pem = await readFile(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) return [{ path: at, message: 'no PEM certificate in file' }];
    return [];
  } catch (err) {
    return [{ path: at, message: readProblem(file, err) }];
  }
}

// The webroot is opened without following a link (src/obtain/http01.ts):
// its owner, the web server's user, could otherwise point it anywhere.
async function checkWebroot(dir: string, at: string): Promise<ConfigProblem[]> {
  try {
    const st = await lstat(dir);
    if (st.isSymbolicLink()) return [{ path: at, message: `${dir} is a symlink; give the real path, mxcert does not follow links in the webroot` }];
    if (!st.isDirectory()) return [{ path: at, message: `${dir} is not a directory` }];
    return [];
  } catch (err) {
    return [{ path: at, message: `directory ${dir}: ${errnoText(err)}` }];
  }
}

// ---------------------------------------------------------------------------
// Secrets. Messages below name files and variables, never their contents.

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

// Where secretEnv and the like are looked up by default: this process's
// environment, except in the daemon's pass child, which gets those values
// over its IPC channel instead, so that neither its own environment nor
// anything it starts holds them (src/daemon/pass-child.ts).
let secretEnvSource: Env = process.env;

/** Look up `*Env` secrets in `env` from now on, instead of process.env. */
export function readSecretsFrom(env: Env): void {
  secretEnvSource = env;
}

/**
 * Read a secret from a file (refused if group or others may read it) or an
 * environment variable, trimmed. A file may hold the bare secret or a BIND
 * `key "name" { algorithm …; secret "…"; };` block as tsig-keygen writes it;
 * with several blocks, `ref.name` picks one (pass the tsig config as `ref`).
 */
export async function readSecret(
  ref: { secretFile?: string | undefined; secretEnv?: string | undefined; name?: string | undefined },
  env: Env = secretEnvSource,
): Promise<string> {
  if (ref.secretFile) {
    const r = await openSecretFile(ref.secretFile);
    if (!r.ok) throw secretError(`secret file ${ref.secretFile}: ${r.message}`);
    const s = extractSecret(r.content, ref.name);
    if (!s.ok) throw secretError(`secret file ${ref.secretFile}: ${s.message}`);
    return s.value;
  }
  if (ref.secretEnv) {
    const problems = checkSecretEnv(ref.secretEnv, '', env);
    if (problems.length > 0) throw secretError(problems[0]!.message);
    const s = extractSecret(env[ref.secretEnv]!, ref.name);
    if (!s.ok) throw secretError(`environment variable ${ref.secretEnv}: ${s.message}`);
    return s.value;
  }
  throw secretError('no secretFile or secretEnv given');
}

function secretError(message: string): ConfigError {
  return new ConfigError([{ path: '', message }]);
}

async function openSecretFile(file: string): Promise<{ ok: true; content: string } | { ok: false; message: string }> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    return { ok: false, message: readProblem(file, err) };
  }
  if (!st.isFile()) return { ok: false, message: `${file} is not a regular file` };
  const perm = st.mode & 0o777;
  const modeText = perm.toString(8).padStart(4, '0');
  // Like ssh with private keys: a secret others can read is already leaked,
  // one they can write can be swapped. Execute bits alone are harmless.
  const who =
    perm & 0o004 ? 'readable by others' : perm & 0o040 ? 'readable by group' : perm & 0o002 ? 'writable by others' : perm & 0o020 ? 'writable by group' : undefined;
  if (who) return { ok: false, message: `file is ${who} (mode ${modeText}); use 0600` };
  try {
    await access(file, fsc.R_OK);
    return { ok: true, content: await readFile(file, 'utf8') };
  } catch (err) {
    return { ok: false, message: readProblem(file, err) };
  }
}

const KEY_BLOCK_RE = /\bkey\s+(?:"([^"]*)"|([^\s{;]+))\s*\{([^}]*)\}/g;
const SECRET_STMT_RE = /\bsecret\s+"([^"]*)"\s*;/;
const ALGORITHM_STMT_RE = /\balgorithm\s+"?([^";\s]+)"?\s*;/;

/** The secret, and the key name and algorithm when the file states them. */
interface ExtractedSecret {
  ok: true;
  value: string;
  keyName?: string;
  algorithm?: string;
  /** Why `algorithm` is what it is, when the file does not say it. */
  algorithmNote?: string;
}

function extractSecret(content: string, keyName?: string): ExtractedSecret | { ok: false; message: string } {
  // certbot's dns-rfc2136 credentials INI, as certbot users already have it.
  if (isCertbotCredentials(content)) return secretFromCertbotCredentials(content);
  // BIND comments could hide a block or a stray quote; drop them first.
  const text = content.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*(#|\/\/).*$/gm, '');
  const blocks = [...text.matchAll(KEY_BLOCK_RE)].map((m) => ({ name: (m[1] ?? m[2] ?? '').replace(/\.$/, ''), body: m[3]! }));
  if (blocks.length === 0) {
    const value = content.trim();
    return value ? { ok: true, value } : { ok: false, message: 'file is empty' };
  }
  let block = blocks[0]!;
  if (blocks.length > 1) {
    const wanted = keyName?.replace(/\.$/, '');
    const match = wanted === undefined ? undefined : blocks.find((b) => b.name === wanted);
    if (!match) {
      return { ok: false, message: `${blocks.length} key blocks (${blocks.map((b) => `"${b.name}"`).join(', ')}) and none named ${wanted === undefined ? '(no name given)' : `"${wanted}"`}` };
    }
    block = match;
  }
  const m = SECRET_STMT_RE.exec(block.body);
  const value = m?.[1]?.trim();
  if (!value) return { ok: false, message: `key block "${block.name}" has no secret statement` };
  return { ok: true, value, keyName: block.name, algorithm: ALGORITHM_STMT_RE.exec(block.body)?.[1] };
}

/** Why `file` cannot be read, for a config problem. */
function readProblem(file: string, err: unknown): string {
  return isPermissionError(err) ? permissionDenied('reading', file) : `cannot read ${file}: ${errnoText(err)}`;
}

function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a parent is not a directory';
    case 'ELOOP':
      return 'too many symbolic links';
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}
