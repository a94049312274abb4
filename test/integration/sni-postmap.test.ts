// Installing the Postfix SNI map with the real postmap (Debian's Postfix):
// the database is built beside the live map and swapped in, 0600 because it
// holds private keys; a postmap that fails leaves the live map as it was and
// says which command failed, how, and the end of what it said; a staging
// directory left by a killed writer is removed. Also the config checks of
// `sni:` against real directories.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { installPostfixMap, MAP_SUFFIX, postfixMapCurrent, type PostfixMapTarget } from '../../src/deploy/sni-postfix.js';
import { sniProblems } from '../../src/config/sni-checks.js';
import { certificateSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { run } from '../env/proc.js';

const log = createLogger({ level: 'silent' });

describe('installPostfixMap with the real postmap', { timeout: 120_000 }, () => {
  let dir: string;
  let etc: string;
  let pems: string[];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxcert-postmap-'));
    etc = path.join(dir, 'etc');
    await mkdir(etc);
    await writeFile(path.join(etc, 'main.cf'), '');
    pems = [];
    for (const n of ['a', 'b']) {
      const key = path.join(dir, `${n}.key`);
      const crt = path.join(dir, `${n}.crt`);
      await run('openssl', ['req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-keyout', key, '-out', crt, '-days', '2', '-subj', `/CN=${n}.example.test`]);
      const pem = path.join(dir, `${n}.pem`);
      await writeFile(pem, (await readFile(key, 'utf8')) + (await readFile(crt, 'utf8')), { mode: 0o600 });
      pems.push(pem);
    }
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const type of ['hash', 'lmdb', 'cdb'] as const) {
    it(`${type}: builds beside the live map, swaps it in 0600, and postmap -q reads each name's files back`, async () => {
      const map = path.join(dir, `sni-${type}`);
      const t: PostfixMapTarget = { map, type, configDir: etc, postmap: '/usr/sbin/postmap' };
      const text = `a.example.test ${pems[0]}\n.w.example.test ${pems[0]}, ${pems[1]}\n`;
      assert.equal(await postfixMapCurrent(text, pems, t), false);
      await installPostfixMap(text, t, log);
      assert.equal(await readFile(map, 'utf8'), text);
      for (const f of [map, map + MAP_SUFFIX[type]]) assert.equal((await stat(f)).mode & 0o777, 0o600, f);
      const q = await run('/usr/sbin/postmap', ['-c', etc, '-F', '-q', '.w.example.test', `${type}:${map}`]);
      // postmap -q prints the stored value (both files, joined by a line break) and a newline.
      assert.equal(q.stdout, `${await readFile(pems[0]!, 'utf8')}\n${await readFile(pems[1]!, 'utf8')}\n`);
      assert.equal(await postfixMapCurrent(text, pems, t), true);
      assert.equal(await postfixMapCurrent(text.replace('a.example', 'c.example'), pems, t), false, 'another text is not current');
      assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith(`.sni-${type}`)), [], 'no staging directory left');
    });
  }

  it('a file newer than the database makes the map stale (a deploy whose rebuild failed)', async () => {
    const map = path.join(dir, 'sni-stale');
    const t: PostfixMapTarget = { map, type: 'hash', configDir: etc, postmap: '/usr/sbin/postmap' };
    const text = `a.example.test ${pems[0]}\n`;
    await installPostfixMap(text, t, log);
    assert.equal(await postfixMapCurrent(text, [pems[0]!], t), true);
    await writeFile(pems[0]!, await readFile(pems[0]!));
    assert.equal(await postfixMapCurrent(text, [pems[0]!], t), false);
  });

  it('postmap fails: the live map is unchanged, the error names the command, its exit code and the end of its stderr', async () => {
    const map = path.join(dir, 'sni-fail');
    const t: PostfixMapTarget = { map, type: 'hash', configDir: etc, postmap: '/usr/sbin/postmap' };
    await installPostfixMap(`a.example.test ${pems[0]}\n`, t, log);
    const before = { source: await readFile(map), db: await readFile(`${map}.db`) };
    const staging = `${dir}/\\.sni-fail\\.\\d+\\.[0-9a-f]{12}\\.d/sni-fail`;
    // A config directory without main.cf: postmap's fatal error, exit 1.
    const noMainCf = path.join(dir, 'no-main-cf');
    await mkdir(noMainCf);
    await assert.rejects(installPostfixMap(`a.example.test ${pems[1]}\n`, { ...t, configDir: noMainCf }, log), (err: Error) => {
      assert.match(err.message, new RegExp(`^/usr/sbin/postmap -c ${noMainCf} -F hash:${staging} exited with code 1: postmap: fatal: open ${noMainCf}/main\\.cf: No such file or directory; the live SNI map is unchanged$`));
      return true;
    });
    // A file postmap cannot read: it warns, skips the name and exits 0. Not a map to install.
    const missing = path.join(dir, 'missing.pem');
    await assert.rejects(installPostfixMap(`a.example.test ${pems[1]}\nb.example.test ${missing}\n`, t, log), (err: Error) => {
      assert.match(err.message, new RegExp(`^/usr/sbin/postmap -c ${etc} -F hash:${staging} left out entries: postmap: warning: .*line 2: open ${missing}: No such file or directory: skipping this entry; the live SNI map is unchanged$`));
      return true;
    });
    assert.deepEqual(await readFile(map), before.source);
    assert.deepEqual(await readFile(`${map}.db`), before.db);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.sni-fail')), []);
  });

  it('postmap not installed: says so', async () => {
    const t: PostfixMapTarget = { map: path.join(dir, 'sni-nopostmap'), type: 'hash', postmap: path.join(dir, 'no-postmap') };
    await assert.rejects(installPostfixMap('', t, log), /no-postmap -F hash:\S+ could not be run: not found \(install Postfix, or set sni\.postfix\.postmap\); the live SNI map is unchanged/);
  });

  it("removes a killed writer's staging directory (it holds keys), never a live writer's", async () => {
    const map = path.join(dir, 'sni-sweep');
    const dead = path.join(dir, '.sni-sweep.999999999.0123456789ab.d');
    const live = path.join(dir, `.sni-sweep.${process.ppid}.0123456789ab.d`);
    for (const d of [dead, live]) {
      await mkdir(d, { mode: 0o700 });
      await writeFile(path.join(d, 'sni-sweep.db'), 'secret');
    }
    await installPostfixMap(`a.example.test ${pems[0]}\n`, { map, type: 'hash', configDir: etc, postmap: '/usr/sbin/postmap' }, log);
    const left = (await readdir(dir)).filter((n) => n.startsWith('.sni-sweep'));
    assert.deepEqual(left, [path.basename(live)]);
  });

  it('refuses a symlink at the map or its database', async () => {
    const map = path.join(dir, 'sni-link');
    await symlink(pems[0]!, `${map}.db`);
    await assert.rejects(installPostfixMap('', { map, type: 'hash', configDir: etc, postmap: '/usr/sbin/postmap' }, log), /refusing to write \S+sni-link\.db: it is a symlink/);
  });

  it('config check: untrusted map directory, missing postmap, configDir without main.cf, include symlink, at their YAML paths', async () => {
    const open = path.join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    await symlink('/etc/hostname', path.join(dir, 'inc.conf'));
    const certs = [{ index: 0, cert: certificateSchema.parse({ name: 'a', domains: ['a.example'], challenge: { type: 'http-01', http: { listen: '127.0.0.1:80' } }, output: { combined: pems[0] } }) }];
    const problems = await sniProblems(
      {
        postfix: { map: path.join(open, 'sni'), type: 'hash', postmap: path.join(dir, 'no-postmap'), configDir: dir },
        dovecot: { include: path.join(dir, 'inc.conf') },
      },
      certs,
    );
    assert.deepEqual(problems.map((p) => p.path), ['sni.postfix.map', 'sni.postfix.postmap', 'sni.postfix.configDir', 'sni.dovecot.include']);
    assert.match(problems[0]!.message, /writable by (group or )?others/);
    assert.match(problems[1]!.message, /no-postmap does not exist \(install Postfix\)/);
    assert.match(problems[2]!.message, /main\.cf: .*(no such file|not found|does not exist).*\(postmap -c reads it\)/i);
    assert.match(problems[3]!.message, /is a symlink/);
    const clean = await sniProblems({ postfix: { map: path.join(dir, 'sni-ok'), type: 'hash', postmap: '/usr/sbin/postmap', configDir: etc } }, certs);
    assert.deepEqual(clean, []);
  });
});
