// The parts of a config that fail the schema as a whole but parse on their
// own (src/config/load.ts checks their files all the same). Apart from
// semantic.ts so that the checks themselves do not load the schema
// (src/config/validated-cache.ts runs them without it).
import { certificateSchema, configSchema } from './schema.js';
import type { FleetFiles, Parts } from './semantic.js';

/**
 * When the whole file fails the schema, still check the parts that parse on
 * their own, so a missing secret file is reported together with a typo
 * elsewhere rather than on the next run.
 */
export function validParts(raw: unknown): Parts {
  const obj = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const acme = configSchema.shape.acme.safeParse(obj['acme']);
  const fleet = obj['fleet'] === undefined ? undefined : fleetParts(obj['fleet']);
  const certs = Array.isArray(obj['certificates']) ? obj['certificates'] : [];
  const certificates: Parts['certificates'] = [];
  certs.forEach((c, index) => {
    const r = certificateSchema.safeParse(c);
    if (r.success) certificates.push({ index, cert: r.data });
  });
  const sni = configSchema.shape.sni.safeParse(obj['sni']);
  return { acme: acme.success ? acme.data : undefined, certificates, sni: sni.success ? sni.data : undefined, partial: true, fleet, fleetGiven: fleet !== undefined };
}

/** The fleet block, or those of its parts that name files (keyEncryption, etcd) and parse on their own. */
function fleetParts(raw: unknown): FleetFiles {
  const whole = configSchema.shape.fleet.safeParse(raw);
  if (whole.success && whole.data) return whole.data;
  const obj = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const shape = configSchema.shape.fleet.unwrap().innerType().shape;
  const keyEncryption = shape.keyEncryption.safeParse(obj['keyEncryption']);
  const etcd = shape.etcd.safeParse(obj['etcd']);
  return { keyEncryption: keyEncryption.success ? keyEncryption.data : undefined, etcd: etcd.success ? etcd.data : undefined };
}
