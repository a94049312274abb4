// An etcd lease kept alive by us, with our own idea of how long it surely
// lives (docs/architecture.md, "Fleet", "Leader"). etcd3's own keep-alive
// reports a lost lease only after twice its TTL without contact; a leader
// must stop acting before the server can expire its lease and elect
// another, so this one counts from the moment each successful renewal was
// *sent* (the server's TTL starts later, when it receives it): the lease is
// surely alive until sent + TTL, and we stop acting a margin before that.
// Time here is monotonic (performance.now), immune to clock steps.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Lease } from 'etcd3';
import { EtcdUnavailableError, LeadershipLostError } from './errors.js';
import type { FleetEtcd } from './etcd-client.js';

/** How long before the lease's sure end we stop acting: a fifth of the TTL, at most a second. */
export function actingMargin(ttlMs: number): number {
  return Math.min(1000, Math.floor(ttlMs / 5));
}

/** Until when (monotonic ms) the holder may act, given the send time of the last renewal the server confirmed with `ttlSeconds` left. */
export function actUntil(sentAtMs: number, ttlSeconds: number, requestedTtlMs: number): number {
  return sentAtMs + ttlSeconds * 1000 - actingMargin(requestedTtlMs);
}

/** Renewals per TTL (etcd's Go client renews every TTL/3, too). */
const RENEWALS_PER_TTL = 3;

export class KeptLease extends EventEmitter {
  private until: number;
  private lostWith: LeadershipLostError | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly etcd: FleetEtcd,
    private readonly lease: Lease,
    readonly id: string,
    readonly ttlSeconds: number,
    grantSentAt: number,
  ) {
    super();
    this.until = actUntil(grantSentAt, ttlSeconds, ttlSeconds * 1000);
    this.armExpiry();
    this.scheduleRenewal();
  }

  /** Grant a lease of `ttlSeconds` and keep it alive until lost, revoked or released. */
  static async grant(etcd: FleetEtcd, ttlSeconds: number): Promise<KeptLease> {
    const sent = performance.now();
    const lease = etcd.ns.lease(ttlSeconds, { autoKeepAlive: false, deadline: new Date(Date.now() + etcd.requestTimeoutMs) });
    // etcd3 emits 'lost' on its own too; we decide loss ourselves, but an unheard 'error'-like event must not crash.
    lease.on('lost', () => undefined);
    const id = await etcd.call('grant a lease', () => lease.grant());
    return new KeptLease(etcd, lease, id, ttlSeconds, sent);
  }

  /** Whether the lease is surely alive on the server now. */
  alive(): boolean {
    return this.lostWith === undefined && performance.now() < this.until;
  }

  /** Monotonic ms until which the holder may act (performance.now() scale). */
  actUntil(): number {
    return this.until;
  }

  lost(): LeadershipLostError | undefined {
    return this.lostWith;
  }

  /** Stop renewing and revoke it on the server (keys attached to it go with it). Best effort within the request deadline. */
  async revoke(): Promise<void> {
    this.stop(new LeadershipLostError('resigned', 'the lease was revoked'), false);
    await this.etcd.call('revoke a lease', (o) => this.lease.revoke(o)).catch(() => undefined);
  }

  private stop(err: LeadershipLostError, emit: boolean): void {
    if (this.lostWith) return;
    this.lostWith = err;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    this.lease.release();
    if (emit) this.emit('lost', err);
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    const left = this.until - performance.now();
    this.expiryTimer = setTimeout(() => {
      if (performance.now() >= this.until) {
        this.stop(new LeadershipLostError('lease-expired', `lease ${this.id} could not be renewed in time (etcd unreachable or too slow); it may expire on the server any moment`), true);
      } else this.armExpiry();
    }, Math.max(0, left));
  }

  private scheduleRenewal(): void {
    const every = (this.ttlSeconds * 1000) / RENEWALS_PER_TTL;
    this.renewTimer = setTimeout(() => void this.renew(every), every);
  }

  private async renew(budgetMs: number): Promise<void> {
    if (this.lostWith) return;
    const sent = performance.now();
    try {
      const res = await this.etcd.call('renew a lease', (o) => this.lease.keepaliveOnce(o), Math.max(100, Math.floor(budgetMs)));
      if (this.lostWith) return;
      this.until = Math.max(this.until, actUntil(sent, Number(res.TTL), this.ttlSeconds * 1000));
      this.armExpiry();
    } catch (err) {
      if (err instanceof this.etcd.lib.EtcdLeaseInvalidError) {
        this.stop(new LeadershipLostError('lease-revoked', `etcd says lease ${this.id} has expired or was revoked`, { cause: err }), true);
        return;
      }
      // Unreachable for now: the expiry timer decides when that is too long.
      if (!(err instanceof EtcdUnavailableError)) this.emit('renewError', err);
    }
    if (!this.lostWith) this.scheduleRenewal();
  }
}
