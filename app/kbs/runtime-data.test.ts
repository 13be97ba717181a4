import canonicalize from 'canonicalize';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kbsReportData, kbsRuntimeDataJson } from './runtime-data';

const JWK = {
  kty: 'EC',
  crv: 'P-256',
  alg: 'ECDH-ES+A256KW',
  x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
  y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
};

describe('kbsReportData', () => {
  it('hashes the canonical {nonce, tee-pubkey, additional-evidence} and pads to 64 bytes', () => {
    const nonce = 'q2hL3TGOZlLaZ7sBZJ7bhlO6qGkTrG0UgUi3oEyM1F0=';
    const rd = kbsReportData(nonce, JWK);
    const expected = createHash('sha384')
      .update(canonicalize({ 'tee-pubkey': JWK, nonce, 'additional-evidence': '' })!)
      .digest();
    expect(rd.length).toBe(64);
    expect(Buffer.from(rd.subarray(0, 48)).equals(expected)).toBe(true);
    expect(rd.subarray(48).every((b) => b === 0)).toBe(true);
  });

  it('writes the exact canonical text the guest hashes', () => {
    expect(kbsRuntimeDataJson('n', { y: '2', x: '1' })).toBe(
      '{"additional-evidence":"","nonce":"n","tee-pubkey":{"x":"1","y":"2"}}',
    );
  });

  it('binds the additional evidence, the nonce and every key member', () => {
    const base = Buffer.from(kbsReportData('n', JWK));
    expect(Buffer.from(kbsReportData('n', JWK, '{"dev":1}')).equals(base)).toBe(false);
    expect(Buffer.from(kbsReportData('m', JWK)).equals(base)).toBe(false);
    expect(Buffer.from(kbsReportData('n', { ...JWK, alg: 'RSA-OAEP-256' })).equals(base)).toBe(false);
    // Member order of the key does not matter (canonical form).
    const reordered = { y: JWK.y, x: JWK.x, alg: JWK.alg, crv: JWK.crv, kty: JWK.kty };
    expect(Buffer.from(kbsReportData('n', reordered)).equals(base)).toBe(true);
  });
});
