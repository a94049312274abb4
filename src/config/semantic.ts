// What the schema cannot see: relations between certificates (names, output
// files), hook environments against the secrets, and the file system and
// secret checks of each part (src/config/fs-checks.ts, src/config/secrets.ts).
// Which parts of a config that failed the schema still parse on their own:
// src/config/partial-parts.ts.
import path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import { expandOutputPath, OUTPUT_KINDS, unknownPlaceholders } from '../deploy/output-paths.js';
import { secretEnvNames } from '../hooks/environment.js';
import { checkCaBundle, checkWebroot, hookProblems, outputTargetProblems } from './fs-checks.js';
import type { CertificateConfig, FleetConfig, ParsedConfig } from './schema.js';

/** What the fleet checks need: the blocks that name files. */
export interface FleetFiles {
  keyEncryption?: FleetConfig['keyEncryption'];
  etcd?: FleetConfig['etcd'];
}
import { checkPublisherSecrets, checkSecretEnv, checkSecretFile } from './secrets.js';
import { sniProblems } from './sni-checks.js';
import { onceEach } from '../util/once.js';
import type { EntryMemo } from '../security/trusted-path.js';

type Env = NodeJS.ProcessEnv;

/** The parts of a config that passed the schema, with their index in the file. */
export interface Parts {
  acme: ParsedConfig['acme'] | undefined;
  certificates: { index: number; cert: CertificateConfig }[];
  sni?: ParsedConfig['sni'];
  /** Some certificates failed the schema: what the others imply about the whole is unknown. */
  partial?: boolean;
  /** The parts of the fleet block that parse (the whole block, when it does); `fleetGiven`: whether the file has one at all. */
  fleet?: FleetFiles;
  fleetGiven?: boolean;
}

export async function semanticProblems(parts: Parts, env: Env): Promise<ConfigProblem[]> {
  const { sync, checks } = partChecks(parts, env);
  sync.push(...duplicateNames(parts.certificates), ...outputProblems(parts.certificates), ...hookEnvSecretProblems(parts));
  return [...sync, ...(await Promise.all(checks)).flat()];
}

/**
 * The checks of semanticProblems whose answer can change while the config's
 * bytes stay the same (files, directories, environment variables), without
 * those that depend on the config alone (duplicate names, conflicting
 * outputs, hook environments against the secrets): for a config known to
 * have passed those before (src/config/validated-cache.ts). No problems here
 * and none there is the same as none from semanticProblems.
 */
export async function environmentProblems(parts: Parts, env: Env): Promise<ConfigProblem[]> {
  const { sync, checks } = partChecks(parts, env);
  return [...sync, ...(await Promise.all(checks)).flat()];
}

function partChecks(parts: Parts, env: Env): { sync: ConfigProblem[]; checks: Promise<ConfigProblem[]>[] } {
  const checks: Promise<ConfigProblem[]>[] = [];
  const sync: ConfigProblem[] = [];
  // Each file and directory is checked once per load, however many certificates name it.
  const once = onceEach();

  const acme = parts.acme;
  if (acme?.caBundle) checks.push(checkCaBundle(acme.caBundle, 'acme.caBundle', once));
  if (acme?.trustAnchors) checks.push(checkCaBundle(acme.trustAnchors, 'acme.trustAnchors', once));
  if (acme?.eab) {
    const given = (['hmacKey', 'hmacKeyFile', 'hmacKeyEnv'] as const).filter((k) => acme.eab![k] !== undefined);
    if (given.length === 0) sync.push({ path: 'acme.eab.hmacKey', message: 'required (or hmacKeyFile, hmacKeyEnv)' });
    if (given.length > 1) sync.push({ path: `acme.eab.${given[1]}`, message: `give only one of ${given.join(', ')}` });
    if (acme.eab.hmacKeyFile) checks.push(checkSecretFile(acme.eab.hmacKeyFile, 'acme.eab.hmacKeyFile', false, undefined, undefined, once));
    if (acme.eab.hmacKeyEnv) sync.push(...checkSecretEnv(acme.eab.hmacKeyEnv, 'acme.eab.hmacKeyEnv', env));
  }

  for (const { index, cert } of parts.certificates) {
    const at = `certificates[${index}]`;
    if (cert.challenge.type === 'dns-01') {
      const tsig = cert.challenge.dns.tsig;
      const base = `${at}.challenge.dns.tsig`;
      if (tsig.secretFile && tsig.secretEnv) sync.push({ path: `${base}.secretEnv`, message: 'give only one of secretFile or secretEnv' });
      if (tsig.secretFile) checks.push(checkSecretFile(tsig.secretFile, `${base}.secretFile`, true, tsig.name, tsig.algorithm, once));
      if (tsig.secretEnv) sync.push(...checkSecretEnv(tsig.secretEnv, `${base}.secretEnv`, env));
    } else if (cert.challenge.http.webroot) {
      checks.push(checkWebroot(cert.challenge.http.webroot, `${at}.challenge.http.webroot`));
    }
    if (cert.dane?.publisher) checks.push(checkPublisherSecrets(cert.dane.publisher, `${at}.dane.publisher`, env, once));
    // Read only after a renewal, so a typo here would otherwise surface as a
    // warning days later instead of now.
    if (cert.mtaSts?.caBundle) checks.push(checkCaBundle(cert.mtaSts.caBundle, `${at}.mtaSts.caBundle`, once));
  }

  const memo: EntryMemo = new Map();
  for (const { index, cert } of parts.certificates) {
    checks.push(outputTargetProblems(index, cert, once, memo), hookProblems(index, cert, once, memo));
  }
  if (parts.sni) checks.push(sniProblems(parts.sni, parts.certificates, { partial: parts.partial }));
  const fleetGiven = parts.fleetGiven ?? parts.fleet !== undefined;
  // Loaded only for a fleet (or a certificate asking for one): a host without a fleet reads none of its code.
  if (fleetGiven || parts.certificates.some((c) => c.cert.fleet)) {
    checks.push(import('./fleet-checks.js').then((m) => m.fleetProblems(parts.fleet, fleetGiven, parts.certificates)));
  }
  return { sync, checks };
}

/** A hook's env may not list a variable that a `*Env` setting names: hooks never get secrets (src/hooks/environment.ts). */
function hookEnvSecretProblems(parts: Parts): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  // Walking the whole config for the secrets' names is the cost here: only when some hook has an env to compare.
  const envs = parts.certificates.some(({ cert }) => Object.keys(cert.hooks.env ?? {}).length > 0 || (cert.dane?.publisher?.provider === 'hook' && Object.keys(cert.dane.publisher.env ?? {}).length > 0));
  if (!envs) return out;
  const secrets = secretEnvNames(parts);
  for (const { index, cert } of parts.certificates) {
    const pub = cert.dane?.publisher;
    const lists: Array<[string, Record<string, string> | undefined]> = [
      [`certificates[${index}].hooks.env`, cert.hooks.env],
      [`certificates[${index}].dane.publisher.env`, pub?.provider === 'hook' ? pub.env : undefined],
    ];
    for (const [at, env] of lists) {
      for (const name of Object.keys(env ?? {})) {
        if (secrets.has(name)) out.push({ path: `${at}.${name}`, message: `${name} is named by a secretEnv/apiKeyEnv/hmacKeyEnv setting; hooks never get a secret` });
      }
    }
  }
  return out;
}

function duplicateNames(certs: Parts['certificates']): ConfigProblem[] {
  const first = new Map<string, number>();
  const out: ConfigProblem[] = [];
  for (const { index, cert } of certs) {
    const prev = first.get(cert.name);
    if (prev === undefined) first.set(cert.name, index);
    else out.push({ path: `certificates[${index}].name`, message: `duplicate name "${cert.name}" (also certificates[${prev}].name)` });
  }
  return out;
}

function outputProblems(certs: Parts['certificates']): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  // Expanded path → who writes it first.
  const owners = new Map<string, { index: number; kind: string }>();
  const reported = new Set<string>();

  for (const { index, cert } of certs) {
    for (const kind of OUTPUT_KINDS) {
      const template = cert.output[kind];
      if (template === undefined) continue;
      const at = `certificates[${index}].output.${kind}`;

      const unknown = unknownPlaceholders(template);
      if (unknown.length > 0) {
        out.push({ path: at, message: `unknown placeholder ${unknown.map((n) => `{${n}}`).join(', ')}; use {keytype} or {name}` });
      }
      if (template.endsWith('/')) out.push({ path: at, message: 'must name a file, not a directory' });

      const perKeytypeClash = cert.keys.length > 1 && !template.includes('{keytype}');
      if (perKeytypeClash) {
        out.push({ path: at, message: `must contain {keytype}: this certificate has ${cert.keys.length} key types (${cert.keys.join(', ')}) that would write the same file` });
      }

      for (const keytype of cert.keys) {
        const file = path.normalize(expandOutputPath(template, { keytype, name: cert.name }));
        const owner = owners.get(file);
        if (!owner) {
          owners.set(file, { index, kind });
          continue;
        }
        // Already explained by the {keytype} problem above.
        if (owner.index === index && owner.kind === kind) continue;
        if (reported.has(at)) continue;
        reported.add(at);
        const other = `certificates[${owner.index}].output.${owner.kind}`;
        out.push({ path: at, message: `conflicting output: ${file} is also written by ${other}` });
      }
    }
  }
  return out;
}
