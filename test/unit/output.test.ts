// What mxcert prints for people: one time display, one-line text log lines,
// errors without stack traces below debug level, wait announcements, the
// daemon's next wake-up, result lines and the text helpers of `status`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, defaultFormat, formattedSink, HeldLog, textMessage, type LogSink } from '../../src/log.js';
import { logFormatEnvProblem } from '../../src/cli/main.js';
import { displayTime, displayTimesIn } from '../../src/util/display-time.js';
import { announceWait } from '../../src/util/announce-wait.js';
import { nextWakeUp } from '../../src/daemon/run.js';
import { resultText } from '../../src/cli/renew.js';
import { oneLine, withoutStep, wrap } from '../../src/cli/text.js';
import type { UnitOutcome } from '../../src/renew/orchestrator.js';

class Lines implements LogSink {
  lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  json(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

describe('time display', () => {
  it('is UTC with the date and Z, whatever the input', () => {
    assert.equal(displayTime(new Date('2026-12-07T23:50:24.073Z')), '2026-12-07 23:50:24Z');
    assert.equal(displayTime('2026-12-07T23:50:24.073Z'), '2026-12-07 23:50:24Z');
    assert.equal(displayTime(Date.UTC(2026, 0, 2, 3, 4, 5)), '2026-01-02 03:04:05Z');
    assert.equal(displayTime('not a time'), 'not a time');
  });

  it('rewrites ISO instants inside composed text, nothing else', () => {
    assert.equal(
      displayTimesIn('backing off until 2026-12-07T23:50:24.073Z, then 2026-12-08T00:00:00Z; serial 2026-12'),
      'backing off until 2026-12-07 23:50:24Z, then 2026-12-08 00:00:00Z; serial 2026-12',
    );
  });
});

describe('text log lines', () => {
  it('name the certificate first, then the message, then key=value fields with times shown the same way', () => {
    const line = textMessage({ level: 30, time: 1, pid: 1, hostname: 'h', cert: 'mx1', keyType: 'ecdsa-p256', msg: 'not due', renewAt: '2026-12-10T01:11:00.000Z', reason: 'lifetime-fraction', files: ['/a b', '/c'] });
    assert.equal(line, 'mx1 (ecdsa-p256): not due renewAt=2026-12-10 01:11:00Z reason=lifetime-fraction files="/a b",/c');
  });

  it('name a hook and its stream; a field the message already says is not repeated', () => {
    assert.equal(textMessage({ cert: 'mx1', keyType: 'rsa-2048', hook: '/usr/lib/mxcert/hooks/postfix-reload', stream: 'stderr', msg: 'fatal: not running' }), 'mx1 (rsa-2048): hook /usr/lib/mxcert/hooks/postfix-reload (stderr): fatal: not running');
    assert.equal(textMessage({ msg: 'waiting for 127.0.0.1:25 to serve the new certificate', endpoint: '127.0.0.1:25' }), 'waiting for 127.0.0.1:25 to serve the new certificate');
  });

  it('through pino-pretty: one line, the time as displayTime, no pid or host', () => {
    const out = new Lines();
    const log = createLogger({ level: 'info', sink: formattedSink('text', out) });
    log.child({ cert: 'mx1', keyType: 'ecdsa-p256' }).info({ serial: 'ab12' }, 'renewed and verified');
    assert.equal(out.lines.length, 1);
    assert.match(out.lines[0]!, /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z\] INFO: mx1 \(ecdsa-p256\): renewed and verified serial=ab12\n$/);
  });
});

describe('errors in log lines', () => {
  const err = new Error('cleanup failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:53') });

  it('below debug: one line with the causes, no stack trace', () => {
    const out = new Lines();
    createLogger({ level: 'info', sink: out }).warn({ err }, 'challenge cleanup failed');
    const [line] = out.json();
    assert.equal(line!.err, 'cleanup failed: caused by: connect ECONNREFUSED 127.0.0.1:53');
    assert.doesNotMatch(out.lines[0]!, /\bat .*\.(js|ts):\d+/);
  });

  it('at debug: the stack trace too, printed on indented lines in text', () => {
    const out = new Lines();
    createLogger({ level: 'debug', sink: out }).warn({ err }, 'challenge cleanup failed');
    assert.match(String((out.json()[0]!.err as { stack: string }).stack), /\n\s+at /);
    const text = new Lines();
    createLogger({ level: 'debug', sink: formattedSink('text', text) }).warn({ err }, 'challenge cleanup failed');
    assert.match(text.lines[0]!, /challenge cleanup failed err="cleanup failed: connect ECONNREFUSED 127.0.0.1:53"\n {4}Error: cleanup failed\n {8}at /);
  });
});

describe('the output format', () => {
  it('text on a terminal, JSON lines otherwise, unless --format (passed on as MXCERT_LOG_FORMAT) says', () => {
    assert.equal(defaultFormat(true, {}), 'text');
    assert.equal(defaultFormat(false, {}), 'json');
    assert.equal(defaultFormat(undefined, {}), 'json');
    assert.equal(defaultFormat(true, { MXCERT_LOG_FORMAT: 'json' }), 'json');
    assert.equal(defaultFormat(false, { MXCERT_LOG_FORMAT: 'text' }), 'text');
  });

  it('a bad MXCERT_LOG_FORMAT is a usage problem naming the choices', () => {
    assert.equal(logFormatEnvProblem({}), undefined);
    assert.equal(logFormatEnvProblem({ MXCERT_LOG_FORMAT: 'text' }), undefined);
    assert.match(logFormatEnvProblem({ MXCERT_LOG_FORMAT: 'yaml' })!, /MXCERT_LOG_FORMAT="yaml" is not an output format; use one of text, json/);
  });
});

describe('held log lines (renew --quiet)', () => {
  it('keeps lines and the worst level until released', () => {
    const held = new HeldLog();
    const log = createLogger({ level: 'info', sink: held });
    log.info('not due');
    assert.equal(held.worst, 30);
    log.warn('ARI lookup failed');
    assert.equal(held.worst, 40);
    const out = new Lines();
    held.release(out);
    assert.deepEqual(out.json().map((l) => l.msg), ['not due', 'ARI lookup failed']);
    held.release(out);
    assert.equal(out.lines.length, 2, 'released once');
  });
});

describe('announceWait', () => {
  it('says once, after 2 s, what it waits for and until when; not at all when the wait ends first', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const out = new Lines();
    const log = createLogger({ level: 'info', sink: out });
    const until = new Date('2026-12-07T23:50:54.000Z');
    let phase = 'the connection';
    const stop = announceWait(log, () => phase, until);
    phase = 'the TLS handshake';
    t.mock.timers.tick(1999);
    assert.equal(out.lines.length, 0);
    t.mock.timers.tick(1);
    assert.deepEqual(out.json().map((l) => [l.msg, l.until]), [['waiting for the TLS handshake until 2026-12-07 23:50:54Z', until.toISOString()]]);
    t.mock.timers.tick(60_000);
    stop();
    assert.equal(out.lines.length, 1);

    const early = announceWait(log, 'the state lock', until);
    t.mock.timers.tick(1000);
    early();
    t.mock.timers.tick(5000);
    assert.equal(out.lines.length, 1);
  });
});

describe("the daemon's next wake-up", () => {
  const now = Date.UTC(2026, 11, 7, 12, 0, 0);
  it('is the due timer or the cron tick, whichever comes first, with why', () => {
    assert.deepEqual(nextWakeUp({ wakeAt: now + 60_000, wakeWhy: 'mx1 (ecdsa-p256): renewal (ari-window)', nextTickAt: now + 3_600_000 }, now, 60_000, '17 * * * *', 0), {
      at: now + 60_000,
      why: 'mx1 (ecdsa-p256): renewal (ari-window)',
    });
    assert.deepEqual(nextWakeUp({ wakeAt: now + 7_200_000, wakeWhy: 'x', nextTickAt: now + 3_600_000 }, now, 7_200_000, '17 * * * *', 0), {
      at: now + 3_600_000,
      why: 'scheduled check (17 * * * *)',
    });
    assert.deepEqual(nextWakeUp({ wakeAt: null, nextTickAt: now + 3_600_000 }, now, undefined, '17 * * * *', 0), { at: now + 3_600_000, why: 'scheduled check (17 * * * *)' });
  });

  it('after failed passes: the retry', () => {
    assert.deepEqual(nextWakeUp({}, now, 120_000, '17 * * * *', 2), { at: now + 120_000, why: 'retry after 2 failed passes' });
    assert.equal(nextWakeUp({}, now, undefined, '17 * * * *', 0), undefined);
  });
});

describe('result lines', () => {
  const plan = { due: true, reason: 'forced' as const, at: new Date('2026-12-07T23:50:24.000Z') };
  it('name the failed step once, on one line', () => {
    const r: UnitOutcome = { cert: 'mx1', keyType: 'ecdsa-p256', status: 'failed', plan, step: 'obtain', error: 'obtain: newOrder failed [rateLimited]:\ntoo many', code: 'acme' };
    assert.equal(oneLine(resultText(r)), 'mx1 (ecdsa-p256): FAILED at obtain: newOrder failed [rateLimited]: too many');
  });

  it('show times like everything else', () => {
    const r: UnitOutcome = { cert: 'mx1', keyType: 'ecdsa-p256', status: 'renewed', plan, serial: 'ab', notAfter: '2026-12-13T00:51:47.000Z' };
    assert.equal(resultText(r), 'mx1 (ecdsa-p256): renewed, serial ab, valid until 2026-12-13 00:51:47Z\n');
    const n: UnitOutcome = { cert: 'mx1', keyType: 'ecdsa-p256', status: 'not-due', plan: { ...plan, reason: 'ari-window' } };
    assert.equal(resultText(n), 'mx1 (ecdsa-p256): not due; renews at 2026-12-07 23:50:24Z (ari-window)\n');
  });
});

describe('status text helpers', () => {
  it('withoutStep drops only a leading "step: "', () => {
    assert.equal(withoutStep('hooks: hook x failed', 'hooks'), 'hook x failed');
    assert.equal(withoutStep('hook x failed', 'hooks'), 'hook x failed');
    assert.equal(withoutStep('renewal pass failed: x', null), 'renewal pass failed: x');
  });

  it('wrap keeps every line within the width, indents continuations, cuts only a word longer than a line', () => {
    const text = 'hook /usr/lib/mxcert/hooks/postfix-reload exited with code 1: postfix/postfix-script: fatal: the Postfix mail system is not running (previous files restored)';
    const lines = wrap(text, 60, 16, 44);
    assert.ok(lines.every((l) => l.length <= 60), lines.join('\n'));
    assert.ok(lines[0]!.length <= 44);
    assert.ok(lines.slice(1).every((l) => l.startsWith(' '.repeat(16)) && l[16] !== ' '));
    assert.equal(lines.map((l) => l.trim()).join(' '), text);
    assert.deepEqual(wrap('x'.repeat(25), 20, 10), ['x'.repeat(20), `${' '.repeat(10)}${'x'.repeat(5)}`]);
    assert.deepEqual(wrap('', 20, 2), ['']);
  });
});

