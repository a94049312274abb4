// The RFC 2136 answer parser and TSIG verifier (src/dns/update-wire.ts) on
// real BIND answers (dns-fixtures.ts): it accepts them, checks Time Signed
// against the clock (RFC 8945 §5.2.3), and on any malformed or tampered
// answer throws a DnsAnswerError naming the problem — never a RangeError or
// TypeError, and never "verified" for bytes the MAC does not cover.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import fc from 'fast-check';
import { DnsAnswerError, nameWire, parseUpdateAnswer, type AnswerProblem, type UpdateAnswer } from '../../src/dns/update-wire.js';
import { DnsUpdateError, explainRcode, Rfc2136Updater } from '../../src/dns/rfc2136.js';
import { decodeReply, describeResponse, soaSerial, toDnsResponse, txtValues } from '../../src/dns/query.js';
import { DnsError } from '../../src/errors.js';
import { QUERY_ANSWERS, TSIG_KEY, UPDATE_ANSWERS, type CapturedUpdateAnswer } from './dns-fixtures.js';

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u48 = (n: number): Buffer => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};

function parse(c: CapturedUpdateAnswer, answer = c.answer, nowMs = c.sentAt * 1000): UpdateAnswer {
  return parseUpdateAnswer(answer, c.id, c.requestMac, { ...TSIG_KEY, name: c.keyName }, nowMs);
}

function throwsProblem(fn: () => unknown, problem: AnswerProblem, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DnsAnswerError, `expected DnsAnswerError, got ${String(err)}`);
    assert.equal(err.problem, problem, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** Offset of the TSIG record in a captured answer: the last record, after the zone section (no other records in these). */
function tsigStart(answer: Buffer): number {
  let off = 12;
  while (answer[off] !== 0) off += answer[off]! + 1;
  return off + 1 + 4;
}

/**
 * Sign an answer as a server does (RFC 8945 §4.3): HMAC over the request
 * MAC, the message without TSIG, and the TSIG variables; then append the
 * TSIG record and count it in ARCOUNT. Checked below against BIND's own MAC.
 */
function signAnswer(unsigned: Buffer, requestMac: Buffer, timeSigned: number, fudge = 300): Buffer {
  const alg = nameWire('hmac-sha256.');
  const owner = nameWire(TSIG_KEY.name);
  const variables = Buffer.concat([owner, u16(255), Buffer.alloc(4), alg, u48(timeSigned), u16(fudge), u16(0), u16(0)]);
  const mac = createHmac('sha256', Buffer.from(TSIG_KEY.secret, 'base64')).update(u16(requestMac.length)).update(requestMac).update(unsigned).update(variables).digest();
  const rdata = Buffer.concat([alg, u48(timeSigned), u16(fudge), u16(mac.length), mac, unsigned.subarray(0, 2), u16(0), u16(0)]);
  const out = Buffer.concat([unsigned, owner, u16(250), u16(255), Buffer.alloc(4), u16(rdata.length), rdata]);
  out.writeUInt16BE(unsigned.readUInt16BE(10) + 1, 10);
  return out;
}

/** The NOERROR answer without its TSIG record: what the server signed. */
function unsignedNoerror(): Buffer {
  const a = UPDATE_ANSWERS.noerror.answer;
  const u = Buffer.from(a.subarray(0, tsigStart(a)));
  u.writeUInt16BE(0, 10);
  return u;
}

describe('parseUpdateAnswer on real BIND answers', () => {
  it('accepts each as BIND meant it', () => {
    assert.deepEqual(parse(UPDATE_ANSWERS.noerror), { rcode: 'NOERROR', tsigError: undefined });
    assert.deepEqual(parse(UPDATE_ANSWERS.refused), { rcode: 'REFUSED', tsigError: undefined });
    assert.deepEqual(parse(UPDATE_ANSWERS.badkey), { rcode: 'NOTAUTH', tsigError: 'BADKEY' });
    assert.deepEqual(parse(UPDATE_ANSWERS.badsig), { rcode: 'NOTAUTH', tsigError: 'BADSIG' });
  });

  it('the test signer reproduces BIND\'s MAC (so answers it signs below are what BIND would send)', () => {
    const c = UPDATE_ANSWERS.noerror;
    assert.deepEqual(signAnswer(unsignedNoerror(), c.requestMac, c.sentAt), c.answer);
  });

  it('TSIG time: accepted within ±fudge of the clock, BADTIME outside it', () => {
    const c = UPDATE_ANSWERS.noerror;
    const t = c.sentAt * 1000;
    parse(c, c.answer, t + 300_999);
    parse(c, c.answer, t - 300_000);
    throwsProblem(() => parse(c, c.answer, t + 301_000), 'time', /^TSIG time of answer 2026-12-07T\S+Z is outside ±300 s of local time \S+ \(BADTIME/);
    throwsProblem(() => parse(c, c.answer, t - 301_000), 'time', /outside ±300 s of local time/);
    // A signed refusal is checked too; an unsigned BADKEY/BADSIG answer has no time to check.
    throwsProblem(() => parse(UPDATE_ANSWERS.refused, undefined, t + 3_600_000), 'time');
    assert.equal(parse(UPDATE_ANSWERS.badkey, undefined, t + 3_600_000).tsigError, 'BADKEY');
  });

  it('the fudge is the answer\'s own, under its MAC', () => {
    const c = UPDATE_ANSWERS.noerror;
    const narrow = signAnswer(unsignedNoerror(), c.requestMac, c.sentAt, 10);
    parse(c, narrow, (c.sentAt + 10) * 1000);
    throwsProblem(() => parse(c, narrow, (c.sentAt + 11) * 1000), 'time', /±10 s/);
  });

  it('every truncation is a malformed answer naming what ran short', () => {
    for (const c of Object.values(UPDATE_ANSWERS)) {
      for (let len = 0; len < c.answer.length; len++) {
        throwsProblem(() => parse(c, c.answer.subarray(0, len)), 'malformed', /^malformed DNS answer \(\d+ octets\): .+/);
      }
    }
    throwsProblem(() => parse(UPDATE_ANSWERS.noerror, Buffer.alloc(5)), 'malformed', /shorter than the 12-octet DNS header/);
    const c = UPDATE_ANSWERS.noerror;
    throwsProblem(() => parse(c, c.answer.subarray(0, c.answer.length - 3)), 'malformed', /data of record 1 \(61 octets\) at offset 55 runs past the end of the message/);
    // A MAC size larger than what is left of the TSIG record.
    const macSize = Buffer.from(c.answer);
    macSize.writeUInt16BE(0x50, tsigStart(c.answer) + nameWire(TSIG_KEY.name).length + 10 + nameWire('hmac-sha256.').length + 8);
    throwsProblem(() => parse(c, macSize), 'malformed', /TSIG MAC \(80 octets\) at offset \d+ runs past the end of the record/);
  });

  it('refuses bytes the MAC would not cover, and a TSIG record out of place', () => {
    const c = UPDATE_ANSWERS.noerror;
    throwsProblem(() => parse(c, Buffer.concat([c.answer, Buffer.from([0])])), 'malformed', /1 octets after the last record/);
    const classChanged = Buffer.from(c.answer);
    classChanged.writeUInt16BE(1, tsigStart(c.answer) + nameWire(TSIG_KEY.name).length + 2);
    throwsProblem(() => parse(c, classChanged), 'malformed', /class is not ANY/);
    // The TSIG record counted in the authority section instead of the additional one.
    const moved = Buffer.from(c.answer);
    moved.writeUInt16BE(1, 8);
    moved.writeUInt16BE(0, 10);
    throwsProblem(() => parse(c, moved), 'malformed', /not the last record of the additional section/);
  });

  it('refuses an answer for another request, key or algorithm', () => {
    const c = UPDATE_ANSWERS.noerror;
    throwsProblem(() => parseUpdateAnswer(c.answer, c.id + 1, c.requestMac, TSIG_KEY, c.sentAt * 1000), 'mismatch', /message id 1027, not 1028/);
    throwsProblem(() => parseUpdateAnswer(c.answer, c.id, c.requestMac, { ...TSIG_KEY, name: 'other' }, c.sentAt * 1000), 'mismatch', /signed with key "mxcert-update", not "other"/);
    throwsProblem(() => parseUpdateAnswer(c.answer, c.id, c.requestMac, { ...TSIG_KEY, algorithm: 'hmac-sha512' }, c.sentAt * 1000), 'mismatch', /algorithm hmac-sha256, not hmac-sha512/);
    throwsProblem(() => parseUpdateAnswer(c.answer, c.id, Buffer.alloc(32), TSIG_KEY, c.sentAt * 1000), 'signature', /does not verify/);
    const unsigned = unsignedNoerror();
    throwsProblem(() => parse(c, unsigned), 'unsigned', /without a TSIG signature/);
  });

  it('a correct TSIG over a message changed in any one bit is not accepted', () => {
    const c = UPDATE_ANSWERS.noerror;
    let accepted = 0;
    for (let i = 0; i < c.answer.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const m = Buffer.from(c.answer);
        m[i]! ^= 1 << bit;
        let r: UpdateAnswer | undefined;
        try {
          r = parse(c, m);
        } catch (err) {
          assert.ok(err instanceof DnsAnswerError, `byte ${i} bit ${bit}: ${String(err)}`);
          continue;
        }
        if (r.rcode !== 'NOERROR' || r.tsigError) continue; // an error answer: the update is reported failed
        // Names compare case-insensitively (RFC 4343) and the MAC covers the key
        // and algorithm names in canonical lower case (RFC 8945 §4.3.3): a case
        // change there is the only change that may still verify.
        assert.equal(m.toString('latin1').toLowerCase(), c.answer.toString('latin1').toLowerCase(), `byte ${i} bit ${bit} accepted`);
        accepted++;
      }
    }
    assert.ok(accepted <= 'mxcert-update'.length + 'hmac-sha'.length, `${accepted} one-bit changes accepted`);
  });
});

describe('parseUpdateAnswer under fuzzing', () => {
  const captured = Object.values(UPDATE_ANSWERS);
  /** Truncation, byte overwrites, insertions and deletions of a real answer, or random bytes. */
  const mutation = fc.oneof(
    fc.tuple(fc.nat({ max: captured.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.option(fc.nat())).map(([which, edits, cut]) => {
      const c = captured[which]!;
      const m = Buffer.from(c.answer);
      for (const [at, v] of edits) m[at % m.length] = v;
      return { c, m: cut === null ? m : m.subarray(0, cut % (m.length + 1)) };
    }),
    fc.tuple(fc.nat({ max: captured.length - 1 }), fc.nat(), fc.uint8Array({ maxLength: 8 }), fc.nat({ max: 8 })).map(([which, at, insert, drop]) => {
      const c = captured[which]!;
      const p = at % (c.answer.length + 1);
      return { c, m: Buffer.concat([c.answer.subarray(0, p), insert, c.answer.subarray(Math.min(c.answer.length, p + drop))]) };
    }),
    fc.tuple(fc.nat({ max: captured.length - 1 }), fc.uint8Array({ maxLength: 300 })).map(([which, bytes]) => {
      const c = captured[which]!;
      // Keep the id and the response/UPDATE flags sometimes, so random bytes reach the sections.
      const m = Buffer.from(bytes);
      if (m.length >= 4 && bytes[0]! < 128) c.answer.copy(m, 0, 0, 4);
      return { c, m };
    }),
  );

  it('only ever returns a result or throws DnsAnswerError, and accepts nothing the MAC does not cover', () => {
    fc.assert(
      fc.property(mutation, ({ c, m }) => {
        let r: UpdateAnswer;
        try {
          r = parse(c, m);
        } catch (err) {
          return err instanceof DnsAnswerError;
        }
        const verifiedSuccess = r.rcode === 'NOERROR' && !r.tsigError;
        return !verifiedSuccess || m.toString('latin1').toLowerCase() === c.answer.toString('latin1').toLowerCase();
      }),
      { numRuns: 20_000, seed: 20261207 },
    );
  });
});

describe('query replies under fuzzing (src/dns/query.ts)', () => {
  it('a mutated reply decodes or fails with DnsError, and what decodes can be described', () => {
    const replies = Object.values(QUERY_ANSWERS);
    fc.assert(
      fc.property(fc.nat({ max: replies.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.option(fc.nat()), (which, edits, cut) => {
        const m = Buffer.from(replies[which]!);
        for (const [at, v] of edits) m[at % m.length] = v;
        const input = cut === null ? m : m.subarray(0, cut % (m.length + 1));
        let pkt;
        try {
          pkt = decodeReply(input);
        } catch (err) {
          return err instanceof DnsError && /^malformed reply \(\d+ octets\): /.test(err.message);
        }
        const resp = toDnsResponse(pkt);
        describeResponse(resp);
        txtValues(resp, 'example.test');
        soaSerial(resp);
        return true;
      }),
      { numRuns: 5_000, seed: 20261207 },
    );
  });
});

describe('Rfc2136Updater in process against a stand-in server', () => {
  /** A TCP DNS server that answers each request with `answer(request)`, framed (RFC 1035 §4.2.2). */
  async function standIn(answer: (request: Buffer) => Buffer): Promise<number> {
    const sockets = new Set<Socket>();
    const server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => {});
      let buf = Buffer.alloc(0);
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2 || buf.length < buf.readUInt16BE(0) + 2) return;
        const out = answer(buf.subarray(2, buf.readUInt16BE(0) + 2));
        sock.write(Buffer.concat([u16(out.length), out]));
      });
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(res));
    });
    return (server.address() as AddressInfo).port;
  }

  /** The request's MAC: the TSIG record is last, its RDATA is algorithm name, time (6), fudge (2), MAC size (2), MAC. */
  function requestMacOf(request: Buffer): Buffer {
    const alg = nameWire('hmac-sha256.');
    const at = request.lastIndexOf(alg) + alg.length + 8;
    return request.subarray(at + 2, at + 2 + request.readUInt16BE(at));
  }

  /** A NOERROR answer to `request`, signed at `timeSigned`: the captured answer's header and zone with the request's id. */
  function signedNoerror(request: Buffer, timeSigned: number): Buffer {
    const unsigned = unsignedNoerror();
    request.copy(unsigned, 0, 0, 2);
    return signAnswer(unsigned, requestMacOf(request), timeSigned);
  }

  const update = { adds: [{ name: '_acme-challenge.mx1.example.test', type: 'TXT', ttl: 5, data: 'v' }] };
  const SERVER_TIME = 1_796_602_032;

  it('an answer signed ten minutes away from our clock fails with BADTIME naming both times', async () => {
    const port = await standIn((req) => signedNoerror(req, SERVER_TIME));
    const u = new Rfc2136Updater({ server: { host: '127.0.0.1', port }, zone: 'example.test', tsig: TSIG_KEY, now: () => (SERVER_TIME + 600) * 1000 });
    await assert.rejects(u.update(update), (err: unknown) => {
      assert.ok(err instanceof DnsAnswerError, String(err));
      assert.equal(err.problem, 'time');
      assert.match(err.message, /^answer from 127\.0\.0\.1:\d+ to the update of example\.test\. not accepted: TSIG time of answer 2026-12-07T00:07:12\.000Z is outside ±300 s of local time 2026-12-07T00:17:12\.000Z/);
      return true;
    });
  });

  it('a truncated answer is a DnsAnswerError, not a RangeError', async () => {
    const port = await standIn((req) => signedNoerror(req, SERVER_TIME).subarray(0, 40));
    const u = new Rfc2136Updater({ server: { host: '127.0.0.1', port }, zone: 'example.test', tsig: TSIG_KEY, now: () => SERVER_TIME * 1000 });
    await assert.rejects(u.update(update), (err: unknown) => err instanceof DnsAnswerError && err.problem === 'malformed' && /runs past the end/.test(err.message));
  });

  it('NOTAUTH(BADKEY) names both causes: a key the server does not know, or its ACL denying this update', async () => {
    const c = UPDATE_ANSWERS.badkey;
    const port = await standIn((req) => {
      // BIND's unsigned BADKEY answer, re-addressed to this request (id in the header and as TSIG original id).
      const a = Buffer.from(c.answer);
      req.copy(a, 0, 0, 2);
      req.copy(a, a.length - 6, 0, 2);
      return a;
    });
    const u = new Rfc2136Updater({ server: { host: '127.0.0.1', port }, zone: 'example.test', tsig: { ...TSIG_KEY, name: 'nobody' } });
    await assert.rejects(u.update(update), (err: unknown) => {
      assert.ok(err instanceof DnsUpdateError, String(err));
      assert.equal(err.rcode, 'NOTAUTH');
      assert.equal(err.tsigError, 'BADKEY');
      assert.match(err.message, /NOTAUTH\(BADKEY\) \(.*unknown to the server.*ACL does not allow this key this update/);
      return true;
    });
    assert.match(explainRcode('NOTAUTH', undefined, 'example.test.'), /TSIG key rejected.*ACL does not allow this key this update.*not authoritative for example\.test\./);
  });
});
