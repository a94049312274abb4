// usr/share/doc/mxcert/copyright in Debian's machine-readable format
// (copyright-format 1.0): mxcert itself, the npm packages compiled into
// dist/bundle, and each package shipped under node_modules, with the
// copyright lines from each package's own licence file.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

// SPDX name (package.json "license") → the short name copyright-format uses.
const SHORT_NAME = { MIT: 'Expat', ISC: 'ISC', 'BSD-3-Clause': 'BSD-3-clause', 'Apache-2.0': 'Apache-2.0', '0BSD': '0BSD' };

const TEXT = {
  // tslib (compiled in with @peculiar/x509); the text of its LICENSE.txt.
  '0BSD': `Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES WITH
REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY
AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT,
INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM
LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR
OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
PERFORMANCE OF THIS SOFTWARE.`,
  Expat: `Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.`,
  ISC: `Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.

THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.`,
  'BSD-3-clause': `Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice,
   this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice,
   this list of conditions and the following disclaimer in the documentation
   and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its
   contributors may be used to endorse or promote products derived from this
   software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE
LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS
INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN
CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
POSSIBILITY OF SUCH DAMAGE.`,
  // Debian ships this text; copyright-format points there instead of repeating it.
  'Apache-2.0': `Licensed under the Apache License, Version 2.0 (the "License"); you may
not use this software except in compliance with the License.

On Debian systems, the complete text of the Apache License, Version 2.0 can
be found in "/usr/share/common-licenses/Apache-2.0".`,
};

function shortName(pkg) {
  const name = SHORT_NAME[pkg.license];
  if (!name) throw new Error(`${pkg.name}: licence ${JSON.stringify(pkg.license)} has no entry in scripts/deb/copyright.mjs`);
  return name;
}

/** The copyright lines of a package's licence file; its author when it has none. */
export function copyrightLines(pkg) {
  const files = readdirSync(pkg.dir).filter((f) => /^licen[cs]e/i.test(f));
  // Case matters: "copyright license to reproduce…" in Apache-2.0's text is not a notice.
  const notice = /^\s*(Copyright\b|COPYRIGHT\b|\([cC]\)\s*\d|©)/;
  const boilerplate = /copyright (notice|owner|holder|statement)|\[yyyy\]|\[name of/i;
  const lines = new Set();
  for (const f of files) {
    for (const line of readFileSync(path.join(pkg.dir, f), 'utf8').split('\n')) {
      if (notice.test(line) && !boilerplate.test(line)) lines.add(line.trim());
    }
  }
  if (lines.size > 0) return [...lines];
  const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
  return [author ? `the ${pkg.name} authors (${author})` : `the ${pkg.name} authors`];
}

/** A multi-line copyright-format field: first value on the field line, the rest indented. */
function field(name, values) {
  return `${name}: ${values[0]}${values.slice(1).map((v) => `\n ${v}`).join('')}`;
}

/**
 * The whole file. `own` is mxcert's { license, holder }; `bundled` the
 * packages compiled into dist/bundle; `shipped` those under node_modules
 * (from dependencyClosure()).
 */
export function copyrightFile({ own, bundled, shipped, libDir }) {
  const ownName = shortName({ name: 'mxcert', license: own.license });
  const bundleLicences = [...new Set([ownName, ...bundled.map(shortName)])];
  const paragraphs = [
    [
      'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
      'Upstream-Name: mxcert',
    ].join('\n'),
    [field('Files', ['*']), field('Copyright', [own.holder]), `License: ${ownName}`].join('\n'),
    [
      field('Files', [`${libDir}/dist/bundle/*`]),
      field('Copyright', [...new Set([own.holder, ...bundled.flatMap(copyrightLines)])]),
      `License: ${bundleLicences.join(' and ')}`,
      field('Comment', [
        'mxcert compiled together with these npm packages (name, version, licence):',
        ...bundled.map((p) => `${p.name} ${p.version} (${shortName(p)})`),
      ]),
    ].join('\n'),
    ...shipped.map((p) =>
      [
        field('Files', [`${libDir}/node_modules/${p.rel}/*`]),
        field('Copyright', copyrightLines(p)),
        `License: ${shortName(p)}`,
        `Comment: npm package ${p.name} ${p.version}`,
      ].join('\n'),
    ),
  ];
  const used = new Set([ownName, ...bundleLicences, ...shipped.map(shortName)]);
  for (const name of Object.keys(TEXT).filter((n) => used.has(n))) {
    const body = TEXT[name].split('\n').map((l) => (l === '' ? ' .' : ` ${l}`)).join('\n');
    paragraphs.push(`License: ${name}\n${body}`);
  }
  return `${paragraphs.join('\n\n')}\n`;
}
