import { describe, expect, it } from 'vitest';
import { bitsThatStillVerify } from './chain-bitflip-helper';

// See chain-bitflip-helper.ts for what is covered. rome-real is checked on every bit in
// chain-bitflip-rome.test.ts; here the Naples CEK (RSA-2048/SHA-256 ASK path, cheap) is checked on
// every bit and the ECDSA-signed PDH/PEK/OCA on one bit of every byte (all bit positions occur),
// to keep the default run short on 2 cores. SEV_BITFLIP_FULL=1 checks every bit of all four.
const full = process.env.SEV_BITFLIP_FULL === '1';

describe('naples-real: flipped bits fail verification', () => {
  for (const which of ['pdh', 'pek', 'oca', 'cek'] as const) {
    const mode = full || which === 'cek' ? 'every-bit' : 'one-bit-per-byte';
    it(`${which}: ${mode}`, () => {
      const t = performance.now();
      const cpu = process.cpuUsage();
      const { survivors, bits } = bitsThatStillVerify('naples', which, mode);
      expect(bits).toBe(mode === 'every-bit' ? 2084 * 8 : 2084);
      expect(survivors).toEqual([]);
      console.log(
        `naples ${which}: ${bits} flips in ${Math.round(performance.now() - t)} ms (cpu ${Math.round(process.cpuUsage(cpu).user / 1000)} ms)`,
      );
    });
  }
});
