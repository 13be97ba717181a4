/**
 * The guest's `tee-pubkey` (docs/protocol.md §15): the JWK a Trustee guest sends in its attest body; the
 * resource is encrypted to it. Shapes as kbs-types `TeePubKey` serialises them (tagged by `kty`):
 *   EC:  {"kty": "EC", "crv", "alg", "x", "y"}     (guest-components' default is P-256; P-521 also offered)
 *   RSA: {"kty": "RSA", "alg", "n", "e"}
 * Decisions (stricter than Trustee, documented so a refusal is explainable):
 * - members other than those are refused, private ones (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) by name;
 * - `alg` must be present and match the key type: ECDH-ES+A256KW for EC, RSA-OAEP-256 for RSA;
 * - EC curves P-256 and P-521 only; coordinates exactly the curve's length, base64url without padding
 *   in canonical form; the point must lie on the curve (OpenSSL checks it on import);
 * - RSA modulus 2048..8192 bits without a leading zero octet; public exponent 65537 only (what every key
 *   generator uses; odd small exponents buy nothing and widen what we must trust).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { KbsProtocolError } from './errors';

export type TeeEcCurve = 'P-256' | 'P-521';

export type TeePublicKey =
  | { kind: 'ec'; crv: TeeEcCurve; alg: 'ECDH-ES+A256KW'; key: KeyObject; jwk: TeeEcJwk }
  | { kind: 'rsa'; alg: 'RSA-OAEP-256'; key: KeyObject; jwk: TeeRsaJwk };

export interface TeeEcJwk {
  kty: 'EC';
  crv: TeeEcCurve;
  alg: 'ECDH-ES+A256KW';
  x: string;
  y: string;
}

export interface TeeRsaJwk {
  kty: 'RSA';
  alg: 'RSA-OAEP-256';
  n: string;
  e: string;
}

export const EC_COORDINATE_BYTES: Record<TeeEcCurve, number> = { 'P-256': 32, 'P-521': 66 };
export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 8192;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const B64URL = /^[A-Za-z0-9_-]*$/;

function bad(msg: string): never {
  throw new KbsProtocolError('AttestationError', `tee-pubkey: ${msg}`);
}

/** Strict base64url without padding: only the URL alphabet, and the canonical encoding of its bytes. */
export function decodeBase64UrlStrict(s: unknown, what: string): Buffer {
  if (typeof s !== 'string') bad(`${what} must be a string`);
  const text = s as string;
  if (!B64URL.test(text)) bad(`${what} is not base64url without padding`);
  if (text.length % 4 === 1) bad(`${what} has an impossible base64url length`);
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) bad(`${what} is not in canonical base64url form`);
  return bytes;
}

function onlyMembers(jwk: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(jwk)) {
    if (PRIVATE_MEMBERS.includes(k)) bad(`private key member "${k}" must never be sent`);
    if (!allowed.includes(k)) bad(`unexpected member "${k}"`);
  }
}

export function parseTeePubkey(jwk: unknown): TeePublicKey {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) bad('expected a JWK object');
  const o = jwk as Record<string, unknown>;
  if (o.kty === 'EC') {
    onlyMembers(o, ['kty', 'crv', 'alg', 'x', 'y']);
    if (o.alg !== 'ECDH-ES+A256KW')
      bad(`EC keys must carry alg "ECDH-ES+A256KW", got ${JSON.stringify(o.alg ?? null)}`);
    if (o.crv !== 'P-256' && o.crv !== 'P-521')
      bad(`curve ${JSON.stringify(o.crv ?? null)} is not supported (P-256, P-521)`);
    const crv = o.crv;
    const size = EC_COORDINATE_BYTES[crv];
    for (const c of ['x', 'y'] as const) {
      const bytes = decodeBase64UrlStrict(o[c], c);
      if (bytes.length !== size) bad(`${c} must be ${size} bytes on ${crv}, got ${bytes.length}`);
    }
    const clean: TeeEcJwk = { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: o.x as string, y: o.y as string };
    let key: KeyObject;
    try {
      key = createPublicKey({ key: { kty: 'EC', crv, x: clean.x, y: clean.y }, format: 'jwk' });
    } catch {
      bad(`the point is not on ${crv}`);
    }
    return { kind: 'ec', crv, alg: 'ECDH-ES+A256KW', key: key!, jwk: clean };
  }
  if (o.kty === 'RSA') {
    onlyMembers(o, ['kty', 'alg', 'n', 'e']);
    if (o.alg !== 'RSA-OAEP-256')
      bad(`RSA keys must carry alg "RSA-OAEP-256", got ${JSON.stringify(o.alg ?? null)}`);
    const n = decodeBase64UrlStrict(o.n, 'n');
    const e = decodeBase64UrlStrict(o.e, 'e');
    if (n.length === 0 || n[0] === 0) bad('n must be a minimal big-endian integer (no leading zero octet)');
    const bits = (n.length - 1) * 8 + (32 - Math.clz32(n[0]!));
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
      bad(`RSA modulus of ${bits} bits is outside ${RSA_MIN_BITS}..${RSA_MAX_BITS}`);
    if ((n[n.length - 1]! & 1) === 0) bad('RSA modulus must be odd');
    if (e.toString('hex') !== '010001') bad('RSA public exponent must be 65537 ("AQAB")');
    const clean: TeeRsaJwk = { kty: 'RSA', alg: 'RSA-OAEP-256', n: o.n as string, e: o.e as string };
    let key: KeyObject;
    try {
      key = createPublicKey({ key: { kty: 'RSA', n: clean.n, e: clean.e }, format: 'jwk' });
    } catch {
      bad('not a valid RSA public key');
    }
    return { kind: 'rsa', alg: 'RSA-OAEP-256', key: key!, jwk: clean };
  }
  return bad(`key type ${JSON.stringify(o.kty ?? null)} is not supported (EC, RSA)`);
}
