// `npm run deb` builds a Debian package that lintian accepts, that installs
// with dpkg -i and runs from /usr/lib/mxcert alone (no npm, no repository),
// whose units pass systemd-analyze verify, and that dpkg removes and purges
// the Debian way (scripts/build-deb.mjs, packaging/deb/).
//
// It installs the package on this machine, so it refuses to run where mxcert
// is already installed, and purges it again in `after`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO } from '../support/sandbox.js';
import { freePort, pollUntil, run, type RunResult } from '../env/proc.js';

const LIB = '/usr/lib/mxcert';
const CONFIG = '/etc/mxcert/config.yaml';
const STATE = '/var/lib/mxcert';
const UNITS = ['/lib/systemd/system/mxcert.service', '/lib/systemd/system/mxcert-renew.service', '/lib/systemd/system/mxcert-renew.timer'];
/** An environment that cannot reach the repository's node_modules or npm. */
const BARE_ENV = { PATH: '/usr/bin:/bin', LC_ALL: 'C.UTF-8', TERM: 'dumb' };

/**
 * dpkg, waiting while another dpkg or apt holds its lock (dpkg itself has no
 * lock timeout; apt-get's DPkg::Lock::Timeout does not apply to it).
 */
async function dpkg(args: string[], opts: { allowFailure?: boolean } = {}): Promise<RunResult> {
  return pollUntil(
    async () => {
      const r = await run('dpkg', args, { allowFailure: true, timeoutMs: 300_000 });
      if (r.code !== 0 && /lock/i.test(r.stderr) && /locked|held by/i.test(r.stderr)) return undefined;
      if (r.code !== 0 && !opts.allowFailure) throw new Error(`dpkg ${args.join(' ')} exited ${r.code}\n${r.stdout}${r.stderr}`);
      return r;
    },
    { deadlineMs: 600_000, intervalMs: 1000, what: `the dpkg lock for dpkg ${args.join(' ')}` },
  );
}

async function installedVersion(): Promise<string | undefined> {
  const r = await run('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', 'mxcert'], { allowFailure: true });
  const [status, version] = r.stdout.trim().split(' ');
  return r.code === 0 && status === 'installed' ? version : undefined;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

const mode = async (p: string) => (await stat(p)).mode & 0o7777;

describe('Debian package', { timeout: 900_000 }, () => {
  let work: string;
  let deb: string;
  let pkg: { version: string };
  /** Set once before() has seen that none of the package's paths existed: then they are all ours. */
  let owned = false;

  before(async () => {
    const status = await run('dpkg-query', ['-W', '-f=${db:Status-Abbrev}', 'mxcert'], { allowFailure: true });
    assert.ok(status.code !== 0 || status.stdout.trim() === 'un', `mxcert is already known to dpkg here (${status.stdout.trim()}): this test installs and purges it, and will not touch an existing install`);
    // An install done by hand (npm install -g and docs/systemd.md) lives in
    // the same places; purging would delete its config and state.
    for (const p of ['/etc/mxcert', STATE, LIB, '/usr/bin/mxcert']) {
      assert.equal(await exists(p), false, `${p} exists: this test installs and purges the package, and will not touch an existing install`);
    }
    owned = true;
    // Depends: nodejs (>= 20) is checked by dpkg, so node must be a dpkg package.
    const node = await run('dpkg-query', ['-W', '-f=${Version}', 'nodejs'], { allowFailure: true });
    assert.ok(node.code === 0 && Number(node.stdout.split('.')[0]!.replace(/^\d+:/, '')) >= 20, `the package depends on nodejs (>= 20) from dpkg; dpkg-query says: ${node.stdout}${node.stderr}`);
    pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    work = await mkdtemp(path.join(os.tmpdir(), 'mxcert-deb-test-'));
    const built = await run('npm', ['run', '--silent', 'deb', '--', '--out', work], { cwd: REPO, timeoutMs: 600_000 });
    deb = built.stdout.trim().split('\n').at(-1)!;
  });

  after(async () => {
    // The package, in whatever state a failed step left it; then anything
    // left in its directories, which did not exist before this test.
    if (owned) {
      if ((await run('dpkg-query', ['-W', 'mxcert'], { allowFailure: true })).code === 0) {
        await dpkg(['--purge', 'mxcert'], { allowFailure: true });
      }
      for (const p of ['/etc/mxcert', STATE, LIB]) await rm(p, { recursive: true, force: true });
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is mxcert_<version>-1_all.deb, for nodejs (>= 20), with the units, hooks, config and docs', async () => {
    // npm's pre-release "-rc.1" is Debian's "~rc.1"; "-1" is the packaging revision.
    const version = `${pkg.version.replace(/-/g, '~')}-1`;
    assert.equal(path.basename(deb), `mxcert_${version}_all.deb`);
    const field = async (f: string) => (await run('dpkg-deb', ['-f', deb, f])).stdout.trim();
    assert.equal(await field('Package'), 'mxcert');
    assert.equal(await field('Version'), version);
    assert.equal(await field('Architecture'), 'all');
    assert.equal(await field('Depends'), 'nodejs (>= 20)');
    const list = (await run('dpkg-deb', ['-c', deb])).stdout;
    for (const f of [
      './usr/bin/mxcert', `.${LIB}/package.json`, `.${LIB}/dist/bundle/main.js`, `.${LIB}/dist/bundle/pass-child.js`,
      `.${LIB}/dist/bundle/config-child.js`, `.${LIB}/dist/bundle/fleet-child.js`, `.${LIB}/node_modules/pino/package.json`, `.${LIB}/node_modules/pino-pretty/package.json`,
      `.${LIB}/hooks/postfix-reload`, `.${LIB}/hooks/nsupdate-tlsa`, `.${CONFIG}`, `.${STATE}/`,
      './usr/share/doc/mxcert/copyright', './usr/share/doc/mxcert/changelog.Debian.gz', './usr/share/doc/mxcert/README.md.gz',
      './usr/share/doc/mxcert/systemd.md.gz', './usr/share/doc/mxcert/architecture.md.gz', './usr/share/doc/mxcert/examples/example.yaml',
      './usr/share/man/man1/mxcert.1.gz', ...UNITS.map((u) => `.${u}`),
    ]) {
      assert.match(list, new RegExp(` ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), `${f} is not in the package`);
    }
    // Lean: the bundle's own dependencies are compiled in, only the externals ship.
    for (const f of ['commander', 'zod', 'yaml', 'execa', 'typescript', 'esbuild', 'tsx']) {
      assert.doesNotMatch(list, new RegExp(`/node_modules/${f}/`), `${f} should not be shipped`);
    }
    assert.doesNotMatch(list, /\.map$|\.d\.ts$|\/test\/|\/\.github\//m, 'source maps, type declarations and tests stay out');
    assert.equal((await run('dpkg-deb', ['-I', deb, 'conffiles'])).stdout.trim(), CONFIG);
  });

  it('lintian finds no errors', async (t) => {
    const r = await run('lintian', ['--display-info', deb], { allowFailure: true, timeoutMs: 300_000 });
    const tags = r.stdout.split('\n').filter((l) => /^[EWIXP]: /.test(l));
    for (const l of tags) t.diagnostic(l);
    assert.deepEqual(tags.filter((l) => l.startsWith('E: ')), [], r.stdout + r.stderr);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('dpkg -i installs it: modes, launcher, no unit enabled', async () => {
    await dpkg(['-i', deb]);
    assert.equal(await installedVersion(), `${pkg.version.replace(/-/g, '~')}-1`);
    assert.equal(await mode(CONFIG), 0o600);
    assert.equal(await mode(STATE), 0o700);
    assert.equal(await mode('/usr/bin/mxcert'), 0o755);
    for (const h of ['postfix-reload', 'exim-reload', 'dovecot-reload', 'nsupdate-tlsa', 'notify-mail']) {
      await access(path.join(LIB, 'hooks', h), constants.X_OK);
    }
    // The launcher runs the distribution's node, whatever comes first on PATH.
    assert.match(await readFile('/usr/bin/mxcert', 'utf8'), /^#!\/usr\/bin\/node\n/);
    // The config must be edited first: postinst enables nothing.
    for (const link of ['multi-user.target.wants/mxcert.service', 'timers.target.wants/mxcert-renew.timer']) {
      assert.equal(await exists(path.join('/etc/systemd/system', link)), false, `${link} was enabled`);
    }
  });

  it('systemd-analyze verify accepts the installed units, which start /usr/bin/mxcert', async () => {
    for (const u of UNITS.filter((u) => u.endsWith('.service'))) {
      assert.match(await readFile(u, 'utf8'), /^ExecStart=\/usr\/bin\/mxcert (run|renew)/m, u);
    }
    const r = await run('systemd-analyze', ['verify', ...UNITS], {
      cwd: '/', allowFailure: true, env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' },
    });
    const ours = (r.stdout + r.stderr).split('\n').filter((l) => /mxcert/.test(l));
    assert.deepEqual(ours, [], r.stdout + r.stderr);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('runs from the installed copy alone: --version, config check, pino and pino-pretty', async () => {
    const version = await run('/usr/bin/mxcert', ['--version'], { cwd: '/', env: BARE_ENV });
    assert.equal(version.stdout.trim(), pkg.version);

    // Every package the bundle loads at run time, and each of their
    // dependencies, resolves inside /usr/lib/mxcert/node_modules: nothing is
    // found by luck in npm's global directory.
    const resolveAll = `
      const { createRequire } = require('node:module'); const fs = require('node:fs'); const path = require('node:path');
      const top = '${LIB}/node_modules'; const out = [];
      // A types-only package (@types/node, undici-types: a runtime dependency of protobufjs) has no JS entry to resolve: its directory must be found.
      const check = (from, dep) => { const req = createRequire(from); let r; try { r = req.resolve(dep); } catch (e) {
          r = (req.resolve.paths(dep) || []).map((d) => path.join(d, dep)).find((d) => fs.existsSync(path.join(d, 'package.json')));
          if (!r) { out.push(dep + ' from ' + from + ': ' + e.code); return; } }
        if (!r.startsWith(top + '/')) out.push(dep + ' from ' + from + ' -> ' + r); };
      const walk = (dir) => { for (const e of fs.readdirSync(dir)) { const p = path.join(dir, e);
        if (e.startsWith('@')) { walk(p); continue; }
        const pj = JSON.parse(fs.readFileSync(path.join(p, 'package.json'), 'utf8'));
        for (const d of Object.keys(pj.dependencies || {})) check(path.join(p, 'package.json'), d);
        if (fs.existsSync(path.join(p, 'node_modules'))) walk(path.join(p, 'node_modules')); } };
      for (const d of ['pino', 'pino-pretty']) check('${LIB}/dist/bundle/main.js', d);
      walk(top); console.log(JSON.stringify(out));`;
    const resolved = await run('/usr/bin/node', ['-e', resolveAll], { cwd: '/', env: BARE_ENV });
    assert.deepEqual(JSON.parse(resolved.stdout), []);

    const dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-deb-run-'));
    try {
      await chmod(dir, 0o700);
      await mkdir(path.join(dir, 'out'), { mode: 0o755 });
      // Nothing listens on this port: the pass fails at the ACME directory, after logging.
      const acmePort = await freePort();
      const httpPort = await freePort();
      const config = path.join(dir, 'config.yaml');
      await writeFile(config, [
        `stateDir: ${dir}/state`,
        'acme:',
        `  directory: https://127.0.0.1:${acmePort}/directory`,
        'certificates:',
        '  - name: mx1',
        '    domains: [mx1.example.test]',
        `    challenge: { type: http-01, http: { listen: "127.0.0.1:${httpPort}" } }`,
        `    output: { combined: ${dir}/out/mx1.pem }`,
        `    hooks: { deploy: [${LIB}/hooks/postfix-reload] }`,
        '',
      ].join('\n'), { mode: 0o600 });

      const check = await run('/usr/bin/mxcert', ['config', 'check', '--config', config], { cwd: '/', env: BARE_ENV, allowFailure: true });
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout + check.stderr, /ok \(1 certificate\)/);

      // Not a terminal: pino writes JSON lines.
      const json = await run('/usr/bin/mxcert', ['renew', '--config', config], { cwd: '/', env: BARE_ENV, allowFailure: true, timeoutMs: 60_000 });
      assert.equal(json.code, 1, json.stdout + json.stderr);
      assert.match(json.stderr, /^\{"level":30,.*"msg":"renewing"\}$/m, json.stderr);

      // On a terminal: pino starts pino-pretty in a worker thread, from files
      // resolved inside pino's own directory. script(1) provides the terminal.
      await rm(path.join(dir, 'state'), { recursive: true, force: true });
      const tty = await run('script', ['-qec', `/usr/bin/mxcert renew --config ${config}`, '/dev/null'], {
        cwd: '/', env: BARE_ENV, allowFailure: true, timeoutMs: 60_000,
      });
      assert.equal(tty.code, 1, tty.stdout + tty.stderr);
      assert.match(tty.stdout, /INFO.*renewing/, tty.stdout);
      assert.doesNotMatch(tty.stdout, /"level":|Error: unable to determine transport target|Cannot find module/, tty.stdout);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the manual page describes every command and option --help lists', async () => {
    const help = (await run('/usr/bin/mxcert', ['--help'], { cwd: '/', env: BARE_ENV })).stdout;
    const commands = [...help.split(/^Commands:$/m)[1]!.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    assert.ok(commands.includes('renew') && commands.includes('run'), help);
    const man = (await run('man', ['-P', 'cat', '-l', '/usr/share/man/man1/mxcert.1.gz'], { env: { ...BARE_ENV, MANWIDTH: '200' } })).stdout;
    for (const c of commands) assert.match(man, new RegExp(`^\\s+mxcert ${c}\\b`, 'm'), `mxcert ${c} is not in the manual page`);
    for (const c of commands) {
      const sub = (await run('/usr/bin/mxcert', [c, '--help'], { cwd: '/', env: BARE_ENV })).stdout;
      for (const [, opt] of sub.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/gm)) {
        if (opt !== '--help') assert.ok(man.includes(opt!), `mxcert ${c} ${opt} is not in the manual page`);
      }
    }
  });

  it('the shipped config is the documented example: config check names the placeholders, exit 2', async () => {
    const r = await run('/usr/bin/mxcert', ['config', 'check'], { cwd: '/', env: BARE_ENV, allowFailure: true });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /certificates\[0\]\.challenge\.dns\.tsig\.secretFile: cannot read \/etc\/mxcert\/tsig\.key/);
    assert.doesNotMatch(r.stderr, /TypeError|ReferenceError|at .*\.js:\d+/);
    // The daemon refuses it the same way before touching anything.
    const daemon = await run('/usr/bin/mxcert', ['run'], { cwd: '/', env: BARE_ENV, allowFailure: true, timeoutMs: 60_000 });
    assert.equal(daemon.code, 2, daemon.stdout + daemon.stderr);
    assert.deepEqual(await readdir(STATE), []);
  });

  it('reinstalling keeps an edited config; dpkg -r keeps config and state', async () => {
    const edited = `${await readFile(CONFIG, 'utf8')}# edited by the admin\n`;
    await writeFile(CONFIG, edited);
    await dpkg(['-i', deb]); // an upgrade to the same version: prerm upgrade, postinst configure <old>
    assert.equal(await readFile(CONFIG, 'utf8'), edited);
    assert.equal(await mode(CONFIG), 0o600);

    await writeFile(path.join(STATE, 'marker'), 'state\n', { mode: 0o600 });
    await dpkg(['-r', 'mxcert']);
    assert.equal(await installedVersion(), undefined);
    assert.equal(await exists('/usr/bin/mxcert'), false);
    assert.equal(await exists(`${LIB}/dist/bundle/main.js`), false);
    assert.equal(await exists(UNITS[0]!), false);
    assert.equal(await readFile(CONFIG, 'utf8'), edited);
    assert.equal(await readFile(path.join(STATE, 'marker'), 'utf8'), 'state\n');
  });

  it('dpkg -P removes the config and the state, and leaves files the admin added to /etc/mxcert', async () => {
    const adminFile = '/etc/mxcert/tsig.key';
    await writeFile(adminFile, 'secret\n', { mode: 0o600 });
    await dpkg(['-P', 'mxcert']);
    assert.equal(await exists(CONFIG), false);
    assert.equal(await exists(STATE), false);
    assert.equal(await readFile(adminFile, 'utf8'), 'secret\n');
    const known = await run('dpkg-query', ['-W', 'mxcert'], { allowFailure: true });
    assert.notEqual(known.code, 0, 'dpkg forgets a purged package');
  });
});
