// Prometheus metrics of the daemon. Two sources, kept apart:
// - gauges are a snapshot of stateDir (the current version's validity, the
//   plan, the DANE journal, the last result), rebuilt after every pass, so they
//   also reflect work done by `mxcert renew` between passes;
// - counters count the outcomes of the daemon's own passes (they start at 0
//   with the process, as Prometheus counters do).
// Only the daemon loads this module, and only when `metrics` is configured.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { CertificateConfig, Config } from '../config/schema.js';
import type { UnitOutcome } from '../renew/orchestrator.js';
import { planFromState } from '../schedule/plan.js';
import { configFingerprint } from '../schedule/config-fingerprint.js';
import { StateStore, type CertState } from '../store/state-store.js';
import { PHASES, phaseName } from '../dane/phases.js';
import { fleetSamples, type FleetUnitView } from './fleet-samples.js';

/** Every phase of the DANE machine, for the enum-style gauge. */
export const DANE_PHASES = PHASES;

/** The orchestrator's named steps; failure series start at 0 for each, so rate() works from the first failure. */
export const FAILURE_STEPS = ['obtain', 'validate', 'deploy', 'hooks', 'verify'] as const;

const UNIT = ['cert', 'key_type'] as const;
const FLEET_UNIT = ['cert', 'key_type', 'member'] as const;

interface UnitSnapshot {
  cert: string;
  keyType: string;
  notBefore?: number;
  notAfter?: number;
  nextRenewal: number;
  reason: string;
  consecutiveFailures: number;
  danePhase?: string;
  liveCheck?: 0 | 1;
}

const seconds = (iso: string | Date): number => (typeof iso === 'string' ? Date.parse(iso) : iso.getTime()) / 1000;
const unitKey = (cert: string, keyType: string): string => `${cert}\0${keyType}`;

export class MxcertMetrics {
  readonly registry = new Registry();
  private readonly expiry: Gauge<(typeof UNIT)[number]>;
  private readonly notBefore: Gauge<(typeof UNIT)[number]>;
  private readonly nextRenewal: Gauge<(typeof UNIT)[number] | 'reason'>;
  private readonly consecutiveFailures: Gauge<(typeof UNIT)[number]>;
  private readonly danePhase: Gauge<(typeof UNIT)[number] | 'phase'>;
  private readonly liveCheck: Gauge<(typeof UNIT)[number]>;
  private readonly lastPass: Gauge<string>;
  private readonly attempts: Counter<(typeof UNIT)[number]>;
  private readonly successes: Counter<(typeof UNIT)[number]>;
  private readonly failures: Counter<(typeof UNIT)[number] | 'step'>;
  private readonly passes: Counter<'result'>;
  private readonly fleetRetireWaiting: Gauge<(typeof FLEET_UNIT)[number]>;
  private readonly fleetLastVerified: Gauge<(typeof FLEET_UNIT)[number]>;
  private readonly fleetEtcdUp: Gauge<string>;
  /** Last known live-check result per unit: survives passes whose failure happened before verification. */
  private readonly liveKnown = new Map<string, 0 | 1>();

  constructor(opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const unitGauge = (name: string, help: string) => new Gauge({ name, help, labelNames: UNIT, registers });
    this.expiry = unitGauge('mxcert_certificate_expiry_timestamp_seconds', 'notAfter of the current certificate, as a Unix timestamp');
    this.notBefore = unitGauge('mxcert_certificate_not_before_timestamp_seconds', 'notBefore of the current certificate, as a Unix timestamp');
    this.nextRenewal = new Gauge({
      name: 'mxcert_next_renewal_timestamp_seconds',
      help: 'When the next renewal attempt is planned, as a Unix timestamp; reason: ari-window, lifetime-fraction, emergency, backoff, missing, names-changed',
      labelNames: [...UNIT, 'reason'],
      registers,
    });
    this.consecutiveFailures = unitGauge('mxcert_consecutive_failures', 'Failed attempts since the last successful renewal');
    this.danePhase = new Gauge({
      name: 'mxcert_dane_phase',
      help: 'DANE rollover phase: 1 for the current phase, 0 for the others (for every certificate with a DANE journal, DANE on or off)',
      labelNames: [...UNIT, 'phase'],
      registers,
    });
    this.liveCheck = unitGauge('mxcert_live_check_success', 'Whether the last live STARTTLS verification after a deploy saw the new certificate (1) or not (0); absent when unknown');
    this.lastPass = new Gauge({ name: 'mxcert_last_pass_timestamp_seconds', help: 'When the daemon last finished a pass, as a Unix timestamp', registers });
    this.attempts = new Counter({ name: 'mxcert_renewal_attempts_total', help: 'Renewal attempts made by this daemon', labelNames: UNIT, registers });
    this.successes = new Counter({ name: 'mxcert_renewal_successes_total', help: 'Renewals deployed and verified by this daemon', labelNames: UNIT, registers });
    this.failures = new Counter({
      name: 'mxcert_renewal_failures_total',
      help: 'Failed renewal attempts by this daemon; step: the pipeline step that failed (obtain, validate, deploy, hooks, verify, ...)',
      labelNames: [...UNIT, 'step'],
      registers,
    });
    this.passes = new Counter({
      name: 'mxcert_passes_total',
      help: 'Passes of the daemon; result: completed (every certificate was looked at) or error (the pass itself failed, e.g. lock or config)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['completed', 'error']) this.passes.inc({ result }, 0);
    this.fleetRetireWaiting = new Gauge({
      name: 'mxcert_fleet_retire_waiting_since_timestamp_seconds',
      help: 'Fleet DANE: the retire of the old key waits for this member (it does not report serving the current key, verified since the swap); the value is when the wait began (the swap), as a Unix timestamp',
      labelNames: FLEET_UNIT,
      registers,
    });
    this.fleetLastVerified = new Gauge({
      name: 'mxcert_fleet_member_last_verified_timestamp_seconds',
      help: 'Fleet: when the member last verified live what it serves, from its report in etcd, as a Unix timestamp',
      labelNames: FLEET_UNIT,
      registers,
    });
    this.fleetEtcdUp = new Gauge({ name: 'mxcert_fleet_etcd_up', help: 'Fleet: whether the last refresh could read the fleet state from etcd (1) or not (0); the fleet gauges keep their last values while 0', registers });
  }

  /** The fleet gauges from what was read from etcd, or the error that kept it from being read. */
  setFleet(read: readonly FleetUnitView[] | Error): void {
    this.fleetEtcdUp.set(read instanceof Error ? 0 : 1);
    if (read instanceof Error) return;
    const { retireWaiting, lastVerified } = fleetSamples(read);
    this.fleetRetireWaiting.reset();
    this.fleetLastVerified.reset();
    for (const x of retireWaiting) this.fleetRetireWaiting.set({ cert: x.cert, key_type: x.keyType, member: x.member }, x.value);
    for (const x of lastVerified) this.fleetLastVerified.set({ cert: x.cert, key_type: x.keyType, member: x.member }, x.value);
  }

  /** Count one pass's outcomes (undefined: the pass failed before it looked at any certificate). */
  recordPass(outcomes: readonly UnitOutcome[] | undefined, at: Date): void {
    this.lastPass.set(seconds(at));
    this.passes.inc({ result: outcomes ? 'completed' : 'error' });
    for (const o of outcomes ?? []) {
      const labels = { cert: o.cert, key_type: o.keyType };
      if (o.status === 'renewed') {
        this.attempts.inc(labels);
        this.successes.inc(labels);
      } else if (o.status === 'failed') {
        this.attempts.inc(labels);
        this.failures.inc({ ...labels, step: o.step });
      }
    }
  }

  /** Rebuild the gauges from stateDir (and etcd, for a fleet) for the configured certificates. */
  async refresh(config: Config, now: Date): Promise<void> {
    // A fleet's state lives in etcd; the client is loaded only for a fleet.
    if (config.fleet && config.certificates.some((c) => c.fleet)) {
      const { readFleetUnits } = await import('./fleet-read.js');
      this.setFleet(await readFleetUnits(config).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))));
    }
    const store = new StateStore(config.stateDir);
    const snapshots: UnitSnapshot[] = [];
    for (const cert of config.certificates) {
      for (const keyType of cert.keys) snapshots.push(await this.snapshot(store, cert, keyType, now, configFingerprint(config.acme, cert, keyType)));
    }
    // Everything is read first and swapped in without an await in between,
    // so a scrape never sees a half-rebuilt set (or a certificate removed from
    // the config as still present).
    for (const g of [this.expiry, this.notBefore, this.nextRenewal, this.consecutiveFailures, this.danePhase, this.liveCheck]) g.reset();
    for (const s of snapshots) {
      const labels = { cert: s.cert, key_type: s.keyType };
      if (s.notAfter !== undefined) this.expiry.set(labels, s.notAfter);
      if (s.notBefore !== undefined) this.notBefore.set(labels, s.notBefore);
      this.nextRenewal.set({ ...labels, reason: s.reason }, s.nextRenewal);
      this.consecutiveFailures.set(labels, s.consecutiveFailures);
      if (s.danePhase) for (const phase of DANE_PHASES) this.danePhase.set({ ...labels, phase }, phase === s.danePhase ? 1 : 0);
      if (s.liveCheck !== undefined) this.liveCheck.set(labels, s.liveCheck);
      this.attempts.inc(labels, 0);
      this.successes.inc(labels, 0);
      for (const step of FAILURE_STEPS) this.failures.inc({ ...labels, step }, 0);
    }
  }

  private async snapshot(store: StateStore, cert: CertificateConfig, keyType: CertificateConfig['keys'][number], now: Date, fingerprint: string): Promise<UnitSnapshot> {
    const state = await store.readState(cert.name, keyType);
    const current = state.current ? await store.loadVersion(cert.name, keyType, state.current) : undefined;
    const plan = planFromState(cert, keyType, state, current, false, now, fingerprint);
    return {
      cert: cert.name,
      keyType,
      notBefore: current ? seconds(current.meta.notBefore) : undefined,
      notAfter: current ? seconds(current.meta.notAfter) : undefined,
      nextRenewal: seconds(plan.at),
      reason: plan.reason,
      consecutiveFailures: state.consecutiveFailures,
      // Whenever a journal exists: with DANE off, records may still be published until `mxcert dane retire`.
      danePhase: await readDanePhase(store, cert.name, keyType),
      liveCheck: this.liveCheckFrom(cert, keyType, state),
    };
  }

  /**
   * A success means the live check passed (when one is configured); a failure
   * at the verify step means it did not. A failure before verification says
   * nothing new, so the last known value stays.
   */
  private liveCheckFrom(cert: CertificateConfig, keyType: string, state: CertState): 0 | 1 | undefined {
    const key = unitKey(cert.name, keyType);
    const checked = cert.verify.smtp.length > 0 || Boolean(cert.dane?.enabled);
    if (checked && state.last?.result === 'success') this.liveKnown.set(key, 1);
    else if (state.last?.result === 'failure' && state.last.step === 'verify') this.liveKnown.set(key, 0);
    return this.liveKnown.get(key);
  }

  contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The rollover journal's phase, read directly (the DANE machinery stays unloaded). */
async function readDanePhase(store: StateStore, name: string, keyType: string): Promise<string | undefined> {
  try {
    const j = JSON.parse(await readFile(path.join(store.certDir(name, keyType), 'dane', 'journal.json'), 'utf8')) as { phase?: unknown };
    return phaseName(j.phase);
  } catch {
    return undefined;
  }
}
