// The fields of an X.509 certificate (RFC 5280 §4.1) that node's
// X509Certificate does not expose in a usable form — the exact issuer/subject
// Names (DER for chaining, text for people), validity as Dates, the serial
// number's contents octets, the SAN dNSNames and the Authority Key Identifier —
// read with @peculiar/x509. Signature maths, the public key and the first
// parse of every certificate stay with node:crypto (OpenSSL).
//
// @peculiar/x509 (with asn1js, its schemas, reflect-metadata and tsyringe) is
// loaded on first use only: the daemon parent and `mxcert status` never
// reach it (docs/architecture.md, "Security model"; bench/README.md).
//
// Callers hand in a certificate OpenSSL has already parsed, so the ASN.1 that
// asn1js sees is well-formed DER within OpenSSL's own limits (nesting depth,
// minimal INTEGERs), and the size caps of validate/chain-check.ts applied
// before either parser. Where asn1js is lenient, OpenSSL's reading of the same
// bytes is the cross-check (validity times, duplicate or look-alike extensions).
import type { X509Certificate as NodeX509 } from 'node:crypto';
import { MxcertError } from '../errors.js';

export type X509Lib = typeof import('@peculiar/x509');
export type X509Cert = InstanceType<X509Lib['X509Certificate']>;

let loading: Promise<X509Lib> | undefined;

/** @peculiar/x509, imported on the first call (one import per process). */
export function loadX509(): Promise<X509Lib> {
  loading ??= import('@peculiar/x509');
  return loading;
}

/** A certificate whose fields cannot be read, or that two readers see differently. */
export class CertFieldsError extends MxcertError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('cert-fields', message, options);
  }
}

export const OID_SUBJECT_ALT_NAME = '2.5.29.17';
export const OID_AUTHORITY_KEY_ID = '2.5.29.35';

export interface CertFields {
  /** The parsed certificate, for further extensions (basicConstraints, keyUsage). */
  cert: X509Cert;
  /** The serial number INTEGER's contents octets exactly as encoded (sign octet included): what ARI's CertID uses (RFC 9773 §4.1). */
  serialDer: Buffer;
  /** Lower-case hex without the sign octet, e.g. "87654321": node's X509Certificate.serialNumber in lower case. */
  serialHex: string;
  /** The issuer and subject Name encodings (RFC 5280 §4.1.2.4, §4.1.2.6). */
  issuerDer: Buffer;
  subjectDer: Buffer;
  /** As text for people, e.g. "C=DE, O=Example\, Inc., CN=mx1": RDNs in certificate order, for display only. */
  issuer: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** dNSName entries of the subjectAltName extension (RFC 5280 §4.2.1.6), in order; [] without one. */
  dnsNames: string[];
  /** keyIdentifier of the authorityKeyIdentifier extension (RFC 5280 §4.2.1.1), if present and non-empty. */
  authorityKeyId?: Buffer;
}

/** Read the fields of a certificate node has parsed, loading @peculiar/x509 if need be. */
export async function readCertFields(native: NodeX509): Promise<CertFields> {
  return certFields(await loadX509(), native);
}

/** The same, with the library at hand. Throws CertFieldsError. */
export function certFields(x509: X509Lib, native: NodeX509): CertFields {
  let cert: X509Cert;
  try {
    cert = new x509.X509Certificate(new Uint8Array(native.raw));
  } catch (err) {
    throw new CertFieldsError(`not a certificate as RFC 5280 §4.1 lays it out: ${errMsg(err)}`, { cause: err });
  }
  const serial = serialOf(cert, native);
  const names = {
    issuerDer: Buffer.from(cert.issuerName.toArrayBuffer()),
    subjectDer: Buffer.from(cert.subjectName.toArrayBuffer()),
    issuer: cert.issuer,
    subject: cert.subject,
  };
  const notBefore = validityTime(cert, native, 'notBefore');
  const notAfter = validityTime(cert, native, 'notAfter');
  const ext = extensionFields(x509, cert, native);
  return { cert, ...serial, ...names, notBefore, notAfter, ...ext };
}

/**
 * The serial number's contents octets. @peculiar/x509 gives the value as hex
 * without the 0x00 that DER puts before a high bit (X.690 §8.3.2); OpenSSL
 * refuses a non-minimal INTEGER, so that octet is the only one to restore —
 * unless the serial is negative (RFC 5280 §4.1.2.2 forbids it, OpenSSL reads
 * it): then the hex is already the two's complement as encoded.
 */
function serialOf(cert: X509Cert, native: NodeX509): { serialDer: Buffer; serialHex: string } {
  const hex = cert.serialNumber.toLowerCase();
  const value = Buffer.from(hex, 'hex');
  const negative = native.serialNumber.startsWith('-');
  const serialDer = !negative && (value[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), value]) : value;
  return { serialDer, serialHex: hex };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * OpenSSL's reading of a validity time as node prints it (ASN1_TIME_print:
 * "Jan  1 00:00:00 2025 GMT"); undefined for anything else, fractions of a
 * second and "Bad time value" included.
 */
function opensslTime(text: string): number | undefined {
  const m = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{1,4}) GMT$/.exec(text);
  const month = m ? MONTHS.indexOf(m[1]!) : -1;
  if (!m || month < 0) return undefined;
  const d = new Date(Date.UTC(2000, month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])));
  d.setUTCFullYear(Number(m[6]));
  return d.getTime();
}

/**
 * A validity time (RFC 5280 §4.1.2.5): UTCTime YYMMDDHHMMSSZ or
 * GeneralizedTime YYYYMMDDHHMMSSZ, UTC, whole seconds. asn1js reads other
 * forms without complaint (a UTCTime without seconds as 1899, 31 February as
 * 3 March), so OpenSSL's reading of the same field must agree to the
 * millisecond; a time either refuses, or they disagree on, is refused.
 */
function validityTime(cert: X509Cert, native: NodeX509, which: 'notBefore' | 'notAfter'): Date {
  let ours: Date | undefined;
  try {
    ours = cert[which];
  } catch {
    ours = undefined;
  }
  const theirs = opensslTime(which === 'notBefore' ? native.validFrom : native.validTo);
  if (!ours || Number.isNaN(ours.getTime()) || theirs === undefined || ours.getTime() !== theirs) {
    const shown = which === 'notBefore' ? native.validFrom : native.validTo;
    throw new CertFieldsError(
      `validity ${which} (OpenSSL reads "${shown}") is not a UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5)`,
    );
  }
  return ours;
}

/**
 * SAN dNSNames and AKI keyIdentifier. RFC 5280 §4.2: an extension appears at
 * most once. That is enforced here because asn1js cannot hold an OID arc
 * above 2^56 and @peculiar/x509 then drops it: 2.5.29.17.<huge arc> would be
 * read as a second subjectAltName. The one that matters is cross-checked
 * against OpenSSL, which reads OIDs exactly: both must see a subjectAltName,
 * or neither.
 */
function extensionFields(x509: X509Lib, cert: X509Cert, native: NodeX509): Pick<CertFields, 'dnsNames' | 'authorityKeyId'> {
  let exts: X509Cert['extensions'];
  try {
    exts = cert.extensions;
  } catch (err) {
    throw new CertFieldsError(`its extensions are not readable: ${errMsg(err)}`, { cause: err });
  }
  const seen = new Set<string>();
  for (const e of exts) {
    if (seen.has(e.type)) throw new CertFieldsError(`extension ${e.type} appears more than once (RFC 5280 §4.2)`);
    seen.add(e.type);
  }
  const san = exts.find((e) => e.type === OID_SUBJECT_ALT_NAME);
  if ((san !== undefined) !== (native.subjectAltName !== undefined)) {
    throw new CertFieldsError(
      `OpenSSL ${native.subjectAltName === undefined ? 'finds no' : 'finds a'} subjectAltName extension, @peculiar/x509 ${san ? 'does' : 'does not'}`,
    );
  }
  const dnsNames = san instanceof x509.SubjectAlternativeNameExtension ? san.names.items.filter((n) => n.type === 'dns').map((n) => n.value) : [];
  const aki = exts.find((e): e is InstanceType<X509Lib['AuthorityKeyIdentifierExtension']> => e instanceof x509.AuthorityKeyIdentifierExtension);
  const kid = aki?.keyId ? Buffer.from(aki.keyId, 'hex') : undefined;
  return { dnsNames, ...(kid && kid.length > 0 ? { authorityKeyId: kid } : {}) };
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
