import { describe, expect, it } from 'vitest';
import { verifyChain, type ChainInput, type ChainResult } from '../../app/sev/chain';
import { TrustStore } from '../../app/sev/roots';
import { SimulatedSevPlatform } from '../../app/sim/platform';
import { VerifiedChainCache, verifyChainCached } from './verified-chains';

const platform = SimulatedSevPlatform.create({ generation: 'naples', seed: 'verified-chains' });
const other = SimulatedSevPlatform.create({ generation: 'naples', seed: 'verified-chains-other' });
const input: ChainInput = { pdh: platform.pdh, certChain: platform.certChain, cek: platform.signedCek };

function counting(trust: TrustStore): { verify: (i: ChainInput) => ChainResult; calls: () => number } {
  let n = 0;
  return {
    verify: (i) => {
      n++;
      return verifyChain(i, trust);
    },
    calls: () => n,
  };
}

describe('VerifiedChainCache', () => {
  it('verifies once per identical input, and again for any other bytes', () => {
    const trust = TrustStore.empty();
    trust.addAskArk(platform.askArk, 'sim');
    const cache = new VerifiedChainCache(trust);
    const v = counting(trust);
    const a = verifyChainCached(cache, input, v.verify);
    const b = verifyChainCached(cache, { ...input }, v.verify);
    expect(b).toBe(a);
    expect(v.calls()).toBe(1);
    // Without the CEK the key differs (and the unsigned chain CEK fails): never served from the cache.
    expect(() =>
      verifyChainCached(cache, { pdh: input.pdh, certChain: input.certChain }, v.verify),
    ).toThrow();
    expect(v.calls()).toBe(2);
    const flipped = new Uint8Array(input.pdh);
    flipped[0x100]! ^= 1;
    expect(() => verifyChainCached(cache, { ...input, pdh: flipped }, v.verify)).toThrow();
    expect(v.calls()).toBe(3);
    expect(cache.size).toBe(1);
  });

  it('never caches a failure: a chain refused before a trust change verifies after it', () => {
    const trust = TrustStore.empty();
    const cache = new VerifiedChainCache(trust);
    const v = counting(trust);
    expect(() => verifyChainCached(cache, input, v.verify)).toThrow(/ASK/);
    expect(() => verifyChainCached(cache, input, v.verify)).toThrow(/ASK/);
    expect(v.calls()).toBe(2);
    trust.addAskArk(platform.askArk, 'sim');
    expect(verifyChainCached(cache, input, v.verify).anchor).toMatchObject({ kind: 'extra', label: 'sim' });
    expect(v.calls()).toBe(3);
  });

  it('drops every entry when the trust store changes', () => {
    const trust = TrustStore.empty();
    trust.addAskArk(platform.askArk, 'sim');
    const cache = new VerifiedChainCache(trust);
    const v = counting(trust);
    verifyChainCached(cache, input, v.verify);
    expect(cache.size).toBe(1);
    trust.addAskArk(other.askArk, 'other');
    verifyChainCached(cache, input, v.verify);
    expect(v.calls()).toBe(2);
  });

  it('expires entries after the TTL and keeps at most maxEntries', () => {
    const trust = TrustStore.empty();
    trust.addAskArk(platform.askArk, 'sim');
    trust.addAskArk(other.askArk, 'other');
    let t = 0;
    const cache = new VerifiedChainCache(trust, { ttlMs: 1000, maxEntries: 1, now: () => t });
    const v = counting(trust);
    verifyChainCached(cache, input, v.verify);
    t = 999;
    verifyChainCached(cache, input, v.verify);
    expect(v.calls()).toBe(1);
    t = 1999;
    verifyChainCached(cache, input, v.verify);
    expect(v.calls()).toBe(2);
    const otherInput = { pdh: other.pdh, certChain: other.certChain, cek: other.signedCek };
    verifyChainCached(cache, otherInput, v.verify);
    expect(cache.size).toBe(1);
    verifyChainCached(cache, input, v.verify);
    expect(v.calls()).toBe(4);
  });
});
