// Loads and validates the daemon's config in a short-lived child process
// (idle memory: docs/architecture.md, "The daemon and its children"). The YAML parser, the zod schema and what validating
// allocates stay out of the long-lived daemon, which keeps only the result:
// the validated config as plain data, the cron expression in effect and its
// next tick (node-cron stays out of the daemon too, see cron-tick.ts).
//
// Protocol (IPC, advanced serialization, as for pass-child):
//   parent → child: { type: 'load', path, env }
// `env` is the daemon's environment, where `*Env` secrets are checked; this
// process's own environment is cut down (child-env.ts).
//   child → parent: { type: 'config', config, schedule, nextTickAt }
//                 | { type: 'invalid', problems }   (a ConfigError: exit 2 at start, rejected on SIGHUP)
//                 | { type: 'error', error }
import type { Config } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import { ConfigError, describeError, type ConfigProblem } from '../errors.js';
import { nextTick, scheduleOf } from '../schedule/cron-tick.js';

export interface ConfigRequest {
  type: 'load';
  path: string;
  env: NodeJS.ProcessEnv;
}
export type ConfigReply =
  | { type: 'config'; config: Config; schedule: string; nextTickAt: number }
  | { type: 'invalid'; problems: ConfigProblem[] }
  | { type: 'error'; error: string };

async function load(req: ConfigRequest): Promise<ConfigReply> {
  try {
    const config = await loadConfig(req.path, { env: req.env });
    const schedule = scheduleOf(config);
    return { type: 'config', config, schedule, nextTickAt: nextTick(schedule).getTime() };
  } catch (err) {
    if (err instanceof ConfigError) return { type: 'invalid', problems: err.problems };
    return { type: 'error', error: describeError(err) };
  }
}

process.once('message', (msg: ConfigRequest) => {
  void load(msg).then(
    (reply) => {
      if (process.connected) process.send?.(reply, () => process.exit(0));
      else process.exit(0);
    },
    () => process.exit(1),
  );
});
