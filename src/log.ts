import { pino, destination, type Logger } from 'pino';

export type { Logger };

// Paths pino must never print, whatever object a caller hands it.
const REDACT = [
  'secret', '*.secret', 'hmacKey', '*.hmacKey', '*.*.hmacKey', 'apiKey', '*.apiKey',
  'privateKey', '*.privateKey', 'key', 'keyPem', '*.keyPem', 'accountKey', '*.accountKey',
];

/**
 * JSON lines when stdout is not a TTY (journald, log shippers), readable
 * text on a TTY. Logs go to stderr so `--json` output on stdout stays clean.
 */
export function createLogger(opts: { level?: string; pretty?: boolean } = {}): Logger {
  const level = opts.level ?? process.env.MXCERT_LOG_LEVEL ?? 'info';
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  if (pretty) {
    return pino({
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' } }, destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });
