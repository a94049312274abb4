// Every wait longer than a moment says what it waits for and until when, so
// a terminal (or the journal) is never silent for the length of a deadline:
// an ACME server that accepts the connection and never answers, an MTA that
// is down while its new certificate is verified, the state lock held by
// another mxcert, the daemon between passes.
import type { Logger } from '../log.js';
import { displayTime } from './display-time.js';

/** Waits shorter than this go unannounced: they are the normal case. */
export const ANNOUNCE_AFTER_MS = 2000;

/**
 * Logs `waiting for WHAT until TIME` once, at info level, if the wait is
 * still going after `afterMs`; `what` may be a function, asked only then
 * (e.g. for how far a request had got). Call the returned function when the
 * wait is over. The timer never keeps the process alive.
 */
export function announceWait(
  log: Logger,
  what: string | (() => string),
  until: Date | number,
  opts: { afterMs?: number; fields?: Record<string, unknown> } = {},
): () => void {
  const deadline = new Date(until);
  const timer = setTimeout(() => {
    let text: string;
    try {
      text = typeof what === 'function' ? what() : what;
    } catch {
      text = 'an operation';
    }
    log.info({ ...opts.fields, until: deadline.toISOString() }, `waiting for ${text} until ${displayTime(deadline)}`);
  }, opts.afterMs ?? ANNOUNCE_AFTER_MS);
  timer.unref();
  return () => clearTimeout(timer);
}
