// `mxcert import-certbot [--config-dir /etc/letsencrypt]`: reads what certbot
// manages (renewal/*.conf, the live certificates, the rfc2136 credentials
// files, the hook directories, MTA config lines naming certbot's files),
// asks the DNS server for each zone as certbot does, and prints mxcert config
// (src/config/certbot-import.ts decides; this file only gathers facts).
// Writes nothing: the YAML goes to stdout, warnings and to-dos to stderr.
// Exit 0: every lineage imported; 1: some only as comments; 2: usage.
import { X509Certificate } from 'node:crypto';
import { accessSync, constants as fsConst, statSync } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { importCertbot, zoneCandidates, type CertbotCertFacts, type CertbotLineage, type MtaReference } from '../config/certbot-import.js';
import { parseCertbotCredentials } from '../config/certbot-credentials.js';
import { parseConfigObj, single } from '../config/configobj.js';
import { queryDns, sameName } from '../dns/query.js';
import { readCertFields } from '../util/cert-fields.js';

export interface ImportCertbotOptions {
  configDir: string;
  outputDir: string;
  mtaConfig: string[];
  dns: boolean;
}

/** Where Postfix, Dovecot and Exim (Debian layouts) name their certificate files. */
export const DEFAULT_MTA_CONFIGS = [
  '/etc/postfix/main.cf',
  '/etc/postfix/master.cf',
  '/etc/dovecot/dovecot.conf',
  '/etc/dovecot/conf.d/10-ssl.conf',
  '/etc/exim4/exim4.conf.template',
  '/etc/exim4/exim4.conf.localmacros',
  '/etc/exim4/conf.d/main/03_exim4-config_tlsoptions',
  '/etc/exim/exim.conf',
];

const SOA_TIMEOUT_MS = 2000;

export async function importCertbotCommand(o: ImportCertbotOptions, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const configDir = path.resolve(o.configDir);
  const renewalDir = path.join(configDir, 'renewal');
  let files: string[];
  try {
    files = (await readdir(renewalDir)).filter((f) => f.endsWith('.conf')).sort();
  } catch (e) {
    err.write(`mxcert import-certbot: cannot read ${renewalDir}: ${(e as NodeJS.ErrnoException).code ?? String(e)} (is --config-dir certbot's config directory?)\n`);
    return 2;
  }
  if (files.length === 0) {
    err.write(`mxcert import-certbot: no renewal configs (*.conf) in ${renewalDir}\n`);
    return 2;
  }
  if (!path.isAbsolute(o.outputDir)) {
    err.write('mxcert import-certbot: --output-dir must be an absolute path\n');
    return 2;
  }
  const ids = await idNames();
  const lineages = await Promise.all(files.map((f) => readLineage(configDir, path.join(renewalDir, f), o.dns, ids)));
  const result = importCertbot({
    configDir,
    outputDir: o.outputDir,
    lineages,
    hookDirs: {
      deploy: await listHooks(path.join(configDir, 'renewal-hooks', 'deploy')),
      pre: await listHooks(path.join(configDir, 'renewal-hooks', 'pre')),
      post: await listHooks(path.join(configDir, 'renewal-hooks', 'post')),
    },
    mtaReferences: await mtaReferences(o.mtaConfig.length > 0 ? o.mtaConfig : DEFAULT_MTA_CONFIGS, configDir),
    resolveCommand: commandResolver(),
  });
  out.write(result.yaml);
  for (const w of result.warnings) err.write(`mxcert import-certbot: ${w}\n`);
  if (result.todo.length > 0) {
    err.write('mxcert import-certbot: before `mxcert config check`, run:\n');
    for (const t of result.todo) err.write(`  ${t}\n`);
  }
  err.write(`mxcert import-certbot: ${result.imported.length} of ${lineages.length} lineages imported${result.skipped.length > 0 ? `; not imported (commented out): ${result.skipped.join(', ')}` : ''}\n`);
  return result.skipped.length > 0 ? 1 : 0;
}

async function readLineage(configDir: string, confPath: string, dns: boolean, ids: IdNames): Promise<CertbotLineage> {
  const name = path.basename(confPath, '.conf');
  let confText: string;
  try {
    confText = await readFile(confPath, 'utf8');
  } catch (e) {
    return { name, confPath, confText: '', error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
  const lineage: CertbotLineage = { name, confPath, confText };
  let top: Record<string, string | string[]> = {};
  let params: Record<string, string | string[]> = {};
  try {
    const conf = parseConfigObj(confText);
    top = conf.values;
    params = conf.sections['renewalparams']?.values ?? {};
  } catch {
    return lineage; // the translator reports the syntax error
  }
  const live = path.join(configDir, 'live', name);
  lineage.cert = await readCert(single(top['cert']) ?? path.join(live, 'cert.pem'));
  const key = single(top['privkey']) ?? path.join(live, 'privkey.pem');
  const st = await stat(key).catch(() => undefined);
  if (st) lineage.privkey = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, owner: ids.users.get(st.uid), group: ids.groups.get(st.gid) };

  const credPath = single(params['dns_rfc2136_credentials']);
  if (credPath && /rfc2136/.test(single(params['authenticator']) ?? '')) {
    lineage.credentials = await readCredentials(credPath);
    const names = 'names' in (lineage.cert ?? {}) ? (lineage.cert as CertbotCertFacts).names : [];
    if (dns && lineage.credentials.text !== undefined && names.length > 0) lineage.zones = await findZones(lineage.credentials.text, names);
  }
  return lineage;
}

async function readCert(file: string): Promise<CertbotCertFacts | { error: string }> {
  try {
    const x = new X509Certificate(await readFile(file));
    return { names: (await readCertFields(x)).dnsNames, key: keyName(x) };
  } catch (e) {
    return { error: `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
}

function keyName(x: X509Certificate): string {
  const k = x.publicKey;
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'rsa') return `rsa-${d.modulusLength ?? 0}`;
  if (k.asymmetricKeyType === 'ec') {
    const curve = d.namedCurve ?? 'unknown';
    return curve === 'prime256v1' ? 'ecdsa-p256' : curve === 'secp384r1' ? 'ecdsa-p384' : `ecdsa-${curve}`;
  }
  return k.asymmetricKeyType ?? 'unknown';
}

async function readCredentials(file: string): Promise<NonNullable<CertbotLineage['credentials']>> {
  try {
    const st = await stat(file);
    return { path: file, text: await readFile(file, 'utf8'), mode: st.mode & 0o7777 };
  } catch (e) {
    return { path: file, error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}

/**
 * The zone of each name as certbot's rfc2136 plugin finds it: the most
 * specific of `_acme-challenge.NAME` and its parents for which the server
 * gives an authoritative SOA. Names it cannot place are left out (guessed).
 */
async function findZones(credText: string, names: string[]): Promise<Record<string, string>> {
  const c = parseCertbotCredentials(credText);
  if (!c.ok || !c.value.server) return {};
  const server = { host: c.value.server, port: c.value.port ? Number(c.value.port) : 53 };
  const out: Record<string, string> = {};
  for (const n of names) {
    for (const candidate of zoneCandidates(n)) {
      const r = await queryDns(server, candidate, 'SOA', { tcp: true, recursion: false, timeoutMs: SOA_TIMEOUT_MS }).catch(() => undefined);
      if (!r) break; // the server does not answer: guess instead of waiting on every label
      if (r.rcode === 'NOERROR' && r.authoritative && r.answers.some((a) => a.type === 'SOA' && sameName(a.name, candidate))) {
        out[n] = candidate;
        break;
      }
    }
  }
  return out;
}

/** certbot's hooks.list_hooks: executable files, sorted, no editor backups. */
async function listHooks(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.sort()) {
    if (n.endsWith('~')) continue;
    const f = path.join(dir, n);
    const st = await stat(f).catch(() => undefined);
    if (st?.isFile() && (await access(f, fsConst.X_OK).then(() => true, () => false))) out.push(f);
  }
  return out;
}

async function mtaReferences(files: string[], configDir: string): Promise<MtaReference[]> {
  const out: MtaReference[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    text.split('\n').forEach((line, i) => {
      if (line.includes(`${configDir}/live/`) || line.includes(`${configDir}/archive/`)) out.push({ file, line: i + 1, text: line });
    });
  }
  return out;
}

/** Bare command names → absolute paths, over PATH plus the sbin directories root's PATH has. */
function commandResolver(): (name: string) => string | undefined {
  const dirs = [...new Set([...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'])].filter((d) => d.startsWith('/'));
  return (name) => {
    for (const d of dirs) {
      const f = path.join(d, name);
      try {
        if (!statSync(f).isFile()) continue;
        accessSync(f, fsConst.X_OK);
        return f;
      } catch {
        /* not here */
      }
    }
    return undefined;
  };
}

interface IdNames {
  users: Map<number, string>;
  groups: Map<number, string>;
}

async function idNames(): Promise<IdNames> {
  const read = async (f: string) => {
    const m = new Map<number, string>();
    for (const line of (await readFile(f, 'utf8').catch(() => '')).split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id)) m.set(Number(id), name);
    }
    return m;
  };
  return { users: await read('/etc/passwd'), groups: await read('/etc/group') };
}
