// The few fields of an X.509 certificate (RFC 5280 §4.1) that node's
// X509Certificate does not expose in a usable form, read straight from the DER
// with der.ts: the exact issuer/subject Name encodings (chaining compares
// bytes), validity as Dates, the serial number's contents octets, and the
// extensions (SAN dNSNames, Authority Key Identifier). Signature maths and the
// public key stay with node:crypto.
import { children, decodeOid, decodeString, decodeTime, DerError, expectTag, readDer, TAG, type Tlv } from './der.js';

export const OID_SUBJECT_ALT_NAME = '2.5.29.17';
export const OID_AUTHORITY_KEY_ID = '2.5.29.35';

export interface CertExtension {
  oid: string;
  critical: boolean;
  /** extnValue's contents: the DER of the extension's own value. */
  value: Buffer;
}

export interface CertFields {
  /** The serial number INTEGER's contents octets exactly as encoded (sign octet included): what ARI's CertID uses (RFC 9773 §4.1). */
  serialDer: Buffer;
  /** The whole issuer and subject Name TLVs (RFC 5280 §4.1.2.4, §4.1.2.6). */
  issuerDer: Buffer;
  subjectDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** In certificate order; empty for a v1/v2 certificate. */
  extensions: CertExtension[];
}

/**
 * Read the fields above from a certificate's DER. Throws DerError on
 * anything that is not a Certificate as RFC 5280 §4.1 lays it out.
 */
export function readCertFields(certDer: Uint8Array): CertFields {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
  const cert = expectTag(readDer(certDer), TAG.SEQUENCE, 'Certificate');
  const tbs = expectTag(children(cert)[0], TAG.SEQUENCE, 'tbsCertificate');
  const f = children(tbs);
  // TBSCertificate ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, serialNumber, signature,
  //   issuer, validity, subject, subjectPublicKeyInfo, issuerUniqueID [1], subjectUniqueID [2], extensions [3] EXPLICIT }
  let i = f[0]?.tag === 0xa0 ? 1 : 0;
  const serial = expectTag(f[i++], TAG.INTEGER, 'serialNumber');
  expectTag(f[i++], TAG.SEQUENCE, 'signature');
  const issuer = expectTag(f[i++], TAG.SEQUENCE, 'issuer');
  const validity = children(expectTag(f[i++], TAG.SEQUENCE, 'validity'));
  const subject = expectTag(f[i++], TAG.SEQUENCE, 'subject');
  expectTag(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  if (validity.length !== 2) throw new DerError('validity: expected notBefore and notAfter');
  const extensions: CertExtension[] = [];
  const extsWrapper = f.slice(i).find((t) => t.tag === 0xa3);
  if (extsWrapper) {
    const [exts] = children(extsWrapper);
    for (const ext of children(expectTag(exts, TAG.SEQUENCE, 'extensions'))) {
      // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
      const parts = children(expectTag(ext, TAG.SEQUENCE, 'extension'));
      if (parts.length !== 2 && parts.length !== 3) throw new DerError(`extension: expected 2 or 3 elements, found ${parts.length}`);
      const critical = parts.length === 3 && expectTag(parts[1], TAG.BOOLEAN, 'extension critical').value[0] !== 0;
      const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue').value;
      extensions.push({ oid: decodeOid(expectTag(parts[0], TAG.OID, 'extnID')), critical, value });
    }
  }
  return {
    serialDer: serial.value,
    issuerDer: issuer.der,
    subjectDer: subject.der,
    notBefore: decodeTime(validity[0]!),
    notAfter: decodeTime(validity[1]!),
    extensions,
  };
}

/** The first extension with `oid`, as the previous library's getExtension did. */
export function findExtension(fields: CertFields, oid: string): CertExtension | undefined {
  return fields.extensions.find((e) => e.oid === oid);
}

/**
 * Serial number as lower-case hex of its contents octets without the sign
 * octet DER adds when the high bit is set (X.690 §8.3.2), e.g. "0087654321" →
 * "87654321"; the same text as node's X509Certificate.serialNumber in lower case.
 */
export function serialHex(serialDer: Buffer): string {
  const s = serialDer.length > 1 && serialDer[0] === 0 && (serialDer[1]! & 0x80) !== 0 ? serialDer.subarray(1) : serialDer;
  return s.toString('hex');
}

/** dNSName entries (GeneralName [2] IA5String, RFC 5280 §4.2.1.6) of the subjectAltName extension, in order; [] without one. */
export function sanDnsNames(fields: CertFields): string[] {
  const ext = findExtension(fields, OID_SUBJECT_ALT_NAME);
  if (!ext) return [];
  // SubjectAltName ::= GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2] IMPLICIT IA5String → tag 0x82.
  const names = children(expectTag(readDer(ext.value), TAG.SEQUENCE, 'subjectAltName'));
  return names.filter((n) => n.tag === 0x82).map((n) => n.value.toString('latin1'));
}

/** keyIdentifier ([0] IMPLICIT OCTET STRING) of the authorityKeyIdentifier extension (RFC 5280 §4.2.1.1), if present and non-empty. */
export function authorityKeyId(fields: CertFields): Buffer | undefined {
  const ext = findExtension(fields, OID_AUTHORITY_KEY_ID);
  if (!ext) return undefined;
  const parts = children(expectTag(readDer(ext.value), TAG.SEQUENCE, 'authorityKeyIdentifier'));
  const kid = parts.find((p) => p.tag === 0x80)?.value;
  return kid && kid.length > 0 ? kid : undefined;
}

// Short names for attribute types, the same table the previous library used
// (RFC 4514 §3 plus E, G, I, SN, T), so log lines, status output and
// ValidationError messages read as before.
const ATTR_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
  '2.5.4.42': 'G',
  '2.5.4.43': 'I',
  '2.5.4.4': 'SN',
  '2.5.4.12': 'T',
};

// The DirectoryString choices (RFC 5280 §4.1.2.4) plus IA5String: shown as
// text. Any other value is shown as "#" and the hex of its encoding (RFC 4514 §2.4).
const TEXT_TAGS: ReadonlySet<number> = new Set([
  TAG.T61_STRING,
  TAG.PRINTABLE_STRING,
  TAG.UNIVERSAL_STRING,
  TAG.UTF8_STRING,
  TAG.BMP_STRING,
  TAG.IA5_STRING,
]);

/**
 * RFC 4514 §2.4 escaping, exactly as the previous library did it (including
 * its quirk of hex-escaping only the first CR/LF/TAB), so messages do not change.
 */
function escapeValue(s: string): string {
  return s
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (c) => `\\${Buffer.from(c, 'utf8').toString('hex').toUpperCase()}`);
}

/**
 * A Name (RFC 5280 §4.1.2.4) as text for people: "CN=Pebble Intermediate CA
 * 1b2c3d", or "C=DE, O=Example, CN=mx1" — RDNs in certificate order (not
 * RFC 4514's reversed order) joined by ", ", multi-valued RDNs joined by "+".
 * This is the format mxcert has always shown; it is for display only: chaining
 * compares the DER bytes.
 */
export function nameToString(nameDer: Uint8Array): string {
  const rdns = children(expectTag(readDer(nameDer), TAG.SEQUENCE, 'Name'));
  return rdns
    .map((rdn) =>
      children(expectTag(rdn, TAG.SET, 'RelativeDistinguishedName'))
        .map((atv) => {
          // AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }
          const [type, value] = children(expectTag(atv, TAG.SEQUENCE, 'AttributeTypeAndValue'));
          const oid = decodeOid(expectTag(type, TAG.OID, 'attribute type'));
          if (!value) throw new DerError(`attribute ${oid} has no value`);
          return `${ATTR_NAMES[oid] ?? oid}=${attrValueText(value)}`;
        })
        .join('+'),
    )
    .join(', ');
}

function attrValueText(value: Tlv): string {
  const text = TEXT_TAGS.has(value.tag) ? decodeString(value) : undefined;
  return text === undefined ? `#${value.der.toString('hex')}` : escapeValue(text);
}
