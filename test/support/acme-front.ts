// An HTTPS reverse proxy in front of a real Pebble, adding what the Debian
// Pebble 2.4 lacks (see /work/shared/TEST-ENV-NOTES.md) and the CA misbehaviour
// mxcert must survive, without faking the ACME protocol itself: accounts,
// nonces, JWS checks, challenges and issuance all stay Pebble's.
//
// Host forwarding: Pebble builds every URL it returns (directory, Location,
// Link, order/authz/challenge/certificate URLs) from the request's Host header,
// and checks a JWS's protected `url` against https://<Host><path> of the
// request it received. So the proxy passes the client's Host (the front's
// 127.0.0.1:port) through unchanged and Pebble speaks with the front's origin
// everywhere; no URL in any body or header needs rewriting. Verified against
// Pebble 2.4.0 (the acme-front integration test checks every directory URL
// and a full issuance through the front).
//
// Only responses the front changes are buffered (the directory, certificate
// downloads); everything else streams through with method, headers and status
// preserved.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { randomBytes, webcrypto } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { makeLoopbackPki } from '../env/pki.js';
import { httpsGet, type PebbleEnv } from '../env/pebble.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type TamperMode = 'other-key' | 'missing-name' | 'out-of-order' | 'expired' | 'garbage';

/** An RFC 8555 §6.7 problem document the front answers with instead of Pebble. */
export interface ProblemDoc {
  /** Full URN, e.g. `urn:ietf:params:acme:error:rateLimited`. */
  type: string;
  detail: string;
  status: number;
}

export interface RenewalWindow {
  start: Date;
  end: Date;
  explanationURL?: string;
}

/** A POST with a payload to an authorization URL (RFC 8555 §7.5.2 deactivation) and Pebble's answer. */
export interface RecordedAuthzUpdate {
  url: string;
  payload: unknown;
  /** Pebble's HTTP status and the authorization object it returned. */
  status: number;
  response: { status?: string; identifier?: { value: string } } | undefined;
}

/** The decoded payload of a newOrder request (RFC 8555 §7.4, RFC 9773 §5, draft-ietf-acme-profiles). */
export interface RecordedOrder {
  identifiers: Array<{ type: string; value: string }>;
  replaces?: string;
  profile?: string;
}

export interface AcmeFrontOptions {
  pebble: PebbleEnv;
  /** Where the front's own HTTPS key and CA go (default: a new temp dir, removed by stop()). */
  dir?: string;
}

export interface AcmeFront {
  /** The front's directory URL: point `acme.directory` here. */
  directoryUrl: string;
  /** CA of the front's own HTTPS certificate: point `acme.caBundle` here. */
  caBundlePath: string;
  /** https://127.0.0.1:PORT */
  origin: string;
  /** CertIDs asked for at the renewalInfo endpoint, in order. */
  readonly ariRequests: string[];
  /** Every newOrder payload seen (also those the front rejected), in order. */
  readonly orders: RecordedOrder[];
  /** Certificate downloads (POST-as-GET to Pebble's certificate URLs), tampered or not. */
  readonly certDownloads: number;
  /** Updates (non-empty payloads) POSTed to authorization URLs, with Pebble's answers, in order. */
  readonly authzUpdates: RecordedAuthzUpdate[];
  /**
   * A CA that requires a contact address (Pebble accepts accounts without
   * one): answers every newAccount whose payload has no `contact` (and is
   * not onlyReturnExisting) with `problem`; undefined stops it.
   */
  requireContact(problem: ProblemDoc | undefined): void;
  /**
   * ARI (RFC 9773) — Pebble 2.4 has none. Sets the suggested window for one
   * CertID (see `ariCertId`) or for every certificate (`'*'`, used when no
   * exact entry matches) and turns ARI on: the directory gets `renewalInfo`.
   * `retryAfterSeconds` (default 3600) goes into the Retry-After header.
   */
  setRenewalWindow(certId: string, win: RenewalWindow, retryAfterSeconds?: number): void;
  /** Turns ARI on without any window (every CertID then gets 404). */
  enableAri(): void;
  /** Removes `renewalInfo` from the directory; the endpoint then forwards to Pebble (which 404s). Windows are kept. */
  disableAri(): void;
  /** Turns ARI on and makes the renewalInfo endpoint answer this HTTP status (problem+json); undefined stops failing. */
  failAri(status: number | undefined): void;
  /** Profiles (draft-ietf-acme-profiles) — Pebble 2.4 has none: sets or clears `meta.profiles` in the directory. */
  setProfiles(map: Record<string, string> | undefined): void;
  /**
   * Answers the next `n` newOrder requests with `problem` (and Retry-After if
   * given) instead of forwarding them — Pebble never rate-limits and sends no
   * Retry-After. The response carries a fresh Replay-Nonce from Pebble so the
   * client's next request is valid.
   */
  rejectNextOrders(n: number, problem: ProblemDoc, retryAfterSeconds?: number): void;
  /**
   * Answers every newOrder whose payload has `replaces` with `problem` (e.g.
   * `alreadyReplaced`, RFC 9773 §7.4) — Pebble ignores `replaces`. Undefined
   * stops it. `rejectNextOrders` takes precedence while it has rejections left.
   */
  rejectOrdersWithReplaces(problem: ProblemDoc | undefined): void;
  /** Rewrites every certificate download this way from now on; undefined serves Pebble's chain unchanged. */
  tamper(mode: TamperMode | undefined): void;
  /**
   * Serves `url` instead of Pebble's URL for one directory field (e.g.
   * `newAccount` → an http:// URL, which RFC 8555 §6.1 forbids); undefined
   * restores Pebble's. Only the directory changes: requests to the real
   * endpoint still reach Pebble.
   */
  rewriteDirectoryUrl(field: string, url: string | undefined): void;
  stop(): Promise<void>;
}

/**
 * Pebble 2.4 serves issued chains under this path (wfe.go `certPath`;
 * e.g. https://HOST/certZ/5f3b...). Alternate chains are /certZ/SERIAL/N.
 */
const PEBBLE_CERT_PATH = '/certZ/';
/** Pebble 2.4's authorization URLs (wfe.go `authzPath`). */
const PEBBLE_AUTHZ_PATH = '/authZ/';
const ARI_PATH = '/renewal-info';
const ACME_ERROR = 'urn:ietf:params:acme:error:';

/** RFC 9110 §7.6.1: connection-specific headers are not forwarded by a proxy. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Flat [name, value, name, value, …] list as in `rawHeaders`, minus hop-by-hop (and `drop`) headers. */
function forwardableHeaders(raw: string[], drop: readonly string[] = []): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || drop.includes(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function rawToObject(raw: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!;
    const prev = out[k];
    out[k] = prev === undefined ? raw[i + 1]! : Array.isArray(prev) ? [...prev, raw[i + 1]!] : [prev, raw[i + 1]!];
  }
  return out;
}

function readBody(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** The payload of a flattened JWS (RFC 7515 §7.2.2); undefined for POST-as-GET or anything unreadable. */
function decodePayload(body: Buffer): unknown {
  try {
    const jws = JSON.parse(body.toString('utf8')) as { payload?: unknown };
    if (typeof jws.payload !== 'string' || jws.payload === '') return undefined;
    return JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** A newOrder payload from a flattened JWS (RFC 7515 §7.2.2); the signature is Pebble's business. */
function decodeOrderPayload(body: Buffer): RecordedOrder | undefined {
  try {
    const jws = JSON.parse(body.toString('utf8')) as { payload?: unknown };
    if (typeof jws.payload !== 'string') return undefined;
    const p = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const order: RecordedOrder = { identifiers: Array.isArray(p.identifiers) ? (p.identifiers as RecordedOrder['identifiers']) : [] };
    if (typeof p.replaces === 'string') order.replaces = p.replaces;
    if (typeof p.profile === 'string') order.profile = p.profile;
    return order;
  } catch {
    return undefined;
  }
}

/**
 * RFC 9773 §4.1 CertID of a leaf: base64url(AKI keyIdentifier) "."
 * base64url(DER serial content bytes). Computed independently of mxcert's
 * own implementation so tests can set a window for one exact certificate.
 */
export function ariCertId(leafPem: string): string {
  const cert = new x509.X509Certificate(leafPem);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new Error('leaf has no Authority Key Identifier');
  // Re-encode the serial as a DER INTEGER's content: a leading 0x00 keeps it positive.
  let serial = Buffer.from(cert.serialNumber, 'hex');
  if ((serial[0] ?? 0) & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}

// ---------------------------------------------------------------------------
// Tampered chains. Each mode breaks exactly one property of the
// pre-deploy chain check (src/validate/chain-check.ts) and keeps the others intact where that is possible, so a
// test can tell which check caught it.

const SIGN_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR = 3_600_000;

function certBlocks(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => m[0] + '\n');
}

function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

interface Throwaway {
  keys: CryptoKeyPair;
  cert: x509.X509Certificate;
  /** Signature algorithm for this CA's key (default ECDSA P-256 / SHA-256). */
  alg?: Algorithm | EcdsaParams | RsaHashedImportParams;
}

/** The real issuer's certificate and private key (Pebble's management API serves both). */
export interface RealIssuer {
  certPem: string;
  keyPem: string;
}

/** Pebble's own intermediate as a signing CA, so a re-signed leaf still chains to Pebble's root. */
async function realIssuerCa(issuer: RealIssuer): Promise<Throwaway> {
  const { createPrivateKey } = await import('node:crypto');
  const key = createPrivateKey(issuer.keyPem);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const alg =
    key.asymmetricKeyType === 'rsa'
      ? ({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as RsaHashedImportParams)
      : ({ name: 'ECDSA', namedCurve: key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256', hash: 'SHA-256' } as EcdsaParams & EcKeyImportParams);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']);
  const cert = new x509.X509Certificate(issuer.certPem);
  return { keys: { privateKey, publicKey: await cert.publicKey.export() } as CryptoKeyPair, cert, alg };
}

/** A CA nobody trusts, standing in for "some other issuer"; self-signed, valid now. */
async function makeThrowawayCa(name: string): Promise<Throwaway> {
  const keys = (await webcrypto.subtle.generateKey(SIGN_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 24 * HOUR),
    notAfter: new Date(now + 30 * 24 * HOUR),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { keys, cert };
}

/** A leaf for `publicKey` with DNS SANs `names`, signed by `ca`. */
async function makeLeaf(opts: {
  ca: Throwaway;
  subject: x509.Name;
  publicKey: x509.PublicKey | CryptoKey;
  names: string[];
  notBefore: Date;
  notAfter: Date;
}): Promise<string> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: opts.subject,
    issuer: opts.ca.cert.subjectName,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingAlgorithm: opts.ca.alg ?? SIGN_ALG,
    publicKey: opts.publicKey,
    signingKey: opts.ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(opts.names.map((value) => ({ type: 'dns' as const, value }))),
      // An AKI, as public CAs include, so ARI CertIDs can be formed from these leaves too.
      await x509.AuthorityKeyIdentifierExtension.create(opts.ca.keys.publicKey),
    ],
  });
  return cert.toString('pem') + '\n';
}

/** Pebble's chain, rewritten per `mode`. */
export async function tamperChain(chainPem: string, mode: TamperMode, realIssuer?: RealIssuer): Promise<string> {
  if (mode === 'garbage') return 'this is not a PEM certificate chain, just text from a broken CA\n';
  const blocks = certBlocks(chainPem);
  const [leafPem, ...issuers] = blocks;
  if (!leafPem) throw new Error('Pebble returned no certificate to tamper with');
  const real = new x509.X509Certificate(leafPem);
  const names = real.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.filter((n) => n.type === 'dns').map((n) => n.value) ?? [];
  const now = Date.now();
  switch (mode) {
    case 'out-of-order': {
      // Intermediate first, then the leaf: every certificate is genuine.
      const [first, ...rest] = issuers;
      if (!first) throw new Error('Pebble returned a chain without an intermediate');
      return [first, leafPem, ...rest].join('');
    }
    case 'other-key': {
      // Same names, another key: a CA that mixed up two customers' CSRs.
      const ca = await makeThrowawayCa('mxcert acme-front other-key CA');
      const otherKeys = (await webcrypto.subtle.generateKey(SIGN_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
      const leaf = await makeLeaf({ ca, subject: real.subjectName, publicKey: otherKeys.publicKey, names, notBefore: real.notBefore, notAfter: real.notAfter });
      return leaf + ca.cert.toString('pem') + '\n';
    }
    case 'missing-name': {
      // Our key (the real leaf's SPKI), but one configured name is missing. A
      // SAN extension may not be empty (RFC 5280 §4.2.1.6), so a one-name
      // certificate gets a name nobody asked for instead.
      const ca = await makeThrowawayCa('mxcert acme-front missing-name CA');
      const fewer = names.slice(0, -1);
      const leaf = await makeLeaf({
        ca,
        subject: real.subjectName,
        publicKey: real.publicKey,
        names: fewer.length > 0 ? fewer : ['not-requested.invalid'],
        notBefore: real.notBefore,
        notAfter: real.notAfter,
      });
      return leaf + ca.cert.toString('pem') + '\n';
    }
    case 'expired': {
      // Our key, all names, signed by Pebble's real intermediate (its key
      // comes from the management API), so the chain leads to the trusted
      // root and only the dates are wrong: the leaf expired an hour ago.
      if (!realIssuer) throw new Error('expired tampering needs the real issuer (Pebble /intermediate-keys/0)');
      const ca = await realIssuerCa(realIssuer);
      const leaf = await makeLeaf({
        ca,
        subject: real.subjectName,
        publicKey: real.publicKey,
        names,
        notBefore: new Date(now - 2 * HOUR),
        notAfter: new Date(now - HOUR),
      });
      return leaf + issuers.join('');
    }
  }
}

// ---------------------------------------------------------------------------

export async function startAcmeFront(opts: AcmeFrontOptions): Promise<AcmeFront> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'mxcert-acme-front-')));
  const pki = await makeLoopbackPki(dir, 'mxcert acme-front HTTPS CA');
  const [key, cert, pebbleCa] = await Promise.all([
    readFile(pki.keyPath),
    readFile(pki.certPath),
    readFile(opts.pebble.caBundlePath, 'utf8'),
  ]);
  const upstream = new URL(opts.pebble.directoryUrl);
  const agent = new https.Agent({ ca: pebbleCa, keepAlive: true });

  // State the test controls.
  let ariOn = false;
  let ariFailStatus: number | undefined;
  const windows = new Map<string, { win: RenewalWindow; retryAfter: number }>();
  let profiles: Record<string, string> | undefined;
  let rejectCount = 0;
  let rejectProblem: ProblemDoc | undefined;
  let rejectRetryAfter: number | undefined;
  let replacesProblem: ProblemDoc | undefined;
  let tamperMode: TamperMode | undefined;
  const directoryRewrites = new Map<string, string>();
  const ariRequests: string[] = [];
  const orders: RecordedOrder[] = [];
  let certDownloads = 0;
  const authzUpdates: RecordedAuthzUpdate[] = [];
  let contactProblem: ProblemDoc | undefined;

  // Filled in once listening: the front's origin and Pebble's endpoint paths.
  let origin = '';
  let newOrderPath = '';
  let newNoncePath = '';
  let newAccountPath = '';
  const dirPath = upstream.pathname;

  /**
   * One request to Pebble with the given headers (the client's Host
   * included). `body` is streamed from the client's request, sent as given,
   * or absent.
   */
  function toPebble(method: string, reqPath: string, headers: string[], body?: IncomingMessage | Buffer): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = https.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method,
          path: reqPath,
          agent,
          // Repeated names become arrays, which node sends as separate header lines.
          headers: rawToObject(headers),
        },
        resolve,
      );
      req.on('error', reject);
      if (body === undefined || Buffer.isBuffer(body)) req.end(body);
      else body.pipe(req);
    });
  }

  function sendProblem(res: ServerResponse, problem: ProblemDoc, extra: Record<string, string> = {}): void {
    const body = JSON.stringify(problem);
    res.writeHead(problem.status, {
      'content-type': 'application/problem+json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'public, max-age=0, no-cache',
      link: `<${origin}${dirPath}>;rel="index"`,
      ...extra,
    });
    res.end(body);
  }

  /** A fresh nonce from Pebble's newNonce, so a client that got a front-made error can carry on. */
  async function freshNonce(host: string): Promise<string> {
    const r = await toPebble('HEAD', newNoncePath, ['Host', host]);
    r.resume();
    const nonce = r.headers['replay-nonce'];
    if (typeof nonce !== 'string') throw new Error(`Pebble's newNonce gave no Replay-Nonce (HTTP ${r.statusCode})`);
    return nonce;
  }

  async function handleDirectory(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // GET or HEAD: no request body to forward.
    req.resume();
    const up = await toPebble(req.method ?? 'GET', req.url ?? dirPath, forwardableHeaders(req.rawHeaders));
    if (up.statusCode !== 200 || req.method !== 'GET') {
      res.writeHead(up.statusCode ?? 502, forwardableHeaders(up.rawHeaders));
      up.pipe(res);
      return;
    }
    const d = JSON.parse((await readBody(up)).toString('utf8')) as { meta?: Record<string, unknown> } & Record<string, unknown>;
    if (ariOn) d.renewalInfo = `${origin}${ARI_PATH}`;
    if (profiles) d.meta = { ...(d.meta ?? {}), profiles };
    for (const [field, url] of directoryRewrites) d[field] = url;
    const body = Buffer.from(JSON.stringify(d, null, 3));
    res.writeHead(200, [...forwardableHeaders(up.rawHeaders, ['content-length']), 'content-length', String(body.length)]);
    res.end(body);
  }

  function handleAri(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    const certId = decodeURIComponent((req.url ?? '').slice(ARI_PATH.length + 1).split('?')[0] ?? '');
    ariRequests.push(certId);
    if (req.method !== 'GET') {
      sendProblem(res, { type: `${ACME_ERROR}malformed`, detail: 'renewalInfo is fetched with GET (RFC 9773 §4.2)', status: 405 }, { allow: 'GET' });
      return;
    }
    if (ariFailStatus !== undefined) {
      sendProblem(res, { type: `${ACME_ERROR}serverInternal`, detail: 'renewalInfo failing on purpose (acme-front failAri)', status: ariFailStatus });
      return;
    }
    const entry = windows.get(certId) ?? windows.get('*');
    if (!entry) {
      sendProblem(res, { type: `${ACME_ERROR}malformed`, detail: `no renewal information for CertID ${certId}`, status: 404 });
      return;
    }
    const body = JSON.stringify({
      suggestedWindow: { start: entry.win.start.toISOString(), end: entry.win.end.toISOString() },
      ...(entry.win.explanationURL ? { explanationURL: entry.win.explanationURL } : {}),
    });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'retry-after': String(entry.retryAfter),
    });
    res.end(body);
  }

  async function handleNewOrder(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const order = decodeOrderPayload(body);
    if (order) orders.push(order);
    let problem: ProblemDoc | undefined;
    let retryAfter: number | undefined;
    if (rejectCount > 0 && rejectProblem) {
      rejectCount--;
      problem = rejectProblem;
      retryAfter = rejectRetryAfter;
    } else if (replacesProblem && order?.replaces !== undefined) {
      problem = replacesProblem;
    }
    if (problem) {
      const extra: Record<string, string> = { 'replay-nonce': await freshNonce(req.headers.host ?? upstream.host) };
      if (retryAfter !== undefined) extra['retry-after'] = String(retryAfter);
      sendProblem(res, problem, extra);
      return;
    }
    // The body was consumed to read it; forward the same bytes.
    const upRes = await toPebble('POST', req.url ?? newOrderPath, forwardableHeaders(req.rawHeaders), body);
    res.writeHead(upRes.statusCode ?? 502, forwardableHeaders(upRes.rawHeaders));
    upRes.pipe(res);
  }

  async function handleCertDownload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    certDownloads++;
    const upRes = await toPebble(req.method ?? 'POST', req.url ?? '/', forwardableHeaders(req.rawHeaders), req);
    const mode = tamperMode;
    if (!mode || upRes.statusCode !== 200) {
      res.writeHead(upRes.statusCode ?? 502, forwardableHeaders(upRes.rawHeaders));
      upRes.pipe(res);
      return;
    }
    const issuer =
      mode === 'expired'
        ? {
            certPem: await opts.pebble.issuerIntermediatePem(),
            keyPem: (await httpsGet(`${opts.pebble.managementUrl}/intermediate-keys/0`, pebbleCa)).body,
          }
        : undefined;
    const body = Buffer.from(await tamperChain((await readBody(upRes)).toString('utf8'), mode, issuer));
    // Headers (Replay-Nonce, Link rel=up/alternate, content-type) stay Pebble's.
    res.writeHead(200, [...forwardableHeaders(upRes.rawHeaders, ['content-length']), 'content-length', String(body.length)]);
    res.end(body);
  }

  /** newAccount: refused without a contact while `requireContact` is set; otherwise Pebble's. */
  async function handleNewAccount(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const payload = decodePayload(body) as { contact?: unknown; onlyReturnExisting?: unknown } | undefined;
    if (contactProblem && payload && payload.contact === undefined && payload.onlyReturnExisting !== true) {
      sendProblem(res, contactProblem, { 'replay-nonce': await freshNonce(req.headers.host ?? upstream.host) });
      return;
    }
    const upRes = await toPebble('POST', req.url ?? newAccountPath, forwardableHeaders(req.rawHeaders), body);
    res.writeHead(upRes.statusCode ?? 502, forwardableHeaders(upRes.rawHeaders));
    upRes.pipe(res);
  }

  /** Authorization URLs: updates (deactivation, RFC 8555 §7.5.2) are recorded with Pebble's answer. */
  async function handleAuthz(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const payload = decodePayload(body);
    const upRes = await toPebble('POST', req.url ?? '/', forwardableHeaders(req.rawHeaders), body);
    if (payload === undefined) {
      res.writeHead(upRes.statusCode ?? 502, forwardableHeaders(upRes.rawHeaders));
      upRes.pipe(res);
      return;
    }
    const answer = await readBody(upRes);
    let response: RecordedAuthzUpdate['response'];
    try {
      response = JSON.parse(answer.toString('utf8')) as RecordedAuthzUpdate['response'];
    } catch {
      response = undefined;
    }
    authzUpdates.push({ url: `${origin}${req.url ?? ''}`, payload, status: upRes.statusCode ?? 0, response });
    res.writeHead(upRes.statusCode ?? 502, [...forwardableHeaders(upRes.rawHeaders, ['content-length']), 'content-length', String(answer.length)]);
    res.end(answer);
  }

  /** Anything else: a plain streaming proxy. */
  async function passThrough(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const upRes = await toPebble(req.method ?? 'GET', req.url ?? '/', forwardableHeaders(req.rawHeaders), req);
    res.writeHead(upRes.statusCode ?? 502, forwardableHeaders(upRes.rawHeaders));
    upRes.pipe(res);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = (req.url ?? '/').split('?')[0] ?? '/';
    if (p === dirPath && (req.method === 'GET' || req.method === 'HEAD')) return handleDirectory(req, res);
    if (ariOn && (p === ARI_PATH || p.startsWith(`${ARI_PATH}/`))) return handleAri(req, res);
    if (p === newOrderPath && req.method === 'POST') return handleNewOrder(req, res);
    if (p === newAccountPath && req.method === 'POST') return handleNewAccount(req, res);
    if (p.startsWith(PEBBLE_AUTHZ_PATH) && req.method === 'POST') return handleAuthz(req, res);
    if (p.startsWith(PEBBLE_CERT_PATH) && req.method === 'POST') return handleCertDownload(req, res);
    return passThrough(req, res);
  }

  const server = https.createServer({ key, cert }, (req, res) => {
    route(req, res).catch((err: unknown) => {
      // Surface proxy bugs to the client as a CA error rather than a hang.
      const detail = `acme-front: ${err instanceof Error ? err.message : String(err)}`;
      if (!res.headersSent) sendProblem(res, { type: `${ACME_ERROR}serverInternal`, detail, status: 502 });
      else res.destroy(err instanceof Error ? err : new Error(detail));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Port 0: the kernel picks a free port, no race with other tests.
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `https://127.0.0.1:${port}`;

  const stopServer = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    agent.destroy();
    if (ownDir && !process.env.KEEP_TEST_ENV) await rm(dir, { recursive: true, force: true });
  };

  try {
    // Learn Pebble's endpoint paths from its own directory (asked with the
    // front's Host, as every forwarded request is).
    const r = await toPebble('GET', dirPath, ['Host', `127.0.0.1:${port}`]);
    const d = JSON.parse((await readBody(r)).toString('utf8')) as { newOrder?: string; newNonce?: string; newAccount?: string };
    if (!d.newOrder || !d.newNonce || !d.newAccount) throw new Error(`Pebble's directory lacks newOrder/newNonce/newAccount: ${JSON.stringify(d)}`);
    const no = new URL(d.newOrder);
    if (no.origin !== origin) {
      // Would mean Pebble ignores Host; then URLs in bodies and headers would need rewriting.
      throw new Error(`Pebble built ${d.newOrder} for a request with Host 127.0.0.1:${port}; expected origin ${origin}`);
    }
    newOrderPath = no.pathname;
    newNoncePath = new URL(d.newNonce).pathname;
    newAccountPath = new URL(d.newAccount).pathname;
  } catch (err) {
    await stopServer();
    throw err;
  }

  return {
    directoryUrl: `${origin}${dirPath}`,
    caBundlePath: pki.caCertPath,
    origin,
    ariRequests,
    orders,
    get certDownloads() {
      return certDownloads;
    },
    authzUpdates,
    requireContact(problem) {
      contactProblem = problem;
    },
    setRenewalWindow(certId, win, retryAfterSeconds = 3600) {
      windows.set(certId, { win, retryAfter: retryAfterSeconds });
      ariOn = true;
    },
    enableAri() {
      ariOn = true;
    },
    disableAri() {
      ariOn = false;
    },
    failAri(status) {
      ariFailStatus = status;
      if (status !== undefined) ariOn = true;
    },
    setProfiles(map) {
      profiles = map;
    },
    rejectNextOrders(n, problem, retryAfterSeconds) {
      rejectCount = n;
      rejectProblem = problem;
      rejectRetryAfter = retryAfterSeconds;
    },
    rejectOrdersWithReplaces(problem) {
      replacesProblem = problem;
    },
    tamper(mode) {
      tamperMode = mode;
    },
    rewriteDirectoryUrl(field, url) {
      if (url === undefined) directoryRewrites.delete(field);
      else directoryRewrites.set(field, url);
    },
    stop: stopServer,
  };
}
