// The DANE tests' independent watcher (test/support/dane-watcher.ts) must not
// be able to pass blind: a dig that timed out is an error, not an empty
// RRset; an answer without AA proves nothing; the window follows the TTL the
// RRset was served with; gaps between samples are measured.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findViolations, longestGap, parseDigAnswer, type WatchSample } from '../support/dane-watcher.js';

const OWNER = '_25._tcp.mx1.example.test';
const H1 = 'ab'.repeat(32);
const H2 = 'cd'.repeat(32);

const answer = (flags: string, status: string, lines: string[]) => `; <<>> DiG 9.18 <<>> @127.0.0.1 -p 5300 +norec TLSA ${OWNER}
; (1 server found)
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: ${status}, id: 4242
;; flags: ${flags}; QUERY: 1, ANSWER: ${lines.length}, AUTHORITY: 0, ADDITIONAL: 1

;; QUESTION SECTION:
;${OWNER}.		IN	TLSA

;; ANSWER SECTION:
${lines.join('\n')}

;; Query time: 0 msec
`;

describe('parseDigAnswer', () => {
  it('reads the 3 1 1 hashes and the RRset’s TTL from an authoritative answer', () => {
    const out = answer('qr aa', 'NOERROR', [`${OWNER}. 8 IN TLSA 3 1 1 ${H1.toUpperCase()}`, `${OWNER}.\t8\tIN\tTLSA\t3 1 1 ${H2}`, `${OWNER}. 8 IN TLSA 2 1 1 ${H2}`]);
    assert.deepEqual(parseDigAnswer(OWNER, out, 0), { ok: true, hashes: [H1, H2], ttl: 8 });
  });

  it('NXDOMAIN and NODATA are answers: nothing there', () => {
    assert.deepEqual(parseDigAnswer(OWNER, answer('qr aa', 'NXDOMAIN', []), 0), { ok: true, hashes: [] });
    assert.deepEqual(parseDigAnswer(OWNER, answer('qr aa', 'NOERROR', []), 0), { ok: true, hashes: [] });
  });

  it('a timeout is an error, not an empty RRset', () => {
    const out = `; <<>> DiG 9.18 <<>> @127.0.0.1 -p 5300 +norec TLSA ${OWNER}\n; (1 server found)\n;; global options: +cmd\n;; connection timed out; no servers could be reached\n`;
    const v = parseDigAnswer(OWNER, out, 9);
    assert.equal(v.ok, false);
    assert.match((v as { message: string }).message, /no reply \(dig exit 9\): ;; connection timed out/);
  });

  it('an answer without the AA bit, or SERVFAIL, is an error', () => {
    assert.equal(parseDigAnswer(OWNER, answer('qr', 'NOERROR', [`${OWNER}. 8 IN TLSA 3 1 1 ${H1}`]), 0).ok, false);
    assert.equal(parseDigAnswer(OWNER, answer('qr aa', 'SERVFAIL', []), 0).ok, false);
  });
});

describe('findViolations', () => {
  const t0 = 1_000_000;
  const dns = (t: number, ttl: number | undefined, ...h: string[]): WatchSample => ({ t, kind: 'dns', server: 'ns', hashes: h, ...(ttl ? { ttl } : {}) });
  const served = (t: number, h: string): WatchSample => ({ t, kind: 'served', family: 'any', hashes: [h] });

  it('flags a served key missing from an RRset seen within 2 × TTL, and only then', () => {
    assert.equal(findViolations([dns(t0, 2, 'a'), dns(t0 + 500, 2, 'a', 'b'), served(t0 + 1000, 'b')], 2).length, 1);
    assert.deepEqual(findViolations([dns(t0, 2, 'a'), dns(t0 + 500, 2, 'a', 'b'), served(t0 + 4001, 'b')], 2), []);
    assert.deepEqual(findViolations([dns(t0, undefined), served(t0 + 1, 'b')], 2), [], 'an empty answer constrains nothing');
  });

  it('the window is 2 × the TTL the RRset was served with, when that is longer', () => {
    // Served 10 s after a TTL-8 RRset without it: caches may hold that set for 8 s, the window is 16 s.
    assert.equal(findViolations([dns(t0, 8, 'f'), served(t0 + 10_000, 'b')], 2).length, 1);
    assert.deepEqual(findViolations([dns(t0, 8, 'f'), served(t0 + 16_001, 'b')], 2), []);
  });
});

describe('longestGap', () => {
  it('is the longest stretch between consecutive instants, start and stop included', () => {
    assert.deepEqual(longestGap('x', [0, 100, 2600, 2700]), { target: 'x', maxGapMs: 2500, at: 100 });
    assert.deepEqual(longestGap('x', [0, 5000]), { target: 'x', maxGapMs: 5000, at: 0 }, 'no sample at all: the whole run is one gap');
  });
});
