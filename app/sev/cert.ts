/**
 * SEV certificates (PDH, PEK, OCA, CEK and the guest owner's DH cert): the 2084-byte format of
 * docs/protocol.md §1. Parsing is strict; every wrong field gets its own error.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { amdPublicKeyObject, verifyRsaPssLe, type AmdCertificate } from './amd-cert';
import { SevError } from './errors';
import { readU32le, reversed, writeU32le } from './bytes';

export const SEV_CERT_SIZE = 2084;
/** Signatures cover exactly bytes [0, 0x414): version through the public key union. */
export const SEV_CERT_BODY_SIZE = 0x414;
export const SIG_SLOT_SIZE = 512;
export const ECC_SCALAR_SIZE = 72;
export const P384_BYTES = 48;

export const Usage = {
  ARK: 0x0000,
  ASK: 0x0013,
  INVALID: 0x1000,
  OCA: 0x1001,
  PEK: 0x1002,
  PDH: 0x1003,
  CEK: 0x1004,
} as const;
export type UsageName = keyof typeof Usage;

export const Algo = {
  INVALID: 0x000,
  RSA_SHA256: 0x001,
  ECDSA_SHA256: 0x002,
  ECDH_SHA256: 0x003,
  RSA_SHA384: 0x101,
  ECDSA_SHA384: 0x102,
  ECDH_SHA384: 0x103,
} as const;
export type AlgoName = keyof typeof Algo;

export const Curve = { P256: 1, P384: 2 } as const;

export function usageName(u: number): string {
  const e = Object.entries(Usage).find(([, v]) => v === u);
  return e ? e[0] : `0x${u.toString(16)}`;
}

export function algoName(a: number): string {
  const e = Object.entries(Algo).find(([, v]) => v === a);
  return e ? e[0] : `0x${a.toString(16)}`;
}

export function isEcAlgo(a: number): boolean {
  return (
    a === Algo.ECDSA_SHA256 || a === Algo.ECDSA_SHA384 || a === Algo.ECDH_SHA256 || a === Algo.ECDH_SHA384
  );
}

export function isRsaAlgo(a: number): boolean {
  return a === Algo.RSA_SHA256 || a === Algo.RSA_SHA384;
}

export function hashForAlgo(a: number): 'sha256' | 'sha384' {
  return a >= 0x100 ? 'sha384' : 'sha256';
}

export type SevPublicKey =
  | { kind: 'ecc'; curve: number; /** little-endian, 72 bytes */ qx: Uint8Array; qy: Uint8Array }
  | {
      kind: 'rsa';
      modulusBits: number;
      /** little-endian, 512 bytes */ exponent: Uint8Array;
      modulus: Uint8Array;
    };

export interface SignatureSlot {
  usage: number;
  algo: number;
  /** 512 raw bytes. ECDSA: r[72] LE || s[72] LE || zeros. RSA: signature LE. */
  sig: Uint8Array;
}

export interface SevCertificate {
  version: number;
  apiMajor: number;
  apiMinor: number;
  usage: number;
  algo: number;
  pubkey: SevPublicKey;
  sigs: [SignatureSlot, SignatureSlot];
}

const knownUsages = new Set<number>([Usage.OCA, Usage.PEK, Usage.PDH, Usage.CEK]);
const knownAlgos = new Set<number>(Object.values(Algo).filter((a) => a !== Algo.INVALID));

export function isEmptySlot(s: SignatureSlot): boolean {
  return s.usage === Usage.INVALID && s.algo === Algo.INVALID;
}

/** Parses a 2084-byte SEV certificate. Throws SevError naming the first field that is wrong. */
export function parseSevCert(bytes: Uint8Array, what = 'certificate'): SevCertificate {
  if (bytes.length !== SEV_CERT_SIZE) {
    throw new SevError(
      'bad-length',
      `${what}: an SEV certificate is ${SEV_CERT_SIZE} bytes, got ${bytes.length}`,
    );
  }
  const version = readU32le(bytes, 0);
  if (version !== 1) throw new SevError('bad-version', `${what}: version must be 1, got ${version}`);
  const usage = readU32le(bytes, 0x08);
  if (!knownUsages.has(usage)) {
    throw new SevError('bad-usage', `${what}: unknown key usage ${usageName(usage)}`);
  }
  const algo = readU32le(bytes, 0x0c);
  if (!knownAlgos.has(algo))
    throw new SevError('bad-algorithm', `${what}: unknown key algorithm 0x${algo.toString(16)}`);
  let pubkey: SevPublicKey;
  if (isEcAlgo(algo)) {
    const curve = readU32le(bytes, 0x10);
    if (curve !== Curve.P384 && curve !== Curve.P256) {
      throw new SevError('bad-curve', `${what}: unknown ECC curve ${curve}`);
    }
    pubkey = {
      kind: 'ecc',
      curve,
      qx: bytes.slice(0x14, 0x14 + ECC_SCALAR_SIZE),
      qy: bytes.slice(0x5c, 0x5c + ECC_SCALAR_SIZE),
    };
  } else {
    const modulusBits = readU32le(bytes, 0x10);
    if (modulusBits !== 2048 && modulusBits !== 4096) {
      throw new SevError(
        'bad-key',
        `${what}: RSA modulus size must be 2048 or 4096 bits, got ${modulusBits}`,
      );
    }
    pubkey = {
      kind: 'rsa',
      modulusBits,
      exponent: bytes.slice(0x14, 0x214),
      modulus: bytes.slice(0x214, 0x414),
    };
  }
  const slot = (off: number, n: number): SignatureSlot => {
    const s = {
      usage: readU32le(bytes, off),
      algo: readU32le(bytes, off + 4),
      sig: bytes.slice(off + 8, off + 8 + SIG_SLOT_SIZE),
    };
    const emptyUsage = s.usage === Usage.INVALID;
    const emptyAlgo = s.algo === Algo.INVALID;
    if (emptyUsage !== emptyAlgo) {
      throw new SevError(
        'bad-signature',
        `${what}: signature ${n} is malformed (usage ${usageName(s.usage)}, algorithm ${algoName(s.algo)})`,
      );
    }
    return s;
  };
  return {
    version,
    apiMajor: bytes[4]!,
    apiMinor: bytes[5]!,
    usage,
    algo,
    pubkey,
    sigs: [slot(0x414, 1), slot(0x61c, 2)],
  };
}

/** Serializes a certificate back to its 2084 bytes. parse(serialize(c)) == c for every valid c. */
export function serializeSevCert(c: SevCertificate): Uint8Array {
  const b = new Uint8Array(SEV_CERT_SIZE);
  writeU32le(b, 0, c.version);
  b[4] = c.apiMajor;
  b[5] = c.apiMinor;
  writeU32le(b, 0x08, c.usage);
  writeU32le(b, 0x0c, c.algo);
  if (c.pubkey.kind === 'ecc') {
    writeU32le(b, 0x10, c.pubkey.curve);
    b.set(c.pubkey.qx.subarray(0, ECC_SCALAR_SIZE), 0x14);
    b.set(c.pubkey.qy.subarray(0, ECC_SCALAR_SIZE), 0x5c);
  } else {
    writeU32le(b, 0x10, c.pubkey.modulusBits);
    b.set(c.pubkey.exponent.subarray(0, 512), 0x14);
    b.set(c.pubkey.modulus.subarray(0, 512), 0x214);
  }
  const put = (off: number, s: SignatureSlot) => {
    writeU32le(b, off, s.usage);
    writeU32le(b, off + 4, s.algo);
    b.set(s.sig.subarray(0, SIG_SLOT_SIZE), off + 8);
  };
  put(0x414, c.sigs[0]);
  put(0x61c, c.sigs[1]);
  return b;
}

/** The signed part of a serialized certificate. */
export function sevCertBody(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(0, SEV_CERT_BODY_SIZE);
}

export function emptySlot(): SignatureSlot {
  return { usage: Usage.INVALID, algo: Algo.INVALID, sig: new Uint8Array(SIG_SLOT_SIZE) };
}

function curveName(curve: number): 'P-384' | 'P-256' {
  return curve === Curve.P384 ? 'P-384' : 'P-256';
}

function coordBytes(curve: number): number {
  return curve === Curve.P384 ? 48 : 32;
}

/** The big-endian affine coordinates of an ECC key (for standard libraries). */
export function eccPointBigEndian(pk: Extract<SevPublicKey, { kind: 'ecc' }>): {
  x: Uint8Array;
  y: Uint8Array;
} {
  const n = coordBytes(pk.curve);
  for (let i = n; i < ECC_SCALAR_SIZE; i++) {
    if (pk.qx[i] !== 0 || pk.qy[i] !== 0)
      throw new SevError('bad-key', 'ECC coordinate does not fit the curve size');
  }
  return { x: reversed(pk.qx.subarray(0, n)), y: reversed(pk.qy.subarray(0, n)) };
}

/** A node:crypto public KeyObject for an ECC SEV certificate; throws bad-key if the point is not on the curve. */
export function eccPublicKeyObject(c: SevCertificate): KeyObject {
  if (c.pubkey.kind !== 'ecc')
    throw new SevError('bad-key', `${usageName(c.usage)} does not hold an ECC key`);
  const { x, y } = eccPointBigEndian(c.pubkey);
  try {
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: curveName(c.pubkey.curve),
        x: Buffer.from(x).toString('base64url'),
        y: Buffer.from(y).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    throw new SevError(
      'bad-key',
      `${usageName(c.usage)} public key is not a valid point on ${curveName(c.pubkey.curve)}`,
    );
  }
}

/** Little-endian, 72-byte zero-padded coordinate from a big-endian one. */
export function toEccScalarLe(be: Uint8Array): Uint8Array {
  const out = new Uint8Array(ECC_SCALAR_SIZE);
  out.set(reversed(be), 0);
  return out;
}

/**
 * An ECC certificate with empty signature slots, e.g. the guest owner's DH cert
 * (usage PDH, ECDH_SHA256, api 0.0, as sevctl writes it; the firmware checks no signature on it).
 */
export function newEccCert(opts: {
  usage: number;
  algo: number;
  x: Uint8Array;
  y: Uint8Array;
  apiMajor?: number;
  apiMinor?: number;
}): SevCertificate {
  return {
    version: 1,
    apiMajor: opts.apiMajor ?? 0,
    apiMinor: opts.apiMinor ?? 0,
    usage: opts.usage,
    algo: opts.algo,
    pubkey: { kind: 'ecc', curve: Curve.P384, qx: toEccScalarLe(opts.x), qy: toEccScalarLe(opts.y) },
    sigs: [emptySlot(), emptySlot()],
  };
}

// ---------------------------------------------------------------------------------------------
// Signature verification (docs/protocol.md §1, §3)

/** The signer's certificate: an SEV ECDSA cert (OCA, PEK, CEK) or AMD's ASK. */
export type SevCertSigner = SevCertificate | AmdCertificate;

function isAmdCert(s: SevCertSigner): s is AmdCertificate {
  return (s as AmdCertificate).keyId !== undefined;
}

// Importing a P-384 key costs about as much as a verification, so keys are kept by their bytes.
const eccKeyCache = new Map<string, KeyObject>();
const ECC_KEY_CACHE_MAX = 256;

/** eccPublicKeyObject with a small bounded cache keyed by the curve and coordinates. */
export function cachedEccPublicKeyObject(c: SevCertificate): KeyObject {
  if (c.pubkey.kind !== 'ecc') return eccPublicKeyObject(c);
  const id = `${c.usage}:${c.pubkey.curve}:${Buffer.from(c.pubkey.qx).toString('hex')}:${Buffer.from(c.pubkey.qy).toString('hex')}`;
  let k = eccKeyCache.get(id);
  if (!k) {
    k = eccPublicKeyObject(c);
    if (eccKeyCache.size >= ECC_KEY_CACHE_MAX) {
      const first = eccKeyCache.keys().next();
      if (!first.done) eccKeyCache.delete(first.value);
    }
    eccKeyCache.set(id, k);
  }
  return k;
}

function allZero(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** The slot usage/algorithm an ASK signature carries: RSA_SHA256 for 2048-bit ASKs, RSA_SHA384 for 4096-bit. */
export function askSlotAlgo(ask: AmdCertificate): number {
  return ask.modulusBits === 2048 ? Algo.RSA_SHA256 : Algo.RSA_SHA384;
}

/**
 * Checks one signature slot's bytes. Besides the signature itself this rejects non-zero bytes the
 * signature format leaves unused (the high bytes of the 72-byte r/s scalars, the slot tail after
 * s or after the RSA signature). The firmware ignores the slot tail; we are stricter so that no
 * byte of a certificate can change unnoticed. All 30 real certificates have these bytes zero.
 */
function verifySlot(body: Uint8Array, slot: SignatureSlot, signer: SevCertSigner): boolean {
  const sig = slot.sig;
  if (isAmdCert(signer)) {
    const n = signer.modulusBits / 8;
    if (!allZero(sig, n, SIG_SLOT_SIZE)) return false;
    return verifyRsaPssLe(amdPublicKeyObject(signer), hashForAlgo(slot.algo), body, sig.subarray(0, n));
  }
  if (signer.pubkey.kind !== 'ecc') return false;
  const n = coordBytes(signer.pubkey.curve);
  if (!allZero(sig, n, ECC_SCALAR_SIZE) || !allZero(sig, ECC_SCALAR_SIZE + n, SIG_SLOT_SIZE)) {
    return false;
  }
  const rs = new Uint8Array(2 * n);
  rs.set(reversed(sig.subarray(0, n)), 0);
  rs.set(reversed(sig.subarray(ECC_SCALAR_SIZE, ECC_SCALAR_SIZE + n)), n);
  try {
    // ieee-p1363 = fixed-size big-endian r||s. Firmware signatures may be high-S; node accepts them.
    return verify(
      hashForAlgo(slot.algo),
      body,
      { key: cachedEccPublicKeyObject(signer), dsaEncoding: 'ieee-p1363' },
      rs,
    );
  } catch {
    return false;
  }
}

function signerLabel(s: SevCertSigner): string {
  return isAmdCert(s) ? (s.keyUsage === 0x13 ? 'ASK' : 'ARK') : usageName(s.usage);
}

/**
 * Checks that `signer` signed `cert` (bytes or parsed); returns null when it did, else the reason.
 * Same rules as verifySevCertSignature, without the cost of an exception on the failure path.
 */
export function sevCertSignatureProblem(
  cert: Uint8Array | SevCertificate,
  signer: SevCertSigner,
): { code: 'bad-signature'; message: string } | null {
  const bytes = cert instanceof Uint8Array ? cert : serializeSevCert(cert);
  const parsed = cert instanceof Uint8Array ? parseSevCert(cert) : cert;
  let usage: number;
  let algo: number;
  if (isAmdCert(signer)) {
    if (signer.keyUsage !== 0x13) {
      return { code: 'bad-signature', message: 'only an ASK signs SEV certificates, not an ARK' };
    }
    usage = Usage.ASK;
    algo = askSlotAlgo(signer);
  } else {
    if (signer.algo !== Algo.ECDSA_SHA256 && signer.algo !== Algo.ECDSA_SHA384) {
      return {
        code: 'bad-signature',
        message: `the ${usageName(signer.usage)} key (${algoName(signer.algo)}) is not a signing key`,
      };
    }
    usage = signer.usage;
    algo = signer.algo;
  }
  const slots = parsed.sigs.filter((s) => s.usage === usage && s.algo === algo);
  if (slots.length === 0) {
    return {
      code: 'bad-signature',
      message: `no signature slot with usage ${usageName(usage)} and algorithm ${algoName(algo)}`,
    };
  }
  const body = sevCertBody(bytes);
  if (!slots.some((s) => verifySlot(body, s, signer))) {
    return { code: 'bad-signature', message: 'signature does not verify' };
  }
  return null;
}

/**
 * Verifies that `signer` signed `cert` (bytes or parsed). The slot is chosen by (usage, algo) equal
 * to the signer's (§1 slot matching rule), never by position. An SEV signer must be an ECDSA key
 * (ECDSA_SHA256/384; hash by algo); an AMD signer must be an ASK (slot usage 0x13, RSA_SHA256 for
 * 2048-bit, RSA_SHA384 for 4096-bit, RSA-PSS over the body). Throws SevError('bad-signature').
 */
export function verifySevCertSignature(
  cert: Uint8Array | SevCertificate,
  signer: SevCertSigner,
  what?: string,
): void {
  const problem = sevCertSignatureProblem(cert, signer);
  if (problem) {
    const usage = cert instanceof Uint8Array ? readU32le(cert, 0x08) : cert.usage;
    const label = what ?? `${signerLabel(signer)} -> ${usageName(usage)}`;
    throw new SevError(problem.code, `${label}: ${problem.message}`);
  }
}
