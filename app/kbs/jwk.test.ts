import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KbsProtocolError } from './errors';
import { parseTeePubkey } from './jwk';

function ecJwk(curve: 'prime256v1' | 'secp521r1', crv: string) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const pub = publicKey.export({ format: 'jwk' });
  return {
    pub: { kty: 'EC', crv, alg: 'ECDH-ES+A256KW', x: pub.x!, y: pub.y! },
    priv: privateKey.export({ format: 'jwk' }),
  };
}
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPub = rsa.publicKey.export({ format: 'jwk' });
const RSA = { kty: 'RSA', alg: 'RSA-OAEP-256', n: rsaPub.n!, e: rsaPub.e! };
const P256 = ecJwk('prime256v1', 'P-256');
const P521 = ecJwk('secp521r1', 'P-521');

function refused(jwk: unknown, re: RegExp) {
  try {
    parseTeePubkey(jwk);
  } catch (e) {
    expect(e).toBeInstanceOf(KbsProtocolError);
    expect((e as KbsProtocolError).kind).toBe('AttestationError');
    expect((e as Error).message).toMatch(re);
    return;
  }
  expect.unreachable(`accepted ${JSON.stringify(jwk)}`);
}

describe('parseTeePubkey', () => {
  it('accepts the keys guests send', () => {
    const a = parseTeePubkey(P256.pub);
    expect(a.kind === 'ec' && a.crv).toBe('P-256');
    expect(a.key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const b = parseTeePubkey(P521.pub);
    expect(b.kind === 'ec' && b.crv).toBe('P-521');
    const c = parseTeePubkey(RSA);
    expect(c.kind).toBe('rsa');
    expect(c.key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(c.jwk).toEqual(RSA);
  });

  it('refuses private members', () => {
    refused({ ...P256.pub, d: P256.priv.d }, /private key member "d"/);
    refused({ ...RSA, p: 'AQAB' }, /private key member "p"/);
    refused({ ...RSA, k: 'AQAB' }, /private key member "k"/);
  });

  it('refuses wrong or missing alg, other types and curves, unknown members', () => {
    refused({ ...P256.pub, alg: 'RSA-OAEP-256' }, /alg "ECDH-ES\+A256KW"/);
    refused({ kty: 'EC', crv: 'P-256', x: P256.pub.x, y: P256.pub.y }, /alg/);
    refused({ ...RSA, alg: 'RSA-OAEP' }, /alg "RSA-OAEP-256"/);
    refused({ ...P256.pub, crv: 'P-384' }, /curve "P-384" is not supported/);
    refused({ ...P256.pub, crv: 'secp256k1' }, /not supported/);
    refused({ kty: 'OKP', crv: 'X25519', x: 'AA' }, /key type "OKP"/);
    refused({ ...P256.pub, use: 'enc' }, /unexpected member "use"/);
    refused(null, /JWK object/);
    refused([P256.pub], /JWK object/);
  });

  it('refuses coordinates of the wrong length or encoding', () => {
    const x = Buffer.from(P256.pub.x, 'base64url');
    refused(
      { ...P256.pub, x: Buffer.concat([Buffer.alloc(1), x]).toString('base64url') },
      /x must be 32 bytes/,
    );
    refused({ ...P256.pub, x: x.subarray(1).toString('base64url') }, /x must be 32 bytes/);
    refused({ ...P256.pub, x: x.toString('base64') + '=' }, /base64url without padding/);
    refused({ ...P256.pub, y: P256.pub.y.replace(/.$/, '+') }, /base64url without padding/);
    // Non-zero unused bits in the last character: decodes, but is not the canonical form.
    const last = P256.pub.x.at(-1)!;
    const alt = 'AEIMQUYcgkosw048'.includes(last) ? String.fromCharCode(last.charCodeAt(0) + 1) : last;
    if (alt !== last) refused({ ...P256.pub, x: P256.pub.x.slice(0, -1) + alt }, /canonical base64url/);
    refused({ ...P521.pub, y: P256.pub.y }, /y must be 66 bytes/);
  });

  it('refuses a point that is not on the curve', () => {
    const y = Buffer.from(P256.pub.y, 'base64url');
    y[31]! ^= 1;
    refused({ ...P256.pub, y: y.toString('base64url') }, /not on P-256/);
  });

  it('refuses weak, huge or odd RSA keys', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    refused({ ...RSA, n: small.n }, /1024 bits is outside 2048..8192/);
    refused(
      { ...RSA, n: Buffer.concat([Buffer.from([0xff]), Buffer.alloc(1025, 0xff)]).toString('base64url') },
      /8208 bits/,
    );
    refused(
      { ...RSA, n: Buffer.concat([Buffer.alloc(1), Buffer.from(RSA.n, 'base64url')]).toString('base64url') },
      /leading zero/,
    );
    refused({ ...RSA, e: 'Aw' }, /65537/);
    const even = Buffer.from(RSA.n, 'base64url');
    even[even.length - 1]! &= 0xfe;
    refused({ ...RSA, n: even.toString('base64url') }, /odd/);
  });
});
