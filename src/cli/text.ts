// Small helpers for the text mxcert prints for people (result lines, status).

/** A failure's text names its step (`obtain: …`, the JSON contract); a line that names the step already drops it. */
export function withoutStep(error: string, step: string | null | undefined): string {
  return step && error.startsWith(`${step}: `) ? error.slice(step.length + 2) : error;
}

/** Error text (a hook's output, say) on one line: a result line or a table cell is one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * `text` broken into lines of at most `width` characters at spaces (a word
 * longer than a line is cut), every line but the first indented by `indent`
 * spaces, which count toward the width.
 */
export function wrap(text: string, width: number, indent: number, firstWidth = width): string[] {
  // Most values fit on their line as they are (status wraps a dozen per certificate).
  if (text.length <= Math.max(1, firstWidth) && !/\s\s|^\s|\s$|[^\S ]/.test(text)) return [text];
  const out: string[] = [];
  const room = () => Math.max(1, out.length === 0 ? firstWidth : width - indent);
  let line = '';
  for (let word of text.replace(/\s+/g, ' ').trim().split(' ')) {
    while (word !== '') {
      const n = room();
      if (line === '' && word.length > n) {
        out.push(word.slice(0, n));
        word = word.slice(n);
      } else if (line === '' || line.length + 1 + word.length <= n) {
        line = line === '' ? word : `${line} ${word}`;
        word = '';
      } else {
        out.push(line);
        line = '';
      }
    }
  }
  if (line !== '' || out.length === 0) out.push(line);
  return out.map((l, i) => (i === 0 ? l : ' '.repeat(indent) + l));
}
