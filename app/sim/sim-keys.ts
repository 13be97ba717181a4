/**
 * Key material for the simulated platform: a deterministic-when-seeded random source, EC keys built
 * from a scalar (so a seed reproduces them), ECDSA signatures in the SEV slot layout, RSA-PSS
 * signatures stored little-endian.
 */
import {
  constants,
  createECDH,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { concat, reversed, u32le } from '../sev/bytes';

/** Random bytes: HMAC-SHA256(seed, label || counter) when seeded, node:crypto randomBytes otherwise. */
export class SimRandom {
  private counter = 0;
  constructor(private readonly seed?: Uint8Array) {}

  bytes(n: number, label = ''): Uint8Array {
    if (!this.seed) return new Uint8Array(randomBytes(n));
    const parts: Uint8Array[] = [];
    for (let got = 0; got < n; got += 32) {
      parts.push(
        new Uint8Array(createHmac('sha256', this.seed).update(label).update(u32le(this.counter++)).digest()),
      );
    }
    return concat(...parts).slice(0, n);
  }
}

type SimCurve = 'P-384' | 'secp256k1';

const CURVE_PARAMS: Record<SimCurve, { ecdhName: string; order: bigint; bytes: number }> = {
  'P-384': {
    ecdhName: 'secp384r1',
    order: BigInt(
      '0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973',
    ),
    bytes: 48,
  },
  secp256k1: {
    ecdhName: 'secp256k1',
    order: BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'),
    bytes: 32,
  },
};

export interface SimEcKey {
  curve: SimCurve;
  /** private scalar, big-endian */
  d: Uint8Array;
  /** public coordinates, big-endian */
  x: Uint8Array;
  y: Uint8Array;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function bigToBytes(v: bigint, n: number): Uint8Array {
  return Uint8Array.from(Buffer.from(v.toString(16).padStart(n * 2, '0'), 'hex'));
}

/** An EC key pair whose scalar comes from rng (uniform in [1, n-1]: 8 extra bytes make the bias negligible). */
export function newEcKey(curve: SimCurve, rng: SimRandom, label: string): SimEcKey {
  const p = CURVE_PARAMS[curve];
  const wide = BigInt('0x' + Buffer.from(rng.bytes(p.bytes + 8, label)).toString('hex'));
  const d = bigToBytes((wide % (p.order - 1n)) + 1n, p.bytes);
  const ecdh = createECDH(p.ecdhName);
  ecdh.setPrivateKey(d);
  const pub = new Uint8Array(ecdh.getPublicKey()); // 0x04 || x || y
  const x = pub.slice(1, 1 + p.bytes);
  const y = pub.slice(1 + p.bytes);
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  const jwk = { kty: 'EC', crv: curve, x: b64(x), y: b64(y) };
  return {
    curve,
    d,
    x,
    y,
    privateKey: createPrivateKey({ key: { ...jwk, d: b64(d) }, format: 'jwk' }),
    publicKey: createPublicKey({ key: jwk, format: 'jwk' }),
  };
}

/** ECDSA signature as stored in an SEV signature slot: r[72] LE || s[72] LE || zeros (512 bytes). */
export function ecdsaSlotSignature(key: SimEcKey, data: Uint8Array, hash: 'sha256' | 'sha384'): Uint8Array {
  const rs = new Uint8Array(sign(hash, data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }));
  const half = rs.length / 2;
  const slot = new Uint8Array(512);
  slot.set(reversed(rs.subarray(0, half)), 0);
  slot.set(reversed(rs.subarray(half)), 72);
  return slot;
}

export interface SimRsaKey {
  bits: 2048 | 4096;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** big-endian modulus and exponent */
  n: Uint8Array;
  e: Uint8Array;
}

/** A fresh RSA key (never derived from the seed: node:crypto cannot seed RSA generation). */
export function newRsaKey(bits: 2048 | 4096): SimRsaKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicExponent: 65537,
  });
  const jwk = publicKey.export({ format: 'jwk' });
  return {
    bits,
    privateKey,
    publicKey,
    n: new Uint8Array(Buffer.from(jwk.n!, 'base64url')),
    e: new Uint8Array(Buffer.from(jwk.e!, 'base64url')),
  };
}

/** RSASSA-PSS (MGF1 same hash, salt = digest length), returned little-endian as SEV/AMD certs store it. */
export function rsaPssSignLe(key: SimRsaKey, data: Uint8Array, hash: 'sha256' | 'sha384'): Uint8Array {
  const sig = sign(hash, data, {
    key: key.privateKey,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: hash === 'sha256' ? 32 : 48,
  });
  return reversed(new Uint8Array(sig));
}

/** A big-endian integer as a little-endian field of exactly n bytes. */
export function leField(be: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  out.set(reversed(be), 0);
  return out;
}
