// The nsupdate route for RFC 2136 updates: BIND's nsupdate builds, signs
// (TSIG, RFC 8945) and sends the UPDATE. Used for record types the in-process
// route cannot encode, and whenever the config names an nsupdate binary.
// nsupdate is fed safely:
// - argv array, no shell; the update script on stdin, never on a command line;
// - the TSIG secret only in a key file created 0600 with O_EXCL inside a fresh
//   0700 directory, removed afterwards (`-y` would put it in `ps` output);
// - every name and datum checked (updateLines), so nothing can inject a line
//   into the script;
// - a clean environment, like a hook's (docs/architecture.md, "Security
//   model"): mxcert's own may hold the secrets that `*Env` settings name.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsError } from '../errors.js';
import { hookProcessEnv } from '../hooks/environment.js';
import type { Logger } from '../log.js';
import { updateLines, updateRefused, type RouteTarget, type UpdateOps, type UpdateRoute } from './update-ops.js';

export class NsupdateRoute implements UpdateRoute {
  constructor(
    private readonly opts: RouteTarget & {
      /** `nsupdate` (from PATH) unless the config names one. */
      nsupdatePath: string;
    },
  ) {}

  async send(ops: UpdateOps, log: Logger): Promise<void> {
    const { server, zone, tsig, timeoutMs, nsupdatePath } = this.opts;
    const script = [`server ${server.host} ${server.port}`, `zone ${zone}`, ...updateLines(ops, zone), 'send', ''].join('\n');
    const dir = await mkdtemp(join(tmpdir(), 'mxcert-tsig-'));
    try {
      const keyFile = join(dir, 'tsig.conf');
      // 'wx' = O_CREAT|O_EXCL: never write into a file someone planted there.
      const fh = await open(keyFile, 'wx', 0o600);
      try {
        await fh.writeFile(`key "${tsig.name}" {\n\talgorithm ${tsig.algorithm};\n\tsecret "${tsig.secret}";\n};\n`);
      } finally {
        await fh.close();
      }

      const timeoutSecs = Math.max(1, Math.ceil(timeoutMs / 1000));
      // Loaded on first use (execa costs ~70 ms of start-up otherwise).
      const { execa } = await import('execa');
      const result = await execa(nsupdatePath, ['-v', '-t', String(timeoutSecs), '-k', keyFile], {
        input: script,
        reject: false,
        timeout: timeoutMs + 2000,
        stripFinalNewline: true,
        // C: nsupdate's messages, parsed below, in English.
        env: hookProcessEnv({ LC_ALL: 'C' }),
        extendEnv: false,
      });

      if (result.failed || result.exitCode !== 0) {
        const output = this.scrub(`${result.stderr ?? ''}\n${result.stdout ?? ''}`.trim());
        throw this.failure(result, output);
      }
      log.debug('DNS update accepted');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private failure(result: { timedOut?: boolean; exitCode?: number; code?: string; originalMessage?: string }, output: string): DnsError {
    const { zone, where, timeoutMs, nsupdatePath } = this.opts;
    if (result.code === 'ENOENT') {
      return new DnsError(`cannot run ${nsupdatePath}: not found (install BIND's nsupdate, Debian package bind9-dnsutils)`);
    }
    if (result.timedOut) return new DnsError(`update to ${where} timed out after ${timeoutMs} ms${output ? `: ${output}` : ''}`);

    const m = /update failed: ([A-Z]+)(?:\(([A-Z]+)\))?/.exec(output);
    if (m) return updateRefused(where, zone, m[1]!, m[2]);
    const comm = /Communication with (.*) failed: (.*)/.exec(output);
    if (comm) return new DnsError(`cannot reach ${where} to update ${zone}: ${comm[2]}`);
    return new DnsError(`nsupdate failed (exit ${result.exitCode ?? '?'}) updating ${zone} at ${where}: ${output || result.originalMessage || 'no output'}`);
  }

  /** nsupdate does not print the secret, but an error message must never carry it whatever happens. */
  private scrub(text: string): string {
    return text.split(this.opts.tsig.secret).join('[redacted]');
  }
}
