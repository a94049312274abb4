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
        },
      ],
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
  });
});
