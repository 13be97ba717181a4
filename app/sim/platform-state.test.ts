import { describe, expect, it } from 'vitest';
import { SimulatedSevPlatform } from './platform';
import { buildSessionForTest } from '../../test/helpers/sim-testing';

describe('SimulatedSevPlatform exportState / restore', () => {
  it('a restored platform has the same exports and opens sessions made for the original PDH', () => {
    const p = SimulatedSevPlatform.create({ generation: 'naples', apiMajor: 1, apiMinor: 40, build: 7 });
    const state = JSON.parse(JSON.stringify(p.exportState())) as ReturnType<typeof p.exportState>;
    const r = SimulatedSevPlatform.restore(state);
    for (const k of ['pdh', 'certChain', 'signedCek', 'ark', 'ask', 'askArk', 'chipId'] as const) {
      expect(r[k]).toEqual(p[k]);
    }
    expect([r.generation, r.apiMajor, r.apiMinor, r.build]).toEqual(['naples', 1, 40, 7]);
    const tek = new Uint8Array(16).fill(1);
    const tik = new Uint8Array(16).fill(2);
    const { ownerCert, session } = buildSessionForTest({ pdh: p.pdh, policy: 1, tek, tik });
    const guest = r.launchStart({ policy: 1, ownerCert, session });
    expect(guest.transportKeysForTest()).toEqual({ tek, tik });
  });

  it('refuses an unknown state version and bad API bytes', () => {
    const p = SimulatedSevPlatform.create({ generation: 'naples' });
    const s = p.exportState();
    expect(() => SimulatedSevPlatform.restore({ ...s, version: 2 as 1 })).toThrow(RangeError);
    expect(() => SimulatedSevPlatform.restore({ ...s, api: { ...s.api, build: 300 } })).toThrow(RangeError);
  });
});
