import { flattenedDecrypt, type FlattenedJWE } from 'jose';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { concatKdf, encryptForTee } from './jwe';
import { parseTeePubkey, type TeePublicKey } from './jwk';

interface Pair {
  name: string;
  tee: TeePublicKey;
  priv: KeyObject;
}
const pairs: Pair[] = [];

beforeAll(() => {
  for (const [curve, crv] of [
    ['prime256v1', 'P-256'],
    ['secp521r1', 'P-521'],
  ] as const) {
    const k = generateKeyPairSync('ec', { namedCurve: curve });
    const j = k.publicKey.export({ format: 'jwk' });
    pairs.push({
      name: crv,
      priv: k.privateKey,
      tee: parseTeePubkey({ kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: j.x, y: j.y }),
    });
  }
  for (const bits of [2048, 4096]) {
    const k = generateKeyPairSync('rsa', { modulusLength: bits });
    const j = k.publicKey.export({ format: 'jwk' });
    pairs.push({
      name: `RSA-${bits}`,
      priv: k.privateKey,
      tee: parseTeePubkey({ kty: 'RSA', alg: 'RSA-OAEP-256', n: j.n, e: j.e }),
    });
  }
});

/** kbs-types ProtectedHeader::generate_aad: serde writes alg, enc, then the other members sorted (recursively). */
function guestComponentsAad(protectedB64: string): string {
  const parsed = JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
  const sortDeep = (v: unknown): unknown =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, sortDeep((v as Record<string, unknown>)[k])]),
        )
      : v;
  const { alg, enc, ...rest } = parsed;
  const ordered = { alg, enc, ...(sortDeep(rest) as object) };
  return Buffer.from(JSON.stringify(ordered), 'utf8').toString('base64url');
}

describe('encryptForTee', () => {
  it('produces a flattened JWE that jose decrypts, for every key kind', async () => {
    const plaintext = new TextEncoder().encode('disk passphrase \u00e9\u20ac');
    for (const p of pairs) {
      const jwe = encryptForTee(p.tee, plaintext);
      expect(Object.keys(jwe).sort()).toEqual(['ciphertext', 'encrypted_key', 'iv', 'protected', 'tag']);
      for (const v of Object.values(jwe)) expect(v).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(Buffer.from(jwe.iv, 'base64url').length).toBe(12);
      expect(Buffer.from(jwe.tag, 'base64url').length).toBe(16);
      const out = await flattenedDecrypt(jwe as FlattenedJWE, p.priv);
      expect(Buffer.from(out.plaintext).toString('utf8'), p.name).toBe('disk passphrase \u00e9\u20ac');
      expect(out.protectedHeader?.enc).toBe('A256GCM');
      expect(out.protectedHeader?.alg).toBe(p.tee.alg);
    }
  });

  it('writes the protected header exactly as guest-components rebuilds the AAD', () => {
    for (const p of pairs) {
      const jwe = encryptForTee(p.tee, new Uint8Array([1, 2, 3]));
      const header = Buffer.from(jwe.protected, 'base64url').toString('utf8');
      expect(guestComponentsAad(jwe.protected), p.name).toBe(jwe.protected);
      if (p.tee.kind === 'rsa') {
        expect(header).toBe('{"alg":"RSA-OAEP-256","enc":"A256GCM"}');
        expect(Buffer.from(jwe.encrypted_key, 'base64url').length).toBe(
          p.tee.key.asymmetricKeyDetails!.modulusLength! / 8,
        );
      } else {
        expect(header).toMatch(
          /^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-(256|521)","kty":"EC","x":"[\w-]+","y":"[\w-]+"\}\}$/,
        );
        const epk = JSON.parse(header).epk as { x: string; y: string };
        const size = p.tee.crv === 'P-256' ? 32 : 66;
        expect(Buffer.from(epk.x, 'base64url').length).toBe(size);
        expect(Buffer.from(epk.y, 'base64url').length).toBe(size);
        expect(Buffer.from(jwe.encrypted_key, 'base64url').length).toBe(40); // 32-byte CEK wrapped
      }
    }
  });

  it('uses a fresh CEK, IV and ephemeral key each time', () => {
    const ec = pairs[0]!.tee;
    const a = encryptForTee(ec, new Uint8Array(4));
    const b = encryptForTee(ec, new Uint8Array(4));
    expect(a.protected).not.toBe(b.protected);
    expect(a.iv).not.toBe(b.iv);
    expect(a.encrypted_key).not.toBe(b.encrypted_key);
  });

  it('fails to decrypt in jose when a tag, ciphertext, iv, key or header byte is flipped', async () => {
    for (const p of pairs) {
      const jwe = encryptForTee(p.tee, new TextEncoder().encode('secret value'));
      for (const field of ['tag', 'ciphertext', 'iv', 'encrypted_key', 'protected'] as const) {
        const bytes = Buffer.from(jwe[field], 'base64url');
        bytes[bytes.length - 1]! ^= 0x01;
        const tampered = { ...jwe, [field]: bytes.toString('base64url') };
        await expect(
          flattenedDecrypt(tampered as FlattenedJWE, p.priv),
          `${p.name} ${field}`,
        ).rejects.toThrow();
      }
    }
  });

  it('derives keys with the JWA Concat KDF (RFC 7518 appendix C vector)', () => {
    const z = Buffer.from([
      158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128,
      106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ]);
    const key = concatKdf(z, 'A128GCM', 128, Buffer.from('Alice'), Buffer.from('Bob'));
    expect(key.toString('base64url')).toBe('VqqN6vgjbSBcIijNcacQGg');
    expect(concatKdf(z).length).toBe(32);
  });
});
