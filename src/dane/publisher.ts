// One interface for the three ways mxcert can get TLSA records into DNS
// (docs/architecture.md, "DANE rollover"): RFC 2136 UPDATE with TSIG, the
// PowerDNS HTTP API, or a hook script. The rollover machine only ever asks
// "what is there", "change it like this", and "whom do I ask whether it is
// visible".
import type { DanePublisherConfig } from '../config/schema.js';
import { DnsError } from '../errors.js';
import type { PublisherDeps, TlsaPublisher } from './publish-common.js';

export { checkChange, retryDelayMs, type PublisherDeps, type TlsaChange, type TlsaPublisher } from './publish-common.js';

/** Build the publisher `cfg` names. Secrets are read (and checked) here, once. */
export async function createPublisher(cfg: DanePublisherConfig | undefined, deps: PublisherDeps): Promise<TlsaPublisher> {
  if (!cfg) throw new DnsError('dane.publisher is not configured: say how TLSA records are published (rfc2136, pdns or hook)');
  // Imported lazily: only the configured provider is loaded.
  switch (cfg.provider) {
    case 'rfc2136': {
      const { createRfc2136Publisher } = await import('./publish-rfc2136.js');
      return createRfc2136Publisher(cfg, deps);
    }
    case 'pdns': {
      const { createPdnsPublisher } = await import('./publish-pdns.js');
      return createPdnsPublisher(cfg, deps);
    }
    case 'hook': {
      const { createHookPublisher } = await import('./publish-hook.js');
      return createHookPublisher(cfg, deps);
    }
    default:
      throw new DnsError(`unknown TLSA publisher ${JSON.stringify((cfg as { provider?: unknown }).provider)}`);
  }
}
