// What the CA says about renewing: ACME Renewal Information (RFC 9773) and
// the profiles it offers (draft-ietf-acme-profiles). ari.ts holds the pure
// parts (CertID, parsing); this file fetches.
import { ConfigError } from '../errors.js';
import { parseRenewalInfo, type RenewalInfo } from './ari.js';
import { problemError, problemOf, responseError } from './problems.js';
import type { AcmeSession } from './session.js';
import { parseRetryAfter } from './transport.js';

/**
 * ARI (RFC 9773 §4): the CA's suggested renewal window for `certId`, or
 * undefined when the CA does not offer ARI. renewalInfo is a plain GET.
 */
export async function fetchRenewalInfo(session: AcmeSession, certId: string): Promise<RenewalInfo | undefined> {
  const base = (await session.directory()).renewalInfo;
  if (typeof base !== 'string') return undefined;
  const url = `${base.replace(/\/+$/, '')}/${certId}`;
  const resp = await session.withNetworkRetry('renewalInfo', () => session.transport.get(url, { from: 'the directory (renewalInfo)' }));
  const retryAfter = parseRetryAfter(resp.headers['retry-after']);
  if (resp.status !== 200) {
    throw problemOf(resp) ? responseError('renewalInfo', resp) : problemError('renewalInfo', undefined, resp.status, retryAfter, `renewalInfo answered HTTP ${resp.status}`);
  }
  try {
    return parseRenewalInfo(resp.json, retryAfter);
  } catch (err) {
    throw problemError('renewalInfo', undefined, resp.status, undefined, (err as Error).message, err);
  }
}

/** Profiles the CA advertises in its directory (draft-ietf-acme-profiles), or undefined. */
export async function offeredProfiles(session: AcmeSession): Promise<Record<string, string> | undefined> {
  const p = (await session.directory()).meta?.profiles;
  return p && typeof p === 'object' ? p : undefined;
}

/**
 * `acme.profile` must be one the CA advertises (draft-ietf-acme-profiles);
 * otherwise this is a config error naming the ones that exist.
 */
export async function checkProfile(session: AcmeSession, profile: string | undefined): Promise<void> {
  if (!profile) return;
  const offered = await offeredProfiles(session);
  if (offered && profile in offered) return;
  throw new ConfigError([
    {
      path: 'acme.profile',
      message: offered
        ? `the CA does not offer profile "${profile}"; it offers: ${Object.keys(offered).join(', ')}`
        : `the CA advertises no profiles, so "${profile}" cannot be requested`,
    },
  ]);
}
