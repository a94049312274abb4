// What mxcert keeps of a hook's output (docs/architecture.md, "Security
// model"): only the end of it, in memory, and only a short end of that in an
// error. An error text travels far (logs, `mxcert status`, MXCERT_ERROR,
// notification mail), and a hook's output can be huge or hold what it should
// not have printed; its last lines usually say why it failed.

/** The error shows at most this many of the last lines… */
export const ERROR_TAIL_LINES = 20;
/** …and at most this many bytes of them. */
export const ERROR_TAIL_BYTES = 2048;

const ELLIPSIS = '…';

/** The last lines of one output stream, at most `maxBytes` of them (UTF-8). */
export class OutputTail {
  private lines: string[] = [];
  private bytes = 0;
  /** Non-blank lines seen in all. */
  count = 0;

  constructor(private readonly maxBytes: number) {}

  push(line: string): void {
    if (line.trim()) this.count++;
    const kept = lastBytes(line, this.maxBytes);
    this.lines.push(kept);
    this.bytes += Buffer.byteLength(kept) + 1;
    while (this.bytes > this.maxBytes && this.lines.length > 1) this.bytes -= Buffer.byteLength(this.lines.shift()!) + 1;
  }

  text(): string {
    return this.lines.join('\n');
  }

  /** The last `n` lines kept. */
  last(n: number): string[] {
    return this.lines.slice(-n);
  }
}

/** The end of `s` that fits in `max` bytes of UTF-8 (whole characters), marked when cut. */
export function lastBytes(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  const chars = [...s];
  let bytes = Buffer.byteLength(ELLIPSIS);
  let i = chars.length;
  while (i > 0 && bytes + Buffer.byteLength(chars[i - 1]!) <= max) bytes += Buffer.byteLength(chars[--i]!);
  return ELLIPSIS + chars.slice(i).join('');
}

// Terminal escapes and other control characters stay out of status tables,
// logs and mail; a tab is a space.
function printable(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\t/g, ' ').replace(/[\x00-\x1f\x7f-\x9f]/g, '?').trimEnd();
}

/**
 * The end of a failed hook's output for its error message, on one line:
 * the last ERROR_TAIL_LINES non-empty lines, at most ERROR_TAIL_BYTES of
 * them, joined with " | ", saying how much was left out. Empty if the
 * stream said nothing.
 */
export function errorTail(tail: OutputTail, stream: 'stdout' | 'stderr'): string {
  const lines = tail.last(ERROR_TAIL_LINES * 4).map(printable).filter(Boolean).slice(-ERROR_TAIL_LINES);
  const shown: string[] = [];
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = shown.length === 0 ? lastBytes(lines[i]!, ERROR_TAIL_BYTES) : lines[i]!;
    const cost = Buffer.byteLength(line) + (shown.length ? 3 : 0);
    if (bytes + cost > ERROR_TAIL_BYTES) break;
    shown.unshift(line);
    bytes += cost;
  }
  if (shown.length === 0) return '';
  const text = shown.join(' | ');
  return tail.count > shown.length ? `${stream} (last ${shown.length} of ${tail.count} lines): ${text}` : text;
}
