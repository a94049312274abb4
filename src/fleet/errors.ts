// Typed errors of fleet mode (docs/architecture.md, "Fleet"). Each carries a
// stable `code` (for status, metrics labels and tests) and its cause. What
// the caller does differs by class: an unavailable etcd means "keep serving
// what you have and try later", a conflict means "re-read and decide again",
// a lost leadership means "stop acting", a seal error means "refuse to
// deploy this key and say why".
import { MxcertError } from '../errors.js';

/** etcd did not answer within the deadline, or no endpoint could be reached (no quorum, network cut, TLS handshake failed). */
export class EtcdUnavailableError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('etcd-unavailable', message, options);
  }
}

/** etcd answered and refused us: wrong password, a client certificate or user without permission on the prefix. */
export class EtcdAccessError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('etcd-access', message, options);
  }
}

/**
 * A compare-and-swap lost: the key's mod revision is no longer the one read
 * (someone else wrote it first). Nothing was written; re-read and decide again.
 */
export class FleetConflictError extends MxcertError {
  /** The key, relative to the fleet prefix. */
  readonly key: string;
  /** The mod revision the write expected ("0": absent). */
  readonly expected: string;
  /** The mod revision found ("0": absent). */
  readonly actual: string;
  constructor(key: string, expected: string, actual: string) {
    const what = (r: string) => (r === '0' ? 'absent' : `at revision ${r}`);
    super('fleet-conflict', `fleet key ${key} changed under us: expected it ${what(expected)}, found it ${what(actual)}; nothing was written`);
    this.key = key;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * A leader-only write was refused because the leader key no longer holds
 * this process's lease: another member leads now (or nobody does). The
 * caller has been deposed and must stop acting as leader.
 */
export class NotLeaderError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('fleet-not-leader', message, options);
  }
}

/** The campaign or term ended (lease lost, etcd unreachable past the lease, resigned, aborted). */
export class LeadershipLostError extends MxcertError {
  readonly reason: 'lease-expired' | 'lease-revoked' | 'key-changed' | 'resigned' | 'aborted';
  constructor(reason: LeadershipLostError['reason'], message: string, options?: { cause?: unknown }) {
    super('fleet-leadership-lost', message, options);
    this.reason = reason;
  }
}

/**
 * A sealed private key could not be opened. `reason`:
 * - `wrong-key`: sealed under another keyEncryption key (the message names both key ids);
 * - `moved`: sealed for another slot (fleet, certificate, key type or role) than where it was found;
 * - `tampered`: the authentication tag does not verify: the ciphertext, IV or bound data changed;
 * - `malformed`: not a sealed value of a version this mxcert reads.
 */
export class SealError extends MxcertError {
  readonly reason: 'wrong-key' | 'moved' | 'tampered' | 'malformed';
  constructor(reason: SealError['reason'], message: string, options?: { cause?: unknown }) {
    super('seal', message, options);
    this.reason = reason;
  }
}

/** A value in etcd under the fleet prefix is not what mxcert writes there (not JSON, wrong shape). */
export class FleetDataError extends MxcertError {
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('fleet-data', `fleet key ${key}: ${message}`, options);
    this.key = key;
  }
}
