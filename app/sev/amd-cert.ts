/**
 * AMD certificates (ARK root, ASK intermediate): the variable-size format of docs/protocol.md §2.
 * 2048-bit keys (Naples) make 832-byte certs signed with RSA-PSS/SHA-256; 4096-bit keys (Rome and
 * later) make 1600-byte certs signed with RSA-PSS/SHA-384. Every number is stored little-endian.
 */
import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { bytesEqual, readU32le, reversed, toHex, writeU32le } from './bytes';
import { SevError } from './errors';

export const AMD_CERT_HEADER_SIZE = 0x40;
export const AMD_KEY_ID_SIZE = 16;
/** Sizes of a complete (signed) AMD cert by key size: 64 + 3 * bits/8. */
export const AMD_CERT_SIZE_2048 = 832;
export const AMD_CERT_SIZE_4096 = 1600;

export const AmdUsage = { ARK: 0x00, ASK: 0x13 } as const;

export interface AmdCertificate {
  version: number;
  /** 16 opaque bytes, compared as bytes. */
  keyId: Uint8Array;
  /** key_id of the signer (equal to keyId for the self-signed ARK). */
  certifyingId: Uint8Array;
  /** AmdUsage.ARK (0x00) or AmdUsage.ASK (0x13). */
  keyUsage: number;
  /** 16 bytes at 0x28, zero in every real cert; kept because they are signed. */
  reserved: Uint8Array;
  pubexpBits: number;
  modulusBits: number;
  /** little-endian, pubexpBits/8 bytes */
  pubexp: Uint8Array;
  /** little-endian, modulusBits/8 bytes */
  modulus: Uint8Array;
  /** RSA-PSS signature, little-endian, modulusBits/8 bytes */
  signature: Uint8Array;
}

function usageLabel(u: number): string {
  return u === AmdUsage.ARK ? 'ARK' : u === AmdUsage.ASK ? 'ASK' : `0x${u.toString(16)}`;
}

/** The total byte size of an AMD cert with the given key sizes. */
export function amdCertSize(pubexpBits: number, modulusBits: number): number {
  return AMD_CERT_HEADER_SIZE + pubexpBits / 8 + (2 * modulusBits) / 8;
}

/**
 * Parses one AMD ARK/ASK certificate of exactly 832 or 1600 bytes. `expectedUsage` (optional) is
 * checked too. Throws SevError naming the field that is wrong.
 */
export function parseAmdCert(
  bytes: Uint8Array,
  what = 'AMD certificate',
  expectedUsage?: number,
): AmdCertificate {
  if (bytes.length < AMD_CERT_HEADER_SIZE) {
    throw new SevError(
      'bad-length',
      `${what}: an AMD certificate is ${AMD_CERT_SIZE_2048} or ${AMD_CERT_SIZE_4096} bytes, got ${bytes.length}`,
    );
  }
  const version = readU32le(bytes, 0);
  if (version !== 1) throw new SevError('bad-version', `${what}: version must be 1, got ${version}`);
  const keyUsage = readU32le(bytes, 0x24);
  if (keyUsage !== AmdUsage.ARK && keyUsage !== AmdUsage.ASK) {
    throw new SevError(
      'bad-usage',
      `${what}: key usage must be ARK (0x0) or ASK (0x13), got 0x${keyUsage.toString(16)}`,
    );
  }
  if (expectedUsage !== undefined && keyUsage !== expectedUsage) {
    throw new SevError(
      'bad-usage',
      `${what}: expected an ${usageLabel(expectedUsage)} certificate, got an ${usageLabel(keyUsage)}`,
    );
  }
  const pubexpBits = readU32le(bytes, 0x38);
  const modulusBits = readU32le(bytes, 0x3c);
  if (modulusBits !== 2048 && modulusBits !== 4096) {
    throw new SevError('bad-key', `${what}: modulus size must be 2048 or 4096 bits, got ${modulusBits}`);
  }
  if (pubexpBits !== modulusBits) {
    throw new SevError(
      'bad-key',
      `${what}: public exponent size (${pubexpBits} bits) must equal the modulus size (${modulusBits} bits)`,
    );
  }
  const size = amdCertSize(pubexpBits, modulusBits);
  if (bytes.length !== size) {
    throw new SevError(
      'bad-length',
      `${what}: a ${modulusBits}-bit AMD certificate is ${size} bytes, got ${bytes.length}`,
    );
  }
  const e = AMD_CERT_HEADER_SIZE;
  const m = e + pubexpBits / 8;
  const s = m + modulusBits / 8;
  return {
    version,
    keyId: bytes.slice(0x04, 0x14),
    certifyingId: bytes.slice(0x14, 0x24),
    keyUsage,
    reserved: bytes.slice(0x28, 0x38),
    pubexpBits,
    modulusBits,
    pubexp: bytes.slice(e, m),
    modulus: bytes.slice(m, s),
    signature: bytes.slice(s, s + modulusBits / 8),
  };
}

/** The signed part: header || pubexp || modulus (the certificate without its signature). */
export function amdCertBody(c: AmdCertificate): Uint8Array {
  return serializeAmdCert(c).subarray(0, amdCertSize(c.pubexpBits, c.modulusBits) - c.modulusBits / 8);
}

/** Serializes an AMD certificate; parseAmdCert(serializeAmdCert(c)) == c. */
export function serializeAmdCert(c: AmdCertificate): Uint8Array {
  const eb = c.pubexpBits / 8;
  const mb = c.modulusBits / 8;
  if (c.pubexp.length !== eb || c.modulus.length !== mb || c.signature.length !== mb) {
    throw new SevError('bad-key', 'AMD certificate: field lengths do not match the declared key sizes');
  }
  if (c.keyId.length !== AMD_KEY_ID_SIZE || c.certifyingId.length !== AMD_KEY_ID_SIZE) {
    throw new SevError('bad-format', 'AMD certificate: key ids must be 16 bytes');
  }
  const b = new Uint8Array(amdCertSize(c.pubexpBits, c.modulusBits));
  writeU32le(b, 0, c.version);
  b.set(c.keyId, 0x04);
  b.set(c.certifyingId, 0x14);
  writeU32le(b, 0x24, c.keyUsage);
  b.set(c.reserved.subarray(0, 16), 0x28);
  writeU32le(b, 0x38, c.pubexpBits);
  writeU32le(b, 0x3c, c.modulusBits);
  b.set(c.pubexp, AMD_CERT_HEADER_SIZE);
  b.set(c.modulus, AMD_CERT_HEADER_SIZE + eb);
  b.set(c.signature, AMD_CERT_HEADER_SIZE + eb + mb);
  return b;
}

/** The RSA-PSS hash of an AMD key: SHA-256 for 2048-bit keys (Naples), SHA-384 for 4096-bit (§2, §10.4). */
export function amdHashForBits(modulusBits: number): 'sha256' | 'sha384' {
  return modulusBits === 2048 ? 'sha256' : 'sha384';
}

function stripLeadingZeros(be: Uint8Array): Uint8Array {
  let i = 0;
  while (i < be.length - 1 && be[i] === 0) i++;
  return be.subarray(i);
}

/** RSA public KeyObject from little-endian n and e (JWK wants big-endian base64url, no leading zeros). */
export function rsaPublicKeyFromLe(modulusLe: Uint8Array, exponentLe: Uint8Array, what: string): KeyObject {
  const n = stripLeadingZeros(reversed(modulusLe));
  const e = stripLeadingZeros(reversed(exponentLe));
  try {
    return createPublicKey({
      key: {
        kty: 'RSA',
        n: Buffer.from(n).toString('base64url'),
        e: Buffer.from(e).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    throw new SevError('bad-key', `${what}: the RSA public key is not valid`);
  }
}

const keyCache = new WeakMap<AmdCertificate, KeyObject>();

/** A node:crypto RSA public KeyObject for an ARK or ASK. */
export function amdPublicKeyObject(c: AmdCertificate): KeyObject {
  let k = keyCache.get(c);
  if (!k) {
    k = rsaPublicKeyFromLe(c.modulus, c.pubexp, `${usageLabel(c.keyUsage)} ${toHex(c.keyId)}`);
    keyCache.set(c, k);
  }
  return k;
}

/**
 * RSASSA-PSS verification (MGF1 with the same hash, salt length = digest length) of a little-endian
 * signature, as AMD stores it. Returns false on any mismatch, never throws for a bad signature.
 */
export function verifyRsaPssLe(
  key: KeyObject,
  hash: 'sha256' | 'sha384',
  data: Uint8Array,
  signatureLe: Uint8Array,
): boolean {
  try {
    return verify(
      hash,
      data,
      {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: hash === 'sha256' ? 32 : 48,
      },
      reversed(signatureLe),
    );
  } catch {
    return false;
  }
}

/**
 * Verifies that `signer` signed `cert`: certifying id == signer key id, the signer is an ARK, and
 * the RSA-PSS signature (hash by the signer's key size) verifies. Throws SevError('bad-signature').
 */
export function verifyAmdCertSignature(cert: AmdCertificate, signer: AmdCertificate, what?: string): void {
  const label = what ?? `${usageLabel(signer.keyUsage)} -> ${usageLabel(cert.keyUsage)}`;
  if (signer.keyUsage !== AmdUsage.ARK) {
    throw new SevError(
      'bad-signature',
      `${label}: the signer must be an ARK, got an ${usageLabel(signer.keyUsage)}`,
    );
  }
  if (!bytesEqual(cert.certifyingId, signer.keyId)) {
    throw new SevError(
      'bad-signature',
      `${label}: certifying id ${toHex(cert.certifyingId)} is not the signer's key id ${toHex(signer.keyId)}`,
    );
  }
  if (cert.keyUsage === AmdUsage.ARK && !bytesEqual(cert.keyId, cert.certifyingId)) {
    throw new SevError('bad-signature', `${label}: an ARK must certify itself`);
  }
  if (cert.modulusBits !== signer.modulusBits) {
    throw new SevError(
      'bad-signature',
      `${label}: a ${signer.modulusBits}-bit ARK cannot have signed a ${cert.modulusBits}-bit certificate`,
    );
  }
  const ok = verifyRsaPssLe(
    amdPublicKeyObject(signer),
    amdHashForBits(signer.modulusBits),
    amdCertBody(cert),
    cert.signature,
  );
  if (!ok) throw new SevError('bad-signature', `${label}: RSA-PSS signature does not verify`);
}

/** An ARK/ASK pair that has been checked: ARK self-signed, ASK signed by the ARK. */
export interface AmdRootPair {
  ark: AmdCertificate;
  ask: AmdCertificate;
}

/** Parses and checks an ARK and an ASK: ARK self-signature, then ARK -> ASK. */
export function verifyAmdPair(arkBytes: Uint8Array, askBytes: Uint8Array, what = 'AMD root'): AmdRootPair {
  const ark = parseAmdCert(arkBytes, `${what} ARK`, AmdUsage.ARK);
  const ask = parseAmdCert(askBytes, `${what} ASK`, AmdUsage.ASK);
  verifyAmdCertSignature(ark, ark, `${what}: ARK self-signature`);
  verifyAmdCertSignature(ask, ark, `${what}: ARK -> ASK`);
  return { ark, ask };
}

/**
 * Splits AMD's published `ask_ark_<gen>.cert` (ASK || ARK) into its two certificates. The ASK's
 * own size fields say where it ends. The originally published Naples ARK had no signature
 * (576 bytes); it is rejected with a message saying so.
 */
export function splitAskArk(bytes: Uint8Array, what = 'ASK||ARK file'): { ask: Uint8Array; ark: Uint8Array } {
  if (bytes.length < AMD_CERT_HEADER_SIZE) {
    throw new SevError(
      'bad-length',
      `${what}: expected ${2 * AMD_CERT_SIZE_2048} or ${2 * AMD_CERT_SIZE_4096} bytes (ASK || ARK), got ${bytes.length}`,
    );
  }
  const modulusBits = readU32le(bytes, 0x3c);
  const pubexpBits = readU32le(bytes, 0x38);
  const okSize = (modulusBits === 2048 || modulusBits === 4096) && pubexpBits === modulusBits;
  const askSize = okSize ? amdCertSize(pubexpBits, modulusBits) : -1;
  if (askSize < 0 || bytes.length !== 2 * askSize) {
    if (askSize > 0 && bytes.length === askSize + askSize - modulusBits / 8) {
      throw new SevError(
        'bad-signature',
        `${what}: the ARK has no signature (${askSize - modulusBits / 8} bytes, the originally published Naples ARK); use a signed ARK`,
      );
    }
    throw new SevError(
      'bad-length',
      `${what}: expected ${2 * AMD_CERT_SIZE_2048} or ${2 * AMD_CERT_SIZE_4096} bytes (ASK || ARK), got ${bytes.length}`,
    );
  }
  return { ask: bytes.slice(0, askSize), ark: bytes.slice(askSize) };
}
