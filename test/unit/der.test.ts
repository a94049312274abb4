// The DER reader/writer (src/util/der.ts): round trips, X.690 examples, and
// refusal of malformed input with a clear message.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as der from '../../src/util/der.js';
import { DerError, TAG } from '../../src/util/der.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('DER reader', () => {
  it('reads short and long form lengths and gives value offsets', () => {
    const short = der.readDer(h('04 03 010203'));
    assert.deepEqual([short.tag, short.start, short.valueStart, short.end], [0x04, 0, 2, 5]);
    assert.equal(hex(short.value), '010203');

    const content = Buffer.alloc(300, 0xab);
    const long = der.readDer(Buffer.concat([h('04 82 012c'), content]));
    assert.equal(long.valueStart, 4);
    assert.equal(long.value.length, 300);
    assert.equal(long.der.length, 304);

    const one = der.readDer(Buffer.concat([h('04 81 80'), Buffer.alloc(128)]));
    assert.equal(one.value.length, 128);
  });

  it('iterates children of SEQUENCE, SET and context-tagged elements, offsets relative to the parent value', () => {
    const seq = der.readDer(h('30 0a 02 01 05 a0 05 31 03 01 01 ff'));
    const [i, ctx] = der.children(seq);
    assert.equal(i!.tag, TAG.INTEGER);
    assert.equal(i!.start, 0);
    assert.equal(ctx!.tag, 0xa0);
    assert.equal(ctx!.start, 3);
    const [set] = der.children(ctx!);
    assert.equal(set!.tag, TAG.SET);
    assert.deepEqual(der.children(set!).map((c) => hex(c.der)), ['0101ff']);
    assert.deepEqual(der.children(der.readDer(h('30 00'))), []);
  });

  it('refuses malformed input with a message saying what is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /end of the data/],
      ['04', /no length octet/],
      ['04 05 0102', /claims 5 octets but only 2 remain/],
      ['30 80 0000', /indefinite length/],
      ['04 ff', /reserved length octet/],
      ['04 82 01', /truncated in its length octets/],
      ['04 85 0000000001 00', /5-octet length/],
      ['1f 22 00', /high-tag-number/],
      ['04 01 00 00', /1 unexpected octets after/],
    ];
    for (const [input, msg] of bad) {
      assert.throws(() => der.readDer(h(input)), (e: unknown) => e instanceof DerError && msg.test(e.message), input);
    }
    // A child running past its parent's end is caught inside the parent.
    assert.throws(() => der.children(der.readDer(h('30 03 04 05 00'))), /claims 5 octets but only 1 remain/);
    assert.throws(() => der.children(der.readDer(h('04 00'))), /expected a constructed element/);
    assert.throws(() => der.expectTag(der.readDer(h('04 00')), TAG.SEQUENCE, 'thing'), /thing: expected tag 0x30, found 0x04/);
  });

  it('accepts a non-minimal long-form length (BER) as OpenSSL does', () => {
    assert.equal(der.readDer(h('04 81 02 abcd')).value.length, 2);
  });

  it('decodes OIDs (X.690 §8.19.5 example and large arcs)', () => {
    assert.equal(der.decodeOid(der.readDer(h('06 03 883703'))), '2.999.3');
    assert.equal(der.decodeOid(der.readDer(h('06 03 551d11'))), '2.5.29.17');
    assert.equal(der.decodeOid(der.readDer(h('06 09 2a864886f70d01090e'))), '1.2.840.113549.1.9.14');
    assert.equal(der.decodeOid(der.readDer(h('06 02 0a00'))), '0.10.0');
    const uuid = '2.25.329800735698586629295641978511506172918';
    assert.equal(der.decodeOid(der.readDer(der.oid(uuid))), uuid);
    assert.throws(() => der.decodeOid(der.readDer(h('06 00'))), /empty/);
    assert.throws(() => der.decodeOid(der.readDer(h('06 02 5588'))), /ends inside/);
    assert.throws(() => der.decodeOid(der.readDer(h('06 03 558001'))), /non-minimal/);
  });

  it('decodes arcs on both sides of 2^53 exactly, and a 128-octet arc', () => {
    for (const arc of [2n ** 49n - 1n, 2n ** 49n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 128n + 12345n]) {
      assert.equal(der.decodeOid(der.readDer(der.oid(`1.2.${arc}`))), `1.2.${arc}`);
      assert.equal(der.decodeOid(der.readDer(der.oid(`2.${arc}`))), `2.${arc}`);
    }
    // 128 octets, one subidentifier after 1.2: 127 groups of 7 bits, all ones.
    const big = der.tlv(TAG.OID, Buffer.concat([h('2a'), Buffer.alloc(126, 0xff), h('7f')]));
    assert.equal(der.decodeOid(der.readDer(big)), `1.2.${2n ** (127n * 7n) - 1n}`);
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 0n, max: 2n ** 250n }), { minLength: 1, maxLength: 3 }), (arcs) => {
        assert.equal(der.decodeOid(der.readDer(der.oid(`2.${arcs.join('.')}`))), `2.${arcs.join('.')}`);
      }),
    );
  });

  it('refuses an OID longer than MAX_OID_OCTETS before decoding any of it', () => {
    assert.equal(der.MAX_OID_OCTETS, 128);
    const over = (n: number, first: number): Buffer => der.tlv(TAG.OID, Buffer.concat([Buffer.from([first]), Buffer.alloc(n - 2, 0x81), h('01')]));
    // These start with 0x80, which decoding would report as non-minimal at once:
    // the length message proves the length is checked first.
    assert.throws(() => der.decodeOid(der.readDer(over(129, 0x80))), (e: unknown) => e instanceof DerError && /OBJECT IDENTIFIER of 129 octets is longer than the 128 accepted/.test(e.message));
    assert.throws(() => der.decodeOid(der.readDer(over(64 * 1024, 0x80))), /OBJECT IDENTIFIER of 65536 octets is longer than the 128 accepted/);
    // A well-formed 64 KiB OID (one huge arc) is refused the same way, not decoded.
    assert.throws(() => der.decodeOid(der.readDer(over(64 * 1024, 0x2a))), /65536 octets is longer than the 128 accepted/);
  });

  it('decodes UTCTime and GeneralizedTime per RFC 5280 §4.1.2.5', () => {
    const t = (tag: number, s: string): Date => der.decodeTime(der.readDer(der.tlv(tag, Buffer.from(s))));
    assert.equal(t(TAG.UTC_TIME, '250601120000Z').toISOString(), '2025-06-01T12:00:00.000Z');
    assert.equal(t(TAG.UTC_TIME, '491231235959Z').toISOString(), '2049-12-31T23:59:59.000Z');
    assert.equal(t(TAG.UTC_TIME, '500101000000Z').toISOString(), '1950-01-01T00:00:00.000Z');
    assert.equal(t(TAG.GENERALIZED_TIME, '20500101000000Z').toISOString(), '2050-01-01T00:00:00.000Z');
    assert.equal(t(TAG.GENERALIZED_TIME, '99991231235959Z').toISOString(), '9999-12-31T23:59:59.000Z');
    assert.equal(t(TAG.GENERALIZED_TIME, '20240229000000Z').toISOString(), '2024-02-29T00:00:00.000Z');
    for (const [tag, s] of [
      [TAG.UTC_TIME, '2506011200Z'], // no seconds
      [TAG.UTC_TIME, '250601120000+0100'], // offset
      [TAG.GENERALIZED_TIME, '20250601120000.5Z'], // fraction
      [TAG.GENERALIZED_TIME, '20250601120000'], // local time
      [TAG.GENERALIZED_TIME, '20250230000000Z'], // 30 February
      [TAG.GENERALIZED_TIME, '20230229000000Z'], // not a leap year
      [TAG.UTC_TIME, '251301000000Z'],
      [TAG.UTC_TIME, '250601240000Z'],
    ] as const) {
      assert.throws(() => t(tag, s), DerError, s);
    }
    assert.throws(() => der.decodeTime(der.readDer(h('04 00'))), /expected UTCTime or GeneralizedTime/);
  });

  it('decodes the character string types', () => {
    const s = (b: Buffer): string | undefined => der.decodeString(der.readDer(b));
    assert.equal(s(der.utf8String('Grüße')), 'Grüße');
    assert.equal(s(der.tlv(TAG.BMP_STRING, h('00e4 d83d de00'))), 'ä😀');
    assert.equal(s(der.tlv(TAG.UNIVERSAL_STRING, h('000000e4 0001f600'))), 'ä😀');
    assert.equal(s(der.printableString('Acme')), 'Acme');
    assert.equal(s(der.tlv(TAG.T61_STRING, h('e441'))), 'äA');
    assert.equal(s(der.integer(1)), undefined);
    assert.throws(() => s(der.tlv(TAG.BMP_STRING, h('00'))), /odd/);
  });
});

describe('DER writer', () => {
  it('encodes lengths minimally (X.690 §10.1)', () => {
    assert.equal(hex(der.octetString(Buffer.alloc(127))).slice(0, 4), '047f');
    assert.equal(hex(der.octetString(Buffer.alloc(128))).slice(0, 6), '048180');
    assert.equal(hex(der.octetString(Buffer.alloc(256))).slice(0, 8), '04820100');
    assert.equal(hex(der.octetString(Buffer.alloc(65536))).slice(0, 10), '0483010000');
  });

  it('encodes INTEGERs in the fewest octets, two’s complement', () => {
    const cases: Array<[bigint | number | Uint8Array, string]> = [
      [0, '020100'],
      [127, '02017f'],
      [128, '02020080'],
      [256, '02020100'],
      [-1, '0201ff'],
      [-128, '020180'],
      [-129, '0202ff7f'],
      [65537n, '0203010001'],
      [h('87654321'), '02050087654321'],
      [h('0000 01'), '020101'],
      [h('00'), '020100'],
      [new Uint8Array(0), '020100'],
    ];
    for (const [v, want] of cases) assert.equal(hex(der.integer(v)), want, String(v));
  });

  it('encodes OIDs, strings, NULL, BOOLEAN, BIT STRING and tags', () => {
    assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
    assert.equal(hex(der.oid('2.999.3')), '0603883703');
    assert.throws(() => der.oid('1.40'), /below 40/);
    assert.throws(() => der.oid('3.1'), /not a dotted OID/);
    assert.throws(() => der.oid('1.02'), /not a dotted OID/);
    assert.equal(hex(der.nullValue()), '0500');
    assert.equal(hex(der.boolean(true)), '0101ff');
    assert.equal(hex(der.bitString(h('6e5dc0'), 6)), '0304066e5dc0'); // X.690 §8.6.4.2 example
    assert.equal(hex(der.utf8String('é')), '0c02c3a9');
    assert.equal(hex(der.printableString('DE')), '13024445');
    assert.throws(() => der.printableString('a@b'), /PrintableString/);
    assert.equal(hex(der.ia5String('mx1')), '16036d7831');
    assert.throws(() => der.ia5String('bücher.example'), /not ASCII/);
    assert.equal(hex(der.explicit(0, der.integer(2))), 'a003020102');
    assert.equal(hex(der.implicit(2, der.ia5String('a'))), '820161');
    assert.equal(hex(der.implicit(0, der.setOf())), 'a000');
    assert.throws(() => der.contextTag(31, false), /high-tag-number/);
  });

  it('sorts SET OF elements by encoding (X.690 §11.6)', () => {
    assert.equal(hex(der.setOf(der.integer(2), der.integer(1), der.integer(256))), '310a02010102010202020100');
  });

  it('writes validity times as RFC 5280 §4.1.2.5 wants', () => {
    assert.equal(der.certTime(new Date('2049-12-31T23:59:59Z')).toString('latin1', 2), '491231235959Z');
    assert.equal(der.certTime(new Date('2050-01-01T00:00:00Z')).toString('latin1', 2), '20500101000000Z');
    assert.equal(der.certTime(new Date('2050-01-01T00:00:00Z'))[0], TAG.GENERALIZED_TIME);
  });

  it('round-trips through the reader (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }), fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), (bytes, n, arcs) => {
        const seq = der.readDer(der.sequence(der.octetString(bytes), der.integer(n), der.oid(`2.${arcs.join('.')}`)));
        const [o, i, id] = der.children(seq);
        assert.ok(o!.value.equals(Buffer.from(bytes)));
        assert.equal(BigInt.asIntN(i!.value.length * 8, BigInt(`0x${hex(i!.value)}`)), n);
        assert.equal(der.decodeOid(id!), `2.${arcs.join('.')}`);
      }),
    );
    fc.assert(
      fc.property(fc.date({ min: new Date('1950-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (d) => {
        const s = new Date(Math.floor(d.getTime() / 1000) * 1000);
        assert.equal(der.decodeTime(der.readDer(der.certTime(s))).getTime(), s.getTime());
      }),
    );
  });

  it('writes PEM at 64 columns (RFC 7468 §2)', () => {
    const pem = der.toPem(Buffer.alloc(100, 1), 'CERTIFICATE REQUEST');
    const lines = pem.split('\n');
    assert.equal(lines[0], '-----BEGIN CERTIFICATE REQUEST-----');
    assert.equal(lines[1]!.length, 64);
    assert.equal(lines.at(-2), '-----END CERTIFICATE REQUEST-----');
    assert.ok(pem.endsWith('-----\n'));
  });
});
