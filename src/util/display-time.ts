// The one way mxcert shows an instant to a person: UTC, with the date, marked
// `Z` (2026-12-07 23:50:24Z). Log lines, result lines, `mxcert status` and
// warnings all use it, so times can be compared at a glance and match the
// ISO 8601 UTC strings of the JSON output (docs/architecture.md).

/** `2026-12-07 23:50:24Z`; an unparsable input is returned as given. */
export function displayTime(t: Date | string | number): string {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

/** The pino-pretty `translateTime` pattern giving the same text as displayTime. */
export const DISPLAY_TIME_PATTERN = "UTC:yyyy-mm-dd HH:MM:ss'Z'";

/** An ISO 8601 UTC instant as mxcert writes them (Date#toISOString), e.g. in log fields. */
export const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$/;

const ISO_IN_TEXT = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;

/**
 * `text` with every ISO 8601 UTC instant in it shown as displayTime: for
 * messages composed elsewhere (a DANE wait, a chain check) on their way to a
 * person. JSON output keeps them as they are.
 */
export function displayTimesIn(text: string): string {
  return text.replace(ISO_IN_TEXT, (iso) => displayTime(iso));
}
