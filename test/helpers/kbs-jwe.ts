/**
 * Test-only: a flattened JWE as a KBS sends it (RSA-OAEP-256 or ECDH-ES+A256KW, A256GCM), written by hand
 * so the protected header text is under the test's control (jose picks its own member order).
 */
import {
  constants,
  createCipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import type { TeePubKey } from '../../app/sim/snp-guest';

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');

/** Concat KDF (RFC 7518 §4.6.2) for ECDH-ES+A256KW: 256 bits, empty apu/apv. */
function concatKdf(z: Buffer, alg: string): Buffer {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const algId = Buffer.from(alg);
  return createHash('sha256')
    .update(Buffer.concat([u32(1), z, u32(algId.length), algId, u32(0), u32(0), u32(256)]))
    .digest();
}

/**
 * A flattened JWE as a KBS sends it, written by hand so the header text is under the test's control:
 * `headerText(epk)` gives the exact protected header JSON.
 */
export function makeKbsJwe(
  client: { key: { publicJwk: TeePubKey } },
  plaintext: Uint8Array,
  headerText?: (epk: Record<string, string> | undefined) => string,
): Record<string, string> {
  const cek = randomBytes(32);
  let encryptedKey: Buffer;
  let header: string;
  const jwk = client.key.publicJwk;
  if (jwk.kty === 'RSA') {
    const pub = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
    encryptedKey = publicEncrypt(
      { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      cek,
    );
    header = headerText ? headerText(undefined) : '{"alg":"RSA-OAEP-256","enc":"A256GCM"}';
  } else {
    const pub = createPublicKey({ key: { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' });
    const eph = generateKeyPairSync('ec', { namedCurve: jwk.crv === 'P-521' ? 'secp521r1' : 'prime256v1' });
    const z = diffieHellman({ privateKey: eph.privateKey, publicKey: pub });
    const kek = concatKdf(z, 'ECDH-ES+A256KW');
    const wrap = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    encryptedKey = Buffer.concat([wrap.update(cek), wrap.final()]);
    const e = eph.publicKey.export({ format: 'jwk' });
    const epk = { crv: e.crv!, kty: 'EC', x: e.x!, y: e.y! };
    header = headerText
      ? headerText(epk)
      : `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":${JSON.stringify(epk)}}`;
  }
  const protectedB64 = b64u(header);
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
}
