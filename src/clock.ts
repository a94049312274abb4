// The clock is injected everywhere a decision depends on time, so unit tests
// can drive it and integration tests compress time through config instead.

export interface Clock {
  now(): Date;
  /** Resolves after `ms` real (or fake) milliseconds. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** A clock that only moves when told to; `sleep` advances it instantly. */
export class FakeClock implements Clock {
  private t: number;
  constructor(start: Date | number) {
    this.t = typeof start === 'number' ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.t);
  }
  advance(ms: number): void {
    this.t += ms;
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }
}

/** Poll `probe` until it returns a value other than undefined, or throw at the deadline. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; maxIntervalMs?: number; what: string; clock?: Clock },
): Promise<T> {
  const clock = opts.clock ?? systemClock;
  const deadline = clock.now().getTime() + opts.timeoutMs;
  let interval = opts.intervalMs ?? 25;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (clock.now().getTime() >= deadline) {
      const reason = lastErr instanceof Error ? `: last error: ${lastErr.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}${reason}`, { cause: lastErr });
    }
    await clock.sleep(interval);
    interval = Math.min(interval * 2, opts.maxIntervalMs ?? 500);
  }
}
