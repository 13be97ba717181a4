/**
 * The Rome-generation simulated platform: generating its 4096-bit RSA ARK/ASK takes seconds, so this lives in
 * the `slow` vitest project (`npm test` runs it; `npm run test:unit` does not).
 */
import { constants, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readU32le, reversed } from '../sev/bytes';
import { Algo } from '../sev/cert';
import { parseAmdCert, verifyAmdPair } from '../sev/amd-cert';
import { SimulatedSevPlatform } from './platform';

// Independent of app/sev's verifier: node:crypto on the raw little-endian signature.
function rsaPssVerifiesLe(data: Uint8Array, sigLe: Uint8Array, key: KeyObject, hash: string): boolean {
  return verify(
    hash,
    data,
    { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hash === 'sha256' ? 32 : 48 },
    reversed(sigLe),
  );
}

describe('simulated platform, rome generation', () => {
  it('rome generation: 4096-bit ARK/ASK, CEK signed RSA_SHA384', () => {
    const p = SimulatedSevPlatform.create({ generation: 'rome' });
    expect(p.ark.length).toBe(1600);
    expect(() => verifyAmdPair(p.ark, p.ask)).not.toThrow();
    expect(readU32le(p.signedCek, 0x418)).toBe(Algo.RSA_SHA384);
    const ask = parseAmdCert(p.ask);
    const askKey = createPublicKey({
      key: { kty: 'RSA', n: Buffer.from(reversed(ask.modulus)).toString('base64url'), e: 'AQAB' },
      format: 'jwk',
    });
    const s = p.signedCek;
    expect(rsaPssVerifiesLe(s.subarray(0, 0x414), s.subarray(0x41c, 0x41c + 512), askKey, 'sha384')).toBe(
      true,
    );
  }, 20_000);
});
