import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { describeError } from './errors.js';
import { DISPLAY_TIME_PATTERN, ISO_INSTANT, displayTime, displayTimesIn } from './util/display-time.js';

export type { Logger };

/** How log lines (and `renew` results) are written: readable text, or JSON lines (pino). */
export type OutputFormat = 'text' | 'json';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['text', 'json'];

/** Where formatted log lines go; pino hands each line over as one string. */
export interface LogSink {
  write(line: string): void;
}

// Paths pino must never print, whatever object a caller hands it.
const REDACT = [
  'secret', '*.secret', 'hmacKey', '*.hmacKey', '*.*.hmacKey', 'apiKey', '*.apiKey',
  'privateKey', '*.privateKey', 'key', 'keyPem', '*.keyPem', 'accountKey', '*.accountKey',
];

const DEBUG = 20;

// pino (and the packages it pulls in) is loaded when the first logger is
// made, not with this module: `mxcert status` logs nothing, and loading it
// was a tenth of that command's start-up.
let pinoModule: typeof import('pino') | undefined;
const pinoLib = (): typeof import('pino') => (pinoModule ??= createRequire(import.meta.url)('pino') as typeof import('pino'));

/**
 * The format when none was asked for: MXCERT_LOG_FORMAT (set by `--format`
 * for the processes mxcert starts), else text on a terminal and JSON lines
 * otherwise (journald, log shippers).
 */
export function defaultFormat(isTTY: boolean | undefined, env: NodeJS.ProcessEnv = process.env): OutputFormat {
  const v = env.MXCERT_LOG_FORMAT;
  if (v === 'text' || v === 'json') return v;
  return isTTY ? 'text' : 'json';
}

/**
 * Logs go to stderr, so results and `--json` output on stdout stay clean.
 * Both formats write synchronously: on a terminal, log lines and the result
 * lines printed on stdout appear in the order things happened (pino's worker
 * transport printed a pass's logs after its results). `sink` receives the
 * JSON lines instead of stderr (`renew --quiet` holds them back).
 */
export function createLogger(opts: { level?: string; format?: OutputFormat; sink?: LogSink } = {}): Logger {
  const level = opts.level ?? process.env.MXCERT_LOG_LEVEL ?? 'info';
  const format = opts.format ?? defaultFormat(process.stderr.isTTY);
  const { pino, levels, stdSerializers } = pinoLib();
  const full = (levels.values[level] ?? Infinity) <= DEBUG;
  return pino(
    {
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      // An error is one line, its causes included; the stack trace (bundle
      // chunk paths, of use to a developer only) at debug level.
      serializers: { err: (e: unknown) => (full && e instanceof Error ? stdSerializers.err(e) : describeError(e)) },
    },
    opts.sink ?? stderrSink(format),
  );
}

/** Log lines on stderr, formatted. */
export function stderrSink(format: OutputFormat): LogSink {
  return formattedSink(format, pinoLib().destination({ dest: 2, sync: true }), Boolean(process.stderr.isTTY) && !process.env.NO_COLOR);
}

/** pino's JSON lines as they are, or as text; nothing is loaded for text until the first line. */
export function formattedSink(format: OutputFormat, out: LogSink, colorize = false): LogSink {
  if (format === 'json') return out;
  let pretty: ((line: string) => string) | undefined;
  return {
    write(line: string) {
      pretty ??= textPrettifier(colorize);
      out.write(pretty(line));
    },
  };
}

/**
 * pino-pretty, in this process and synchronous, loaded on first use: the
 * daemon and `mxcert status` do not load it unless they print text. One line
 * per event: `[2026-12-07 23:50:24Z] INFO: mx1 (ecdsa-p256): renewing reason=forced`.
 */
function textPrettifier(colorize: boolean): (line: string) => string {
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  return prettyFactory({
    colorize,
    translateTime: DISPLAY_TIME_PATTERN,
    ignore: 'pid,hostname',
    hideObject: true,
    messageFormat: (log, messageKey) => textMessage(log as Record<string, unknown>, messageKey),
  });
}

const SUBJECT_KEYS = new Set(['cert', 'keyType', 'hook', 'stream']);
const LOGGER_KEYS = new Set(['level', 'time', 'pid', 'hostname']);

/**
 * The message part of a text log line: who it is about (`mx1 (ecdsa-p256): `,
 * a hook's output with its name), the message, then the other fields as
 * key=value, times shown like every other time (displayTime). A field whose
 * value the message already says is not repeated; an error's stack trace
 * (debug level) follows on indented lines.
 */
export function textMessage(log: Record<string, unknown>, messageKey = 'msg'): string {
  const msg = displayTimesIn(String(log[messageKey] ?? ''));
  let subject = '';
  if (typeof log.cert === 'string') subject += `${log.cert}${typeof log.keyType === 'string' ? ` (${log.keyType})` : ''}: `;
  else if (typeof log.keyType === 'string') subject += `${log.keyType}: `;
  if (typeof log.hook === 'string') subject += `hook ${log.hook}${typeof log.stream === 'string' ? ` (${log.stream})` : ''}: `;
  const fields: string[] = [];
  let stack = '';
  for (const [k, v] of Object.entries(log)) {
    if (k === messageKey || LOGGER_KEYS.has(k) || SUBJECT_KEYS.has(k) || v === undefined) continue;
    if (v && typeof v === 'object' && typeof (v as { stack?: unknown }).stack === 'string') {
      const e = v as { message?: string; stack: string };
      fields.push(`${k}=${quote(displayTimesIn(e.message ?? ''))}`);
      stack += `\n    ${e.stack.split('\n').join('\n    ')}`;
      continue;
    }
    const text = fieldText(v);
    if (typeof v === 'string' && text.length >= 8 && msg.includes(text)) continue;
    fields.push(`${k}=${text}`);
  }
  return `${subject}${msg}${fields.length ? ` ${fields.join(' ')}` : ''}${stack}`;
}

function fieldText(v: unknown): string {
  if (typeof v === 'string') return ISO_INSTANT.test(v) ? displayTime(v) : quote(displayTimesIn(v));
  if (Array.isArray(v) && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.map((x) => fieldText(x)).join(',');
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function quote(s: string): string {
  return s === '' || /[\s"=,\\]/.test(s) ? JSON.stringify(s) : s;
}

/**
 * Log lines held back instead of written (`renew --quiet`): released to a
 * sink when something turns out worth reporting, else dropped. `worst` is
 * the highest level seen (pino's numbers: 40 warn, 50 error).
 */
export class HeldLog implements LogSink {
  private lines: string[] = [];
  worst = 0;

  write(line: string): void {
    this.lines.push(line);
    try {
      this.worst = Math.max(this.worst, (JSON.parse(line) as { level?: number }).level ?? 0);
    } catch {
      /* not a pino line: kept, no level */
    }
  }

  release(to: LogSink): void {
    for (const l of this.lines) to.write(l);
    this.lines = [];
  }
}

let silent: Logger | undefined;
const silentTarget = (): Logger => (silent ??= pinoLib().pino({ level: 'silent' }));
/** A logger that drops everything; made (with pino) on first use, like every logger here. */
export const silentLogger: Logger = new Proxy({} as Logger, {
  get(_t, key) {
    const target = silentTarget();
    const v = Reflect.get(target, key, target) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  },
  set: (_t, key, value) => Reflect.set(silentTarget(), key, value),
  has: (_t, key) => Reflect.has(silentTarget(), key),
});
