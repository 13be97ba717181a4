import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { KbsProtocolError } from './errors';
import { KbsTokenIssuer } from './jwt';

const T0 = Date.UTC(2026, 11, 3, 8, 0, 0);

function refused(fn: () => unknown, re: RegExp) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KbsProtocolError);
    expect((e as KbsProtocolError).kind).toBe('TokenVerifierError');
    expect((e as Error).message).toMatch(re);
    return;
  }
  expect.unreachable();
}

describe('KbsTokenIssuer', () => {
  it('issues an ES256 JWT that jose decodes and verifies', async () => {
    let now = T0;
    const issuer = new KbsTokenIssuer({ ttlSeconds: 120, now: () => now });
    const { token, expiresAt } = issuer.issue({ 'tee-pubkey': { kty: 'EC' }, profile: 'p1' });
    const claims = decodeJwt(token);
    expect(claims.exp).toBe(T0 / 1000 + 120);
    expect(claims.nbf).toBe(T0 / 1000);
    expect(claims.iat).toBe(T0 / 1000);
    expect(claims.iss).toBe('sev-attest');
    expect(typeof claims.jti).toBe('string');
    expect(claims.profile).toBe('p1');
    expect(expiresAt).toBe(claims.exp);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', typ: 'JWT' });
    // The signature is JOSE r||s (64 bytes), which jose checks with the public JWK.
    expect(Buffer.from(token.split('.')[2]!, 'base64url').length).toBe(64);
    const key = await importJWK(issuer.publicJwk() as Parameters<typeof importJWK>[0], 'ES256');
    const verified = await jwtVerify(token, key, { currentDate: new Date(T0 + 1000), issuer: 'sev-attest' });
    expect(verified.payload.profile).toBe('p1');
    expect(issuer.verify(token).profile).toBe('p1');
    now = T0 + 119_000;
    expect(issuer.verify(token).profile).toBe('p1');
  });

  it('refuses expired, early, tampered and foreign tokens', () => {
    let now = T0;
    const issuer = new KbsTokenIssuer({ ttlSeconds: 60, now: () => now });
    const { token } = issuer.issue({ a: 1 });
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...payload, a: 2 })).toString('base64url');
    refused(() => issuer.verify(`${h}.${forged}.${s}`), /bad signature/);
    const sig = Buffer.from(s, 'base64url');
    sig[5]! ^= 1;
    refused(() => issuer.verify(`${h}.${p}.${sig.toString('base64url')}`), /bad signature/);
    const noneHeader = Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url');
    refused(() => issuer.verify(`${noneHeader}.${p}.${s}`), /unexpected algorithm/);
    refused(() => issuer.verify('abc'), /malformed/);
    refused(() => issuer.verify(`${h}.${p}.`), /malformed/);
    refused(() => new KbsTokenIssuer({ now: () => now }).verify(token), /bad signature/);
    now = T0 + 60_000;
    refused(() => issuer.verify(token), /expired/);
    now = T0 - 5_000;
    refused(() => issuer.verify(token), /not valid yet/);
  });

  it('keeps its own claims and checks its key', () => {
    const issuer = new KbsTokenIssuer();
    expect(() => issuer.issue({ exp: 1 })).toThrow(/set by the issuer/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expect(() => new KbsTokenIssuer({ key: rsa })).toThrow(/P-256 private key/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    expect(() => new KbsTokenIssuer({ key: p384.privateKey })).toThrow(/P-256/);
    expect(() => new KbsTokenIssuer({ key: createPublicKey(p384.privateKey) })).toThrow(/P-256/);
    const given = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const j = new KbsTokenIssuer({ key: given.privateKey }).publicJwk();
    expect(j).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      alg: 'ES256',
      x: given.publicKey.export({ format: 'jwk' }).x,
    });
    expect(j).not.toHaveProperty('d');
  });
});
