// The CLI's edges: what `mxcert` prints and returns when it is called without
// a command, with --help, or with a bad MXCERT_LOG_LEVEL. Runs main() from
// the sources in a child process and reads its exit code and output.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { EXIT, logLevelEnvProblem } from '../../src/cli/main.js';

const ENTRY = `import { main } from ${JSON.stringify(new URL('../../src/cli/main.ts', import.meta.url).href)};
main(process.argv).then((code) => { process.exitCode = code; });`;

/** Runs main() from the sources in a child process (tsx), as `mxcert ARGV…`. */
function capture(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
    if (!('MXCERT_LOG_LEVEL' in env)) delete childEnv.MXCERT_LOG_LEVEL;
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, '--', 'mxcert', ...argv], { env: childEnv }, (error, stdout, stderr) => {
      const code = error ? (error as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(error);
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

describe('CLI usage', () => {
  it('`mxcert` with no command prints usage on stderr and exits 2', async () => {
    const r = await capture([]);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /Usage: mxcert/);
  });

  it('`mxcert config` with no subcommand prints its usage and exits 2', async () => {
    const r = await capture(['config']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /Usage: mxcert config/);
    assert.match(r.err, /check/);
  });

  it('--help exits 0 and lists the exit codes', async () => {
    const r = await capture(['--help']);
    assert.equal(r.code, EXIT.ok);
    assert.match(r.out, /Exit codes:/);
    for (const code of ['0', '1', '2', '3']) assert.match(r.out, new RegExp(`^\\s+${code}\\s+\\S`, 'm'), `exit code ${code} listed`);
    assert.match(r.out, /3\s+another mxcert holds the state lock/);
  });

  it('an unknown command exits 2', async () => {
    const r = await capture(['renwe']);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /unknown command/);
  });

  it('a bad MXCERT_LOG_LEVEL exits 2 and names the variable and the valid levels', async () => {
    const r = await capture(['status'], { MXCERT_LOG_LEVEL: 'verbose' });
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /MXCERT_LOG_LEVEL="verbose" is not a log level/);
    assert.match(r.err, /trace, debug, info, warn, error, fatal, silent/);
  });

  it('a bad MXCERT_LOG_LEVEL stops `mxcert run` too, before it reads any config', async () => {
    const r = await capture(['run', '--config', '/nonexistent/mxcert.yaml'], { MXCERT_LOG_LEVEL: 'loud' });
    assert.equal(r.code, EXIT.usage);
    assert.match(r.err, /MXCERT_LOG_LEVEL/);
    assert.doesNotMatch(r.err, /nonexistent/);
  });

  it('logLevelEnvProblem accepts every level and an unset or empty variable', () => {
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
      assert.equal(logLevelEnvProblem({ MXCERT_LOG_LEVEL: level }), undefined, level);
    }
    assert.equal(logLevelEnvProblem({}), undefined);
    assert.equal(logLevelEnvProblem({ MXCERT_LOG_LEVEL: '' }), undefined);
    assert.ok(logLevelEnvProblem({ MXCERT_LOG_LEVEL: 'INFO' }));
  });
});
