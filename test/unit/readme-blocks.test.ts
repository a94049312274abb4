// The pure half of the docs-as-tests check (test/support/readme-blocks.ts,
// test/support/docs-config.ts): finding blocks and markers in Markdown,
// classifying them, splitting shell lines, comparing output shapes, reading
// --help, and placing config fragments. The integration test
// (test/integration/readme-examples.test.ts) runs what these find.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkArgv, classify, compareShapes, consoleSteps, cronCommand, extractBlocks, extractInlineCommands, extractManSynopses, parseHelp, shapeOf, shellLines,
  strayMarkers, treePatterns, type DocBlock, type HelpInfo,
} from '../support/readme-blocks.js';
import { blockIndent, findSlot, fixtureKind, slotIndent, metricNames, objectAt, pathRefs, reroot, ruleExprs, schemaSlots, splice, unknownJsonKeys, type JsonSchema } from '../support/docs-config.js';

const block = (lang: string, text: string): DocBlock => ({ file: 'X.md', line: 1, lang, text, heading: '' });

describe('extractBlocks', () => {
  const md = [
    '# Title',
    '',
    '1. Step:',
    '',
    '   ```sh',
    '   bash scripts/x.sh',
    '   ```',
    '',
    '<!-- docs-test: skip — needs a real MX in DNS -->',
    '```',
    'text',
    '```',
    '',
    '## Two',
    '<!-- docs-test: skip -->',
    '~~~yaml',
    'a: 1',
    '````',
    '~~~',
    '<!-- docs-test: bogus thing -->',
    '````console',
    '$ mxcert status',
    '```',
    '````',
  ].join('\n');
  const blocks = extractBlocks(md, 'X.md');

  it('finds fences in list items, strips their indentation, and keeps the language and heading', () => {
    assert.equal(blocks.length, 4);
    assert.deepEqual(blocks[0], { file: 'X.md', line: 5, lang: 'sh', text: 'bash scripts/x.sh', marker: undefined, heading: 'Title' });
  });
  it('a skip marker carries its reason; one without a reason is invalid', () => {
    assert.deepEqual(blocks[1]!.marker, { kind: 'skip', reason: 'needs a real MX in DNS', line: 9 });
    assert.equal(blocks[2]!.marker?.kind, 'invalid');
    assert.match((blocks[2]!.marker as { problem: string }).problem, /needs a reason/);
  });
  it('a fence closes only on the same character and at least its length', () => {
    assert.equal(blocks[2]!.text, 'a: 1\n````');
    assert.equal(blocks[2]!.heading, 'Two');
    assert.equal(blocks[3]!.text, '$ mxcert status\n```');
  });
  it('an unknown directive is invalid', () => {
    assert.match((blocks[3]!.marker as { problem: string }).problem, /unknown docs-test directive "bogus"/);
  });
  it('output-of must name an mxcert command; config-error needs text', () => {
    const [a, b, c] = extractBlocks('<!-- docs-test: output-of mxcert tlsa -->\n```\nx\n```\n<!-- docs-test: output-of ls -->\n```\ny\n```\n<!-- docs-test: config-error: unknown key -->\n```yaml\nz: 1\n```', 'Y.md');
    assert.deepEqual(a!.marker, { kind: 'output-of', command: 'mxcert tlsa', line: 1 });
    assert.equal(b!.marker?.kind, 'invalid');
    assert.deepEqual(c!.marker, { kind: 'config-error', expect: 'unknown key', line: 9 });
  });
  it('a marker with text between it and the block is stray', () => {
    const text = '<!-- docs-test: skip — x -->\nsome prose\n```sh\nls\n```';
    const b = extractBlocks(text, 'Z.md');
    assert.equal(b[0]!.marker, undefined);
    assert.deepEqual(strayMarkers(text, b), [1]);
    assert.deepEqual(strayMarkers(md, blocks), []);
  });
  it('a marker quoted in an inline code span is prose, not a stray marker', () => {
    const text = 'Put `<!-- docs-test: skip — reason -->` above a block that cannot run.\n';
    assert.deepEqual(strayMarkers(text, extractBlocks(text, 'Z.md')), []);
  });
});

describe('extractInlineCommands', () => {
  it('takes `mxcert …` command spans, also across a line break, and leaves messages and fenced text alone', () => {
    const md = 'Run `mxcert renew --force`, then `mxcert\nstatus`. Errors: `mxcert: another mxcert holds the lock`, ' +
      'subject `mxcert warning: …`, `mxcert-renew.timer`, `mxcert`.\n```sh\n`mxcert bogus`\n```\nAnd `mxcert revoke --cert NAME [--reason R]`.';
    assert.deepEqual(extractInlineCommands(md, 'R.md'), [
      { file: 'R.md', line: 1, text: 'mxcert renew --force' },
      { file: 'R.md', line: 1, text: 'mxcert status' },
      { file: 'R.md', line: 6, text: 'mxcert revoke --cert NAME [--reason R]' },
    ]);
  });
});

describe('extractManSynopses', () => {
  it('reads .B mxcert lines of a man page as plain synopses', () => {
    const roff = '.TP\n.B mxcert renew \\fR[\\fB\\-\\-force\\fR] [\\fB\\-\\-cert\\fR \\fIname\\fR]...\nOne pass.\n.B mxcert status';
    assert.deepEqual(extractManSynopses(roff, 'm.1'), [
      { file: 'm.1', line: 2, text: 'mxcert renew [--force] [--cert NAME]...' },
      { file: 'm.1', line: 4, text: 'mxcert status' },
    ]);
  });
});

describe('classify', () => {
  const cases: Array<[string, string, string]> = [
    ['sh', 'ls', 'shell'],
    ['bash', 'ls', 'shell'],
    ['console', '$ ls', 'console'],
    ['', '$ mxcert tlsa\n_25._tcp… IN TLSA', 'console'],
    ['yaml', 'a: 1', 'yaml'],
    ['json', '{}', 'json'],
    ['ini', '[Service]\nReadWritePaths=/x', 'systemd-dropin'],
    ['ini', '[section]\nk=v', 'unknown'],
    ['', 'key "mxcert" { algorithm hmac-sha256; secret "…"; };\nzone "example.com" {\n  type primary;\n};', 'named-conf'],
    ['', '17 * * * *  root  mxcert renew --quiet', 'crontab'],
    ['', 'stateDir/\n  lock    the lock', 'file-tree'],
    ['', '#   /etc/postfix/main.cf:41: x = y', 'unknown'],
    ['text', 'plain', 'unknown'],
    ['toml', 'a = 1', 'unknown'],
  ];
  for (const [lang, text, kind] of cases) {
    it(`${lang || '(none)'}: ${JSON.stringify(text.slice(0, 30))} → ${kind}`, () => assert.equal(classify(block(lang, text)), kind));
  }
  it('an output-of marker makes any block output', () => {
    assert.equal(classify({ ...block('', 'x'), marker: { kind: 'output-of', command: 'mxcert tlsa', line: 1 } }), 'output');
  });
  it('cronCommand splits a system crontab line', () => {
    assert.deepEqual(cronCommand('17 * * * *  root  mxcert renew --quiet --format text'), { schedule: '17 * * * *', user: 'root', command: 'mxcert renew --quiet --format text' });
    assert.equal(cronCommand('mxcert renew'), undefined);
  });
});

describe('shellLines', () => {
  it('splits lists and pipes, takes out redirections, assignments and sudo, and drops comments', () => {
    const [a, b, c] = shellLines([
      'npm ci && npm run deb                  # builds dist/mxcert.deb',
      'sudo MXCERT_CONFIG=/x mxcert status --json 2>&1 | jq \'select(.level >= 50)\' > out.json',
      'tsig-keygen -a hmac-sha256 mxcert > /etc/mxcert/tsig.key && chmod 0600 /etc/mxcert/tsig.key',
    ].join('\n'));
    assert.deepEqual(a!.commands.map((x) => x.argv), [['npm', 'ci'], ['npm', 'run', 'deb']]);
    assert.deepEqual(b!.commands[0], { argv: ['mxcert', 'status', '--json'], redirects: [{ op: '2>&1', target: '' }], env: { MXCERT_CONFIG: '/x' } });
    assert.deepEqual(b!.commands[1], { argv: ['jq', 'select(.level >= 50)'], redirects: [{ op: '>', target: 'out.json' }], env: {} });
    assert.deepEqual(c!.commands[0]!.redirects, [{ op: '>', target: '/etc/mxcert/tsig.key' }]);
  });
  it('keeps $(…) and quoted parts inside one word', () => {
    const [l] = shellLines('install -m 0755 "$(npm root -g)/mxcert/hooks/"* /usr/lib/mxcert/hooks/');
    assert.deepEqual(l!.commands[0]!.argv, ['install', '-m', '0755', '$(npm root -g)/mxcert/hooks/*', '/usr/lib/mxcert/hooks/']);
  });
  it('a `# or: …` comment is an alternative command; other comments and comment lines are dropped', () => {
    const lines = shellLines('# a comment line\nsystemctl enable --now mxcert   # or: systemctl enable --now mxcert-renew.timer\nmxcert status  # table; --json for machines');
    assert.deepEqual(lines.map((l) => [l.line, l.alternative ?? false, l.commands[0]!.argv.join(' ')]), [
      [2, false, 'systemctl enable --now mxcert'],
      [2, true, 'systemctl enable --now mxcert-renew.timer'],
      [3, false, 'mxcert status'],
    ]);
  });
  it('joins backslash continuations', () => {
    const [l] = shellLines('mxcert renew \\\n  --force');
    assert.deepEqual(l!.commands[0]!.argv, ['mxcert', 'renew', '--force']);
  });
  it('an unterminated quote is an error, not a guess', () => {
    assert.throws(() => shellLines("echo 'oops"), /unterminated '/);
  });
});

describe('consoleSteps', () => {
  it('pairs each $ command with the lines after it', () => {
    const steps = consoleSteps('$ mxcert tlsa   # records\nA\nB\n$ mxcert check\nok');
    assert.deepEqual(steps.map((s) => [s.line, s.command.commands[0]!.argv.join(' '), s.output]), [
      [1, 'mxcert tlsa', ['A', 'B']],
      [4, 'mxcert check', ['ok']],
    ]);
  });
  it('output before the first prompt is an error', () => {
    assert.throws(() => consoleSteps('stray\n$ ls'), /output before the first \$ prompt/);
  });
});

describe('output shapes', () => {
  it('abstracts names, addresses, hex, times, paths and numbers', () => {
    assert.equal(shapeOf('_25._tcp.mx1.example.com. 3600 IN TLSA 3 1 1 94d6b227fa64 ; ecdsa-p256 current', { example: true }), '⟨NAME⟩ ⟨N⟩ IN TLSA ⟨N⟩ ⟨N⟩ ⟨N⟩ ⟨HEX⟩ ; ecdsa-p⟨N⟩ current');
    assert.equal(shapeOf('mx1 ecdsa-p256 mx1.example.test:40029 (127.0.0.1): ok', { example: false }), 'mx⟨N⟩ ecdsa-p⟨N⟩ ⟨NAME⟩:⟨N⟩ (⟨IP⟩): ok');
    assert.equal(shapeOf('at 2026-11-23 09:28:42Z and 2026-11-23T09:28:42.140Z in /var/lib/mxcert/lock', { example: false }), 'at ⟨TIME⟩ and ⟨ISO-TIME⟩ in ⟨PATH⟩');
  });
  it('matches example lines in order against real output, with … as a wildcard', () => {
    const real = ['mx1 (ecdsa-p256): ok', '  Names:   mx1.example.test', '  DANE:    STEADY, hold until 2026-12-07 03:34:54Z', '  Last attempt: ok'];
    assert.equal(compareShapes(['mx1 (ecdsa-p256): ok', '  …', '  DANE: STEADY, hold until 2026-11-23 09:28:42Z'], real), undefined);
    assert.equal(compareShapes(['CERT KEY … LAST'], ['CERT  KEY  NAMES  DANE  LAST']), undefined);
  });
  it('reports a line whose shape is not in the output, or is out of order', () => {
    const real = ['mx1 (ecdsa-p256): ok', '  DANE:    STEADY, hold until 2026-12-07 03:34:54Z'];
    assert.match(compareShapes(['  DANE: STEADY hold until 2026-11-23T09:28:42Z'], real)!, /no counterpart[\s\S]*⟨ISO-TIME⟩/);
    assert.match(compareShapes(['  DANE: …', 'mx1 (ecdsa-p256): ok'], real)!, /example: mx1 \(ecdsa-p256\): ok/);
  });
});

describe('treePatterns', () => {
  const tree = [
    'stateDir/',
    '  lock                              agent lock',
    '  accounts/H/key.pem, account.json  ACME account',
    '  certs/NAME/KEYTYPE/',
    '    state.json                      state',
    '    versions/ID/                    key.pem, cert.pem',
    '    dane/keys/ID.pem                keys',
  ].join('\n');
  const pats = treePatterns(tree);
  const covered = (f: string) => pats.some((p) => p.test(f));
  it('covers listed files, comma-listed siblings and everything in a directory listed without entries', () => {
    for (const f of ['lock', 'accounts/ab12/key.pem', 'accounts/ab12/account.json', 'certs/mx1/ecdsa-p256/state.json', 'certs/mx1/ecdsa-p256/versions/v1/key.pem', 'certs/mx1/rsa-2048/dane/keys/k9.pem']) {
      assert.ok(covered(f), f);
    }
  });
  it('a directory whose entries are listed covers only those', () => {
    for (const f of ['certs/mx1/ecdsa-p256/expiry-warning.json', 'daemon.lock', 'accounts/ab12/other.json', 'certs/mx1/ecdsa-p256/dane/journal.json']) assert.ok(!covered(f), f);
  });
});

// A help screen as commander 13 prints it (src/cli/main.ts).
const ROOT_HELP = `Usage: mxcert [options] [command]

Options:
  -V, --version             output the version number
  -c, --config <path>       config file (default: $MXCERT_CONFIG, then
                            /etc/mxcert/config.yaml)
  --format <format>         logs and results as text or JSON lines (default:
                            text on a terminal, else json) (choices: "text",
                            "json")
  -h, --help                display help for command

Commands:
  renew [options]           one pass
  account                   the ACME account
  fleet                     fleet mode
  help [command]            display help for command

Exit codes:
  0  success
`;
const help = (text: string) => parseHelp(text);
function helps(): Map<string, HelpInfo> {
  const m = new Map<string, HelpInfo>();
  m.set('', help(ROOT_HELP));
  m.set('renew', help('Usage: mxcert renew [options]\n\nOptions:\n  -f, --force       now\n  --cert <name>     only this one (repeatable)\n  --reason <r>      why (choices: "a", "keyCompromise",\n                    default: "a")\n  -h, --help        help\n'));
  m.set('account', help('Usage: mxcert account [options] [command]\n\nCommands:\n  show [options]  show it\n  help [command]  help\n'));
  m.set('account show', help('Usage: mxcert account show [options]\n\nOptions:\n  --json  json\n'));
  m.set('fleet', help('Usage: mxcert fleet [options] [command]\n\nCommands:\n  remove <member>  remove one\n'));
  m.set('fleet remove', help('Usage: mxcert fleet remove [options] <member>\n\nOptions:\n  -h, --help  help\n'));
  return m;
}

describe('parseHelp', () => {
  it('reads the usage line, options with values and wrapped choices, and commands (not help)', () => {
    const h = help(ROOT_HELP);
    assert.equal(h.path, '');
    assert.deepEqual([...h.commands], ['renew', 'account', 'fleet']);
    assert.deepEqual(h.options.get('-c'), { value: 'required', choices: undefined });
    assert.deepEqual(h.options.get('--format'), { value: 'required', choices: ['text', 'json'] });
    assert.deepEqual(h.options.get('--version'), { value: 'none', choices: undefined });
    assert.deepEqual(helps().get('renew')!.options.get('--reason')!.choices, ['a', 'keyCompromise']);
    assert.deepEqual(helps().get('fleet remove')!.args, ['<member>']);
  });
});

describe('checkArgv', () => {
  const h = helps();
  const problems = (args: string, synopsis = false) => checkArgv(args.split(' ').filter(Boolean), h, { synopsis }).problems;
  it('accepts commands, options, values, choices and global options anywhere', () => {
    assert.deepEqual(problems('renew --force --cert mx1 --format text'), []);
    assert.deepEqual(problems('--config /x account show --json'), []);
    assert.deepEqual(problems('--format=json renew --reason keyCompromise'), []);
    assert.deepEqual(problems('fleet remove mx2'), []);
    assert.deepEqual(problems('--version'), []);
    assert.deepEqual(checkArgv(['account', 'show'], h, { synopsis: false }).path, ['account', 'show']);
  });
  it('reports unknown options, bad choices, missing values, unknown or missing commands, wrong argument counts', () => {
    assert.deepEqual(problems('renew --forse'), ['mxcert renew: unknown option --forse']);
    assert.deepEqual(problems('renew --reason because'), ['mxcert renew: --reason because: not one of a, keyCompromise']);
    assert.deepEqual(problems('renew --cert'), ['mxcert renew: --cert needs a value']);
    assert.deepEqual(problems('renwe'), ['mxcert: unknown command "renwe" (it has: renew, account, fleet)']);
    assert.deepEqual(problems('account'), ['mxcert account: needs a command (show)']);
    assert.deepEqual(problems('account shw'), ['mxcert account: unknown command "shw" (it has: show)']);
    assert.deepEqual(problems('fleet remove'), ['mxcert fleet remove: needs <member>, got 0 argument(s)']);
    assert.deepEqual(problems('renew mx1'), ['mxcert renew: takes 0 argument(s) (none), got: mx1']);
  });
  it('a synopsis is checked for its command and options; placeholders and brackets are fine', () => {
    assert.deepEqual(problems('renew [--force] [--cert NAME]… [--reason R] [--format text|json]', true), []);
    assert.deepEqual(problems('account', true), []);
    assert.deepEqual(problems('renew [--cert NAME]... [--reason REASON]', true), []);
    assert.deepEqual(problems('renew [--dry-run]', true), ['mxcert renew: unknown option --dry-run']);
    assert.deepEqual(problems('renew --reason nope', true), ['mxcert renew: --reason nope: not one of a, keyCompromise']);
    assert.deepEqual(problems('dane retire --cert NAME', true), ['mxcert: unknown command "dane" (it has: renew, account, fleet)']);
  });
});

// A schema in the shape zod-to-json-schema writes config/mxcert.schema.json.
const SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    stateDir: { type: 'string' },
    acme: { type: 'object', properties: { directory: { type: 'string' }, caBundle: { type: 'string' } } },
    certificates: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          challenge: { anyOf: [{ type: 'object', properties: { type: { type: 'string' }, dns: { type: 'object', properties: { tsig: { $ref: '#/definitions/tsig' } } } } }, { type: 'object', properties: { type: { type: 'string' }, http: { type: 'object', properties: { webroot: { type: 'string' } } } } }] },
          dane: { type: 'object', properties: { enabled: { type: 'boolean' }, publisher: { type: 'object', properties: { provider: { type: 'string' }, tsig: { $ref: '#/definitions/tsig' }, command: { type: 'string' } } } } },
          hooks: { type: 'object', properties: { deploy: { type: 'array' }, env: { type: 'object' } } },
          usage: { type: 'array' },
        },
      },
    },
  },
  definitions: { tsig: { type: 'object', properties: { name: { type: 'string' }, secretFile: { type: 'string' } } } },
};

describe('config fragments', () => {
  const slots = schemaSlots(SCHEMA);
  it('schemaSlots lists every object position with its keys, through anyOf, items and $ref', () => {
    assert.deepEqual([...slots.get('certificates[].challenge')!], ['type', 'dns', 'http']);
    assert.deepEqual([...slots.get('certificates[].dane.publisher.tsig')!], ['name', 'secretFile']);
    assert.deepEqual([...slots.get('certificates[].challenge.dns.tsig')!], ['name', 'secretFile']);
  });
  it('findSlot: a block in column 0 is a whole config, so only top-level keys fit', () => {
    assert.equal(findSlot(slots, ['stateDir', 'certificates']), '');
    assert.equal(findSlot(slots, ['hooks']), undefined, 'a top-level hooks: block is no certificate fragment');
    assert.equal(findSlot(slots, ['hooks'], 4), 'certificates[]');
  });
  it('findSlot: an indented fragment goes where its keys fit at that indentation, else the shallowest fit', () => {
    assert.equal(findSlot(slots, ['dane'], 4), 'certificates[]');
    assert.equal(findSlot(slots, ['publisher'], 6), 'certificates[].dane');
    assert.equal(findSlot(slots, ['usage', 'dane'], 2), 'certificates[]');
    assert.equal(findSlot(slots, ['name', 'secretFile'], 10), 'certificates[].challenge.dns.tsig', 'the first fit at that indentation');
    assert.equal(findSlot(slots, ['enabled', 'publisher'], 12), 'certificates[].dane', 'no fit at that indentation: the shallowest');
    assert.equal(findSlot(slots, ['dane', 'outptu'], 4), undefined);
  });
  it('slotIndent and blockIndent: two spaces per level, list items as "- "', () => {
    assert.deepEqual(['', 'acme', 'certificates[]', 'certificates[].dane', 'certificates[].dane.publisher'].map(slotIndent), [0, 2, 4, 6, 8]);
    assert.equal(blockIndent('# a comment\n    dane:\n      enabled: true'), 4);
    assert.equal(blockIndent('certificates:\n  - name: mx1'), 0);
  });
  const bases = [
    { name: 'plain', config: { stateDir: '/s', certificates: [{ name: 'mx1', challenge: { type: 'dns-01' }, hooks: { deploy: ['/h'] } }] } },
    { name: 'with-dane', config: { stateDir: '/s', certificates: [{ name: 'mx1', dane: { enabled: true, publisher: { provider: 'rfc2136' } } }] } },
  ];
  it('splice lays a whole config over a base, certificate by certificate', () => {
    const r = splice({ certificates: [{ name: 'mx9', usage: ['client'] }] }, '', bases)!;
    assert.equal(r.base, 'plain');
    assert.deepEqual(r.config, { stateDir: '/s', certificates: [{ name: 'mx9', challenge: { type: 'dns-01' }, hooks: { deploy: ['/h'] }, usage: ['client'] }] });
    assert.deepEqual(bases[0]!.config.certificates[0], { name: 'mx1', challenge: { type: 'dns-01' }, hooks: { deploy: ['/h'] } }, 'the base is not changed');
  });
  it('splice lays a top-level mapping over the base\'s, so an acme: block alone keeps the directory', () => {
    const r = splice({ acme: { caBundle: '/ca.pem' } }, '', [{ name: 'b', config: { acme: { directory: 'https://ca/dir' }, certificates: [] } }])!;
    assert.deepEqual(r.config.acme, { directory: 'https://ca/dir', caBundle: '/ca.pem' });
  });
  it('splice puts a fragment into the first base that has its slot', () => {
    const r = splice({ publisher: { provider: 'hook', command: '/x' } }, 'certificates[].dane', bases)!;
    assert.equal(r.base, 'with-dane');
    assert.deepEqual(objectAt(r.config, 'certificates[].dane'), { enabled: true, publisher: { provider: 'hook', command: '/x' } });
    assert.equal(splice({ x: 1 }, 'certificates[].mtaSts', bases), undefined);
  });
  it('fixtureKind: what must exist at each path-valued setting', () => {
    assert.equal(fixtureKind(['certificates', 0, 'hooks', 'deploy', 0]), 'hook');
    assert.equal(fixtureKind(['certificates', 0, 'hooks', 'failure', 0, 0]), 'hook');
    assert.equal(fixtureKind(['certificates', 0, 'hooks', 'deploy', 0, 1]), 'none');
    assert.equal(fixtureKind(['certificates', 0, 'hooks', 'env', 'POSTFIX_CONFIG_DIR']), 'none');
    assert.equal(fixtureKind(['certificates', 0, 'dane', 'publisher', 'command']), 'hook');
    assert.equal(fixtureKind(['certificates', 0, 'dane', 'publisher', 'env', 'NSUPDATE_KEYFILE']), 'none');
    assert.equal(fixtureKind(['certificates', 0, 'challenge', 'dns', 'tsig', 'secretFile']), 'secret');
    assert.equal(fixtureKind(['acme', 'eab', 'hmacKeyFile']), 'secret');
    assert.equal(fixtureKind(['fleet', 'keyEncryption', 'keyFile']), 'secret');
    assert.equal(fixtureKind(['acme', 'trustAnchors']), 'pem');
    assert.equal(fixtureKind(['certificates', 0, 'challenge', 'http', 'webroot']), 'dir');
    assert.equal(fixtureKind(['certificates', 0, 'output', 'combined']), 'parent');
    assert.equal(fixtureKind(['certificates', 0, 'output', 'key']), 'parent', 'an output named key is written, not read');
    assert.equal(fixtureKind(['fleet', 'etcd', 'tls', 'key']), 'secret');
    assert.equal(fixtureKind(['fleet', 'etcd', 'tls', 'ca']), 'pem');
    assert.equal(fixtureKind(['stateDir']), 'parent');
  });
  it('reroot moves file paths under a root, and leaves hook arguments, env values and non-paths alone', () => {
    const cfg = { stateDir: '/var/lib/mxcert', acme: { directory: 'https://ca/dir' }, certificates: [{ hooks: { deploy: [['/usr/lib/mxcert/hooks/postfix-reload', '/etc/postfix']], env: { D: '/etc/x' } } }] };
    assert.deepEqual(pathRefs(cfg).map((r) => [r.value, r.kind]), [['/var/lib/mxcert', 'parent'], ['/usr/lib/mxcert/hooks/postfix-reload', 'hook'], ['/etc/postfix', 'none'], ['/etc/x', 'none']]);
    assert.deepEqual(reroot(cfg, '/tmp/r/'), { stateDir: '/tmp/r/var/lib/mxcert', acme: { directory: 'https://ca/dir' }, certificates: [{ hooks: { deploy: [['/tmp/r/usr/lib/mxcert/hooks/postfix-reload', '/etc/postfix']], env: { D: '/etc/x' } } }] });
  });
});

describe('JSON and Prometheus examples', () => {
  it('unknownJsonKeys names keys the schema lacks, through arrays', () => {
    assert.deepEqual(unknownJsonKeys({ stateDir: 'x', certificates: [{ name: 'a', dane: { enabeld: true } }], extra: 1 }, SCHEMA), ['certificates[].dane.enabeld', 'extra']);
  });
  it('ruleExprs reads alert lists and rule groups, and nothing else', () => {
    assert.deepEqual(ruleExprs([{ alert: 'A', expr: 'x > 0' }]), ['x > 0']);
    assert.deepEqual(ruleExprs({ groups: [{ name: 'g', rules: [{ record: 'r', expr: 'y' }] }] }), ['y']);
    assert.equal(ruleExprs({ certificates: [] }), undefined);
    assert.equal(ruleExprs([{ name: 'mx1' }]), undefined);
  });
  it('metricNames finds mxcert metrics in PromQL', () => {
    assert.deepEqual(metricNames('(mxcert_a_seconds - time()) / (mxcert_a_seconds - mxcert_b) < 0.2 and up'), ['mxcert_a_seconds', 'mxcert_b']);
  });
});
