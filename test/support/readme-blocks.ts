// Docs as tests: the pure half. Splits Markdown into fenced code blocks and
// inline `mxcert …` spans, reads the `<!-- docs-test: … -->` marker above a
// block, decides what kind of example each block is, splits shell lines
// into commands, and compares example output with real output by shape.
// test/integration/readme-examples.test.ts runs what this finds; nothing
// here touches the file system or starts a process.

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string's first word, lower-cased ('' for a bare fence). */
  lang: string;
  /** Block content, with the fence's own indentation removed. */
  text: string;
  /** The docs-test marker right above the block, if any. */
  marker?: Marker;
  /** The nearest heading above, for messages. */
  heading: string;
}

export type Marker =
  | { kind: 'skip'; reason: string; line: number }
  | { kind: 'output-of'; command: string; line: number }
  | { kind: 'config-error'; expect: string; line: number }
  | { kind: 'invalid'; problem: string; line: number };

const FENCE = /^( *)(`{3,}|~{3,})(.*)$/;
const MARKER = /^\s*<!--\s*docs-test:([\s\S]*?)-->\s*$/;

/**
 * Reads one marker comment. `skip` needs a reason after a dash or colon, so a
 * skipped block always says why; `output-of` names the command whose output
 * the block shows; `config-error` gives text the error must contain.
 */
export function parseMarker(body: string, line: number): Marker {
  const m = /^\s*([a-z-]+)\s*(?:[—–:-]+\s*)?([\s\S]*?)\s*$/.exec(body);
  const word = m?.[1] ?? '';
  const rest = (m?.[2] ?? '').replace(/\s+/g, ' ');
  switch (word) {
    case 'skip':
      return rest ? { kind: 'skip', reason: rest, line } : { kind: 'invalid', problem: 'a skip marker needs a reason: <!-- docs-test: skip — why -->', line };
    case 'output-of':
      return /^mxcert(\s|$)/.test(rest) ? { kind: 'output-of', command: rest, line } : { kind: 'invalid', problem: `output-of must name an mxcert command, got "${rest}"`, line };
    case 'config-error':
      return rest ? { kind: 'config-error', expect: rest, line } : { kind: 'invalid', problem: 'config-error needs the text the error must contain', line };
    default:
      return { kind: 'invalid', problem: `unknown docs-test directive "${word}" (use skip, output-of or config-error)`, line };
  }
}

/** Every fenced code block of a Markdown file, in order (CommonMark fences, also inside list items). */
export function extractBlocks(markdown: string, file: string): DocBlock[] {
  const lines = markdown.split('\n');
  const blocks: DocBlock[] = [];
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const h = /^#{1,6}\s+(.*)$/.exec(l);
    if (h) heading = h[1]!.trim();
    const open = FENCE.exec(l);
    if (!open || (open[2]![0] === '`' && open[3]!.includes('`'))) continue;
    const [, indent, fence] = open as unknown as [string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^ *(`{3,}|~{3,})\s*$/.exec(lines[j]!);
      if (close && close[1]![0] === fence[0] && close[1]!.length >= fence.length) break;
      body.push(stripIndent(lines[j]!, indent.length));
    }
    blocks.push({ file, line: i + 1, lang: open[3]!.trim().split(/\s+/)[0]!.toLowerCase(), text: body.join('\n'), marker: markerAbove(lines, i), heading });
    i = j;
  }
  return blocks;
}

function stripIndent(line: string, n: number): string {
  let k = 0;
  while (k < n && line[k] === ' ') k++;
  return line.slice(k);
}

/** The marker comment directly above line `i` (blank lines between are allowed, nothing else). */
function markerAbove(lines: string[], i: number): Marker | undefined {
  let k = i - 1;
  while (k >= 0 && lines[k]!.trim() === '') k--;
  if (k < 0) return undefined;
  // A marker may span lines: find the start of a comment that ends here.
  if (!lines[k]!.trim().endsWith('-->')) return undefined;
  let start = k;
  while (start >= 0 && !lines[start]!.includes('<!--')) start--;
  if (start < 0) return undefined;
  const m = MARKER.exec(lines.slice(start, k + 1).join('\n'));
  return m ? parseMarker(m[1]!, start + 1) : undefined;
}

/** Markers that are not right above a block: each is a mistake (a typo, or a block that moved away). */
export function strayMarkers(markdown: string, blocks: DocBlock[]): number[] {
  const used = new Set(blocks.flatMap((b) => (b.marker ? [b.marker.line] : [])));
  const out: number[] = [];
  markdown.split('\n').forEach((l, i) => {
    // A marker quoted in an inline code span is prose about markers, not a marker.
    if (/<!--\s*docs-test:/.test(l.replace(/`[^`]*`/g, '')) && !used.has(i + 1)) out.push(i + 1);
  });
  return out;
}

export interface InlineCommand {
  file: string;
  line: number;
  text: string;
}

/**
 * Inline code spans that are mxcert command lines (`mxcert renew --force`,
 * `mxcert revoke --cert NAME [--reason R]`), outside fenced blocks. A span
 * like `mxcert: another mxcert holds …` or `mxcert warning: …` (messages,
 * not commands) is left out: the word after `mxcert` must be an option or a
 * plain lower-case command word.
 */
export function extractInlineCommands(markdown: string, file: string): InlineCommand[] {
  const lines = markdown.split('\n');
  let inFence: string | undefined;
  const kept = lines.map((l) => {
    const f = /^ *(`{3,}|~{3,})/.exec(l);
    if (f && (inFence === undefined || (f[1]![0] === inFence[0] && f[1]!.length >= inFence.length && l.trim() === f[1]))) {
      inFence = inFence === undefined ? f[1] : undefined;
      return '';
    }
    return inFence === undefined ? l.replace(/<!--.*?-->/g, '') : '';
  });
  const text = kept.join('\n');
  const out: InlineCommand[] = [];
  const span = /(?<!`)(`+)(?!`)([\s\S]*?[^`])\1(?!`)/g;
  for (const m of text.matchAll(span)) {
    if (m[2]!.includes('\n\n')) continue;
    const content = m[2]!.replace(/\s+/g, ' ').trim();
    if (!/^mxcert( (-|[a-z][a-z0-9-]*( |$))|$)/.test(content) || content === 'mxcert') continue;
    out.push({ file, line: text.slice(0, m.index).split('\n').length, text: content });
  }
  return out;
}

export type BlockKind =
  | 'shell' // sh, bash, shell: one command per line, comments after #
  | 'console' // $ prompts, followed by the output of each command
  | 'yaml'
  | 'json'
  | 'systemd-dropin' // ini with a [Service] (or [Unit], [Timer]) section
  | 'named-conf' // BIND configuration
  | 'crontab'
  | 'file-tree' // a directory listing: "dir/" then indented entries
  | 'output' // what a command prints (needs an output-of marker)
  | 'unknown';

const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'zsh']);
const CRON_FIELD = /^[\d*\/,-]+$/;

/** What kind of example a block is, from its info string, then its content. */
export function classify(b: DocBlock): BlockKind {
  if (b.marker?.kind === 'output-of') return 'output';
  if (SHELL_LANGS.has(b.lang)) return 'shell';
  if (b.lang === 'console' || b.lang === 'shell-session') return 'console';
  if (b.lang === 'yaml' || b.lang === 'yml') return 'yaml';
  if (b.lang === 'json' || b.lang === 'jsonc') return 'json';
  if (b.lang === 'ini' || b.lang === 'systemd') return /^\s*\[(Service|Unit|Timer|Install)\]\s*$/m.test(b.text) ? 'systemd-dropin' : 'unknown';
  if (b.lang !== '' && b.lang !== 'text') return 'unknown';
  const lines = b.text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return 'unknown';
  if (lines.some((l) => /^\$ /.test(l))) return 'console';
  if (/^\s*(zone|key|options|acl|view)\s+("[^"]*"\s*)?\{/m.test(b.text) && /;\s*$/m.test(b.text)) return 'named-conf';
  if (lines.every((l) => l.trim().startsWith('#') || isCronLine(l))) {
    if (lines.some(isCronLine)) return 'crontab';
  }
  if (/^[\w.-]+\/$/.test(lines[0]!.trim()) && lines.slice(1).every((l) => /^\s+\S/.test(l))) return 'file-tree';
  return 'unknown';
}

function isCronLine(l: string): boolean {
  const f = l.trim().split(/\s+/);
  return f.length >= 7 && f.slice(0, 5).every((x) => CRON_FIELD.test(x)) && /^[a-z_][\w-]*$/.test(f[5]!);
}

/** The command of a system crontab line (`m h dom mon dow user command…`). */
export function cronCommand(line: string): { schedule: string; user: string; command: string } | undefined {
  if (!isCronLine(line)) return undefined;
  const m = /^\s*(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(\S+)\s+(.*)$/.exec(line)!;
  return { schedule: m[1]!.replace(/\s+/g, ' '), user: m[2]!, command: m[3]!.trim() };
}

// --- Shell lines -----------------------------------------------------------

export interface Redirect {
  op: string;
  target: string;
}

/** One simple command of a shell line: argv (assignments and sudo removed) and its redirections. */
export interface SimpleCommand {
  argv: string[];
  redirects: Redirect[];
  /** Leading VAR=value assignments. */
  env: Record<string, string>;
}

export interface ShellLine {
  /** 1-based line within the block. */
  line: number;
  source: string;
  commands: SimpleCommand[];
  /** Parsed from a trailing `# or: …` comment: an alternative the docs offer. */
  alternative?: boolean;
}

type Tok = { op: string } | { word: string };

/**
 * Splits one shell line into words and operators, as sh would for the
 * examples docs contain: single and double quotes, backslash escapes,
 * $(…) kept inside a word, `#` comments at the start of a word, and the
 * operators && || | ; & > >> < 2> 2>&1 &>.
 */
export function shellTokens(line: string): { tokens: Tok[]; comment?: string } {
  const tokens: Tok[] = [];
  let word: string | undefined;
  const flush = () => {
    if (word !== undefined) tokens.push({ word });
    word = undefined;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1]!)) s += line[++j];
        else s += line[j];
      }
      if (j >= line.length) throw new Error(`unterminated " in: ${line}`);
      word = (word ?? '') + s;
      i = j;
    } else if (c === '$' && line[i + 1] === '(') {
      let depth = 0;
      let j = i + 1;
      for (; j < line.length; j++) {
        if (line[j] === '(') depth++;
        else if (line[j] === ')' && --depth === 0) break;
      }
      word = (word ?? '') + line.slice(i, j + 1);
      i = j;
    } else if (/\s/.test(c)) {
      flush();
    } else if (c === '#' && word === undefined) {
      return { tokens, comment: line.slice(i + 1).trim() };
    } else if ('&|;<>'.includes(c)) {
      const rest = line.slice(i);
      const op = /^(&&|\|\||>>|&>|>&\d|[|;&<>])/.exec(rest)![1]!;
      // "2>" and "2>&1": a one-digit word right before > is a descriptor.
      if (op.startsWith('>') && word !== undefined && /^\d$/.test(word)) {
        tokens.push({ op: `${word}${op}` });
        word = undefined;
        i += op.length - 1;
        continue;
      }
      flush();
      tokens.push({ op });
      i += op.length - 1;
    } else {
      word = (word ?? '') + c;
    }
  }
  flush();
  return { tokens };
}

const REDIRECT = /^(\d?>>?|&>|<|\d?>&\d)$/;

/** The simple commands of a token list (split at && || | ; &), with redirections taken out. */
export function simpleCommands(tokens: Tok[]): SimpleCommand[] {
  const out: SimpleCommand[] = [];
  let cur: SimpleCommand = { argv: [], redirects: [], env: {} };
  const end = () => {
    if (cur.argv.length > 0 || cur.redirects.length > 0) out.push(cur);
    cur = { argv: [], redirects: [], env: {} };
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if ('op' in t) {
      if (REDIRECT.test(t.op)) {
        if (/>&\d$/.test(t.op)) cur.redirects.push({ op: t.op, target: '' });
        else {
          const target = tokens[++i];
          cur.redirects.push({ op: t.op, target: target && 'word' in target ? target.word : '' });
        }
      } else end();
      continue;
    }
    const assign = /^([A-Za-z_]\w*)=(.*)$/s.exec(t.word);
    if (cur.argv.length === 0 && assign) cur.env[assign[1]!] = assign[2]!;
    else if (cur.argv.length === 0 && t.word === 'sudo') continue;
    else cur.argv.push(t.word);
  }
  end();
  return out;
}

/** The command lines of a shell block: comments dropped, `\` continuations joined, `# or: CMD` kept as an alternative. */
export function shellLines(text: string): ShellLine[] {
  const out: ShellLine[] = [];
  const raw = text.split('\n');
  for (let i = 0; i < raw.length; i++) {
    let source = raw[i]!;
    const first = i + 1;
    while (source.endsWith('\\') && i + 1 < raw.length) source = source.slice(0, -1) + ' ' + raw[++i]!;
    if (source.trim() === '') continue;
    const { tokens, comment } = shellTokens(source);
    const commands = simpleCommands(tokens);
    if (commands.length > 0) out.push({ line: first, source: source.trim(), commands });
    const alt = comment !== undefined ? /^(?:or|or else|alternatively):\s*(.+)$/.exec(comment) : null;
    if (alt && commands.length > 0) {
      const altCmds = simpleCommands(shellTokens(alt[1]!).tokens);
      if (altCmds.length > 0) out.push({ line: first, source: alt[1]!.trim(), commands: altCmds, alternative: true });
    }
  }
  return out;
}

export interface ConsoleStep {
  line: number;
  command: ShellLine;
  /** The lines shown after the command, up to the next prompt. */
  output: string[];
}

/** A console block: `$ command` lines, each followed by the output it shows. */
export function consoleSteps(text: string): ConsoleStep[] {
  const steps: ConsoleStep[] = [];
  text.split('\n').forEach((l, i) => {
    const p = /^\$ (.*)$/.exec(l);
    if (p) {
      const lines = shellLines(p[1]!);
      if (lines.length === 0) throw new Error(`line ${i + 1}: empty command after the prompt`);
      steps.push({ line: i + 1, command: { ...lines[0]!, line: i + 1 }, output: [] });
    } else if (steps.length > 0) {
      if (l.trim() !== '') steps.at(-1)!.output.push(l);
    } else if (l.trim() !== '') {
      throw new Error(`line ${i + 1}: output before the first $ prompt: ${l}`);
    }
  });
  return steps;
}

// --- Output shapes ---------------------------------------------------------

const WILD = '\u0000';

/**
 * A line with its variable parts replaced by their kind, so an example
 * (mx1.example.com, port 25, a serial from 2026) can be compared with what
 * mxcert prints in the test (mx1.example.test, a random port, today). In an
 * example, `…` stands for anything; in real output it is a literal.
 */
export function shapeOf(line: string, opts: { example: boolean }): string {
  let s = opts.example ? line.replace(/…/g, WILD) : line;
  s = s
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '⟨ISO-TIME⟩')
    .replace(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z/g, '⟨TIME⟩')
    .replace(/(?<![\w.])\/[^\s,:;()'"`\u0000]+/g, '⟨PATH⟩')
    .replace(/\b\d{1,3}(\.\d{1,3}){3}\b/g, '⟨IP⟩')
    .replace(/\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{8,}\b/g, '⟨HEX⟩')
    .replace(/(?<![\w-])(?:[A-Za-z0-9_-]+\.)+[A-Za-z][A-Za-z0-9-]*\.?(?![\w-])/g, '⟨NAME⟩')
    .replace(/\d+/g, '⟨N⟩')
    .replace(/\s+/g, ' ')
    .trim();
  return s;
}

function shapeRegex(exampleShape: string): RegExp {
  const parts = exampleShape.split(WILD).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*?')}$`);
}

/**
 * Checks that every example line has the shape of a real line, in order
 * (the real output may have more lines). Returns the first example line
 * that has no match, with both shapes, or undefined when all match.
 */
export function compareShapes(example: string[], real: string[]): string | undefined {
  const realShapes = real.map((l) => shapeOf(l, { example: false }));
  let from = 0;
  for (const ex of example) {
    const shape = shapeOf(ex, { example: true });
    const re = shapeRegex(shape);
    const at = realShapes.findIndex((r, k) => k >= from && re.test(r));
    if (at < 0) {
      return [
        `example line has no counterpart in the real output:`,
        `  example: ${ex}`,
        `  shape:   ${shape.replace(/\u0000/g, '…')}`,
        `real output (shapes, from line ${from + 1}):`,
        ...realShapes.slice(from).map((r) => `  ${r}`),
      ].join('\n');
    }
    from = at + 1;
  }
  return undefined;
}

// --- The file tree of docs/architecture.md ----------------------------------

/**
 * Path patterns of a directory listing like
 *
 *   stateDir/
 *     lock                   what it is
 *     accounts/H/key.pem, account.json
 *     certs/NAME/KEYTYPE/
 *       versions/ID/         key.pem (0600), cert.pem, …
 *
 * Upper-case segments are placeholders. A directory entry (ending in /)
 * covers everything below it; `a/b.pem, c.json` lists siblings.
 */
export function treePatterns(text: string): RegExp[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const stack: Array<{ indent: number; dir: string }> = [];
  const entries: Array<{ path: string; parentDir?: string }> = [];
  const withChildren = new Set<string>();
  for (const l of lines.slice(1)) {
    const indent = l.length - l.trimStart().length;
    // Entry names end where the description starts (two spaces or more).
    const names = l.trim().split(/\s{2,}/)[0]!;
    while (stack.length > 0 && stack.at(-1)!.indent >= indent) stack.pop();
    const parent = stack.at(-1)?.dir;
    if (parent !== undefined) withChildren.add(parent);
    const items = names.split(/,\s*/);
    const firstDir = items[0]!.includes('/') ? items[0]!.slice(0, items[0]!.lastIndexOf('/') + 1) : '';
    items.forEach((item, k) => {
      const full = (parent ?? '') + (k === 0 || item.includes('/') ? item : firstDir + item);
      entries.push({ path: full });
      if (k === 0 && full.endsWith('/')) stack.push({ indent, dir: full });
    });
  }
  // A directory whose entries are listed covers only those; one listed
  // without entries (versions/ID/) covers whatever is in it.
  return entries.filter((e) => !withChildren.has(e.path)).map((e) => patternOf(e.path));
}

function patternOf(p: string): RegExp {
  const re = p
    .split('/')
    .map((seg) => (/^[A-Z][A-Z0-9_]*$/.test(seg) ? '[^/]+' : seg.replace(/[A-Z][A-Z0-9_]*(?=\.)/g, '\u0001').replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\u0001/g, '[^/]+')))
    .join('/');
  return new RegExp(p.endsWith('/') ? `^${re}` : `^${re}$`);
}

// --- The CLI's own description of itself (`mxcert … --help`) ---------------

export interface OptionSpec {
  /** Takes a value: `--cert <name>` (required) or `--x [v]` (optional). */
  value: 'none' | 'required' | 'optional';
  choices?: string[];
}

export interface HelpInfo {
  /** The command path the usage line names ('' for mxcert itself). */
  path: string;
  /** Positional arguments from the usage line: `<member>`, `[file]`, `<files...>`. */
  args: string[];
  options: Map<string, OptionSpec>;
  commands: Set<string>;
}

/** Reads commander's help text: usage line, Options, Global Options, Commands. */
export function parseHelp(text: string): HelpInfo {
  const lines = text.split('\n');
  const usage = /^Usage: mxcert((?: [a-z][\w-]*)*)((?: \S+)*)\s*$/.exec(lines.find((l) => l.startsWith('Usage: ')) ?? '');
  if (!usage) throw new Error(`no "Usage: mxcert …" line in help:\n${text}`);
  const info: HelpInfo = {
    path: usage[1]!.trim(),
    args: usage[2]!.trim().split(/\s+/).filter((a) => a !== '' && a !== '[options]' && a !== '[command]'),
    options: new Map(),
    commands: new Set(),
  };
  let section: string | undefined;
  const entries: Array<{ section: string; text: string }> = [];
  for (const l of lines) {
    const head = /^(Options|Global Options|Commands|Arguments):$/.exec(l);
    if (head) section = head[1];
    else if (l.trim() === '') section = undefined;
    else if (section && /^  \S/.test(l)) entries.push({ section, text: l.trim() });
    else if (section && /^   +\S/.test(l) && entries.length > 0) entries.at(-1)!.text += ' ' + l.trim();
  }
  for (const e of entries) {
    const head = e.text.split(/\s{2,}/)[0]!;
    if (e.section === 'Commands') {
      const name = head.split(' ')[0]!;
      if (name !== 'help') info.commands.add(name);
    } else if (e.section !== 'Arguments') {
      const value = /<[^>]+>/.test(head) ? 'required' : /\[[^\]]+\]/.test(head) ? 'optional' : 'none';
      const ch = /\(choices: ((?:"[^"]*"(?:, )?)+)/.exec(e.text);
      const choices = ch ? [...ch[1]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]!) : undefined;
      for (const flag of head.match(/(?<![\w-])--?[\w-]+/g) ?? []) info.options.set(flag, { value, choices });
    }
  }
  return info;
}

/** A word in a synopsis that stands for a value: NAME, T, text|json, <x>, `…`. */
export function isPlaceholder(word: string): boolean {
  return /^[A-Z][A-Z0-9_]*$|…|\||^<.*>$|^\$/.test(word);
}

export interface ArgvCheck {
  /** The command path found, e.g. ['account', 'update']. */
  path: string[];
  options: string[];
  positional: string[];
  problems: string[];
}

/**
 * Checks a command line against the CLI's help: the command path exists,
 * every option exists for it (or globally), option values are given and
 * among the choices, and the positional arguments fit the usage line. A
 * synopsis (`mxcert renew [--force] [--cert NAME]…`) is checked for the
 * command and its options only.
 */
export function checkArgv(args: string[], helps: Map<string, HelpInfo>, opts: { synopsis: boolean }): ArgvCheck {
  const path: string[] = [];
  const options: string[] = [];
  const positional: string[] = [];
  const problems: string[] = [];
  let help = helps.get('');
  if (!help) throw new Error('no help for mxcert itself');
  const words = opts.synopsis ? args.map((a) => a.replace(/^\[+|(\]|…|\.\.\.)+$/g, '')).filter((a) => a !== '' && a !== '|' && a !== '/') : args;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const where = `mxcert${path.length ? ' ' + path.join(' ') : ''}`;
    if (/^--?[A-Za-z]/.test(w)) {
      const [flag, inline] = w.split(/=(.*)/s) as [string, string | undefined];
      options.push(flag);
      const spec = help.options.get(flag) ?? helps.get('')!.options.get(flag);
      if (!spec) {
        problems.push(`${where}: unknown option ${flag}`);
        continue;
      }
      if (spec.value === 'none') continue;
      let value = inline;
      if (value === undefined && spec.value === 'required') {
        value = words[++i];
        if (value === undefined) {
          if (!opts.synopsis) problems.push(`${where}: ${flag} needs a value`);
          continue;
        }
      }
      if (value !== undefined && spec.choices && !isPlaceholder(value) && !spec.choices.includes(value)) {
        problems.push(`${where}: ${flag} ${value}: not one of ${spec.choices.join(', ')}`);
      }
      continue;
    }
    if (help.commands.size > 0) {
      if (!help.commands.has(w)) {
        // What follows belongs to a command the CLI does not have: nothing more to check.
        problems.push(`${where}: unknown command "${w}" (it has: ${[...help.commands].join(', ')})`);
        return { path, options, positional: words.slice(i), problems };
      }
      path.push(w);
      const next = helps.get(path.join(' '));
      if (!next) throw new Error(`no help read for "mxcert ${path.join(' ')}"`);
      help = next;
      continue;
    }
    positional.push(w);
  }
  const where = `mxcert${path.length ? ' ' + path.join(' ') : ''}`;
  const asksHelp = options.some((o) => ['-h', '--help', '-V', '--version'].includes(o));
  if (help.commands.size > 0 && !asksHelp && !opts.synopsis) {
    problems.push(`${where}: needs a command (${[...help.commands].join(', ')})`);
  } else if (!opts.synopsis && !asksHelp) {
    const required = help.args.filter((a) => a.startsWith('<')).length;
    const variadic = help.args.some((a) => a.includes('...'));
    if (positional.length < required) problems.push(`${where}: needs ${help.args.join(' ')}, got ${positional.length} argument(s)`);
    else if (!variadic && positional.length > help.args.length) problems.push(`${where}: takes ${help.args.length} argument(s) (${help.args.join(' ') || 'none'}), got: ${positional.join(' ')}`);
  }
  return { path, options, positional, problems };
}

/** The `mxcert …` synopses of a man page (`.B mxcert renew \fR[\fB\-\-force\fR]…`), as plain text. */
export function extractManSynopses(roff: string, file: string): InlineCommand[] {
  const out: InlineCommand[] = [];
  roff.split('\n').forEach((l, i) => {
    const m = /^\.B[IR]?\s+(mxcert\s.*)$/.exec(l);
    if (!m) return;
    // Italic words are what the reader fills in: NAME, as the README writes them.
    const text = m[1]!.replace(/\\fI([^\\]+)/g, (_, w: string) => w.toUpperCase().replace(/\\-/g, '_')).replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-').replace(/\\e/g, '\\').replace(/\s+/g, ' ').trim();
    out.push({ file, line: i + 1, text });
  });
  return out;
}
