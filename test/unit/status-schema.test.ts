// docs/status.schema.json is hand-written; its enums must follow the code's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { KEY_TYPES } from '../../src/config/schema.js';
import { RENEWAL_REASONS } from '../../src/schedule/renewal-time.js';
import { PHASES } from '../../src/dane/phases.js';
import { STATUS_SCHEMA_PATH, assertStatusSchema } from '../support/status-schema.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const schema = JSON.parse(readFileSync(STATUS_SCHEMA_PATH, 'utf8')) as Obj;
const row = schema.properties.certificates.items.properties as Obj;

describe('docs/status.schema.json', () => {
  it('its enums are the code’s: key types, renewal reasons, DANE phases', () => {
    assert.deepEqual([...row.keyType.enum].sort(), [...KEY_TYPES].sort());
    assert.deepEqual([...row.nextRenewalReason.enum].sort(), [...RENEWAL_REASONS].sort());
    assert.deepEqual([...row.dane.oneOf[1].properties.phase.enum].sort(), [...PHASES].sort());
  });

  it('rejects a document that breaks the contract (a missing field, an unknown phase, a stray key)', () => {
    const good = {
      schemaVersion: 1,
      generatedAt: '2026-11-23T00:00:00.000Z',
      certificates: [
        {
          cert: 'mx1', keyType: 'ecdsa-p256', domains: ['mx1.example.com'], serial: 'ab', notBefore: null, notAfter: null,
          nextRenewal: '2026-11-23T00:00:00.000Z', nextRenewalReason: 'missing', lastResult: null, lastAt: null, lastError: null,
          consecutiveFailures: 0, ari: null, backoffUntil: null,
          dane: { phase: 'STEADY', holdUntil: null, currentTlsa: 'a'.repeat(64), nextTlsa: 'b'.repeat(64), rolloverRequested: false, lastError: null },
          certNames: ['mx1.example.com', 'mx2.example.com'], namesDiffer: true,
          staged: { serial: 'cd', notAfter: '2026-12-23T00:00:00.000Z', issuedAt: '2026-11-23T00:00:00.000Z' },
          pendingCleanups: [{ owner: '_acme-challenge.mx1.example.com.', since: '2026-11-23T00:00:00.000Z', attempts: 1, lastError: 'cannot reach 127.0.0.1:53' }],
        },
      ],
      pendingCleanups: [{ owner: '_acme-challenge.mx1.example.com.', since: '2026-11-23T00:00:00.000Z', attempts: 1, lastError: 'cannot reach 127.0.0.1:53' }],
    };
    assertStatusSchema(good);
    const bad = (f: (d: Obj) => void) => {
      const d = structuredClone(good) as Obj;
      f(d);
      assert.throws(() => assertStatusSchema(d));
    };
    bad((d) => delete d.certificates[0].serial);
    bad((d) => (d.certificates[0].dane.phase = 'SOMETHING'));
    bad((d) => (d.certificates[0].extra = 1));
    bad((d) => (d.schemaVersion = 2));
    bad((d) => (d.pendingCleanups = 'none'));
    bad((d) => (d.certificates[0].staged = { serial: 'cd' }));
    bad((d) => (d.pendingCleanups[0].value = 'secret-ish'));
  });

  it('takes the fields added within schemaVersion 1 (lastStep, outputs, configProblems; a document without the newest ones too), and checks their shape', () => {
    const doc = {
      schemaVersion: 1,
      generatedAt: '2026-11-23T00:00:00.000Z',
      configProblems: [{ path: 'certificates[0].challenge.dns.tsig.secretFile', message: 'cannot read /etc/mxcert/tsig.key: no such file or directory' }],
      certificates: [
        {
          cert: 'mx1', keyType: 'rsa-2048', domains: ['mx1.example.com'], serial: 'ab', notBefore: null, notAfter: null,
          nextRenewal: '2026-11-23T00:00:00.000Z', nextRenewalReason: 'backoff', lastResult: 'failure', lastAt: '2026-11-22T23:00:00.000Z',
          lastError: 'hooks: hook /usr/lib/mxcert/hooks/postfix-reload exited with code 1', lastStep: 'hooks',
          consecutiveFailures: 1, ari: null, backoffUntil: '2026-11-23T00:00:00.000Z', dane: null,
          outputs: { combined: '/etc/postfix/tls/mx1-rsa-2048.pem', fullchain: '/etc/postfix/tls/mx1-rsa-2048.fullchain.pem' },
        },
      ],
    };
    assertStatusSchema(doc);
    const bad = (f: (d: Obj) => void) => {
      const d = structuredClone(doc) as Obj;
      f(d);
      assert.throws(() => assertStatusSchema(d));
    };
    bad((d) => delete d.configProblems[0].message);
    bad((d) => (d.configProblems = 'none'));
    bad((d) => (d.certificates[0].outputs.pem = '/x'));
    bad((d) => (d.certificates[0].outputs.combined = 1));
    bad((d) => (d.certificates[0].lastStep = 3));
  });
});
