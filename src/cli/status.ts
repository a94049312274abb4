// `mxcert status`: what is deployed and what happens next, per certificate
// and key type. It reads the config and the state dir only (no keys, no
// PEMs, no network) and loads nothing heavy, so it stays fast for a hundred
// certificates. A config with problems still gets its table, from the parts
// that parse: expiry matters most exactly when something is wrong.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { resolveConfigPath } from '../config/config-path.js';
import type { UsableConfig } from '../config/load.js';
import { examineConfigForStatus } from '../config/validated-cache.js';
import { expandOutputPath } from '../deploy/output-paths.js';
import type { CertificateConfig } from '../config/schema.js';
import type { ConfigProblem } from '../errors.js';
import { StateStore } from '../store/state-store.js';
import { planFromState } from '../schedule/plan.js';
import { configFingerprint } from '../schedule/config-fingerprint.js';
import { namesDiffer } from '../schedule/renewal-time.js';
import { PENDING_CLEANUPS_FILE, readPendingCleanups, type PendingCleanup } from '../store/cleanup-ledger.js';
import { systemClock } from '../clock.js';
import { phaseName } from '../dane/phases.js';
import { displayTime, displayTimesIn } from '../util/display-time.js';
import { oneLine, withoutStep, wrap } from './text.js';
import type { CommandContext } from './context.js';

const OUTPUT_KINDS = ['combined', 'key', 'cert', 'chain', 'fullchain'] as const;

export interface StatusRow {
  cert: string;
  keyType: string;
  domains: string[];
  serial: string | null;
  notBefore: string | null;
  notAfter: string | null;
  nextRenewal: string;
  nextRenewalReason: string;
  lastResult: 'success' | 'failure' | null;
  lastAt: string | null;
  lastError: string | null;
  /** The step the last failure happened at (obtain, validate, deploy, hooks, verify, renew). */
  lastStep: string | null;
  consecutiveFailures: number;
  /** ARI (RFC 9773) as last fetched, or null when the CA offers none / not fetched yet. */
  ari: { windowStart: string; windowEnd: string; chosen: string; nextCheck: string; explanationURL: string | null; lastError: string | null } | null;
  /** Set while a failure backoff holds the next attempt back. */
  backoffUntil: string | null;
  /** The deployed certificate was revoked (mxcert revoke); the next pass replaces it. */
  revoked: { serial: string; reason: string; at: string } | null;
  /** The DANE journal, or null without DANE state (with DANE off it stays until mxcert dane retire frees the keys). */
  dane: { phase: string; holdUntil: string | null; currentTlsa: string; nextTlsa: string; rolloverRequested: boolean; lastError: string | null } | null;
  /** The files mxcert writes for this key type (output.*, placeholders filled in). */
  outputs: Partial<Record<(typeof OUTPUT_KINDS)[number], string>>;
  /** The names the deployed certificate holds (null before the first issuance). */
  certNames: string[] | null;
  /** True when certNames and domains differ in either direction (the certificate is due: names-changed). */
  namesDiffer: boolean;
  /** An issued, validated certificate whose deploy failed, waiting to be deployed on the next attempt. */
  staged: { serial: string; notAfter: string; issuedAt: string } | null;
  /** Challenge responses for this certificate's names still to be removed (stateDir/pending-cleanups.json). */
  pendingCleanups: CleanupView[];
}

export interface CleanupView {
  owner: string;
  since: string;
  attempts: number;
  lastError: string | null;
}

function cleanupView(e: PendingCleanup): CleanupView {
  return { owner: e.owner, since: e.since, attempts: e.attempts, lastError: e.lastError ?? null };
}

/** Entries for one of these names (a response is for one identifier; a wildcard's is for its base name). */
function cleanupsFor(entries: PendingCleanup[], names: string[]): CleanupView[] {
  if (entries.length === 0) return [];
  const mine = new Set(names.map((n) => n.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '')));
  return entries.filter((e) => mine.has(e.challenge.identifier.toLowerCase().replace(/^\*\./, '').replace(/\.$/, ''))).map(cleanupView);
}

/** The rollover journal, read directly: status must not load the DANE machinery. */
function daneJournal(store: StateStore, name: string, keyType: string) {
  const file = path.join(store.certDir(name, keyType), 'dane', 'journal.json');
  // Most units have none: asking costs a third of a failed read (its exception), a thousand times over.
  if (!existsSync(file)) return null;
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as {
      phase: string;
      holdUntil?: string;
      current: { tlsa: string };
      next: { tlsa: string };
      rollover?: unknown;
      lastError?: string;
    };
    return { phase: phaseName(j.phase) ?? j.phase, holdUntil: j.holdUntil ?? null, currentTlsa: j.current.tlsa, nextTlsa: j.next.tlsa, rolloverRequested: Boolean(j.rollover), lastError: j.lastError ?? null };
  } catch {
    return null;
  }
}

function outputsOf(cert: CertificateConfig, keyType: string): StatusRow['outputs'] {
  const out: StatusRow['outputs'] = {};
  for (const kind of OUTPUT_KINDS) {
    const tpl = cert.output[kind];
    if (tpl) out[kind] = expandOutputPath(tpl, { keytype: keyType, name: cert.name });
  }
  return out;
}

function statusRow(store: StateStore, config: UsableConfig, cert: CertificateConfig, keyType: string, now: Date, cleanups: PendingCleanup[]): StatusRow {
  const state = store.readStateSync(cert.name, keyType);
  const meta = state.current ? store.loadMetaSync(cert.name, keyType, state.current) : undefined;
  const cur = meta && { meta };
  // Only a failure records the fingerprint it failed with, and without one the plan never looks at it
  // (configChangedSince, src/schedule/renewal-time.ts): most units never need it computed.
  const fingerprint = config.acme && state.last?.configFingerprint !== undefined ? configFingerprint(config.acme, cert, keyType) : undefined;
  const plan = planFromState(cert, keyType, state, cur, false, now, fingerprint);
  let staged;
  try {
    staged = store.loadStagedMetaSync(cert.name, keyType);
  } catch {
    staged = undefined;
  }
  return {
    cert: cert.name,
    keyType,
    domains: cert.domains,
    serial: cur?.meta.serial ?? null,
    notBefore: cur?.meta.notBefore ?? null,
    notAfter: cur?.meta.notAfter ?? null,
    nextRenewal: plan.at.toISOString(),
    nextRenewalReason: plan.reason,
    lastResult: state.last?.result ?? null,
    lastAt: state.last?.at ?? null,
    lastError: state.last?.error ?? null,
    lastStep: state.last?.result === 'failure' ? (state.last.step ?? null) : null,
    consecutiveFailures: state.consecutiveFailures,
    ari: state.ari
      ? {
          windowStart: state.ari.windowStart,
          windowEnd: state.ari.windowEnd,
          chosen: state.ari.chosen,
          nextCheck: state.ari.nextCheck,
          explanationURL: state.ari.explanationURL ?? null,
          lastError: state.ari.lastError ?? null,
        }
      : null,
    backoffUntil: plan.reason === 'backoff' ? plan.at.toISOString() : null,
    revoked: state.revoked && state.revoked.version === state.current ? { serial: state.revoked.serial, reason: state.revoked.reason, at: state.revoked.at } : null,
    // Shown whenever DANE state exists: with DANE off, records may still be published.
    dane: daneJournal(store, cert.name, keyType),
    outputs: outputsOf(cert, keyType),
    certNames: cur?.meta.names ?? null,
    namesDiffer: cur ? namesDiffer(cur.meta.names, cert.domains) : false,
    staged: staged ? { serial: staged.serial, notAfter: staged.notAfter, issuedAt: staged.issuedAt } : null,
    pendingCleanups: cleanupsFor(cleanups, [...cert.domains, ...(cur?.meta.names ?? [])]),
  };
}

/** Metadata only, a few small files per unit, read synchronously (see StateStore.readStateSync). */
function statusRows(config: UsableConfig, now: Date, cleanups: PendingCleanup[]): StatusRow[] {
  const store = new StateStore(config.stateDir);
  return config.certificates.flatMap((cert) => cert.keys.map((keyType) => statusRow(store, config, cert, keyType, now, cleanups)));
}

export async function statusCommand(ctx: CommandContext, o: { json: boolean; wide?: boolean }): Promise<number> {
  const examined = await examineConfigForStatus(resolveConfigPath(ctx.config));
  const problems = examined.problems;
  const now = systemClock.now();
  const cleanups = examined.usable ? await readPendingCleanups(examined.usable.stateDir) : [];
  const rows = examined.usable ? statusRows(examined.usable, now, cleanups) : [];
  if (o.json || ctx.format === 'json') {
    // docs/status.schema.json describes this document; schemaVersion changes only on an incompatible change.
    const doc = { schemaVersion: 1, generatedAt: now.toISOString(), certificates: rows, configProblems: problems, pendingCleanups: cleanups.map(cleanupView) };
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  } else {
    const width = Math.max(60, Math.min(process.stdout.isTTY ? (process.stdout.columns || 100) : 100, 100));
    if (rows.length) process.stdout.write(displayTimesIn(o.wide ? renderWide(rows, now) : renderBlocks(rows, now, width)));
    if (cleanups.length && examined.usable) {
      const where = path.join(examined.usable.stateDir, PENDING_CLEANUPS_FILE);
      process.stdout.write(`pending challenge cleanups (${where}): ${cleanups.map((e) => `${e.owner} since ${displayTime(e.since)}`).join(', ')}\n`);
    }
    // A fleet member: the leader and what every member serves (docs/architecture.md, "Fleet").
    if (examined.config?.fleet) process.stdout.write(displayTimesIn(await (await import('./fleet-status-text.js')).fleetStatusText(examined.config.fleet)));
    if (problems.length) process.stderr.write(renderProblems(problems, examined.usable?.source));
  }
  // A broken config is a config error (exit 2) even though the table was shown.
  if (problems.length) return 2;
  return rows.some((r) => r.lastResult === 'failure') ? 1 : 0;
}

function renderProblems(problems: ConfigProblem[], source: string | undefined): string {
  const head = `\nconfig problems${source ? ` in ${source}` : ''} (the table above shows the parts that parse; \`mxcert config check\` lists the same):\n`;
  return head + problems.map((p) => `  ${p.path || '(config)'}: ${p.message}\n`).join('');
}

// ---------------------------------------------------------------------------
// Text

function relative(iso: string | null, now: Date): string {
  if (!iso) return '-';
  const ms = new Date(iso).getTime() - now.getTime();
  const abs = Math.abs(ms);
  const unit = abs >= 2 * 86_400_000 ? `${Math.round(abs / 86_400_000)}d` : abs >= 2 * 3_600_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 60_000)}m`;
  return ms >= 0 ? `in ${unit}` : `${unit} ago`;
}

/** The one-word state of a unit, for the head of its block. */
function verdict(r: StatusRow, now: Date): string {
  if (r.lastResult === 'failure') return `FAILED at ${r.lastStep ?? 'renew'}${r.consecutiveFailures > 1 ? ` (${r.consecutiveFailures} attempts in a row)` : ''}`;
  if (!r.serial) return 'no certificate yet';
  if (r.notAfter && new Date(r.notAfter) <= now) return 'EXPIRED';
  return 'ok';
}

function renewalText(r: StatusRow, now: Date): string {
  if (r.nextRenewalReason === 'missing') return 'now (no certificate yet)';
  if (r.revoked && r.nextRenewalReason === 'revoked') return `now (revoked: ${r.revoked.reason})`;
  const after = r.nextRenewalReason === 'backoff' ? `, after ${r.consecutiveFailures} failure${r.consecutiveFailures === 1 ? '' : 's'}` : '';
  return `${displayTime(r.nextRenewal)}, ${new Date(r.nextRenewal) <= now ? 'due now' : relative(r.nextRenewal, now)} (${r.nextRenewalReason}${after})`;
}

function ariText(a: NonNullable<StatusRow['ari']>): string {
  return `${displayTime(a.windowStart)} .. ${displayTime(a.windowEnd)}, picked ${displayTime(a.chosen)}; next check ${displayTime(a.nextCheck)}${a.lastError ? `; last lookup failed: ${a.lastError}` : ''}`;
}

function daneText(d: NonNullable<StatusRow['dane']>, now: Date): string {
  const hold = d.holdUntil && new Date(d.holdUntil) > now ? `, hold until ${displayTime(d.holdUntil)}` : '';
  return `${d.phase}${hold}${d.rolloverRequested ? ' (rollover requested)' : ''}${d.lastError ? `; last error: ${d.lastError}` : ''}`;
}

function lastText(r: StatusRow, now: Date): string {
  if (!r.lastResult || !r.lastAt) return '-';
  const when = `${displayTime(r.lastAt)} (${relative(r.lastAt, now)})`;
  return r.lastResult === 'failure' ? `failed ${when}: ${oneLine(withoutStep(r.lastError ?? '', r.lastStep))}` : `ok ${when}`;
}

/** One block per certificate and key type, like `certbot certificates`: fits `width` columns. */
function renderBlocks(rows: StatusRow[], now: Date, width: number): string {
  return rows.map((r) => renderBlock(r, now, width)).join('\n');
}

function renderBlock(r: StatusRow, now: Date, width: number): string {
  const fields: Array<[string, string | string[]]> = [
    ['Names', r.namesDiffer ? `${(r.certNames ?? []).join(',')} ≠config (config: ${r.domains.join(', ')})` : r.domains.join(', ')],
    ['Serial', r.serial ?? '-'],
    ['Valid', r.notAfter ? `${r.notBefore ? `${displayTime(r.notBefore)} .. ` : 'until '}${displayTime(r.notAfter)} (expires ${relative(r.notAfter, now)})` : '-'],
    ['Renewal', renewalText(r, now)],
  ];
  if (r.ari) fields.push(['ARI window', ariText(r.ari)]);
  if (r.dane) fields.push(['DANE', daneText(r.dane, now)]);
  fields.push(['Last attempt', lastText(r, now)]);
  if (r.staged) fields.push(['Staged', `[staged ${r.staged.serial.slice(0, 16)} waiting to deploy]`]);
  const files = Object.entries(r.outputs).map(([kind, file]) => `${kind.padEnd(9)} ${file}`);
  fields.push(['Files', files.length ? files : '-']);
  const unwrapped = new Set(files);

  const label = Math.max(...fields.map(([k]) => k.length)) + 2;
  const indent = 2 + label;
  let out = `${r.cert} (${r.keyType}): ${verdict(r, now)}\n`;
  for (const [k, v] of fields) {
    const values = Array.isArray(v) ? v : [v];
    values.forEach((value, i) => {
      const lead = i === 0 ? `  ${`${k}:`.padEnd(label)}` : ' '.repeat(indent);
      // A path is never cut: one that does not fit runs over.
      out += lead + (unwrapped.has(value) ? value : wrap(value, width, indent, width - indent).join('\n')) + '\n';
    });
  }
  return out;
}

/** `--wide`: one line per certificate and key type, every column, as wide as it takes. */
function renderWide(rows: StatusRow[], now: Date): string {
  const header = ['CERT', 'KEY', 'NAMES', 'SERIAL', 'NOT AFTER', 'NEXT RENEWAL', 'ARI WINDOW', 'DANE', 'FILES', 'LAST'];
  const body = rows.map((r) => [
    r.cert,
    r.keyType,
    r.namesDiffer ? `${(r.certNames ?? []).join(',')} ≠config` : r.domains.join(','),
    r.serial ?? '-',
    r.notAfter ? `${displayTime(r.notAfter)} (${relative(r.notAfter, now)})` : '-',
    renewalText(r, now),
    r.ari ? `${displayTime(r.ari.windowStart)} .. ${displayTime(r.ari.windowEnd)}` : '-',
    r.dane ? daneText(r.dane, now) : '-',
    Object.values(r.outputs).join(',') || '-',
    (r.lastResult === 'failure' ? `FAILED at ${r.lastStep ?? 'renew'}: ${oneLine(withoutStep(r.lastError ?? '', r.lastStep))}` : lastText(r, now)) +
      (r.staged ? ` [staged ${r.staged.serial.slice(0, 16)} waiting to deploy]` : ''),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (i === header.length - 1 ? 0 : b[i]!.length))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n';
  return line(header) + body.map(line).join('');
}
