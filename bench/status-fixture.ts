// Fixtures for timing `mxcert status` (and `mxcert config check`) by hand,
// with any profiler or before/after pairing: for each N, the config the scale
// scenario writes (bench/scale.ts) and a state dir with N issued
// certificates, kept after the servers are gone.
//
//   npm run build
//   node --import tsx bench/status-fixture.ts DIR 100,300,1000
//   node bin/mxcert.js status --config DIR/n1000/config.yaml
//
// The sandbox's TSIG key file and CA bundles are copied next to the config,
// which then names the copies: status never talks to a server, but it does
// check every file the config names.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { startSandbox } from '../test/support/sandbox.js';
import { mxcertConfig, mxcertStep } from './clients.js';
import { measure } from './measure.js';

const [dirArg, countsArg = '100,300,1000'] = process.argv.slice(2);
if (!dirArg) {
  process.stderr.write('usage: node --import tsx bench/status-fixture.ts DIR [COUNTS]\n');
  process.exit(2);
}
const root = path.resolve(dirArg);

for (const n of countsArg.split(',').map(Number)) {
  const dir = path.join(root, `n${n}`);
  await mkdir(path.join(dir, 'out'), { recursive: true, mode: 0o700 });
  const sb = await startSandbox({ pebble: { nonceReject: 0, authzReuse: 0 } });
  try {
    const names = Array.from({ length: n }, (_, i) => `f${n}-${String(i + 1).padStart(4, '0')}.example.test`);
    const config = mxcertConfig({ sb, mergedBundle: '', webroot: '' }, { domains: names, challenge: 'dns-01', dir });
    const cfg = path.join(dir, 'config.yaml');
    await writeFile(cfg, stringify(config), { mode: 0o600 });
    const m = await measure([mxcertStep(['renew', '--format', 'json', '--config', cfg], 3_600_000)], path.join(dir, 'issuance.log'), { continueOnError: true });
    process.stdout.write(`n=${n}: issuance ${(m.wallMs / 1000).toFixed(1)} s, ok=${m.ok}\n`);

    // Copies of what the config names outside `dir`, owned by root like the originals.
    const acme = config['acme'] as Record<string, string>;
    const files = { caBundle: acme['caBundle']!, trustAnchors: acme['trustAnchors']!, tsig: sb.bind.tsig.secretFile };
    await copyFile(files.caBundle, path.join(dir, 'ca-bundle.pem'));
    await copyFile(files.trustAnchors, path.join(dir, 'trust-anchors.pem'));
    await copyFile(files.tsig, path.join(dir, 'tsig.secret'));
    const text = stringify(config)
      .split(files.caBundle).join(path.join(dir, 'ca-bundle.pem'))
      .split(files.trustAnchors).join(path.join(dir, 'trust-anchors.pem'))
      .split(files.tsig).join(path.join(dir, 'tsig.secret'));
    await writeFile(cfg, text, { mode: 0o600 });
  } finally {
    await sb.stop();
  }
}
