// Docs as tests: YAML and JSON examples. Where in the config a fragment
// belongs (read from the generated JSON Schema, config/mxcert.schema.json,
// so a key added to src/config/schema.ts is known here without a change),
// how it is spliced into a whole config taken from config/*.yaml, which of
// its values are file paths and what kind of file each one must be, and how
// those paths are moved into a temporary root. Pure: the integration test
// (test/integration/readme-examples.test.ts) creates the files.

export type Seg = string | number;
type Json = Record<string, unknown>;
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema | JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
  definitions?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
}

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Every object position of a schema, as a slot path ('' for the root,
 * 'certificates[]', 'certificates[].dane.publisher', …), with the keys an
 * object there may have (the union over anyOf/oneOf alternatives).
 */
export function schemaSlots(schema: JsonSchema): Map<string, Set<string>> {
  const slots = new Map<string, Set<string>>();
  const seen = new Set<JsonSchema>();
  const walk = (node: JsonSchema | undefined, at: string) => {
    if (!node || seen.has(node)) return;
    seen.add(node);
    if (node.$ref) walk(resolveRef(schema, node.$ref), at);
    for (const alt of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])]) walk(alt, at);
    if (node.properties) {
      const keys = slots.get(at) ?? new Set<string>();
      for (const [k, child] of Object.entries(node.properties)) {
        keys.add(k);
        walk(child, at === '' ? k : `${at}.${k}`);
      }
      slots.set(at, keys);
    }
    if (node.items && !Array.isArray(node.items)) walk(node.items, `${at}[]`);
    seen.delete(node);
  };
  walk(schema, '');
  return slots;
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema | undefined {
  const m = /^#\/definitions\/(.+)$/.exec(ref);
  return m ? root.definitions?.[m[1]!] : undefined;
}

/** Depth of a slot path: '' is 0, 'certificates[]' is 1, 'certificates[].dane' is 2. */
const depth = (slot: string) => (slot === '' ? 0 : slot.split('.').length);

/**
 * How far the keys at a slot are indented in a config written the usual
 * way (two spaces per level, list items as "- "): 'acme' 2,
 * 'certificates[]' 4, 'certificates[].dane' 6.
 */
export function slotIndent(slot: string): number {
  if (slot === '') return 0;
  return slot.split('.').reduce((n, seg) => n + 2 + 2 * (seg.match(/\[\]/g)?.length ?? 0), 0);
}

/**
 * The slot a block's top-level keys belong to. A block that starts in
 * column 0 is a config from its top, so its keys must be top-level keys (a
 * top-level `hooks:` is an error, not a certificate's hooks). An indented
 * block is a fragment shown where it sits in a config: the position that
 * allows all its keys at that indentation, else the shallowest one.
 * Undefined when no position takes them all, e.g. a misspelt key.
 */
export function findSlot(slots: Map<string, Set<string>>, keys: string[], indent = 0): string | undefined {
  const fits = [...slots].filter(([, allowed]) => keys.every((k) => allowed.has(k))).map(([slot]) => slot);
  if (indent === 0) return fits.includes('') ? '' : undefined;
  const inner = fits.filter((s) => s !== '');
  return inner.find((s) => slotIndent(s) === indent) ?? inner.sort((a, b) => depth(a) - depth(b))[0];
}

/** The indentation of a YAML block's first key (0 for a whole config). */
export function blockIndent(text: string): number {
  const first = text.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  return first ? first.length - first.trimStart().length : 0;
}

/** The object at a slot path in a config, taking the first element of each array. */
export function objectAt(config: unknown, slot: string): Json | undefined {
  if (slot === '') return isObj(config) ? config : undefined;
  let cur: unknown = config;
  for (const part of slot.split('.')) {
    const m = /^([^[]+)((?:\[\])*)$/.exec(part)!;
    cur = isObj(cur) ? cur[m[1]!] : undefined;
    for (let n = m[2]!.length / 2; n > 0; n--) cur = Array.isArray(cur) ? cur[0] : undefined;
  }
  return isObj(cur) ? cur : undefined;
}

/**
 * A whole config made from an example and a base. At the root, a mapping
 * (`acme: { profile: shortlived }`) is laid over the base's, other keys
 * replace the base's, and each certificate is laid over the base's first
 * certificate (so one shown with only `name`, `domains` and `mtaSts` gets
 * the base's challenge and output; a challenge it shows replaces the base's
 * whole). Deeper, the fragment's keys replace those of the object at its
 * slot. The base is the first of `bases` that has an object at that slot.
 */
export function splice(fragment: Json, slot: string, bases: Array<{ name: string; config: Json }>): { config: Json; base: string } | undefined {
  for (const b of bases) {
    const config = structuredClone(b.config);
    if (slot === '') {
      const { certificates, ...rest } = fragment;
      for (const [k, v] of Object.entries(structuredClone(rest))) config[k] = isObj(v) && isObj(config[k]) ? { ...config[k], ...v } : v;
      if (Array.isArray(certificates)) {
        const baseCert = (config.certificates as Json[] | undefined)?.[0] ?? {};
        config.certificates = certificates.map((c) => (isObj(c) ? { ...structuredClone(baseCert), ...c } : c));
      }
      return { config, base: b.name };
    }
    const target = objectAt(config, slot);
    if (target) {
      Object.assign(target, structuredClone(fragment));
      return { config, base: b.name };
    }
  }
  return undefined;
}

export type FixtureKind =
  | 'hook' // an executable, root-owned 0755
  | 'secret' // a secret file, root-owned 0600
  | 'pem' // a CA bundle
  | 'pemkey' // a PEM private key, root-owned 0600 (a TLS client key)
  | 'dir' // a directory (webroot)
  | 'parent' // a file mxcert writes (outputs, stateDir): its directory must exist
  | 'none'; // not a file mxcert opens (a hook's argument, a hook's environment)

/** What must exist at a path-valued setting, from where it sits in the config. */
export function fixtureKind(at: Seg[]): FixtureKind {
  const keys = at.filter((s): s is string => typeof s === 'string');
  if (keys.includes('env')) return 'none';
  const h = at.indexOf('hooks');
  if (h >= 0 && typeof at[h + 1] === 'string' && !['env', 'timeout'].includes(at[h + 1] as string)) {
    // hooks.deploy[i] is a path, hooks.deploy[i][0] the program of an argv list.
    const rest = at.slice(h + 2);
    return rest.length === 1 || (rest.length === 2 && rest[1] === 0) ? 'hook' : 'none';
  }
  const c = at.lastIndexOf('command');
  if (c >= 0) return c === at.length - 1 || (c === at.length - 2 && at.at(-1) === 0) ? 'hook' : 'none';
  const last = keys.at(-1) ?? '';
  // Files mxcert writes, whatever they are called (output.key, output.cert).
  if (keys.includes('output') || last === 'stateDir') return 'parent';
  if (keys.includes('tls') && last === 'keyFile') return 'pemkey';
  if (/(secretFile|[kK]eyFile|passwordFile)$/.test(last) || last === 'key') return 'secret';
  if (/^(caBundle|trustAnchors|ca|caFile|cert|certFile)$/.test(last)) return 'pem';
  if (last === 'webroot') return 'dir';
  return 'parent';
}

export interface PathRef {
  at: Seg[];
  value: string;
  kind: FixtureKind;
}

/** Every absolute path in a config (strings starting with /), with the kind of file it must be. */
export function pathRefs(config: unknown): PathRef[] {
  const out: PathRef[] = [];
  const walk = (v: unknown, at: Seg[]) => {
    if (typeof v === 'string') {
      if (/^\/[^\s]*$/.test(v)) out.push({ at, value: v, kind: fixtureKind(at) });
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...at, i]));
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
  };
  walk(config, []);
  return out;
}

/** A copy of the config with every file path (not hook arguments or env values) moved under `root`. */
export function reroot(config: Json, root: string): Json {
  const copy = structuredClone(config);
  for (const ref of pathRefs(config)) {
    if (ref.kind === 'none') continue;
    let parent: unknown = copy;
    for (const seg of ref.at.slice(0, -1)) parent = (parent as Record<Seg, unknown>)[seg];
    (parent as Record<Seg, unknown>)[ref.at.at(-1)!] = root.replace(/\/$/, '') + ref.value;
  }
  return copy;
}

/** Keys of a JSON example that its schema does not know, as paths (`certificates[].dane.phse`). */
export function unknownJsonKeys(example: unknown, schema: JsonSchema): string[] {
  const slots = schemaSlots(schema);
  const out: string[] = [];
  const walk = (v: unknown, slot: string) => {
    if (Array.isArray(v)) v.forEach((x) => walk(x, `${slot}[]`));
    else if (isObj(v)) {
      const allowed = slots.get(slot);
      for (const [k, x] of Object.entries(v)) {
        const at = slot === '' ? k : `${slot}.${k}`;
        if (!allowed?.has(k)) out.push(at);
        else walk(x, at);
      }
    }
  };
  walk(example, '');
  return out;
}

/** mxcert's metric names used in a PromQL expression. */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bmxcert_[a-z0-9_]+/g) ?? [])];
}

/** Every `expr` of a Prometheus rules document (a list of rules, or `groups: [{ rules }]`). */
export function ruleExprs(doc: unknown): string[] | undefined {
  const rules = Array.isArray(doc) ? doc : isObj(doc) && Array.isArray(doc.groups) ? doc.groups.flatMap((g) => (isObj(g) && Array.isArray(g.rules) ? g.rules : [])) : undefined;
  if (!rules || rules.length === 0 || !rules.every((r) => isObj(r) && typeof r.expr === 'string' && (typeof r.alert === 'string' || typeof r.record === 'string'))) return undefined;
  return rules.map((r) => (r as Json).expr as string);
}
