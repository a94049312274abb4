// wrap() returns a value that fits as it is without running the word loop
// (src/cli/text.ts); the answer must be the loop's, kept here as the oracle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { wrap } from '../../src/cli/text.js';

function oracleWrap(text: string, width: number, indent: number, firstWidth = width): string[] {
  const out: string[] = [];
  const room = () => Math.max(1, out.length === 0 ? firstWidth : width - indent);
  let line = '';
  for (let word of text.replace(/\s+/g, ' ').trim().split(' ')) {
    while (word !== '') {
      const n = room();
      if (line === '' && word.length > n) {
        out.push(word.slice(0, n));
        word = word.slice(n);
      } else if (line === '' || line.length + 1 + word.length <= n) {
        line = line === '' ? word : `${line} ${word}`;
        word = '';
      } else {
        out.push(line);
        line = '';
      }
    }
  }
  if (line !== '' || out.length === 0) out.push(line);
  return out.map((l, i) => (i === 0 ? l : ' '.repeat(indent) + l));
}

describe('wrap', () => {
  it('gives what the word loop gives, for any text and widths (fast-check)', () => {
    const text = fc.array(fc.constantFrom('a', 'bc', 'defghij', ' ', '  ', '\t', '\n', 'é', '-'), { maxLength: 30 }).map((xs) => xs.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: -2, max: 40 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: -2, max: 40 }), (t, width, indent, first) => {
        assert.deepEqual(wrap(t, width, indent, first), oracleWrap(t, width, indent, first));
        assert.deepEqual(wrap(t, width, indent), oracleWrap(t, width, indent));
      }),
      { numRuns: 5000 },
    );
  });
});
