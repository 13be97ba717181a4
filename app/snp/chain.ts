/**
 * X.509 certificates of the SNP chain (docs/protocol.md §12): ARK (self-signed) -> ASK -> VCEK, or
 * ARK -> ASVK -> VLEK. ARK/ASK/ASVK are RSA-4096 and sign with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48;
 * VCEK/VLEK hold P-384 keys and carry AMD's extensions (TCB SPLs, hwid, product name, CSP id).
 * Parsed with the strict DER reader in chain-der.ts; signatures checked with node:crypto.
 */
import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  TAG,
  children,
  decodeBitString,
  decodeOid,
  decodeSmallUint,
  decodeString,
  decodeTime,
  expectTag,
  integerBytes,
  readDer,
  sequence,
  type DerNode,
} from './chain-der';
import { SnpError } from './errors';
import type { SnpProduct } from './roots';
import type { TcbParts } from './tcb';

export const OID = {
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha384: '2.16.840.1.101.3.4.2.2',
  commonName: '2.5.4.3',
  /** AMD's VCEK/VLEK extensions (AMD KDS spec 57230; go-sev-guest kds.go). */
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  /** Turin only. */
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwid: '1.3.6.1.4.1.3704.1.4',
  /** VLEK only: the cloud provider the key was issued to. */
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const;

/** RSASSA-PSS salt length AMD uses with SHA-384. */
export const PSS_SALT_LENGTH = 48;

export interface SnpCert {
  readonly der: Uint8Array;
  /** SHA-256 of the DER, hex: the certificate's identity in caches. */
  readonly id: string;
  readonly tbs: Uint8Array;
  /** The serial number's INTEGER content octets as lower-case hex (CRL matching). */
  readonly serialHex: string;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly subjectCn: string | undefined;
  readonly issuerCn: string | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  /** The outer signature algorithm is RSASSA-PSS / SHA-384 / MGF1-SHA-384 / salt 48. */
  readonly signedWithPss384: boolean;
  readonly signature: Uint8Array;
  /** extnID -> extnValue content (the inner DER). */
  readonly extensions: ReadonlyMap<string, Uint8Array>;
}

function badCert(what: string, msg: string): never {
  throw new SnpError('bad-certificate', `${what}: ${msg}`);
}

/** DER bytes of a certificate given as DER or PEM. */
export function certDer(bytes: Uint8Array, what: string): Uint8Array {
  if (bytes.length > 0 && bytes[0] === TAG.SEQUENCE) return bytes;
  const text = Buffer.from(bytes).toString('latin1');
  const blocks = pemCertificates(text);
  if (blocks.length !== 1)
    badCert(what, `expected one DER or PEM certificate, found ${blocks.length} PEM blocks`);
  return blocks[0]!;
}

/** Every `CERTIFICATE` PEM block of a text, in order, as DER. */
export function pemCertificates(text: string): Uint8Array[] {
  const re = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*)-----END CERTIFICATE-----/g;
  return [...text.matchAll(re)].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
}

function commonName(name: DerNode, what: string): string | undefined {
  for (const rdn of sequence(name, what)) {
    for (const atv of children(expectTag(rdn, TAG.SET, what), what)) {
      const [type, value] = sequence(atv, what);
      if (decodeOid(type, what) === OID.commonName) return decodeString(value, what);
    }
  }
  return undefined;
}

function isSha384AlgId(node: DerNode | undefined, what: string): boolean {
  const parts = sequence(node, what);
  if (decodeOid(parts[0], what) !== OID.sha384) return false;
  return (
    parts.length === 1 || (parts.length === 2 && parts[1]!.tag === TAG.NULL && parts[1]!.content.length === 0)
  );
}

/** True when an AlgorithmIdentifier is RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48, trailer 1. */
export function isPss384(alg: DerNode, what: string): boolean {
  const parts = sequence(alg, what);
  if (decodeOid(parts[0], what) !== OID.rsassaPss || parts.length !== 2) return false;
  let hash = false;
  let mgf = false;
  let salt = false;
  for (const p of sequence(parts[1], what)) {
    const inner = children(p, what);
    if (inner.length !== 1) return false;
    const v = inner[0];
    if (p.tag === 0xa0) hash = isSha384AlgId(v, what);
    else if (p.tag === 0xa1) {
      const m = sequence(v, what);
      mgf = m.length === 2 && decodeOid(m[0], what) === OID.mgf1 && isSha384AlgId(m[1], what);
    } else if (p.tag === 0xa2) salt = decodeSmallUint(v, what) === PSS_SALT_LENGTH;
    else if (p.tag === 0xa3) {
      if (decodeSmallUint(v, what) !== 1) return false;
    } else return false;
  }
  return hash && mgf && salt;
}

const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Parses an X.509 certificate (DER or PEM) as the SNP chain uses it. */
export function parseSnpCert(bytes: Uint8Array, what: string): SnpCert {
  const der = Uint8Array.from(certDer(bytes, what));
  const [tbsNode, sigAlg, sigValue, ...extra] = sequence(readDer(der, what), what);
  if (!tbsNode || !sigAlg || !sigValue || extra.length) badCert(what, 'a certificate has exactly 3 parts');
  const tbs = sequence(tbsNode, `${what} (tbsCertificate)`);
  let i = 0;
  if (tbs[0]?.tag === 0xa0) {
    const [v] = children(tbs[0], what);
    if (decodeSmallUint(v, what) !== 2) badCert(what, 'not an X.509 v3 certificate');
    i = 1;
  } else badCert(what, 'not an X.509 v3 certificate');
  const serial = integerBytes(tbs[i++], `${what} (serial)`);
  const innerAlg = tbs[i++];
  if (!innerAlg || Buffer.compare(innerAlg.bytes, sigAlg.bytes) !== 0) {
    badCert(what, 'the inner and outer signature algorithms differ');
  }
  const issuer = expectTag(tbs[i++], TAG.SEQUENCE, `${what} (issuer)`);
  const validity = sequence(tbs[i++], `${what} (validity)`);
  if (validity.length !== 2) badCert(what, 'validity has two times');
  const notBefore = decodeTime(validity[0], `${what} (notBefore)`);
  const notAfter = decodeTime(validity[1], `${what} (notAfter)`);
  const subject = expectTag(tbs[i++], TAG.SEQUENCE, `${what} (subject)`);
  const spki = expectTag(tbs[i++], TAG.SEQUENCE, `${what} (subjectPublicKeyInfo)`);
  const extensions = new Map<string, Uint8Array>();
  for (; i < tbs.length; i++) {
    const n = tbs[i]!;
    if (n.tag === 0x81 || n.tag === 0x82) continue; // issuer/subject unique ids: unused by AMD
    if (n.tag !== 0xa3 || i !== tbs.length - 1) badCert(what, `unexpected field 0x${n.tag.toString(16)}`);
    const [list, more] = children(n, what);
    if (more) badCert(what, 'extensions wrapper holds more than one value');
    for (const ext of sequence(list, `${what} (extensions)`)) {
      const parts = sequence(ext, `${what} (extension)`);
      const id = decodeOid(parts[0], `${what} (extension id)`);
      const valueNode = parts[parts.length - 1];
      if (parts.length === 3) expectTag(parts[1], TAG.BOOLEAN, `${what} (extension ${id} critical)`);
      else if (parts.length !== 2) badCert(what, `extension ${id} has ${parts.length} parts`);
      const value = expectTag(valueNode, TAG.OCTET_STRING, `${what} (extension ${id} value)`).content;
      if (extensions.has(id)) badCert(what, `extension ${id} appears twice`);
      extensions.set(id, value);
    }
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki.bytes), format: 'der', type: 'spki' });
  } catch (e) {
    badCert(what, `unreadable public key (${(e as Error).message})`);
  }
  return {
    der,
    id: sha256hex(der),
    tbs: tbsNode.bytes,
    serialHex: Buffer.from(serial).toString('hex'),
    issuerDer: issuer.bytes,
    subjectDer: subject.bytes,
    subjectCn: commonName(subject, `${what} (subject)`),
    issuerCn: commonName(issuer, `${what} (issuer)`),
    notBefore,
    notAfter,
    publicKey,
    signedWithPss384: isPss384(sigAlg, `${what} (signatureAlgorithm)`),
    signature: decodeBitString(sigValue, `${what} (signature)`),
    extensions,
  };
}

/**
 * Checks that `cert` is signed by `issuer`'s RSA key with RSASSA-PSS/SHA-384 (salt 48) and names it as
 * issuer. Throws SnpError('chain-not-trusted') naming the link.
 */
export function verifySignedBy(cert: SnpCert, issuer: SnpCert, link: string): void {
  if (!cert.signedWithPss384) {
    throw new SnpError('chain-not-trusted', `${link}: not signed with RSASSA-PSS/SHA-384 (salt 48)`);
  }
  const t = issuer.publicKey.asymmetricKeyType;
  if (t !== 'rsa' && t !== 'rsa-pss') {
    throw new SnpError('chain-not-trusted', `${link}: the issuer's key is ${t}, not RSA`);
  }
  if (Buffer.compare(cert.issuerDer, issuer.subjectDer) !== 0) {
    throw new SnpError(
      'chain-not-trusted',
      `${link}: issued by '${cert.issuerCn ?? '?'}', not by '${issuer.subjectCn ?? '?'}'`,
    );
  }
  const ok = verify(
    'sha384',
    cert.tbs,
    { key: issuer.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH },
    cert.signature,
  );
  if (!ok) throw new SnpError('chain-not-trusted', `${link}: the signature does not verify`);
}

/** Refuses a certificate outside [notBefore, notAfter] at `now`. */
export function checkValidity(cert: SnpCert, now: Date, what: string): void {
  if (now.getTime() < cert.notBefore.getTime()) {
    throw new SnpError(
      'cert-not-yet-valid',
      `${what} is not valid before ${cert.notBefore.toISOString()} (checked at ${now.toISOString()})`,
    );
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw new SnpError(
      'cert-expired',
      `${what} expired at ${cert.notAfter.toISOString()} (checked at ${now.toISOString()})`,
    );
  }
}

export interface KeyExtensions {
  tcb: TcbParts;
  /** VCEK: 64 bytes (Milan, Genoa) or 8 bytes (Turin). Absent on VLEKs. */
  hwid: Uint8Array | undefined;
  productName: string | undefined;
  cspId: string | undefined;
}

function splExtension(cert: SnpCert, oid: string, name: string, what: string): number {
  const v = cert.extensions.get(oid);
  if (!v) badCert(what, `missing the ${name} SPL extension ${oid}`);
  const n = decodeSmallUint(readDer(v, `${what} (${name} SPL)`), `${what} (${name} SPL)`);
  if (n > 255) badCert(what, `${name} SPL ${n} does not fit a byte`);
  return n;
}

/** Reads AMD's VCEK/VLEK extensions for a product (Turin adds the FMC SPL and an 8-byte hwid). */
export function keyExtensions(cert: SnpCert, product: SnpProduct, what: string): KeyExtensions {
  const tcb: TcbParts = {
    bootloader: splExtension(cert, OID.blSpl, 'boot loader', what),
    tee: splExtension(cert, OID.teeSpl, 'TEE', what),
    snp: splExtension(cert, OID.snpSpl, 'SNP', what),
    microcode: splExtension(cert, OID.ucodeSpl, 'microcode', what),
  };
  if (product === 'Turin') tcb.fmc = splExtension(cert, OID.fmcSpl, 'FMC', what);
  let hwid: Uint8Array | undefined;
  const h = cert.extensions.get(OID.hwid);
  if (h) {
    const size = product === 'Turin' ? 8 : 64;
    // AMD wraps the hwid in an OCTET STRING; accept the raw form too (as go-sev-guest does).
    hwid =
      h.length === size
        ? h
        : expectTag(readDer(h, `${what} (hwid)`), TAG.OCTET_STRING, `${what} (hwid)`).content;
    if (hwid.length !== size) badCert(what, `hwid is ${hwid.length} bytes, expected ${size} for ${product}`);
  }
  const str = (oid: string, name: string) => {
    const v = cert.extensions.get(oid);
    return v ? decodeString(readDer(v, `${what} (${name})`), `${what} (${name})`) : undefined;
  };
  return { tcb, hwid, productName: str(OID.productName, 'product name'), cspId: str(OID.cspId, 'CSP id') };
}

/** The product a VCEK/VLEK belongs to, from its product-name extension or its issuer's name. */
export function productOfKey(cert: SnpCert): SnpProduct | undefined {
  let name: string | undefined;
  const v = cert.extensions.get(OID.productName);
  if (v) {
    try {
      name = decodeString(readDer(v, 'product name'), 'product name');
    } catch {
      name = undefined;
    }
  }
  const candidates = [name, cert.issuerCn?.replace(/^SEV-(VLEK-)?/, '')];
  for (const c of candidates) {
    const m = /^(Milan|Genoa|Turin)\b/.exec(c ?? '');
    if (m) return m[1] as SnpProduct;
  }
  return undefined;
}

/**
 * Memoises parsed certificates and verified links by DER hash, so a service seeing the same chips again
 * pays one ECDSA verification per report (the benchmark relies on it). Bounded; cleared when full.
 */
export class SnpVerifyCache {
  private readonly certs = new Map<string, SnpCert>();
  private readonly links = new Set<string>();
  private readonly memo = new Map<string, unknown>();
  constructor(private readonly maxEntries = 4096) {}

  /** A derived value (a parsed CRL) kept under `key`. */
  remember<T>(key: string, make: () => T): T {
    if (this.memo.has(key)) return this.memo.get(key) as T;
    const v = make();
    if (this.memo.size >= this.maxEntries) this.memo.clear();
    this.memo.set(key, v);
    return v;
  }

  cert(bytes: Uint8Array, what: string): SnpCert {
    const key = sha256hex(bytes);
    let c = this.certs.get(key);
    if (!c) {
      c = parseSnpCert(bytes, what);
      if (this.certs.size >= this.maxEntries) this.certs.clear();
      this.certs.set(key, c);
    }
    return c;
  }

  verifySignedBy(cert: SnpCert, issuer: SnpCert, link: string): void {
    const key = `${issuer.id}>${cert.id}`;
    if (this.links.has(key)) return;
    verifySignedBy(cert, issuer, link);
    if (this.links.size >= this.maxEntries) this.links.clear();
    this.links.add(key);
  }
}
