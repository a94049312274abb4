// One job, run again and again on request, never twice at once, and never
// more often than needed: every request made while a run is going on is
// answered by one more run that starts after that run ends. A caller that
// changed something the job reads therefore always gets a run that saw its
// change, and a thousand callers in one pass cost as many runs as fit in the
// pass, not a thousand (the SNI tables: docs/architecture.md, "SNI tables").

export class SingleFlight {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly job: () => Promise<void>) {}

  /** Settles like the first run of the job that starts after this call. */
  request(): Promise<void> {
    // A run already waiting to start has not read anything yet: it serves this caller too.
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    // The running job may have read the state before the caller changed it:
    // join (or set up) the run after it.
    this.queued ??= this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    return this.queued;
  }

  private startQueued(): Promise<void> {
    this.queued = undefined;
    return this.start();
  }

  private start(): Promise<void> {
    const run = (async () => this.job())().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }
}
