// How the daemon starts its children (config-child, pass-child,
// fleet-child; docs/architecture.md, "The daemon and its children").
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Starts `module`, a sibling of this file (also in the bundle, where every
 * entry point sits in one folder), with an IPC channel in structured-clone
 * form (Dates and Maps cross intact), the daemon's stdout and stderr, and
 * exactly `env` (child-env.ts decides what that holds).
 */
export function forkSibling(module: string, env: NodeJS.ProcessEnv): ChildProcess {
  return fork(fileURLToPath(new URL(module, import.meta.url)), [], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: process.execArgv,
    env,
  });
}
