import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { StateStore } from '../store/state-store.js';
import { planFromState } from '../schedule/plan.js';
import { systemClock } from '../clock.js';
import type { CommandContext } from './main.js';
import { phaseName } from '../dane/phases.js';

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
  consecutiveFailures: number;
  /** ARI (RFC 9773) as last fetched, or null when the CA offers none / not fetched yet. */
  ari: { windowStart: string; windowEnd: string; chosen: string; nextCheck: string; explanationURL: string | null; lastError: string | null } | null;
  /** Set while a failure backoff holds the next attempt back. */
  backoffUntil: string | null;
  /** The DANE journal, or null without DANE state (with DANE off it stays until mxcert dane retire frees the keys). */
  dane: { phase: string; holdUntil: string | null; currentTlsa: string; nextTlsa: string; rolloverRequested: boolean; lastError: string | null } | null;
}

/** The rollover journal, read directly: status must not load the DANE machinery. */
async function daneJournal(store: StateStore, name: string, keyType: string) {
  try {
    const j = JSON.parse(await readFile(path.join(store.certDir(name, keyType), 'dane', 'journal.json'), 'utf8')) as {
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

export async function statusCommand(ctx: CommandContext, o: { json: boolean }): Promise<number> {
  const config = await loadConfig(resolveConfigPath(ctx.config));
  const store = new StateStore(config.stateDir);
  const now = systemClock.now();
  // Every unit read at once (a hundred certificates are hundreds of small
  // files), and only the version metadata: status needs no keys or PEMs.
  const units = config.certificates.flatMap((cert) => cert.keys.map((keyType) => ({ cert, keyType })));
  const rows: StatusRow[] = await Promise.all(
    units.map(async ({ cert, keyType }): Promise<StatusRow> => {
      const state = await store.readState(cert.name, keyType);
      const meta = state.current ? await store.loadMeta(cert.name, keyType, state.current) : undefined;
      const cur = meta && { meta };
      const plan = planFromState(cert, keyType, state, cur, false, now);
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
        // Shown whenever DANE state exists: with DANE off, records may still be published.
        dane: await daneJournal(store, cert.name, keyType),
      };
    }),
  );
  if (o.json) {
    // docs/status.schema.json describes this document; schemaVersion changes only on an incompatible change.
    process.stdout.write(JSON.stringify({ schemaVersion: 1, generatedAt: now.toISOString(), certificates: rows }, null, 2) + '\n');
  } else {
    process.stdout.write(renderTable(rows, now));
  }
  return rows.some((r) => r.lastResult === 'failure') ? 1 : 0;
}

function relative(iso: string | null, now: Date): string {
  if (!iso) return '-';
  const ms = new Date(iso).getTime() - now.getTime();
  const abs = Math.abs(ms);
  const unit = abs >= 2 * 86_400_000 ? `${Math.round(abs / 86_400_000)}d` : abs >= 2 * 3_600_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 60_000)}m`;
  return ms >= 0 ? `in ${unit}` : `${unit} ago`;
}

function renderTable(rows: StatusRow[], now: Date): string {
  const header = ['CERT', 'KEY', 'NAMES', 'SERIAL', 'NOT AFTER', 'NEXT RENEWAL', 'ARI WINDOW', 'DANE', 'LAST'];
  const body = rows.map((r) => [
    r.cert,
    r.keyType,
    r.domains.join(','),
    r.serial ? r.serial.slice(0, 16) : '-',
    r.notAfter ? `${r.notAfter.slice(0, 16)}Z (${relative(r.notAfter, now)})` : '-',
    r.nextRenewalReason === 'missing'
      ? 'now (no certificate yet)'
      : `${r.nextRenewal.slice(0, 16)}Z ${r.nextRenewalReason}${r.nextRenewalReason === 'backoff' ? ` (after ${r.consecutiveFailures} failure${r.consecutiveFailures === 1 ? '' : 's'})` : ''}`,
    r.ari ? `${r.ari.windowStart.slice(0, 16)}Z..${r.ari.windowEnd.slice(11, 16)}Z` : '-',
    r.dane ? `${r.dane.phase}${r.dane.holdUntil && new Date(r.dane.holdUntil) > now ? ` hold until ${r.dane.holdUntil.slice(0, 19)}Z` : ''}${r.dane.rolloverRequested ? ' (rollover requested)' : ''}` : '-',
    r.lastResult === 'failure' ? `FAILED: ${r.lastError}` : r.lastResult ? `ok ${relative(r.lastAt, now)}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (i === header.length - 1 ? 0 : b[i]!.length))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n';
  return line(header) + body.map(line).join('');
}
