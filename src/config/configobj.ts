// A reader for the INI dialect certbot writes and reads (Python's ConfigObj):
// its renewal configs (`renewal/NAME.conf`) and DNS plugin credentials files.
// Only what certbot produces is supported: `key = value` lines, `#` comments
// (whole-line, and after an unquoted value), `[section]` and `[[subsection]]`
// headers, single/double/triple-quoted values, and comma lists
// (`webroot_path = /var/www,` is a one-element list). No interpolation,
// no multi-line values: certbot writes neither.

export type ConfigObjValue = string | string[];

export interface ConfigObjSection {
  values: Record<string, ConfigObjValue>;
  sections: Record<string, ConfigObjSection>;
}

export class ConfigObjSyntaxError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const HEADER_RE = /^(\[+)\s*(.*?)\s*(\]+)\s*(?:#.*)?$/;

/** Parse ConfigObj text; throws ConfigObjSyntaxError naming the line (never echoing a value). */
export function parseConfigObj(text: string): ConfigObjSection {
  const root: ConfigObjSection = { values: {}, sections: {} };
  // stack[d] is the section at depth d (0 = top level).
  const stack: ConfigObjSection[] = [root];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const header = HEADER_RE.exec(line);
    if (header) {
      const depth = header[1]!.length;
      if (depth !== header[3]!.length) throw new ConfigObjSyntaxError(lineNo, 'unbalanced section brackets');
      if (depth > stack.length) throw new ConfigObjSyntaxError(lineNo, 'subsection without a parent section');
      const name = unquote(header[2]!);
      const parent = stack[depth - 1]!;
      const section = (parent.sections[name] ??= { values: {}, sections: {} });
      stack.length = depth;
      stack.push(section);
      return;
    }
    const eq = keyValue(line);
    if (!eq) throw new ConfigObjSyntaxError(lineNo, 'expected "key = value"');
    const current = stack[stack.length - 1]!;
    current.values[eq.key] = parseValue(eq.rest, lineNo);
  });
  return root;
}

function keyValue(line: string): { key: string; rest: string } | undefined {
  const quoted = /^("[^"]*"|'[^']*')\s*=\s*(.*)$/.exec(line);
  if (quoted) return { key: unquote(quoted[1]!), rest: quoted[2]! };
  const plain = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
  return plain ? { key: plain[1]!, rest: plain[2]! } : undefined;
}

function unquote(s: string): string {
  const m = /^(["'])(.*)\1$/.exec(s);
  return m ? m[2]! : s;
}

/**
 * One value: a quoted string, or a comma list of (quoted or bare) items, or a
 * bare string. As in ConfigObj, a bare value ends at `#`.
 */
function parseValue(rest: string, lineNo: number): ConfigObjValue {
  const triple = /^("""|''')(.*?)\1\s*(?:#.*)?$/.exec(rest);
  if (triple) return triple[2]!;
  const items: string[] = [];
  let sawComma = false;
  let i = 0;
  const skipSpace = () => {
    while (i < rest.length && /\s/.test(rest[i]!)) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= rest.length || rest[i] === '#') break;
    let item: string;
    const q = rest[i];
    if (q === '"' || q === "'") {
      const end = rest.indexOf(q, i + 1);
      if (end < 0) throw new ConfigObjSyntaxError(lineNo, 'unterminated quote');
      item = rest.slice(i + 1, end);
      i = end + 1;
    } else {
      const m = /^[^,#]*/.exec(rest.slice(i))!;
      item = m[0].trim();
      i += m[0].length;
    }
    items.push(item);
    skipSpace();
    if (rest[i] === ',') {
      sawComma = true;
      i++;
      continue;
    }
    if (i < rest.length && rest[i] !== '#') throw new ConfigObjSyntaxError(lineNo, 'unexpected text after a quoted value');
    break;
  }
  if (sawComma) return items.filter((x, k) => !(x === '' && k === items.length - 1));
  return items[0] ?? '';
}

/** A value as one string: a one-element list is its element; a longer list is undefined. */
export function single(v: ConfigObjValue | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  return v.length === 1 ? v[0] : undefined;
}

/** A value as a list. */
export function list(v: ConfigObjValue | undefined): string[] {
  if (v === undefined) return [];
  return typeof v === 'string' ? (v === '' ? [] : [v]) : v;
}
