// Docs as tests: every fenced example in README.md and docs/*.md is found,
// classified by what it is, and checked against the real tool, so the docs
// cannot drift from what mxcert does. Nothing here lists the blocks: a block
// added later is classified like the others, and one that cannot be
// classified fails until it is, or until a marker right above it says why it
// cannot run (`<!-- docs-test: skip — reason -->`, printed on every run).
//
//   yaml     configs and fragments: spliced into a whole config from
//            config/*.yaml where needed, file paths moved into a temporary
//            root with the files they name created (secrets 0600, hooks 0755,
//            output directories), then `mxcert config check` must pass.
//            Prometheus rules: each mxcert metric must be served by the daemon.
//   shell    every `mxcert …` line is checked against the CLI's --help
//            (command, options, choices, arguments) and run against real
//            Pebble, BIND and Postfix; other lines must name scripts, npm
//            scripts, shipped files and systemd units that exist.
//   console  as shell, and each command's example output must have the shape
//            of what it really prints (names, numbers and times abstracted).
//   others   named.conf through named-checkconf, systemd drop-ins through
//            systemd-analyze verify, crontab lines, the stateDir tree against
//            a real stateDir, `output-of` blocks against that command's output.
// Inline `mxcert …` spans in the prose are checked against --help too.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { pollUntil, run, startDaemon, freePort, stopPid } from '../env/proc.js';
import { CLI, REPO, startSandbox, type Sandbox } from '../support/sandbox.js';
import { assertStatusSchema } from '../support/status-schema.js';
import {
  checkArgv, classify, compareShapes, consoleSteps, cronCommand, extractBlocks, extractInlineCommands, extractManSynopses, parseHelp, shellLines,
  strayMarkers, treePatterns, type BlockKind, type DocBlock, type HelpInfo, type SimpleCommand,
} from '../support/readme-blocks.js';
import { blockIndent, findSlot, metricNames, pathRefs, reroot, ruleExprs, schemaSlots, splice, unknownJsonKeys, type JsonSchema, type PathRef } from '../support/docs-config.js';

const DOC_FILES = ['README.md', ...readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const docText = (f: string) => readFileSync(path.join(REPO, f), 'utf8');
const BLOCKS: Array<DocBlock & { kind: BlockKind }> = DOC_FILES.flatMap((f) => extractBlocks(docText(f), f)).map((b) => ({ ...b, kind: classify(b) }));
const MAN_PAGES = readdirSync(path.join(REPO, 'docs')).filter((f) => /\.\d$/.test(f)).map((f) => `docs/${f}`);
const INLINE = [...DOC_FILES.flatMap((f) => extractInlineCommands(docText(f), f)), ...MAN_PAGES.flatMap((f) => extractManSynopses(docText(f), f))];
const PKG = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { name: string; version: string; files: string[]; scripts: Record<string, string> };
const where = (b: DocBlock) => `${b.file}:${b.line}`;
const title = (b: DocBlock & { kind: BlockKind }) => `${where(b)} ${b.lang || '(no language)'} → ${b.kind} (${b.heading})`;
const active = (kinds: BlockKind[]) => BLOCKS.filter((b) => kinds.includes(b.kind) && b.marker?.kind !== 'skip');

/** `mxcert ARGS…` with the built CLI; MXCERT_LOG_LEVEL is left to the command line. */
function mxcert(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000) {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.MXCERT_LOG_LEVEL;
  delete e.MXCERT_CONFIG;
  return run(process.execPath, [CLI, ...args], { allowFailure: true, env: { ...e, ...env }, timeoutMs });
}

/** Every help screen of the CLI, by command path ('' for mxcert itself). */
async function readHelps(): Promise<Map<string, HelpInfo>> {
  const helps = new Map<string, HelpInfo>();
  const visit = async (p: string[]) => {
    const r = await mxcert([...p, '--help']);
    assert.equal(r.code, 0, `mxcert ${p.join(' ')} --help: exit ${r.code}\n${r.stderr}`);
    const h = parseHelp(r.stdout);
    helps.set(p.join(' '), h);
    for (const c of h.commands) await visit([...p, c]);
  };
  await visit([]);
  return helps;
}

/** The mxcert commands of a block, each with the line it is on (crontab and console lines included). */
function mxcertCommands(b: DocBlock & { kind: BlockKind }): Array<{ line: number; cmd: SimpleCommand; output?: string[] }> {
  const out: Array<{ line: number; cmd: SimpleCommand; output?: string[] }> = [];
  const take = (line: number, cmds: SimpleCommand[], output?: string[]) => {
    for (const cmd of cmds) if (cmd.argv[0] === 'mxcert') out.push({ line, cmd, output });
  };
  if (b.kind === 'shell') for (const l of shellLines(b.text)) take(l.line, l.commands);
  if (b.kind === 'console') for (const s of consoleSteps(b.text)) take(s.line, s.command.commands, s.output);
  if (b.kind === 'crontab') {
    b.text.split('\n').forEach((l, i) => {
      const c = cronCommand(l);
      if (c) for (const sl of shellLines(c.command)) take(i + 1, sl.commands);
    });
  }
  return out;
}

describe('docs examples: every block is classified', () => {
  it('finds the blocks of README.md and docs/*.md', (t) => {
    assert.ok(BLOCKS.filter((b) => b.file === 'README.md').length >= 10, `README blocks: ${BLOCKS.length}`);
    const counts = new Map<string, number>();
    for (const b of BLOCKS) counts.set(b.kind, (counts.get(b.kind) ?? 0) + 1);
    t.diagnostic(`${BLOCKS.length} blocks: ${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}; ${INLINE.length} inline mxcert commands`);
  });

  for (const b of BLOCKS) {
    it(title(b), (t) => {
      if (b.marker?.kind === 'invalid') assert.fail(`${where(b)}: marker at line ${b.marker.line}: ${b.marker.problem}`);
      if (b.marker?.kind === 'skip') {
        t.diagnostic(`SKIPPED ${where(b)}: ${b.marker.reason}`);
        t.skip(`docs-test: skip — ${b.marker.reason}`);
        return;
      }
      assert.notEqual(b.kind, 'unknown', `${where(b)}: cannot tell what this \`\`\`${b.lang} block is. Give it a language (sh, console, yaml, json, ini), a "$ " prompt, ` +
        `or a marker right above it: <!-- docs-test: output-of mxcert … --> or <!-- docs-test: skip — why it cannot run -->\n${b.text}`);
      if (b.marker?.kind === 'config-error') assert.equal(b.kind, 'yaml', `${where(b)}: config-error applies to yaml blocks only`);
    });
  }

  it('every docs-test marker sits right above a block', () => {
    for (const f of DOC_FILES) {
      const stray = strayMarkers(docText(f), BLOCKS.filter((b) => b.file === f));
      assert.deepEqual(stray, [], `${f}: docs-test markers not directly above a fenced block, at lines ${stray.join(', ')}`);
    }
  });
});

describe('docs examples: mxcert command lines match the CLI', () => {
  let helps: Map<string, HelpInfo>;
  before(async () => {
    assert.ok(existsSync(path.join(REPO, 'dist', 'bundle', 'main.js')), 'run `npm run build` first: the docs are checked against the built CLI');
    helps = await readHelps();
  });

  for (const b of BLOCKS.filter((x) => x.marker?.kind !== 'skip' && mxcertCommands(x).length > 0)) {
    it(`${title(b)}: commands, options and arguments exist`, () => {
      const problems = mxcertCommands(b).flatMap(({ line, cmd }) => checkArgv(cmd.argv.slice(1), helps, { synopsis: false }).problems.map((p) => `${b.file}:${b.line + line}: ${p}`));
      assert.deepEqual(problems, []);
    });
  }
  for (const b of BLOCKS.filter((x) => x.marker?.kind === 'output-of')) {
    it(`${title(b)}: the command it shows the output of exists`, () => {
      const argv = shellLines(b.marker!.kind === 'output-of' ? b.marker!.command : '')[0]!.commands[0]!.argv;
      assert.deepEqual(checkArgv(argv.slice(1), helps, { synopsis: false }).problems, []);
    });
  }

  it('inline `mxcert …` spans in the prose, and the man page\'s synopses, name real commands and options', (t) => {
    const problems: string[] = [];
    for (const c of INLINE) {
      const words = c.text.split(' ').slice(1);
      // A span may carry a redirection or a pipe; only the command counts.
      const cut = words.findIndex((w) => /^(>|>>|\||&&|;)$/.test(w));
      for (const p of checkArgv(cut < 0 ? words : words.slice(0, cut), helps, { synopsis: true }).problems) problems.push(`${c.file}:${c.line}: \`${c.text}\`: ${p}`);
    }
    t.diagnostic(`${INLINE.length} inline command spans checked`);
    assert.deepEqual(problems, []);
  });
});

// --- Non-mxcert shell lines: what they name must exist ----------------------

/** Problems with what a non-mxcert command names in this repository; undefined when it names nothing checkable. */
function referenceProblems(cmd: SimpleCommand): { checked: string; problems: string[] } | undefined {
  const [prog, ...args] = cmd.argv;
  const problems: string[] = [];
  const checks: string[] = [];
  if ((prog === 'bash' || prog === 'sh') && args[0] && !args[0].startsWith('-')) {
    checks.push(`script ${args[0]}`);
    if (!existsSync(path.join(REPO, args[0]))) problems.push(`${args[0]} does not exist in the repository`);
  }
  if (prog === 'npm' && args[0] === 'run' && args[1]) {
    checks.push(`npm script ${args[1]}`);
    if (!PKG.scripts[args[1]]) problems.push(`package.json has no script "${args[1]}"`);
  }
  if (prog === 'npm' && args[0] === 'install') {
    for (const a of args.filter((x) => x.endsWith('.tgz'))) {
      checks.push(`tarball ${a}`);
      if (path.basename(a) !== `${PKG.name}-${PKG.version}.tgz`) problems.push(`npm pack writes ${PKG.name}-${PKG.version}.tgz, not ${path.basename(a)}`);
    }
  }
  for (const a of args) {
    const m = /^\$\(npm root -g\)\/mxcert\/(.+)$/.exec(a);
    if (!m) continue;
    checks.push(`installed file ${m[1]}`);
    const rel = m[1]!.replace(/\/$/, '');
    const top = rel.split('/')[0]!;
    if (!PKG.files.some((f) => f === top || f.startsWith(`${top}/`))) problems.push(`${top} is not in package.json "files", so npm does not install it`);
    const dir = path.join(REPO, path.dirname(rel));
    const re = new RegExp(`^${path.basename(rel).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    if (!existsSync(dir) || !readdirSync(dir).some((f) => re.test(f))) problems.push(`nothing in the repository matches ${rel}`);
  }
  if (prog === 'systemctl' || prog === 'journalctl') {
    const units = readdirSync(path.join(REPO, 'systemd'));
    for (const u of args.filter((x) => /^mxcert[\w.-]*$/.test(x))) {
      checks.push(`unit ${u}`);
      if (!units.some((f) => f === u || f === `${u}.service` || f.startsWith(`${u}.`))) problems.push(`no unit ${u} in systemd/ (${units.join(', ')})`);
    }
  }
  return checks.length > 0 ? { checked: checks.join(', '), problems } : undefined;
}

describe('docs examples: other shell lines name things that exist', () => {
  for (const b of active(['shell'])) {
    it(`${title(b)}: scripts, npm scripts, shipped files and units`, (t) => {
      const problems: string[] = [];
      const notRun: string[] = [];
      for (const l of shellLines(b.text)) {
        for (const cmd of l.commands) {
          if (cmd.argv[0] === 'mxcert') continue;
          const r = referenceProblems(cmd);
          if (r) problems.push(...r.problems.map((p) => `${b.file}:${b.line + l.line}: ${p}`));
          else notRun.push(cmd.argv.join(' '));
        }
      }
      if (notRun.length > 0) t.diagnostic(`not run (system commands, nothing of the repository named): ${notRun.join(' | ')}`);
      assert.deepEqual(problems, []);
    });
  }
});

// --- YAML --------------------------------------------------------------------

const CONFIG_SCHEMA = JSON.parse(readFileSync(path.join(REPO, 'config', 'mxcert.schema.json'), 'utf8')) as JsonSchema;
const SLOTS = schemaSlots(CONFIG_SCHEMA);
const BASES = readdirSync(path.join(REPO, 'config'))
  .filter((f) => f.endsWith('.yaml'))
  .sort((a, b) => (a === 'example.yaml' ? -1 : b === 'example.yaml' ? 1 : a.localeCompare(b)))
  .map((f) => ({ name: `config/${f}`, config: parseYaml(readFileSync(path.join(REPO, 'config', f), 'utf8')) as Record<string, unknown> }));

/** Creates what each path of a config must be, under `root` (the config itself already re-rooted). */
async function createFixtures(refs: PathRef[], root: string, pem: string, keyPem = ''): Promise<void> {
  const mkdirs = (d: string) => mkdir(d, { recursive: true, mode: 0o755 });
  for (const ref of refs) {
    const file = path.join(root, ref.value);
    if (ref.kind === 'none') continue;
    await mkdirs(ref.kind === 'dir' ? file : path.dirname(file));
    if (ref.kind === 'secret') await writeFile(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    if (ref.kind === 'pem') await writeFile(file, pem, { mode: 0o644 });
    if (ref.kind === 'pemkey') await writeFile(file, keyPem, { mode: 0o600 });
    if (ref.kind === 'hook') {
      // The examples expect the shipped hooks in /usr/lib/mxcert/hooks: those must exist in hooks/.
      const shipped = /^\/usr\/lib\/mxcert\/hooks\/([^/]+)$/.exec(ref.value);
      if (shipped) {
        const src = path.join(REPO, 'hooks', shipped[1]!);
        assert.ok(existsSync(src), `${ref.at.join('.')}: ${ref.value} is not a hook shipped in hooks/`);
        await copyFile(src, file);
      } else await writeFile(file, '#!/bin/sh\nexit 0\n');
      await chmod(file, 0o755);
    }
  }
}

describe('docs examples: YAML configs load with `mxcert config check`', () => {
  let scratch: string;
  let pem: string;
  let keyPem: string;
  before(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'mxcert-docs-yaml-'));
    await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', path.join(scratch, 'ca.key'), '-out', path.join(scratch, 'ca.pem'), '-days', '2', '-subj', '/CN=docs test CA']);
    pem = await readFile(path.join(scratch, 'ca.pem'), 'utf8');
    keyPem = await readFile(path.join(scratch, 'ca.key'), 'utf8');
  });
  after(async () => {
    if (scratch && !process.env.MXCERT_TEST_KEEP) await rm(scratch, { recursive: true, force: true });
  });

  for (const b of active(['yaml'])) {
    it(title(b), async (t) => {
      const doc: unknown = parseYaml(b.text);
      if (doc === null || doc === undefined) return checkModeline(b);
      if (ruleExprs(doc)) return t.diagnostic('Prometheus rules: their metrics are checked against the running daemon below');
      assert.ok(doc && typeof doc === 'object' && !Array.isArray(doc), `${where(b)}: neither a config (a mapping) nor Prometheus rules:\n${b.text}`);
      const keys = Object.keys(doc);
      const indent = blockIndent(b.text);
      const slot = findSlot(SLOTS, keys, indent);
      assert.ok(slot !== undefined, indent === 0
        ? `${where(b)}: starts in column 0, so it is a whole config, but ${keys.filter((k) => !SLOTS.get('')!.has(k)).join(', ')} is not a top-level key (indent a fragment as it sits in a config)`
        : `${where(b)}: no place in the config schema takes all of ${keys.join(', ')} (a misspelt key?)`);
      const spliced = splice(doc as Record<string, unknown>, slot, BASES);
      assert.ok(spliced, `${where(b)}: no example in config/ has ${slot} to put this fragment into`);
      t.diagnostic(slot === '' ? `a config, completed from ${spliced.base}` : `a fragment at ${slot}, put into ${spliced.base}`);
      const root = await mkdtemp(path.join(scratch, 'root-'));
      await chmod(root, 0o755);
      const config = reroot(spliced.config, root);
      await createFixtures(pathRefs(spliced.config), root, pem, keyPem);
      const file = path.join(root, 'config.yaml');
      await writeFile(file, JSON.stringify(config, null, 2), { mode: 0o600 });
      const r = await mxcert(['config', 'check', '--config', file]);
      if (b.marker?.kind === 'config-error') {
        assert.equal(r.code, 2, `${where(b)} is shown as an error, but config check passed:\n${r.stdout}`);
        assert.ok(r.stderr.includes(b.marker.expect), `${where(b)}: expected "${b.marker.expect}" in:\n${r.stderr}`);
        return;
      }
      assert.equal(r.code, 0, `${where(b)}: mxcert config check failed for this example (paths under ${root}):\n${r.stderr}${r.stdout}\nconfig:\n${JSON.stringify(config, null, 2)}`);
      assert.match(r.stdout, /: ok \(\d+ certificates?\)/);
    });
  }
});

/** A comment-only block showing the schema modeline: every example in config/ must start with it, and the schema must be there. */
function checkModeline(b: DocBlock): void {
  const m = /^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$/.exec(b.text.trim());
  assert.ok(m, `${where(b)}: a YAML block with no data that is not the yaml-language-server modeline:\n${b.text}`);
  assert.ok(existsSync(path.join(REPO, 'config', m[1]!)), `${where(b)}: ${m[1]} does not exist next to the examples in config/`);
  for (const f of BASES) assert.equal(readFileSync(path.join(REPO, f.name), 'utf8').split('\n')[0], b.text.trim(), `${f.name} does not start with the modeline`);
}

// --- JSON, named.conf, systemd drop-ins, crontab ------------------------------

describe('docs examples: other configuration formats', () => {
  for (const b of active(['json'])) {
    it(`${title(b)}: every key is in docs/status.schema.json`, () => {
      const schema = JSON.parse(readFileSync(path.join(REPO, 'docs', 'status.schema.json'), 'utf8')) as JsonSchema;
      const doc: unknown = JSON.parse(b.text.replace(/(?<!")…(?!")/g, 'null'));
      assert.deepEqual(unknownJsonKeys(doc, schema), [], `${where(b)}: keys that mxcert status --json does not have`);
    });
  }
  for (const b of active(['named-conf'])) {
    it(`${title(b)}: named-checkconf accepts it`, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-docs-named-'));
      try {
        // The placeholder secret ("…") becomes a real one.
        const conf = b.text.replace(/secret\s+"…"/g, `secret "${randomBytes(32).toString('base64')}"`);
        await writeFile(path.join(dir, 'named.conf'), conf);
        const r = await run('named-checkconf', [path.join(dir, 'named.conf')], { allowFailure: true });
        assert.equal(r.code, 0, `${where(b)}: named-checkconf:\n${r.stdout}${r.stderr}`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
  for (const b of active(['systemd-dropin'])) {
    it(`${title(b)}: systemd-analyze verify loads it as a drop-in without a warning`, async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-docs-unit-'));
      try {
        // As in test/unit/systemd-units.test.ts: ExecStart= must name an existing executable.
        await writeFile(path.join(dir, 'mxcert'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
        const unit = readFileSync(path.join(REPO, 'systemd', 'mxcert.service'), 'utf8').replace(/^ExecStart=(\S*\/)?mxcert /gm, `ExecStart=${dir}/mxcert `);
        await writeFile(path.join(dir, 'mxcert.service'), unit);
        await mkdir(path.join(dir, 'mxcert.service.d'));
        await writeFile(path.join(dir, 'mxcert.service.d', 'docs.conf'), b.text + '\n');
        const r = await run('systemd-analyze', ['verify', path.join(dir, 'mxcert.service')], { allowFailure: true, env: { ...process.env, SYSTEMD_LOG_LEVEL: 'info' } });
        const out = r.stdout + r.stderr;
        assert.ok(out.includes('docs.conf') || r.code === 0, out);
        assert.doesNotMatch(out, /docs\.conf:\d+:/, `${where(b)}: systemd-analyze verify complains about the drop-in:\n${out}`);
        assert.equal(r.code, 0, out);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
  for (const b of active(['crontab'])) {
    it(`${title(b)}: a system crontab line (m h dom mon dow user command)`, () => {
      for (const l of b.text.split('\n').filter((x) => x.trim() && !x.trim().startsWith('#'))) {
        const c = cronCommand(l);
        assert.ok(c, `${where(b)}: not a crontab line: ${l}`);
        assert.equal(c.user, 'root', `${where(b)}: mxcert runs as root`);
      }
    });
  }
});

// --- Against real servers --------------------------------------------------------

/** How the sandbox runs each mxcert command; a command not listed is checked against --help only (and said so). */
const RUNNABLE: Record<string, 'run' | 'last' | 'import' | 'daemon'> = {
  '': 'run', 'config check': 'run', status: 'run', tlsa: 'run', check: 'run', renew: 'run', rollover: 'run',
  'account show': 'run', 'account update': 'run', 'account rollover-key': 'run',
  // Revoking replaces the certificate: after every other example.
  revoke: 'last',
  'import-certbot': 'import',
  run: 'daemon',
};

interface World {
  sb: Sandbox;
  config: string;
  metricsPort: number;
  certbotDir: string;
  importOut: string;
  mtaConfig: string;
}

describe('docs examples: commands run against Pebble, BIND and Postfix', { timeout: 600_000 }, () => {
  let w: World;
  let helps: Map<string, HelpInfo>;
  const deferred: string[][] = [];
  before(async () => {
    helps = await readHelps();
    w = await startWorld();
  });
  after(async () => {
    await w?.sb.stop();
    if (w && !process.env.MXCERT_TEST_KEEP) await rm(path.dirname(w.certbotDir), { recursive: true, force: true });
  });

  const runnable = BLOCKS.filter((b) => b.marker?.kind !== 'skip' && (mxcertCommands(b).length > 0 || b.marker?.kind === 'output-of'));
  for (const b of runnable) {
    it(`${title(b)}: runs`, async (t) => {
      if (b.marker?.kind === 'output-of') {
        const argv = shellLines(b.marker.command)[0]!.commands[0]!.argv;
        const r = await runOne(w, helps, argv, t);
        assert.ok(r, `${where(b)}: output-of names a command the sandbox does not run: ${b.marker.command}`);
        const problem = compareShapes(b.text.split('\n').filter((l) => l.trim() !== ''), [...r.stdout.split('\n'), ...r.stderr.split('\n')]);
        assert.equal(problem, undefined, `${where(b)}: ${problem}`);
        return;
      }
      for (const { line, cmd, output } of mxcertCommands(b)) {
        const at = `${b.file}:${b.line + line}: ${cmd.argv.join(' ')}`;
        const path_ = checkArgv(cmd.argv.slice(1), helps, { synopsis: false }).path.join(' ');
        if (RUNNABLE[path_] === 'last') {
          deferred.push(cmd.argv);
          t.diagnostic(`${at}: runs after every other example`);
          continue;
        }
        const r = await runOne(w, helps, cmd.argv, t);
        if (!r) {
          if (output && output.length > 0) t.diagnostic(`${at}: its example output is not compared (the command was not run)`);
          continue;
        }
        if (output && output.length > 0) {
          const problem = compareShapes(output, [...r.stdout.split('\n'), ...r.stderr.split('\n')]);
          assert.equal(problem, undefined, `${at}: ${problem}`);
        }
      }
    });
  }

  it('Prometheus rules in the docs use metrics the daemon serves (mxcert run with metrics.listen)', async (t) => {
    const names = await daemonMetricNames(w);
    t.diagnostic(`the daemon serves ${names.size} mxcert_* metrics`);
    for (const b of active(['yaml'])) {
      const exprs = ruleExprs(parseYaml(b.text));
      if (!exprs) continue;
      const missing = exprs.flatMap(metricNames).filter((n) => !names.has(n));
      assert.deepEqual(missing, [], `${where(b)}: metrics not served by mxcert run`);
    }
  });

  it('the stateDir tree in the docs lists every file a real stateDir holds', async (t) => {
    const trees = active(['file-tree']);
    const files = await listFiles(w.sb.stateDir);
    t.diagnostic(`the real stateDir holds: ${files.join(', ')}`);
    for (const b of trees) {
      const patterns = treePatterns(b.text);
      const undocumented = files.filter((f) => !patterns.some((p) => p.test(f)));
      assert.deepEqual(undocumented, [], `${where(b)}: files in a real stateDir that the tree does not show`);
    }
  });

  it('commands that change the certificate for good (revoke) run last', async (t) => {
    if (deferred.length === 0) t.diagnostic('the docs show none in a code block');
    for (const argv of deferred) await runOne(w, helps, argv, t);
  });
});

/**
 * The sandbox every command runs in: one certificate (mx1) issued by Pebble
 * over dns-01 on BIND, served by Postfix, with DANE on and metrics
 * configured. It is left in the state the DANE examples show: steady,
 * inside the hold (minHold 1h).
 */
async function startWorld(): Promise<World> {
  const sb = await startSandbox({ secondary: false });
  try {
    const metricsPort = await freePort();
    const cfg = sb.baseConfig({ challenge: 'dns-01' });
    const dns = cfg.certificates[0].challenge.dns;
    cfg.metrics = { listen: `127.0.0.1:${metricsPort}` };
    cfg.certificates[0].dane = {
      enabled: true,
      endpoints: [{ host: 'mx1.example.test', port: sb.postfix.port }],
      publisher: { provider: 'rfc2136', server: dns.server, port: dns.port, zone: dns.zone, tsig: dns.tsig, ttl: 2, nameservers: dns.nameservers },
      keyLifetime: '90d',
      minHold: '1h',
    };
    const config = await sb.writeConfig(cfg);
    const env = { MXCERT_CONFIG: config };
    const first = await sb.cli(['renew', '--force'], { env });
    assert.equal(first.code, 0, first.stdout + first.stderr);
    await pollUntil(async () => {
      const st = JSON.parse((await sb.cli(['status', '--json'], { env })).stdout) as { certificates: Array<{ dane?: { phase: string } }> };
      if (st.certificates[0]?.dane?.phase === 'STEADY') return true;
      await sb.cli(['renew'], { env });
      return undefined;
    }, { deadlineMs: 60_000, intervalMs: 200, what: 'DANE to reach STEADY' });
    return { sb, config, metricsPort, ...(await makeCertbotState()) };
  } catch (err) {
    await sb.stop();
    throw err;
  }
}

/**
 * What certbot 2.x leaves in /etc/letsencrypt for a webroot certificate
 * (renewal config, live/ symlinks into archive/), plus a Postfix main.cf
 * that names its files: enough for `mxcert import-certbot` to import it and
 * print the MTA lines to change. The real certbot runs in
 * test/integration/import-certbot.test.ts.
 */
async function makeCertbotState(): Promise<{ certbotDir: string; importOut: string; mtaConfig: string }> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'mxcert-docs-certbot-'));
  const certbotDir = path.join(base, 'letsencrypt');
  const name = 'mx1.example.test';
  const archive = path.join(certbotDir, 'archive', name);
  const live = path.join(certbotDir, 'live', name);
  await mkdir(archive, { recursive: true });
  await mkdir(live, { recursive: true });
  await mkdir(path.join(certbotDir, 'renewal'));
  await mkdir(path.join(base, 'www'));
  await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', path.join(archive, 'privkey1.pem'),
    '-out', path.join(archive, 'cert1.pem'), '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`]);
  await chmod(path.join(archive, 'privkey1.pem'), 0o600);
  const pem = await readFile(path.join(archive, 'cert1.pem'), 'utf8');
  await writeFile(path.join(archive, 'chain1.pem'), pem);
  await writeFile(path.join(archive, 'fullchain1.pem'), pem + pem);
  for (const f of ['cert', 'privkey', 'chain', 'fullchain']) await symlink(`../../archive/${name}/${f}1.pem`, path.join(live, `${f}.pem`));
  await writeFile(path.join(certbotDir, 'renewal', `${name}.conf`), [
    'version = 2.1.0', `archive_dir = ${archive}`, `cert = ${live}/cert.pem`, `privkey = ${live}/privkey.pem`, `chain = ${live}/chain.pem`, `fullchain = ${live}/fullchain.pem`, '',
    '[renewalparams]', 'account = 6b393a958c1cdd3622410d8bd56ed3bc', 'key_type = ecdsa', 'authenticator = webroot', `webroot_path = ${base}/www,`,
    'server = https://acme-v02.api.letsencrypt.org/directory', '[[webroot_map]]', `${name} = ${base}/www`, '',
  ].join('\n'));
  const mtaConfig = path.join(base, 'main.cf');
  await writeFile(mtaConfig, `smtpd_tls_security_level = may\nsmtpd_tls_chain_files = ${live}/privkey.pem, ${live}/fullchain.pem\n`);
  return { certbotDir, importOut: path.join(base, 'mxcert-live'), mtaConfig };
}

/**
 * Runs one documented mxcert command for real, as the docs write it, with
 * MXCERT_CONFIG pointing at the sandbox config (a --config in the command is
 * pointed there too). import-certbot gets the sandbox's certbot directory
 * when the command names none; `mxcert run` starts the daemon and stops it
 * after one pass. Commands the sandbox cannot run return undefined, noted.
 */
async function runOne(w: World, helps: Map<string, HelpInfo>, argv: string[], t: TestContext) {
  const parsed = checkArgv(argv.slice(1), helps, { synopsis: false });
  assert.deepEqual(parsed.problems, [], argv.join(' '));
  const how = RUNNABLE[parsed.path.join(' ')];
  if (!how) {
    t.diagnostic(`checked against --help only (the sandbox does not run "mxcert ${parsed.path.join(' ')}"): ${argv.join(' ')}`);
    return undefined;
  }
  const args = argv.slice(1).map((a, i, all) => (i > 0 && ['--config', '-c'].includes(all[i - 1]!) ? w.config : a.startsWith('--config=') ? `--config=${w.config}` : a));
  if (how === 'daemon') {
    await daemonMetricNames(w, args);
    return { code: 0, stdout: '', stderr: '' };
  }
  if (how === 'import') {
    const has = (o: string) => args.some((a) => a === o || a.startsWith(`${o}=`));
    if (!has('--config-dir')) args.push('--config-dir', w.certbotDir);
    if (!has('--output-dir')) args.push('--output-dir', w.importOut);
    if (!has('--mta-config')) args.push('--mta-config', w.mtaConfig);
  }
  const r = await mxcert(args, { MXCERT_CONFIG: w.config });
  assert.equal(r.code, 0, `mxcert ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  if (parsed.path.length === 0 && parsed.options.some((o) => o === '--version' || o === '-V')) assert.equal(r.stdout.trim(), PKG.version);
  // What a documented `status --json` prints is the documented schema.
  if (parsed.path.join(' ') === 'status' && parsed.options.includes('--json')) assertStatusSchema(JSON.parse(r.stdout));
  t.diagnostic(`ran: mxcert ${args.join(' ')} → exit 0`);
  return r;
}

/** Starts `mxcert run`, waits for its first pass to show in /metrics, stops it with SIGTERM (exit 0), and returns the mxcert_* metric names it served. */
async function daemonMetricNames(w: World, args: string[] = ['run']): Promise<Set<string>> {
  const d = startDaemon({ name: 'mxcert run', command: process.execPath, args: [CLI, ...args], cwd: w.sb.dir, logPath: path.join(w.sb.dir, 'daemon.log'), env: { ...process.env, MXCERT_CONFIG: w.config } });
  try {
    const body = await pollUntil(async () => {
      const res = await fetch(`http://127.0.0.1:${w.metricsPort}/metrics`);
      const text = await res.text();
      return /^mxcert_last_pass_timestamp_seconds \d/m.test(text) ? text : undefined;
    }, { deadlineMs: 60_000, intervalMs: 100, what: 'the daemon to finish a pass and serve it in /metrics', detail: () => readFileSync(d.logPath, 'utf8').slice(-3000) });
    process.kill(d.pid, 'SIGTERM');
    const exit = await Promise.race([d.exited, new Promise<undefined>((r) => setTimeout(r, 30_000, undefined))]);
    assert.ok(exit, 'mxcert run did not exit within 30 s of SIGTERM');
    assert.equal(exit.code, 0, `mxcert run exit after SIGTERM:\n${readFileSync(d.logPath, 'utf8').slice(-3000)}`);
    return new Set([...body.matchAll(/^# (?:HELP|TYPE) (mxcert_\w+)/gm)].map((m) => m[1]!));
  } finally {
    if (!d.hasExited()) await stopPid(d.pid);
  }
}

async function listFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(root, p)));
    else out.push(p);
  }
  return out;
}
