// The SNI tables of the MTAs (docs/architecture.md, "SNI tables"): Postfix's
// tls_server_sni_maps and Dovecot's local_name include, rebuilt from the
// config and the files on disk
// - after every deploy or rollback of a server certificate, before the
//   deploy hooks reload the MTAs and before the live check (which asks for
//   the certificate's name through SNI): the Postfix database holds the
//   files' contents, so a deploy is not served until the map is rebuilt;
//   concurrent deploys share rebuilds (SingleFlight);
// - at the end of each pass, when the config changed (a name or certificate
//   added or removed) or a rebuild failed;
// - on demand (`mxcert sni write`).
import { lstat } from 'node:fs/promises';
import type { CertificateConfig, SniConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { SingleFlight } from '../util/single-flight.js';
import { installDovecotInclude } from './sni-dovecot.js';
import { dovecotPaths, dovecotSniEntries, renderDovecotSniConf } from './sni-dovecot-conf.js';
import { sniCandidatePaths, sniSources, type SniNote, type SniSource } from './sni-names.js';
import { installPostfixMap, postfixMapCurrent } from './sni-postfix.js';
import { postfixSniEntries, renderPostfixSniMap } from './sni-postfix-map.js';

export interface SniReport {
  postfix?: { map: string; type: string; names: number; certificates: number; rebuilt: boolean };
  dovecot?: { include: string; names: number; certificates: number; written: boolean };
  notes: SniNote[];
}

/** Which paths exist as regular files (a symlink is not one: neither table follows links mxcert would not). */
async function presentFiles(paths: readonly string[]): Promise<Set<string>> {
  const found = await Promise.all(paths.map(async (p) => ((await lstat(p).catch(() => undefined))?.isFile() ? p : undefined)));
  return new Set(found.filter((p): p is string => p !== undefined));
}

export class SniTables {
  private readonly sources: SniSource[];
  private readonly rebuild: SingleFlight;
  private log: Logger;

  constructor(
    private readonly sni: SniConfig,
    certificates: readonly CertificateConfig[],
    logger: Logger,
  ) {
    this.sources = sniSources(certificates);
    this.log = logger;
    this.rebuild = new SingleFlight(async () => {
      await this.write(this.log, { force: true });
    });
  }

  /** Whether a deploy of `cert` changes what a table serves. */
  covers(cert: CertificateConfig): boolean {
    const s = this.sources.find((x) => x.cert === cert.name);
    if (!s) return false;
    return s.files.some((f) => (this.sni.postfix && f.combined) || (this.sni.dovecot && dovecotPaths(f).length > 0));
  }

  /**
   * `cert`'s files were just written or restored: rebuild the tables (a
   * rebuild that starts after this call). Throws DeployError.
   */
  async afterDeploy(cert: CertificateConfig, log: Logger): Promise<void> {
    if (!this.covers(cert)) return;
    this.log = log;
    await this.rebuild.request();
  }

  /** End of a pass: bring stale tables up to date. Logs instead of throwing; false when that failed. */
  async afterPass(log: Logger): Promise<boolean> {
    try {
      await this.write(log, { force: false });
      return true;
    } catch (err) {
      log.error({ err: describeError(err) }, 'SNI tables not updated');
      return false;
    }
  }

  /**
   * Render both tables from the files on disk and install them: the Postfix
   * map when `force` or when it is stale, the Dovecot include when its text
   * changed.
   */
  async write(log: Logger, opts: { force: boolean }): Promise<SniReport> {
    const present = await presentFiles(sniCandidatePaths(this.sources));
    const has = (p: string) => present.has(p);
    const report: SniReport = { notes: [] };
    if (this.sni.postfix) {
      const t = this.sni.postfix;
      const { entries, notes } = postfixSniEntries(this.sources, has);
      report.notes.push(...notes);
      const text = renderPostfixSniMap(entries);
      const files = [...new Set(entries.flatMap((e) => e.files))];
      const rebuilt = opts.force || !(await postfixMapCurrent(text, files, t));
      if (rebuilt) await installPostfixMap(text, t, log);
      report.postfix = { map: t.map, type: t.type, names: entries.length, certificates: new Set(entries.map((e) => e.cert)).size, rebuilt };
      if (rebuilt) log.info({ map: t.map, type: t.type, names: entries.length }, 'SNI: Postfix map rebuilt');
    }
    if (this.sni.dovecot) {
      const file = this.sni.dovecot.include;
      const { entries, notes } = dovecotSniEntries(this.sources, has);
      report.notes.push(...notes);
      const written = await installDovecotInclude(file, renderDovecotSniConf(entries));
      report.dovecot = { include: file, names: entries.length, certificates: new Set(entries.map((e) => e.cert)).size, written };
      if (written) log.info({ include: file, names: entries.length }, 'SNI: Dovecot include written');
    }
    for (const n of report.notes) log[n.level]({}, `SNI: ${n.text}`);
    return report;
  }
}
