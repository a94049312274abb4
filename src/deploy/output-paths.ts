// Output path templates (`output:` in the config): `{keytype}` and `{name}`
// are the only placeholders, so one certificate with several key types can
// write one file per key type.
import type { OutputKind } from './outputs.js';

/** Every output a certificate may configure, in the order they are checked and written. */
export const OUTPUT_KINDS: readonly OutputKind[] = ['combined', 'key', 'cert', 'chain', 'fullchain'];

const PLACEHOLDER_RE = /\{([^}]*)\}/g;
const KNOWN_PLACEHOLDERS: ReadonlySet<string> = new Set(['keytype', 'name']);

/** Fill `{keytype}` and `{name}` in an output path template. */
export function expandOutputPath(template: string, vars: { keytype: string; name: string }): string {
  return template.replaceAll('{keytype}', vars.keytype).replaceAll('{name}', vars.name);
}

/** The names inside braces in `template` that expandOutputPath does not fill. */
export function unknownPlaceholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER_RE)].map((m) => m[1]!).filter((n) => !KNOWN_PLACEHOLDERS.has(n));
}
