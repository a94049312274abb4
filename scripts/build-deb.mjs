// `npm run deb` (which runs `npm run build` first): builds
// mxcert_<version>_all.deb with dpkg-deb from dist/bundle, hooks/, systemd/,
// config/example.yaml and docs/, plus the npm packages the bundle leaves
// external and what they depend on, so installing needs no npm.
//
//   node scripts/build-deb.mjs [--out DIR]     (default DIR: dist/)
//
// Prints the path of the package. The layout below /usr/lib/mxcert is the one
// `npm install -g` creates (package.json, dist/bundle, node_modules, hooks),
// so the bundle finds its version and its externals the same way in both.
// Maintainer: $DEBFULLNAME <$DEBEMAIL> when set (as for dch), else the git
// identity of the checkout. Dates come from $SOURCE_DATE_EPOCH or the last
// commit, so two builds of one commit are identical.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { EXTERNAL } from './bundle-externals.mjs';
import { dependencyClosure, runtimeFiles, unresolvedImports } from './deb/closure.mjs';
import { copyrightFile } from './deb/copyright.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LIB = 'usr/lib/mxcert';
const DOC = 'usr/share/doc/mxcert';
const UNIT_DIR = 'lib/systemd/system';
const CONFFILE = 'etc/mxcert/config.yaml';

// ---------------------------------------------------------------------------
// Staging helpers: every file and directory gets an explicit mode, whatever
// the umask of the person building (dpkg-deb records what it finds).

function dir(root, rel, mode = 0o755) {
  let abs = root;
  for (const part of rel.split('/').filter(Boolean)) {
    abs = path.join(abs, part);
    if (!existsSync(abs)) {
      mkdirSync(abs);
      chmodSync(abs, 0o755);
    }
  }
  chmodSync(abs, mode);
}

function put(root, rel, content, mode = 0o644) {
  dir(root, path.posix.dirname(rel));
  const abs = path.join(root, rel);
  writeFileSync(abs, content);
  chmodSync(abs, mode);
}

function copy(root, rel, from, mode = 0o644) {
  dir(root, path.posix.dirname(rel));
  const abs = path.join(root, rel);
  copyFileSync(from, abs);
  chmodSync(abs, mode);
}

const gzip = (data) => gzipSync(data, { level: 9 }); // zlib writes mtime 0: reproducible

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts }).trim();
}

// ---------------------------------------------------------------------------
// Metadata

function parseArgs(argv) {
  const args = { outDir: path.join(REPO, 'dist') };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && argv[i + 1]) args.outDir = path.resolve(argv[++i]);
    else throw new Error(`usage: node scripts/build-deb.mjs [--out DIR] (got ${argv[i]})`);
  }
  return args;
}

/**
 * The Debian version of an npm version: a pre-release "1.0.0-rc.1" must sort
 * before "1.0.0", which Debian spells "1.0.0~rc.1" (deb-version(7)). The
 * "-1" revision marks the packaging as separate from the upstream release
 * (non-native), hence changelog.Debian.gz.
 */
export function debianVersion(npmVersion, revision = '1') {
  if (!/^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?$/.test(npmVersion)) throw new Error(`not a semver version: ${npmVersion}`);
  return `${npmVersion.replace(/-/g, '~')}-${revision}`;
}

function maintainer() {
  const env = process.env;
  if (env.DEBFULLNAME && env.DEBEMAIL) return `${env.DEBFULLNAME} <${env.DEBEMAIL}>`;
  try {
    return `${sh('git', ['config', 'user.name'], { cwd: REPO })} <${sh('git', ['config', 'user.email'], { cwd: REPO })}>`;
  } catch {
    throw new Error('no maintainer: set DEBFULLNAME and DEBEMAIL (or a git user.name and user.email)');
  }
}

/** Seconds since the epoch: $SOURCE_DATE_EPOCH, else the last commit's time, else now. */
function buildEpoch() {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH);
  try {
    return Number(sh('git', ['log', '-1', '--format=%ct'], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return Math.floor(Date.now() / 1000);
  }
}

/** RFC 5322 date, as debian/changelog wants it: "Mon, 07 Dec 2026 00:06:36 +0000". */
const rfc5322 = (date) => date.toUTCString().replace('GMT', '+0000');

function changelog(upstream, version, who, date) {
  return `mxcert (${version}) unstable; urgency=medium

  * mxcert ${upstream}, packaged by npm run deb.

 -- ${who}  ${rfc5322(date)}
`;
}

// ---------------------------------------------------------------------------
// Contents

function installBundle(root, pkg) {
  const bundle = path.join(REPO, 'dist', 'bundle');
  if (!existsSync(path.join(bundle, 'main.js'))) throw new Error('dist/bundle/main.js is missing: run `npm run build` first');
  const sources = readdirSync(bundle).filter((f) => f.endsWith('.js'));
  const missing = unresolvedImports(sources.map((f) => readFileSync(path.join(bundle, f), 'utf8')), EXTERNAL);
  if (missing.length > 0) throw new Error(`dist/bundle imports packages that would not be installed: ${missing.join(', ')}`);
  // Source maps stay out: nothing runs node with --enable-source-maps.
  for (const f of sources) copy(root, `${LIB}/dist/bundle/${f}`, path.join(bundle, f));
  // The bundle reads its version from ../../package.json, and "type" makes
  // its .js files ES modules.
  const meta = { name: pkg.name, version: pkg.version, description: pkg.description, license: pkg.license, type: 'module', private: true };
  put(root, `${LIB}/package.json`, `${JSON.stringify(meta, null, 2)}\n`);
  // Not bin/mxcert.js with its `env node`: the package depends on the
  // distribution's nodejs, so the launcher names /usr/bin/node and a node
  // earlier on someone's PATH (nvm) cannot change what root runs.
  put(root, 'usr/bin/mxcert', `#!/usr/bin/node
// mxcert launcher (Debian package): runs the bundle in /${LIB}/dist/bundle.
'use strict';
import('/${LIB}/dist/bundle/main.js').then(({ main }) => main(process.argv)).then((code) => {
  process.exitCode = code;
});
`, 0o755);
}

function installNodeModules(root, shipped) {
  for (const p of shipped) {
    for (const f of runtimeFiles(p)) copy(root, `${LIB}/node_modules/${p.rel}/${f}`, path.join(p.dir, f));
  }
}

function installHooksAndUnits(root) {
  for (const f of readdirSync(path.join(REPO, 'hooks'))) copy(root, `${LIB}/hooks/${f}`, path.join(REPO, 'hooks', f), 0o755);
  // The units in systemd/ say ExecStart=mxcert, a bare name systemd finds in
  // /usr/local/bin or /usr/bin, which fits every `npm install -g` prefix.
  // The package knows where its launcher is, and an absolute path is what
  // `systemd-analyze verify` and lintian expect of a packaged unit.
  for (const f of readdirSync(path.join(REPO, 'systemd'))) {
    const text = readFileSync(path.join(REPO, 'systemd', f), 'utf8');
    const unit = text.replace(/^ExecStart=mxcert /gm, 'ExecStart=/usr/bin/mxcert ');
    if (f.endsWith('.service') && unit === text) throw new Error(`systemd/${f}: no "ExecStart=mxcert " line to point at /usr/bin/mxcert`);
    put(root, `${UNIT_DIR}/${f}`, unit);
  }
}

function installConfigAndState(root) {
  // The documented example, as a conffile: it does not pass `mxcert config
  // check` until edited (a TSIG key file, output directory and names that are
  // placeholders), so a service started too early exits 2 without contacting
  // anyone, and RestartPreventExitStatus=2 keeps systemd from retrying.
  const lines = readFileSync(path.join(REPO, 'config', 'example.yaml'), 'utf8').split('\n');
  lines[0] = lines[0].replace('$schema=./mxcert.schema.json', `$schema=/${DOC}/examples/mxcert.schema.json`);
  lines.splice(1, 0,
    '# Installed by the mxcert package; the other examples are in',
    `# /${DOC}/examples. After editing: mxcert config check, then`,
    '# systemctl enable --now mxcert (or mxcert-renew.timer).',
    '#');
  dir(root, 'etc/mxcert', 0o755);
  put(root, CONFFILE, lines.join('\n'), 0o600);
  dir(root, 'var/lib/mxcert', 0o700);
}

function installDocs(root, pkg, version, copyright) {
  // Policy §12.3: documentation over 4 kB is compressed; examples stay plain
  // so they can be copied as they are.
  const doc = (name, from) => {
    const data = readFileSync(from);
    if (data.length > 4096 && name.endsWith('.md')) put(root, `${DOC}/${name}.gz`, gzip(data));
    else put(root, `${DOC}/${name}`, data);
  };
  doc('README.md', path.join(REPO, 'README.md'));
  for (const f of readdirSync(path.join(REPO, 'docs'))) {
    if (f.endsWith('.1')) put(root, `usr/share/man/man1/${f}.gz`, gzip(readFileSync(path.join(REPO, 'docs', f))));
    else doc(f, path.join(REPO, 'docs', f));
  }
  for (const f of readdirSync(path.join(REPO, 'config'))) copy(root, `${DOC}/examples/${f}`, path.join(REPO, 'config', f));
  put(root, `${DOC}/copyright`, copyright);
  copy(root, 'usr/share/lintian/overrides/mxcert', path.join(REPO, 'packaging', 'deb', 'lintian-overrides'));
  put(root, `${DOC}/changelog.Debian.gz`, gzip(changelog(pkg.version, version, maintainer(), new Date(buildEpoch() * 1000))));
}

// ---------------------------------------------------------------------------
// Control area

function walkFiles(root, rel = '') {
  return readdirSync(path.join(root, rel), { withFileTypes: true }).flatMap((e) => {
    const r = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? [r + '/', ...walkFiles(root, r)] : [r];
  });
}

function writeControl(root, version) {
  const entries = walkFiles(root).sort();
  const files = entries.filter((e) => !e.endsWith('/'));
  // dpkg-gencontrol's rule: each file rounded up to a KiB, each directory one.
  const kib = entries.reduce((n, e) => n + (e.endsWith('/') ? 1 : Math.ceil(statSync(path.join(root, e)).size / 1024)), 0);
  const md5 = files
    .filter((f) => f !== CONFFILE) // dpkg checksums conffiles itself
    .map((f) => `${createHash('md5').update(readFileSync(path.join(root, f))).digest('hex')}  ${f}\n`)
    .join('');
  const control = `Package: mxcert
Version: ${version}
Architecture: all
Maintainer: ${maintainer()}
Installed-Size: ${kib}
Depends: nodejs (>= 20)
Suggests: bind9-dnsutils
Section: admin
Priority: optional
Description: certificate lifecycle agent for mail hosts
 mxcert keeps the TLS certificates of a mail server current: it renews them
 over ACME, writes the key, certificate and chain files Postfix, Exim and
 Dovecot read (atomically, never a key that does not match its certificate),
 reloads the MTA through hooks and checks over STARTTLS that the new
 certificate is served, restoring the previous files when it is not. With
 DANE it rolls keys over so the published TLSA records always cover the key
 being served.
 .
 The services are not enabled on installation: edit /etc/mxcert/config.yaml,
 then enable mxcert.service (daemon) or mxcert-renew.timer.
`;
  put(root, 'DEBIAN/control', control);
  put(root, 'DEBIAN/conffiles', `/${CONFFILE}\n`);
  put(root, 'DEBIAN/md5sums', md5);
  for (const s of ['postinst', 'prerm', 'postrm']) copy(root, `DEBIAN/${s}`, path.join(REPO, 'packaging', 'deb', s), 0o755);
}

// ---------------------------------------------------------------------------

function main() {
  const { outDir } = parseArgs(process.argv.slice(2));
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  const version = debianVersion(pkg.version);
  const shipped = dependencyClosure(REPO, EXTERNAL);
  const bundled = dependencyClosure(REPO, Object.keys(pkg.dependencies).filter((d) => !EXTERNAL.includes(d)));
  const copyright = copyrightFile({ own: { license: pkg.license, holder: 'the mxcert authors' }, bundled, shipped, libDir: LIB });
  const stage = mkdtempSync(path.join(os.tmpdir(), 'mxcert-deb-'));
  try {
    const root = path.join(stage, 'root');
    mkdirSync(root, { mode: 0o755 });
    chmodSync(root, 0o755);
    installBundle(root, pkg);
    installNodeModules(root, shipped);
    installHooksAndUnits(root);
    installConfigAndState(root);
    installDocs(root, pkg, version, copyright);
    writeControl(root, version);
    mkdirSync(outDir, { recursive: true });
    const deb = path.join(outDir, `mxcert_${version}_all.deb`);
    // --root-owner-group: every file root:root whoever builds; SOURCE_DATE_EPOCH
    // clamps the files' mtimes (dpkg-deb(1)), so one commit builds one package.
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, deb], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, SOURCE_DATE_EPOCH: String(buildEpoch()) },
    });
    process.stdout.write(`${deb}\n`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
