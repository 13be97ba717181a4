/**
 * Exhaustive single-bit-flip check of a real chain (PDH, PEK, OCA, CEK: 2084 x 8 bits each).
 *
 * What is covered: EVERY bit of each certificate. Bits in [0, 0x414) change the signed body; bits of
 * the used signature bytes (r, s, the RSA signature) break the signature; bits of a slot's usage or
 * algo break the slot match (or make the slot malformed); bits of the unused parts (high bytes of
 * the 72-byte r/s, the slot tail, empty slots) are rejected by the strict encoding checks, which are
 * stricter than the firmware (it ignores the slot tail). A VerifiedLinkCache keeps the unchanged
 * links from being re-verified, so each flip costs about one signature verification (~0.65 ms for
 * ECDSA P-384 on this machine, so ~10k verifications per ECDSA-signed cert).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { verifyChain, VerifiedLinkCache } from '../../app/sev/chain';
import { TrustStore } from '../../app/sev/roots';
import { concat } from '../../app/sev/bytes';
import { SevError } from '../../app/sev/errors';

export type CertName = 'pdh' | 'pek' | 'oca' | 'cek';

/** Flips every bit (or one bit of every byte) of one certificate; returns the bits (as indexes) whose flip still verified. */
export function bitsThatStillVerify(
  gen: 'naples' | 'rome',
  which: CertName,
  mode: 'every-bit' | 'one-bit-per-byte' = 'every-bit',
): { survivors: number[]; bits: number } {
  const rd = (n: string) =>
    new Uint8Array(
      readFileSync(path.join(process.cwd(), 'test/fixtures/platforms', `${gen}-real`, `${n}.cert`)),
    );
  const certs: Record<CertName, Uint8Array> = {
    pdh: rd('pdh'),
    pek: rd('pek'),
    oca: rd('oca'),
    cek: rd('cek'),
  };
  const trust = TrustStore.pinned();
  const cache = new VerifiedLinkCache();
  const run = () =>
    verifyChain({ pdh: certs.pdh, certChain: concat(certs.pek, certs.oca, certs.cek) }, trust, {
      linkCache: cache,
    });
  run(); // the untouched chain verifies (and fills the cache)
  const target = certs[which];
  const survivors: number[] = [];
  let tried = 0;
  for (let bit = 0; bit < target.length * 8; bit++) {
    // one-bit-per-byte flips bit (byte index mod 8) of every byte: all bytes, all bit positions.
    if (mode === 'one-bit-per-byte' && (bit & 7) !== (bit >> 3) % 8) continue;
    tried++;
    target[bit >> 3]! ^= 1 << (bit & 7);
    try {
      run();
      survivors.push(bit);
    } catch (e) {
      if (!(e instanceof SevError)) throw e;
    }
    target[bit >> 3]! ^= 1 << (bit & 7);
  }
  run(); // restored: verifies again
  return { survivors, bits: tried };
}

/**
 * A suite asserting that every flipped bit of the named certificates fails; the four certificates of a
 * chain are split over two test files so vitest runs them on both cores.
 */
export function describeEveryBitFails(gen: 'naples' | 'rome', certs: readonly CertName[]): void {
  describe(`${gen}-real: every single flipped bit fails verification`, () => {
    for (const which of certs) {
      it(`${which}: all 2084 x 8 bits`, () => {
        const t = performance.now();
        const cpu = process.cpuUsage();
        const { survivors, bits } = bitsThatStillVerify(gen, which);
        expect(bits).toBe(2084 * 8);
        expect(survivors).toEqual([]);
        console.log(
          `${gen} ${which}: ${bits} flips in ${Math.round(performance.now() - t)} ms (cpu ${Math.round(process.cpuUsage(cpu).user / 1000)} ms)`,
        );
      });
    }
  });
}
