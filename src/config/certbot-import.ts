// `mxcert import-certbot`, the pure part: certbot's renewal configs (plus the
// facts the CLI read from disk: certificate names and key, credentials file,
// SOA answers, MTA config lines) → mxcert certificate entries and the notes a
// postmaster needs to finish the move. Nothing here touches the disk or the
// network, and nothing here ever copies a secret into the output.
//
// Policy: an entry is emitted only when it is complete and valid against the
// schema; a lineage that cannot be translated (manual or unknown plugin,
// unreadable credentials, a shell hook…) is either emitted without the part
// that failed (hooks) or commented out whole, with the reason above it.
import { Document, isMap, isScalar, isSeq, type Node, type Pair, type Scalar, type YAMLSeq } from 'yaml';
import { parseCertbotCredentials, normalizeTsigAlgorithm, CERTBOT_DEFAULT_TSIG_ALGORITHM } from './certbot-credentials.js';
import { translateHook, type HookTranslation } from './certbot-hooks.js';
import { list, parseConfigObj, single, type ConfigObjSection } from './configobj.js';
import { KEY_TYPES, type KeyType } from './schema.js';

export interface CertbotCertFacts {
  /** dNSName SANs of the live certificate, in order. */
  names: string[];
  /** e.g. `rsa-3072`, `ecdsa-p256`; an unsupported one as `ecdsa-secp521r1`. */
  key: string;
}

export interface CertbotLineage {
  /** The lineage name: the renewal file's name without `.conf`. */
  name: string;
  confPath: string;
  confText: string;
  /** Why the renewal config itself could not be read. */
  error?: string;
  /** What the CLI read from the live certificate, or why it could not. */
  cert?: CertbotCertFacts | { error: string };
  /** The dns-rfc2136 credentials INI named by the renewal config, as read by the CLI. */
  credentials?: { path: string; text?: string; mode?: number; error?: string };
  /** Zone per validation name, found by SOA queries to the credentials' server as certbot does. */
  zones?: Record<string, string>;
  /** Mode and ownership of the live private key, to keep the MTA's access the same. */
  privkey?: { mode: number; uid: number; gid: number; owner?: string; group?: string };
}

/** A line of an MTA config file that mentions certbot's files. */
export interface MtaReference {
  file: string;
  line: number;
  text: string;
}

export interface CertbotImportInput {
  configDir: string;
  /** New directory for the files; each certificate gets OUTPUTDIR/NAME/. */
  outputDir: string;
  lineages: CertbotLineage[];
  /** Executables in CONFIG_DIR/renewal-hooks/{deploy,pre,post}, sorted as certbot runs them. */
  hookDirs?: { deploy: string[]; pre: string[]; post: string[] };
  mtaReferences?: MtaReference[];
  /** A bare command name (`systemctl`) → its absolute path on this host. */
  resolveCommand?: (name: string) => string | undefined;
  stateDir?: string;
}

export interface CertbotImportResult {
  yaml: string;
  /** One line each, for stderr. */
  warnings: string[];
  /** mxcert certificate names emitted as entries. */
  imported: string[];
  /** Lineages emitted only as comments. */
  skipped: string[];
  /** Shell commands the admin must run before `mxcert config check` passes. */
  todo: string[];
}

/** A comment to attach: before the key at `path` inside the entry ([] = the entry itself), or inline after its value. */
interface Note {
  path: (string | number)[];
  text: string;
  inline?: boolean;
}

type Entry = Record<string, unknown>;

interface Translated {
  lineage: string;
  entry: Entry;
  notes: Note[];
  /** Why the entry cannot be used as it is; set = emitted commented out. */
  blocked?: string;
  server?: string;
}

const DEFAULT_SERVER = 'https://acme-v02.api.letsencrypt.org/directory';
const PUBLIC_CA_HOSTS = ['acme-v02.api.letsencrypt.org', 'acme-staging-v02.api.letsencrypt.org', 'acme.zerossl.com', 'api.buypass.com', 'api.test4.buypass.no', 'dv.acme-v02.api.pki.goog', 'dv.acme-v02.test-api.pki.goog', 'acme.ssl.com'];
const OUTPUT_FILES = { key: 'privkey.pem', cert: 'cert.pem', chain: 'chain.pem', fullchain: 'fullchain.pem', combined: 'combined.pem' } as const;

export function importCertbot(input: CertbotImportInput): CertbotImportResult {
  const warnings: string[] = [];
  const todo: string[] = [];
  const names = new Set<string>();
  const translated = input.lineages.map((l) => {
    const own: string[] = [];
    const t = translateLineage(l, input, { warnings, todo: own, names });
    // What a commented-out entry would need is done when it is finished by hand.
    if (!t.blocked) todo.push(...own);
    return t;
  });
  const servers = translated.filter((t) => !t.blocked && t.server).map((t) => t.server!);
  const directory = mostCommon(servers) ?? mostCommon(translated.map((t) => t.server).filter((s): s is string => !!s)) ?? DEFAULT_SERVER;
  for (const t of translated) {
    if (t.server && t.server !== directory) {
      t.notes.push({ path: [], text: `certbot renewed this lineage from ${t.server}; mxcert uses one ACME directory (${directory}) for all certificates` });
      warnings.push(`${t.lineage}: certbot used the CA ${t.server}, the imported config uses ${directory}`);
    }
  }
  const accounts = new Set(input.lineages.map((l) => single(safeParams(l.confText)?.values['account'])).filter((a): a is string => !!a));
  const todoList = [...new Set(todo)];
  const header = headerLines(input, accounts, todoList);
  const yaml = render(input, directory, translated, header);
  const imported = translated.filter((t) => !t.blocked).map((t) => t.entry['name'] as string);
  const skipped = translated.filter((t) => t.blocked).map((t) => t.lineage);
  return { yaml, warnings, imported, skipped, todo: todoList };
}

function safeParams(text: string): ConfigObjSection | undefined {
  try {
    return parseConfigObj(text).sections['renewalparams'];
  } catch {
    return undefined;
  }
}

interface Sink {
  warnings: string[];
  todo: string[];
  names: Set<string>;
}

function translateLineage(l: CertbotLineage, input: CertbotImportInput, sink: Sink): Translated {
  const notes: Note[] = [{ path: [], text: `certbot lineage "${l.name}" (${l.confPath})` }];
  const block = (why: string, entry: Entry = { name: l.name }): Translated => {
    sink.warnings.push(`${l.name}: not imported: ${why}`);
    return { lineage: l.name, entry, notes: [notes[0]!, { path: [], text: `NOT IMPORTED: ${why}` }, ...notes.slice(1)], blocked: why };
  };
  if (l.error) return block(`cannot read ${l.confPath}: ${l.error}`);
  let conf: ConfigObjSection;
  try {
    conf = parseConfigObj(l.confText);
  } catch (err) {
    return block(`${l.confPath}: ${(err as Error).message}`);
  }
  const rp = conf.sections['renewalparams'];
  if (!rp) return block(`${l.confPath} has no [renewalparams] section`);
  const params = rp.values;
  const server = single(params['server']);

  const name = certName(l.name, sink.names);
  if (name !== l.name) notes.push({ path: ['name'], text: `lineage name "${l.name}" is not a valid mxcert name`, inline: true });
  const domains = lineageNames(l, conf, notes);
  const entry: Entry = { name, domains: domains ?? [] };
  if (!domains) return { ...block('neither the live certificate nor the renewal config names the domains', entry), server };
  entry['keys'] = [lineageKey(l, params, notes, sink)];
  if (single(params['reuse_key'])?.toLowerCase() === 'true') {
    entry['reuseKey'] = true;
    notes.push({ path: ['reuseKey'], text: 'certbot kept the key across renewals (reuse_key), typically for DANE 3 1 1 TLSA records. mxcert keeps its own key, made at its first renewal: publish that key\'s TLSA record before MTA clients see it, or let mxcert manage it (dane:)' });
    sink.warnings.push(`${l.name}: reuse_key: mxcert's first renewal makes a new key; update TLSA records (or configure dane:) before deploying`);
  }

  const challenge = translateChallenge(l, rp, domains, notes, sink);
  // A lineage whose challenge cannot be translated is still built whole, so
  // its commented-out entry only lacks the challenge.
  entry['challenge'] = 'challenge' in challenge ? challenge.challenge : 'TODO (see above)';
  entry['output'] = outputFor(name, l, input, notes, sink);
  const hooks = deployHooks(l, params, input, notes, sink);
  if (hooks.length > 0) entry['hooks'] = { deploy: hooks };
  otherParams(l, conf, params, notes, sink);
  mtaNotes(l, conf, name, input, notes);
  notes.push({
    path: [],
    text: 'certbot never checked what the MTA serves; with verify: { smtp: ["127.0.0.1:25"] } mxcert does, after the deploy hooks, and restores the previous files if the MTA does not serve the new certificate',
  });
  if ('blocked' in challenge) return { ...block(challenge.blocked, entry), server };
  return { lineage: l.name, entry, notes, server };
}

function certName(lineage: string, taken: Set<string>): string {
  const base = lineage.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'cert';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
  taken.add(name);
  return name;
}

function lineageNames(l: CertbotLineage, conf: ConfigObjSection, notes: Note[]): string[] | undefined {
  const confDomains = list(conf.values['domains'] ?? conf.sections['renewalparams']?.values['domains']);
  if (l.cert && 'names' in l.cert && l.cert.names.length > 0) {
    notes.push({ path: ['domains'], text: 'from the live certificate\'s subjectAltName, which certbot renews with' });
    return l.cert.names;
  }
  if (confDomains.length > 0) {
    const why = l.cert && 'error' in l.cert ? ` (the live certificate could not be read: ${l.cert.error})` : '';
    notes.push({ path: ['domains'], text: `from the renewal config's domains${why}` });
    return confDomains;
  }
  return undefined;
}

function lineageKey(l: CertbotLineage, params: Record<string, unknown>, notes: Note[], sink: Sink): KeyType {
  const p = params as Record<string, string | string[]>;
  const type = single(p['key_type'])?.toLowerCase();
  const certKey = l.cert && 'key' in l.cert ? l.cert.key : undefined;
  let wanted: string;
  let source: string;
  if (type === 'rsa' || type === 'ecdsa') {
    wanted = type === 'rsa' ? `rsa-${single(p['rsa_key_size']) ?? '2048'}` : `ecdsa-${curveName(single(p['elliptic_curve']) ?? 'secp256r1')}`;
    source = 'the renewal config';
  } else if (certKey) {
    wanted = certKey;
    source = 'the live certificate';
  } else {
    wanted = 'rsa-2048';
    source = "certbot's default before it saved key_type";
  }
  const key = supportedKey(wanted);
  if (key !== wanted) {
    notes.push({ path: ['keys'], text: `certbot used ${wanted} (${source}), which mxcert does not offer; ${key} is the nearest` });
    sink.warnings.push(`${l.name}: key ${wanted} is not supported; imported as ${key}`);
  } else if (certKey && certKey !== key) {
    notes.push({ path: ['keys'], text: `the live certificate has a ${certKey} key; certbot's next renewal would have used ${key} (${source})` });
  }
  return key;
}

function curveName(c: string): string {
  const k = c.toLowerCase();
  if (k === 'secp256r1' || k === 'prime256v1' || k === 'p-256') return 'p256';
  if (k === 'secp384r1' || k === 'p-384') return 'p384';
  return k;
}

function supportedKey(k: string): KeyType {
  if ((KEY_TYPES as readonly string[]).includes(k)) return k as KeyType;
  if (k.startsWith('ecdsa-')) return 'ecdsa-p384';
  const bits = Number(k.replace(/^rsa-/, ''));
  return Number.isFinite(bits) && bits > 4096 ? 'rsa-4096' : bits > 3072 ? 'rsa-4096' : bits > 2048 ? 'rsa-3072' : 'rsa-2048';
}

// ---------------------------------------------------------------------------
// Challenges

type ChallengeResult = { challenge: Entry } | { blocked: string };

function translateChallenge(l: CertbotLineage, rp: ConfigObjSection, domains: string[], notes: Note[], sink: Sink): ChallengeResult {
  const params = rp.values;
  const auth = (single(params['authenticator']) ?? '').replace(/^certbot[-_]dns[-_]rfc2136:/, '');
  const installer = single(params['installer']);
  if (installer && installer !== 'None' && installer !== 'null') {
    notes.push({ path: [], text: `certbot's ${installer} installer also edited that server's TLS settings; mxcert does not: point them at the output files` });
  }
  switch (auth) {
    case 'dns-rfc2136':
      return rfc2136Challenge(l, params, domains, notes, sink);
    case 'webroot':
      return webrootChallenge(rp, domains, notes, sink, l.name);
    case 'standalone': {
      const addr = single(params['http01_address']) ?? '';
      const port = single(params['http01_port']) ?? '80';
      const host = addr === '' ? '[::]' : addr.includes(':') ? `[${addr}]` : addr;
      notes.push({ path: ['challenge'], text: 'certbot --standalone: mxcert answers http-01 itself on this address during the challenge; the port must be free then (no pre/post hook stops a web server)' });
      return { challenge: { type: 'http-01', http: { listen: `${host}:${port}` } } };
    }
    case 'manual':
      return {
        blocked: `the manual authenticator${single(params['manual_auth_hook']) ? ` (auth hook ${single(params['manual_auth_hook'])})` : ''} has no mxcert equivalent; use dns-01 with rfc2136 (TSIG) or http-01 with a webroot or listen`,
      };
    case 'nginx':
    case 'apache':
      return { blocked: `the ${auth} authenticator has no mxcert equivalent: serve /.well-known/acme-challenge/ from a directory and use http-01 with that webroot` };
    case '':
      return { blocked: 'the renewal config names no authenticator' };
    default:
      return { blocked: `certbot plugin "${auth}" has no mxcert equivalent; mxcert updates DNS over RFC 2136 (TSIG), which most DNS servers and several providers accept` };
  }
}

function rfc2136Challenge(l: CertbotLineage, params: Record<string, string | string[]>, domains: string[], notes: Note[], sink: Sink): ChallengeResult {
  const credPath = single(params['dns_rfc2136_credentials']);
  if (!credPath) return { blocked: 'dns-rfc2136 without dns_rfc2136_credentials' };
  const cred = l.credentials;
  if (!cred || cred.text === undefined) return { blocked: `cannot read the credentials file ${credPath}${cred?.error ? `: ${cred.error}` : ''}` };
  const parsed = parseCertbotCredentials(cred.text);
  if (!parsed.ok) return { blocked: `${credPath}: ${parsed.message}` };
  const c = parsed.value;
  const missing = (['server', 'name', 'secret'] as const).filter((k) => !c[k]);
  if (missing.length > 0) return { blocked: `${credPath} lacks ${missing.map((k) => `dns_rfc2136_${k}`).join(', ')}` };
  const port = c.port === undefined ? 53 : Number(c.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { blocked: `${credPath}: dns_rfc2136_port is not a port number` };
  if (!isAbsolutePath(credPath)) return { blocked: `credentials path ${credPath} is not absolute` };

  const algorithm = c.algorithm ? normalizeTsigAlgorithm(c.algorithm) : CERTBOT_DEFAULT_TSIG_ALGORITHM;
  const zone = zoneFor(l, domains, notes, sink);
  const tsig = { name: c.name!.replace(/\.$/, ''), algorithm, secretFile: credPath };
  notes.push({ path: ['challenge', 'dns', 'tsig', 'secretFile'], text: 'certbot\'s credentials file, read as is (dns_rfc2136_secret); it must stay mode 0600' });
  if (!c.algorithm) notes.push({ path: ['challenge', 'dns', 'tsig', 'algorithm'], text: 'the credentials file names no algorithm: certbot signed with HMAC-MD5', inline: true });
  if (cred.mode !== undefined && (cred.mode & 0o077) !== 0) {
    sink.todo.push(`chmod 600 ${credPath}`);
    sink.warnings.push(`${l.name}: ${credPath} is mode ${(cred.mode & 0o777).toString(8).padStart(4, '0')}; mxcert refuses a secret file others can access: chmod 600 it`);
  }
  const propagation = single(params['dns_rfc2136_propagation_seconds']) ?? '60';
  notes.push({
    path: ['challenge', 'dns'],
    text: `certbot slept ${propagation} s after the update; mxcert instead waits until every name server in the zone's NS set serves the record. If some of them cannot be reached from this host, list the ones to check as nameservers: ["host:port"]`,
  });
  return { challenge: { type: 'dns-01', dns: { provider: 'rfc2136', server: c.server, port, zone, tsig } } };
}

function isAbsolutePath(p: string): boolean {
  return p.startsWith('/');
}

/** certbot: `_acme-challenge.NAME` (the base name for a wildcard). */
export function validationName(domain: string): string {
  return `_acme-challenge.${domain.replace(/^\*\./, '')}`;
}

/** certbot's guesses, most specific first (dns_common.base_domain_name_guesses), down to two labels. */
export function zoneCandidates(domain: string): string[] {
  const labels = validationName(domain).split('.');
  const out: string[] = [];
  for (let i = 0; i < labels.length - 1; i++) out.push(labels.slice(i).join('.'));
  return out;
}

const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'ac', 'gov', 'edu', 'or', 'ne', 'go', 'gv']);

/** The registered domain, guessed without a public suffix list (`a.b.example.co.uk` → `example.co.uk`). */
export function registeredDomainGuess(domain: string): string {
  const labels = domain.replace(/^\*\./, '').replace(/\.$/, '').split('.');
  const n = labels.length >= 3 && labels[labels.length - 1]!.length === 2 && SECOND_LEVEL.has(labels[labels.length - 2]!) ? 3 : 2;
  return labels.slice(-n).join('.');
}

function zoneFor(l: CertbotLineage, domains: string[], notes: Note[], sink: Sink): string {
  const found = domains.map((d) => l.zones?.[d]);
  const zonePath = ['challenge', 'dns', 'zone'];
  if (found.every((z) => z !== undefined)) {
    const zones = [...new Set(found as string[])];
    if (zones.length > 1) {
      notes.push({ path: zonePath, text: `the names are in different zones (${domains.map((d, i) => `${d}: ${found[i]}`).join(', ')}); mxcert updates one zone per certificate: split this certificate by zone` });
      sink.warnings.push(`${l.name}: names in ${zones.length} zones (${zones.join(', ')}); split the certificate by zone`);
    } else {
      notes.push({ path: zonePath, text: 'found as certbot finds it: authoritative SOA at the credentials\' server', inline: true });
    }
    return zones[0]!;
  }
  const guess = registeredDomainGuess(domains[0]!);
  notes.push({ path: zonePath, text: `GUESS (the registered domain of ${domains[0]}): certbot finds the zone by SOA queries to the server, which were not made or not answered; check it is the zone that holds _acme-challenge records` });
  sink.warnings.push(`${l.name}: zone "${guess}" is a guess; check it`);
  return guess;
}

function webrootChallenge(rp: ConfigObjSection, domains: string[], notes: Note[], sink: Sink, lineage: string): ChallengeResult {
  // certbot: a name's webroot is its webroot_map entry, else the last -w.
  const paths = list(rp.values['webroot_path']);
  const map = rp.sections['webroot_map']?.values ?? {};
  const per = domains.map((d) => single(map[d]) ?? paths[paths.length - 1]);
  const dirs = [...new Set(per.filter((p): p is string => !!p))];
  if (dirs.length === 0) return { blocked: 'webroot without webroot_path or webroot_map' };
  const dir = mostCommon(per.filter((p): p is string => !!p))!;
  if (dirs.length > 1) {
    const others = domains.filter((_, i) => per[i] !== dir);
    notes.push({ path: ['challenge', 'http', 'webroot'], text: `certbot served ${others.join(', ')} from other directories (${dirs.filter((x) => x !== dir).join(', ')}); mxcert writes to one webroot per certificate: make ${dir} serve /.well-known/acme-challenge/ for every name, or split the certificate` });
    sink.warnings.push(`${lineage}: names use ${dirs.length} webroots; imported ${dir} for all`);
  }
  return { challenge: { type: 'http-01', http: { webroot: dir } } };
}

// ---------------------------------------------------------------------------
// Outputs, hooks, the rest

function outputFor(name: string, l: CertbotLineage, input: CertbotImportInput, notes: Note[], sink: Sink): Entry {
  const dir = `${input.outputDir.replace(/\/+$/, '')}/${name}`;
  const out: Entry = {};
  for (const [k, f] of Object.entries(OUTPUT_FILES)) out[k] = `${dir}/${f}`;
  out['mode'] = '0600';
  out['publicMode'] = '0644';
  const pk = l.privkey;
  if (pk) {
    if (pk.mode & 0o040 && pk.gid !== 0) {
      out['mode'] = '0640';
      out['group'] = pk.group ?? pk.gid;
      notes.push({ path: ['output', 'mode'], text: `certbot's private key was group-readable (group ${pk.group ?? pk.gid}), e.g. for an MTA that reads it after dropping privileges`, inline: true });
    }
    if (pk.uid !== 0) out['owner'] = pk.owner ?? pk.uid;
    if (pk.mode & 0o004) sink.warnings.push(`${l.name}: certbot's private key is readable by everyone; the import writes it 0600`);
  }
  notes.push({
    path: ['output'],
    text: `certbot's ${input.configDir}/live/${l.name}/ files are symlinks into archive/, which mxcert will not write through: mxcert writes real files to ${dir}/ under the same names (create the directory first). combined.pem is key + certificate + chain in one file (Postfix smtpd_tls_chain_files): a reload can never pair a new key with an old certificate.`,
  });
  sink.todo.push(`install -d -m 0755 ${dir}`);
  return out;
}

function deployHooks(l: CertbotLineage, params: Record<string, string | string[]>, input: CertbotImportInput, notes: Note[], sink: Sink): unknown[] {
  const hooks: unknown[] = [];
  const seen = new Set<string>();
  const add = (cmd: string, from: string) => {
    if (seen.has(cmd)) return;
    seen.add(cmd);
    const t: HookTranslation = translateHook(cmd, input.resolveCommand);
    if ('argv' in t) {
      notes.push({ path: ['hooks', 'deploy', hooks.length], text: `${from}${t.note ? `; ${t.note}` : ''}`, inline: true });
      hooks.push(t.argv.length === 1 ? t.argv[0] : t.argv);
    } else {
      notes.push({ path: ['hooks'], text: `NOT IMPORTED: ${from} ${JSON.stringify(cmd)}: ${t.problem}` });
      sink.warnings.push(`${l.name}: deploy hook ${JSON.stringify(cmd)} not imported: ${t.problem}`);
    }
  };
  // certbot's order: the renewal-hooks/deploy directory, then the lineage's own hook.
  for (const h of input.hookDirs?.deploy ?? []) add(h, `${input.configDir}/renewal-hooks/deploy`);
  const own = params['renew_hook'];
  if (own !== undefined) {
    const cmd = single(own) ?? list(own).join(', ');
    if (cmd.trim() !== '' && !seen.has(cmd)) add(cmd, 'certbot --deploy-hook');
  }
  if (hooks.length > 0) {
    notes.push({ path: ['hooks'], text: 'mxcert runs these after writing the files, with RENEWED_LINEAGE (a directory with privkey.pem, cert.pem, chain.pem, fullchain.pem) and RENEWED_DOMAINS set as certbot does; without a shell' });
  }
  return hooks;
}

function otherParams(l: CertbotLineage, conf: ConfigObjSection, params: Record<string, string | string[]>, notes: Note[], sink: Sink): void {
  const flag = (k: string) => single(params[k])?.toLowerCase() === 'true';
  const pre = [single(params['pre_hook']), single(params['post_hook'])].filter((x) => x);
  if (pre.length > 0) {
    notes.push({ path: [], text: `certbot ran pre/post hooks (${pre.join('; ')}); mxcert has none: a reload belongs in hooks.deploy; a web server stopped for --standalone is not needed with a webroot` });
    sink.warnings.push(`${l.name}: pre/post hooks not imported (mxcert has deploy and failure hooks only)`);
  }
  if (flag('must_staple')) notes.push({ path: [], text: 'certbot requested OCSP Must-Staple; mxcert does not (and Let\'s Encrypt no longer offers OCSP)' });
  if (single(params['preferred_chain'])) notes.push({ path: [], text: `certbot preferred the chain "${single(params['preferred_chain'])}"; mxcert deploys the CA's default chain` });
  if (flag('allow_subset_of_names')) notes.push({ path: [], text: 'certbot allowed renewing with a subset of the names; mxcert requires every name to validate' });
  if (single(params['autorenew'])?.toLowerCase() === 'false') {
    notes.push({ path: [], text: 'certbot did not renew this lineage automatically (autorenew = False); mxcert will: remove the entry if that is not wanted' });
    sink.warnings.push(`${l.name}: certbot had autorenew = False; the imported entry renews automatically`);
  }
  if (conf.values['renew_before_expiry'] !== undefined) {
    notes.push({ path: [], text: `certbot renewed ${single(conf.values['renew_before_expiry'])} before expiry; mxcert follows the CA's renewal window (ARI) or renews at 2/3 of the lifetime` });
  }
}

function mtaNotes(l: CertbotLineage, conf: ConfigObjSection, name: string, input: CertbotImportInput, notes: Note[]): void {
  const dir = `${input.outputDir.replace(/\/+$/, '')}/${name}`;
  const liveDir = `${input.configDir.replace(/\/+$/, '')}/live/${l.name}/`;
  const files = new Map<string, string>();
  for (const [kind, file] of [['privkey', 'privkey.pem'], ['cert', 'cert.pem'], ['chain', 'chain.pem'], ['fullchain', 'fullchain.pem']] as const) {
    files.set(`${liveDir}${file}`, `${dir}/${file}`);
    const p = single(conf.values[kind]);
    if (p) files.set(p, `${dir}/${file}`);
  }
  const refs = (input.mtaReferences ?? []).filter((r) => [...files.keys()].some((f) => r.text.includes(f)));
  const lines: string[] = [];
  if (refs.length > 0) {
    lines.push('MTA settings that read certbot\'s files for this lineage; change them to (then reload the MTA):');
    for (const r of refs) {
      let fixed = r.text;
      for (const [from, to] of files) fixed = fixed.split(from).join(to);
      lines.push(`  ${r.file}:${r.line}: ${r.text.trim()}`, `    -> ${fixed.trim()}`);
    }
  } else {
    lines.push(`point the MTA at ${dir}/ instead of ${liveDir} (no MTA config line naming it was found), e.g.`);
    lines.push(`  Postfix:  smtpd_tls_chain_files = ${dir}/combined.pem`);
    lines.push(`      or    smtpd_tls_cert_file = ${dir}/fullchain.pem`, `            smtpd_tls_key_file = ${dir}/privkey.pem`);
    lines.push(`  Dovecot:  ssl_cert = <${dir}/fullchain.pem`, `            ssl_key = <${dir}/privkey.pem`);
    lines.push(`  Exim:     tls_certificate = ${dir}/fullchain.pem`, `            tls_privatekey = ${dir}/privkey.pem`);
  }
  if (refs.some((r) => /smtpd?_tls_(cert|key)_file|smtpd?_tls_chain_files/.test(r.text))) {
    lines.push('Postfix >= 3.4 can read one file, so that key and certificate always match:', `  smtpd_tls_chain_files = ${dir}/combined.pem`);
  }
  notes.push({ path: ['output'], text: lines.join('\n') });
}

// ---------------------------------------------------------------------------
// Rendering

function headerLines(input: CertbotImportInput, accounts: Set<string>, todo: string[]): string[] {
  const lines = [
    `mxcert config imported from certbot (${input.configDir}) by mxcert import-certbot.`,
    'Read every comment and run the commands listed below; then check and renew once:',
    '  mxcert config check && mxcert renew --force',
    'point the MTA at the new files (see each certificate) and reload it; then stop certbot, so two',
    'clients do not renew the same names:',
    '  systemctl disable --now certbot.timer    (or remove /etc/cron.d/certbot)',
  ];
  lines.push(`mxcert registers its own ACME account in stateDir at its first renewal${accounts.size > 0 ? ` (certbot's account ${[...accounts].join(', ')} is not reused)` : ''}.`);
  if (todo.length > 0) lines.push('', 'Before mxcert config check, run:', ...todo.map((t) => `  ${t}`));
  return lines;
}

function acmeNotes(directory: string): { path: string[]; text: string }[] {
  const host = hostOf(directory);
  const out = [{ path: ['acme', 'directory'], text: 'acme.email: certbot keeps no contact address with its account; add one to get the CA\'s notices (optional)' }];
  if (!host || !PUBLIC_CA_HOSTS.includes(host)) {
    out.push({
      path: ['acme', 'directory'],
      text: 'not a public CA: if certbot trusted its HTTPS certificate through REQUESTS_CA_BUNDLE, set acme.caBundle to that file, and acme.trustAnchors to the CA\'s root certificate(s) (issued chains must lead there)',
    });
  }
  if (host === 'acme.zerossl.com') out.push({ path: ['acme', 'directory'], text: 'this CA requires External Account Binding for a new account: set acme.eab' });
  return out;
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

function render(input: CertbotImportInput, directory: string, translated: Translated[], header: string[]): string {
  const good = translated.filter((t) => !t.blocked);
  const doc = new Document({ stateDir: input.stateDir ?? '/var/lib/mxcert', acme: { directory }, certificates: good.map((t) => t.entry) });
  doc.commentBefore = commentText(header.join('\n'));
  for (const n of acmeNotes(directory)) attach(doc, n.path, n.text, false);
  const seq = doc.get('certificates', true) as YAMLSeq;
  good.forEach((t, i) => {
    for (const n of t.notes) attach(doc, ['certificates', i, ...n.path], n.text, n.inline ?? false);
    // Hook arrays read best inline.
    const deploy = doc.getIn(['certificates', i, 'hooks', 'deploy'], true);
    if (isSeq(deploy)) for (const item of deploy.items) if (isSeq(item)) item.flow = true;
    for (const k of ['domains', 'keys']) {
      const v = doc.getIn(['certificates', i, k], true);
      if (isSeq(v)) v.flow = true;
    }
  });
  const blocked = translated.filter((t) => t.blocked);
  if (blocked.length > 0) {
    const text = blocked.map((t) => blockedText(t)).join('\n\n');
    seq.comment = commentText(text);
  }
  const text = doc.toString({ lineWidth: 0 });
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** A lineage that was not imported, as commented-out YAML under its notes. */
function blockedText(t: Translated): string {
  const lines = t.notes.map((n) => n.text);
  const body = new Document([t.entry]).toString({ lineWidth: 0 }).trimEnd();
  return [...lines.flatMap((l) => l.split('\n')), ...body.split('\n').map((l) => `  ${l}`)].join('\n');
}

const WRAP = 100;

/** yaml prints each line of a comment after `#`; a leading space keeps `# text`. Long lines are wrapped. */
function commentText(text: string): string {
  return text
    .split('\n')
    .flatMap((l) => wrap(l))
    .map((l) => ` ${l}`)
    .join('\n');
}

function wrap(line: string): string[] {
  // Indented lines are settings and commands: never broken.
  if (line.length <= WRAP || line.startsWith('  ')) return [line];
  const indent = /^\s*/.exec(line)![0];
  const out: string[] = [];
  let cur = '';
  for (const word of line.trim().split(' ')) {
    const lead = out.length === 0 ? indent : `${indent}  `;
    if (cur !== '' && lead.length + cur.length + 1 + word.length > WRAP) {
      out.push(lead + cur);
      cur = word;
    } else cur = cur === '' ? word : `${cur} ${word}`;
  }
  out.push((out.length === 0 ? indent : `${indent}  `) + cur);
  return out;
}

function attach(doc: Document, path: (string | number)[], text: string, inline: boolean): void {
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1];
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  let target: Node | undefined;
  if (typeof last === 'number' && isSeq(parent)) {
    target = parent.items[last] as Node | undefined;
    if (target && inline && !isScalar(target)) inline = false;
  } else if (isMap(parent)) {
    const pair = parent.items.find((p: Pair) => isScalar(p.key) && (p.key as Scalar).value === last);
    if (!pair) return;
    target = inline && isScalar(pair.value) ? (pair.value as Node) : (pair.key as Node);
    if (inline && !isScalar(pair.value)) inline = false;
  }
  if (!target) return;
  if (inline) target.comment = target.comment ? `${target.comment}; ${text}` : ` ${text}`;
  else target.commentBefore = (target.commentBefore ? `${target.commentBefore}\n` : '') + commentText(text);
}

function mostCommon(xs: string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  let best: string | undefined;
  for (const [x, n] of counts) if (best === undefined || n > counts.get(best)!) best = x;
  return best;
}
