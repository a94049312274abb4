// Who holds the agent lock, in words, for the message of a process waiting
// for it. Read synchronously and only when that message is due.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { displayTime } from '../util/display-time.js';

export function lockHolder(stateDir: string, file = 'lock'): string {
  const at = path.join(stateDir, file);
  try {
    const h = JSON.parse(readFileSync(at, 'utf8')) as { pid?: unknown; command?: unknown; since?: unknown };
    return `held by pid ${String(h.pid)} running "${String(h.command)}" since ${typeof h.since === 'string' ? displayTime(h.since) : '?'}; ${at}`;
  } catch {
    return at;
  }
}
