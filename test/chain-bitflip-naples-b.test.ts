import { describe, expect, it } from 'vitest';
import { bitsThatStillVerify } from './chain-bitflip-helper';

// See chain-bitflip-helper.ts for what is covered: every bit of each certificate must fail.
// The four Naples certs are split over two files so vitest can run them on both cores.
describe('naples-real: every single flipped bit fails verification', () => {
  for (const which of ['pek', 'cek'] as const) {
    it(`${which}: all 2084 x 8 bits`, () => {
      const t = performance.now();
      const cpu = process.cpuUsage();
      const { survivors, bits } = bitsThatStillVerify('naples', which);
      expect(bits).toBe(2084 * 8);
      expect(survivors).toEqual([]);
      console.log(
        `naples ${which}: ${bits} flips in ${Math.round(performance.now() - t)} ms (cpu ${Math.round(process.cpuUsage(cpu).user / 1000)} ms)`,
      );
    });
  }
});
