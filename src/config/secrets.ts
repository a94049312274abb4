// Secrets (TSIG keys, EAB HMAC keys, API keys): where they may come from and
// the rules for each source (docs/architecture.md, "Security model").
// - A file must be readable and writable by its owner only, like ssh's
//   private keys; what it may hold is src/config/key-files.ts.
// - An environment variable named by a `*Env` setting must be set and not
//   empty; hooks never receive it (src/hooks/environment.ts).
// Config checks report at YAML paths; readSecret is what the renewal and the
// DANE publishers call. Messages name files and variables, never contents.
import { constants as fsc } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { normalizeTsigAlgorithm, sameKeyName } from './certbot-credentials.js';
import { readProblem } from './errno-text.js';
import { secretFromKeyFile, type KeyFileSecret } from './key-files.js';
import { onceEach, type Once } from '../util/once.js';

type Env = NodeJS.ProcessEnv;

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

// Where secretEnv and the like are looked up by default: this process's
// environment, except in the daemon's pass child, which gets those values
// over its IPC channel instead, so that neither its own environment nor
// anything it starts holds them (src/daemon/pass-child.ts).
let secretEnvSource: Env = process.env;

/**
 * Why a secret file with st_mode `mode` is refused, or undefined. Like ssh
 * with private keys: a secret others can read is already leaked, one they
 * can write can be swapped. Execute bits alone are harmless.
 */
export function secretModeProblem(mode: number): string | undefined {
  const perm = mode & 0o777;
  const who =
    perm & 0o004 ? 'readable by others' : perm & 0o040 ? 'readable by group' : perm & 0o002 ? 'writable by others' : perm & 0o020 ? 'writable by group' : undefined;
  return who ? `file is ${who} (mode ${perm.toString(8).padStart(4, '0')}); use 0600` : undefined;
}

/** Look up `*Env` secrets in `env` from now on, instead of process.env. */
export function readSecretsFrom(env: Env): void {
  secretEnvSource = env;
}

/**
 * Read a secret from a file (refused if group or others may read it) or an
 * environment variable, trimmed. A file may hold the bare secret or a BIND
 * `key "name" { algorithm …; secret "…"; };` block as tsig-keygen writes it;
 * with several blocks, `ref.name` picks one (pass the tsig config as `ref`).
 */
export async function readSecret(
  ref: { secretFile?: string | undefined; secretEnv?: string | undefined; name?: string | undefined },
  env: Env = secretEnvSource,
): Promise<string> {
  if (ref.secretFile) {
    const r = await openSecretFile(ref.secretFile);
    if (!r.ok) throw secretError(`secret file ${ref.secretFile}: ${r.message}`);
    const s = secretFromKeyFile(r.content, ref.name);
    if (!s.ok) throw secretError(`secret file ${ref.secretFile}: ${s.message}`);
    return s.value;
  }
  if (ref.secretEnv) {
    const problems = checkSecretEnv(ref.secretEnv, '', env);
    if (problems.length > 0) throw secretError(problems[0]!.message);
    const s = secretFromKeyFile(env[ref.secretEnv]!, ref.name);
    if (!s.ok) throw secretError(`environment variable ${ref.secretEnv}: ${s.message}`);
    return s.value;
  }
  throw secretError('no secretFile or secretEnv given');
}

function secretError(message: string): ConfigError {
  return new ConfigError([{ path: '', message }]);
}

async function openSecretFile(file: string): Promise<{ ok: true; content: string } | { ok: false; message: string }> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    return { ok: false, message: readProblem(file, err) };
  }
  if (!st.isFile()) return { ok: false, message: `${file} is not a regular file` };
  const bad = secretModeProblem(st.mode);
  if (bad) return { ok: false, message: bad };
  try {
    await access(file, fsc.R_OK);
    return { ok: true, content: await readFile(file, 'utf8') };
  } catch (err) {
    return { ok: false, message: readProblem(file, err) };
  }
}

/** The `*Env` setting at YAML path `at` names variable `name`: it must be set in `env`, and not blank. */
export function checkSecretEnv(name: string, at: string, env: Env): ConfigProblem[] {
  const v = env[name];
  if (v === undefined) return [{ path: at, message: `environment variable ${name} is not set` }];
  if (v.trim() === '') return [{ path: at, message: `environment variable ${name} is empty` }];
  return [];
}

/**
 * The `*File` setting at YAML path `at` names `file`: it must pass the mode
 * rule and hold a secret. A TSIG secret must be base64, and a key file that
 * names its key must name the configured `keyName` and `algorithm`.
 */
export async function checkSecretFile(
  file: string,
  at: string,
  tsig: boolean,
  keyName?: string,
  algorithm?: string,
  once: Once = onceEach(),
): Promise<ConfigProblem[]> {
  // Certificates usually share one key file: read it once per load.
  const r = await once(`secret-file:${file}`, () => openSecretFile(file));
  if (!r.ok) return [{ path: at, message: r.message }];
  // And parse it once per key name: a thousand certificates name the same key.
  const { secret, base64 } = await once(`secret-parse:${file}\0${keyName ?? ''}`, async () => {
    const parsed = secretFromKeyFile(r.content, keyName);
    return { secret: parsed, base64: parsed.ok && BASE64_RE.test(parsed.value.replace(/\s+/g, '')) };
  });
  if (!secret.ok) return [{ path: at, message: secret.message }];
  if (tsig && !base64) return [{ path: at, message: 'TSIG secret is not valid base64' }];
  return tsig ? keyFileMismatch(secret, file, at, keyName, algorithm) : [];
}

/**
 * A key file that names its key (BIND block, certbot credentials) must name
 * the key and algorithm the config signs with, or the server refuses every
 * update (RFC 8945 §5.2: BADKEY). Found here instead of at the first renewal.
 */
function keyFileMismatch(secret: KeyFileSecret, file: string, at: string, keyName?: string, algorithm?: string): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const sibling = (k: string) => at.replace(/\.secretFile$/, `.${k}`);
  if (keyName !== undefined && secret.keyName !== undefined && !sameKeyName(secret.keyName, keyName)) {
    out.push({ path: sibling('name'), message: `"${keyName}" is not the key in ${file}, which is for key "${secret.keyName}"; use the name the DNS server knows` });
  }
  if (algorithm !== undefined && secret.algorithm !== undefined && normalizeTsigAlgorithm(secret.algorithm) !== normalizeTsigAlgorithm(algorithm)) {
    out.push({ path: sibling('algorithm'), message: `${algorithm} differs from ${file}, which uses ${normalizeTsigAlgorithm(secret.algorithm)}${secret.algorithmNote ?? ''}` });
  }
  return out;
}

// dane.publisher's shape belongs to the publisher module; whatever secret
// references it holds still deserve the same checks as the TSIG ones.
export async function checkPublisherSecrets(publisher: Record<string, unknown>, at: string, env: Env, once: Once = onceEach()): Promise<ConfigProblem[]> {
  const checks: Promise<ConfigProblem[]>[] = [];
  const sync: ConfigProblem[] = [];
  const walk = (node: unknown, p: string) => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return;
    const obj = node as Record<string, unknown>;
    for (const [k, v] of Object.entries(obj)) {
      const kp = `${p}.${k}`;
      if (/^(secret|apiKey|hmacKey)File$/.test(k) && typeof v === 'string') {
        const str = (x: unknown) => (typeof x === 'string' ? x : undefined);
        checks.push(checkSecretFile(v, kp, k === 'secretFile', str(obj['name']), str(obj['algorithm']), once));
      } else if (/^(secret|apiKey|hmacKey)Env$/.test(k) && typeof v === 'string') {
        sync.push(...checkSecretEnv(v, kp, env));
      } else walk(v, kp);
    }
  };
  walk(publisher, at);
  return [...sync, ...(await Promise.all(checks)).flat()];
}
