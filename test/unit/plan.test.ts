// planFromState (src/schedule/plan.ts): the timing decision from persisted
// state alone — which state feeds renewalTime, and when the plan is due.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { notDueText, planFromState } from '../../src/schedule/plan.js';
import { fallbackRenewalTime, jitterFor } from '../../src/schedule/renewal-time.js';
import type { CertificateConfig } from '../../src/config/schema.js';
import type { CertState, VersionMeta } from '../../src/store/state-store.js';

const DAY = 86_400_000;
const t0 = Date.UTC(2026, 10, 1);
const d = (ms: number) => new Date(t0 + ms);
const cert = { name: 'mx1', domains: ['mx1.example.test'] } as CertificateConfig;
const meta = (over: Partial<VersionMeta> = {}): { meta: VersionMeta } => ({
  meta: {
    id: 'v1',
    serial: '01',
    notBefore: d(0).toISOString(),
    notAfter: d(90 * DAY).toISOString(),
    names: ['mx1.example.test'],
    issuer: 'CN=CA',
    spkiSha256: '00',
    certId: 'aki.serial',
    keyType: 'ecdsa-p256',
    issuedAt: d(0).toISOString(),
    ...over,
  },
});
const fresh: CertState = { consecutiveFailures: 0 };
const validity = { notBefore: d(0), notAfter: d(90 * DAY) };

describe('planFromState', () => {
  it('no ARI, no failure: the fallback point with this certificate and key type’s jitter', () => {
    const p = planFromState(cert, 'ecdsa-p256', fresh, meta(), false, d(DAY));
    const at = fallbackRenewalTime(validity, jitterFor('mx1/ecdsa-p256'));
    assert.deepEqual(p, { due: false, reason: 'lifetime-fraction', at });
    assert.notEqual(planFromState(cert, 'rsa-2048', fresh, meta(), false, d(DAY)).at.getTime(), at.getTime(), 'the jitter differs per key type');
  });

  it('due exactly at the instant, not a millisecond before', () => {
    const at = planFromState(cert, 'ecdsa-p256', fresh, meta(), false, d(DAY)).at;
    assert.equal(planFromState(cert, 'ecdsa-p256', fresh, meta(), false, at).due, true);
    assert.equal(planFromState(cert, 'ecdsa-p256', fresh, meta(), false, new Date(at.getTime() - 1)).due, false);
  });

  it('nothing stored: missing, due now; forced: due now', () => {
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', fresh, undefined, false, d(DAY)), { due: true, reason: 'missing', at: d(DAY) });
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', fresh, meta(), true, d(DAY)), { due: true, reason: 'forced', at: d(DAY) });
  });

  it('the stored names are compared with the configured ones', () => {
    const p = planFromState({ ...cert, domains: ['mx1.example.test', 'mx2.example.test'] }, 'ecdsa-p256', fresh, meta(), false, d(DAY));
    assert.equal(p.reason, 'names-changed');
    // Compared as the CA does (case-insensitively, without a final dot), and either way:
    // a stored name no longer configured is a change too.
    assert.equal(planFromState(cert, 'ecdsa-p256', fresh, meta({ names: ['MX1.example.test.'] }), false, d(DAY)).reason, 'lifetime-fraction');
    assert.equal(planFromState(cert, 'ecdsa-p256', fresh, meta({ names: ['MX1.example.test', 'other.test'] }), false, d(DAY)).reason, 'names-changed');
  });

  it('a revocation applies to the version it was recorded for, not to its replacement', () => {
    const revoked = (version: string): CertState => ({ ...fresh, current: 'v2', revoked: { version, serial: '02', reason: 'keyCompromise', at: d(0).toISOString() } });
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', revoked('v2'), meta(), false, d(DAY)), { due: true, reason: 'revoked', at: d(DAY) });
    assert.equal(planFromState(cert, 'ecdsa-p256', revoked('v1'), meta(), false, d(DAY)).reason, 'lifetime-fraction');
  });

  it('ARI state applies to the certificate it was fetched for only', () => {
    const ari = { certId: 'aki.serial', fetchedAt: d(DAY).toISOString(), windowStart: d(50 * DAY).toISOString(), windowEnd: d(52 * DAY).toISOString(), chosen: d(51 * DAY).toISOString(), nextCheck: d(2 * DAY).toISOString() };
    const withAri: CertState = { ...fresh, ari };
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', withAri, meta(), false, d(DAY)), { due: false, reason: 'ari-window', at: d(51 * DAY) });
    assert.equal(planFromState(cert, 'ecdsa-p256', withAri, meta({ certId: 'other.cert' }), false, d(DAY)).reason, 'lifetime-fraction');
    assert.equal(planFromState(cert, 'ecdsa-p256', withAri, meta({ certId: undefined }), false, d(DAY)).reason, 'lifetime-fraction');
  });

  it('failures back off from the last attempt, honouring the stored Retry-After', () => {
    const failed: CertState = { consecutiveFailures: 1, last: { at: d(DAY).toISOString(), result: 'failure', error: 'x' } };
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', failed, meta(), false, d(DAY)), { due: false, reason: 'backoff', at: new Date(t0 + DAY + 60_000), failures: 1 });
    const retry = { ...failed, retryAfterUntil: d(DAY + 3_600_000).toISOString() };
    assert.deepEqual(planFromState(cert, 'ecdsa-p256', retry, meta(), false, d(DAY)).at, d(DAY + 3_600_000));
    // A count without a last attempt, or a last attempt without a count, is no failure history.
    assert.equal(planFromState(cert, 'ecdsa-p256', { consecutiveFailures: 1 }, meta(), false, d(DAY)).reason, 'lifetime-fraction');
    assert.equal(planFromState(cert, 'ecdsa-p256', { ...failed, consecutiveFailures: 0 }, meta(), false, d(DAY)).reason, 'lifetime-fraction');
  });

  it('a backoff without a failure count says no count', () => {
    const at = new Date('2026-12-07T14:00:00.000Z');
    assert.equal(notDueText({ due: false, reason: 'backoff', at }), 'not due: backing off until 2026-12-07 14:00:00Z (renew --force retries now)');
    assert.equal(notDueText({ due: false, reason: 'backoff', at, failures: 0 }), 'not due: backing off until 2026-12-07 14:00:00Z (renew --force retries now)');
    assert.equal(notDueText({ due: false, reason: 'backoff', at, failures: 2 }), 'not due: backing off after 2 failures until 2026-12-07 14:00:00Z (renew --force retries now)');
  });
});
