/**
 * The owner's chain verification (app/sev/chain.ts, roots.ts) against the simulated platform's
 * certificates: they anchor to the simulator's own ARK/ASK when added as an extra root, never to AMD's.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../app/sev/chain';
import { TrustStore } from '../../app/sev/roots';
import { SevError } from '../../app/sev/errors';
import { SimulatedSevPlatform } from '../../app/sim/platform';

function sevErrorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SevError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('simulated chain <-> owner chain verification', () => {
  let plat: SimulatedSevPlatform;
  let other: SimulatedSevPlatform;
  beforeAll(() => {
    plat = SimulatedSevPlatform.create();
    other = SimulatedSevPlatform.create();
  });

  it('exported chain: platform links verify, but the unsigned CEK cannot anchor', () => {
    const code = sevErrorCode(() =>
      verifyChain({ pdh: plat.pdh, certChain: plat.certChain }, TrustStore.pinned()),
    );
    expect(code).toBe('cek-unsigned');
  });

  it('with the KDS-style signed CEK: untrusted under AMD roots, trusted under the simulator ASK||ARK', () => {
    const input = { pdh: plat.pdh, certChain: plat.certChain, cek: plat.signedCek };
    expect(sevErrorCode(() => verifyChain(input, TrustStore.pinned()))).toBe('chain-not-trusted');
    const trust = TrustStore.pinned();
    trust.addAskArk(plat.askArk, 'sim');
    const r = verifyChain(input, trust);
    expect(r.anchor).toMatchObject({ kind: 'extra', label: 'sim' });
    expect(r.cekSource).toBe('supplied');
    expect([r.apiMajor, r.apiMinor]).toEqual([plat.apiMajor, plat.apiMinor]);
    // another simulated platform's roots do not anchor this chain
    const wrong = TrustStore.empty();
    wrong.addAskArk(other.askArk, 'other');
    expect(sevErrorCode(() => verifyChain(input, wrong))).toBe('chain-not-trusted');
    // another chip's CEK does not belong to this chain
    expect(sevErrorCode(() => verifyChain({ ...input, cek: other.signedCek }, trust))).not.toBe('ok');
  });

  it('any flipped bit in the signed bodies of PDH / PEK / OCA / CEK breaks verification', () => {
    const trust = TrustStore.empty();
    trust.addAskArk(plat.askArk, 'sim');
    const input = { pdh: plat.pdh, certChain: plat.certChain, cek: plat.signedCek };
    const flip = (b: Uint8Array, i: number) => {
      const c = Uint8Array.from(b);
      c[i]! ^= 1 << (i % 8);
      return c;
    };
    // a sample of bytes across each signed body (key bytes, header, usage/algo)
    for (const i of [0, 4, 8, 12, 0x10, 0x14, 0x30, 0x5c, 0x80, 0x413]) {
      expect(sevErrorCode(() => verifyChain({ ...input, pdh: flip(plat.pdh, i) }, trust))).not.toBe('ok');
      for (const base of [0, 2084, 4168]) {
        // The exported CEK is unsigned: its key is bound (PEK sig2, and it must equal the supplied
        // CEK's key), but its api-version bytes (4, 5) are protected by nothing.
        if (base === 4168 && i === 4) continue;
        expect(
          sevErrorCode(() => verifyChain({ ...input, certChain: flip(plat.certChain, base + i) }, trust)),
        ).not.toBe('ok');
      }
      expect(sevErrorCode(() => verifyChain({ ...input, cek: flip(plat.signedCek, i) }, trust))).not.toBe(
        'ok',
      );
    }
    expect(sevErrorCode(() => verifyChain(input, trust))).toBe('ok');
    const cekApiFlipped = flip(plat.certChain, 4168 + 4);
    expect(sevErrorCode(() => verifyChain({ ...input, certChain: cekApiFlipped }, trust))).toBe('ok');
  });

  it('exportUnsignedCek: false and a Rome-like (RSA-4096, SHA-384) platform anchor without a supplied CEK', () => {
    for (const p of [
      SimulatedSevPlatform.create({ exportUnsignedCek: false }),
      SimulatedSevPlatform.create({ generation: 'rome', exportUnsignedCek: false }),
    ]) {
      const trust = TrustStore.empty();
      trust.addAskArk(p.askArk, 'sim');
      const r = verifyChain({ pdh: p.pdh, certChain: p.certChain }, trust);
      expect(r.cekSource).toBe('chain');
    }
  }, 30_000);
});
