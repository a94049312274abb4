// The daemon's check cadence (docs/architecture.md: `schedule`, node-cron syntax).
//
// node-cron reads the local time through Intl.DateTimeFormat, and the first
// Intl formatter maps ICU's time-zone data: ~8 MiB resident for the life of
// the process. So this module is loaded only by the daemon's short-lived
// children (config-child, pass-child); they hand the daemon the next tick as
// a timestamp, and the daemon sleeps on a plain timer (idle memory: docs/architecture.md, "The daemon and its children").
import os from 'node:os';
import cron from 'node-cron';

/** Hourly, at a minute derived from the host name, so a fleet does not hit the CA in the same second. */
export function defaultSchedule(hostname = os.hostname()): string {
  let h = 0;
  for (const c of hostname) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${h % 60} * * * *`;
}

/** The cron expression the daemon runs on. */
export function scheduleOf(config: { schedule?: string }): string {
  return config.schedule ?? defaultSchedule();
}

/** The first instant after now that `expr` matches, as node-cron would fire it. */
export function nextTick(expr: string): Date {
  // createTask does not start the task; it only gives access to node-cron's matcher.
  const task = cron.createTask(expr, () => undefined);
  try {
    return task.getNextRuns(1)[0]!;
  } finally {
    void task.destroy();
  }
}
