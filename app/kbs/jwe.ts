/**
 * The resource reply: a flattened JWE to the guest's `tee-pubkey` (docs/protocol.md §15), as Trustee's
 * `kbs/src/jwe/mod.rs` builds it and guest-components' `TeeKeyPair::decrypt_response` opens it.
 *
 * Why the protected header is written by hand, compact and in this member order: guest-components does
 * not use the received `protected` text as the AAD. It parses the header into kbs-types
 * `ProtectedHeader {alg, enc, ..other}` and re-serialises it (`generate_aad`): `alg`, then `enc`, then the
 * other members in sorted order (serde_json's map), nested objects sorted too, no whitespace. GCM fails
 * unless our AAD (the base64url of the header we sent) equals that re-serialisation byte for byte, so
 * the header must already be in that form: `{"alg":..,"enc":"A256GCM"}` or
 * `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":..,"kty":"EC","x":..,"y":..}}`.
 */
import {
  createCipheriv,
  createHash,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  constants,
} from 'node:crypto';
import { KbsProtocolError } from './errors';
import type { TeeEcCurve, TeePublicKey } from './jwk';
import { EC_COORDINATE_BYTES } from './jwk';

export interface FlattenedJwe {
  protected: string;
  encrypted_key: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

const NODE_CURVE: Record<TeeEcCurve, string> = { 'P-256': 'prime256v1', 'P-521': 'secp521r1' };
/** RFC 3394's default initial value. */
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const KW_ALG = 'ECDH-ES+A256KW';

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/**
 * JWA (RFC 7518 §4.6.2) Concat KDF with SHA-256, one round (keys up to 256 bits):
 * counter 1 || Z || AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo (key length in bits), each
 * variable-length part prefixed with its 32-bit length. For the resource reply: AlgorithmID
 * "ECDH-ES+A256KW", empty PartyUInfo and PartyVInfo, 256 bits.
 */
export function concatKdf(
  z: Uint8Array,
  algorithmId: string = KW_ALG,
  keyBits = 256,
  apu: Uint8Array = new Uint8Array(0),
  apv: Uint8Array = new Uint8Array(0),
): Buffer {
  if (keyBits % 8 !== 0 || keyBits < 8 || keyBits > 256) throw new RangeError('concatKdf: 8..256 bits');
  const alg = Buffer.from(algorithmId, 'ascii');
  return createHash('sha256')
    .update(u32be(1))
    .update(z)
    .update(u32be(alg.length))
    .update(alg)
    .update(u32be(apu.length))
    .update(apu)
    .update(u32be(apv.length))
    .update(apv)
    .update(u32be(keyBits))
    .digest()
    .subarray(0, keyBits / 8);
}

function b64u(b: Uint8Array): string {
  return Buffer.from(b).toString('base64url');
}

function fixedCoordinate(s: string | undefined, size: number): string {
  const b = Buffer.from(s ?? '', 'base64url');
  if (b.length > size) throw new KbsProtocolError('JweError', 'ephemeral key coordinate is too long');
  const out = Buffer.alloc(size);
  b.copy(out, size - b.length);
  return b64u(out);
}

/** Encrypts `plaintext` to the guest's key. The CEK and the ECDH intermediates are wiped before returning. */
export function encryptForTee(key: TeePublicKey, plaintext: Uint8Array): FlattenedJwe {
  const cek = randomBytes(32);
  const secrets: Buffer[] = [cek];
  try {
    let header: string;
    let encryptedKey: Buffer;
    if (key.kind === 'rsa') {
      header = `{"alg":"RSA-OAEP-256","enc":"A256GCM"}`;
      encryptedKey = publicEncrypt(
        { key: key.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        cek,
      );
    } else {
      const eph = generateKeyPairSync('ec', { namedCurve: NODE_CURVE[key.crv] });
      const z = diffieHellman({ privateKey: eph.privateKey, publicKey: key.key });
      secrets.push(z);
      const kek = concatKdf(z);
      secrets.push(kek);
      const wrap = createCipheriv('id-aes256-wrap', kek, AES_KW_IV);
      encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()]);
      const epk = eph.publicKey.export({ format: 'jwk' });
      const size = EC_COORDINATE_BYTES[key.crv];
      header =
        `{"alg":"${KW_ALG}","enc":"A256GCM","epk":{"crv":"${key.crv}","kty":"EC",` +
        `"x":"${fixedCoordinate(epk.x, size)}","y":"${fixedCoordinate(epk.y, size)}"}}`;
    }
    const protectedB64 = b64u(Buffer.from(header, 'utf8'));
    const iv = randomBytes(12);
    const gcm = createCipheriv('aes-256-gcm', cek, iv);
    gcm.setAAD(Buffer.from(protectedB64, 'ascii'));
    const ciphertext = Buffer.concat([gcm.update(plaintext), gcm.final()]);
    return {
      protected: protectedB64,
      encrypted_key: b64u(encryptedKey),
      iv: b64u(iv),
      ciphertext: b64u(ciphertext),
      tag: b64u(gcm.getAuthTag()),
    };
  } catch (e) {
    if (e instanceof KbsProtocolError) throw e;
    throw new KbsProtocolError('JweError', 'encrypting the resource to the guest key failed');
  } finally {
    for (const s of secrets) s.fill(0);
  }
}
