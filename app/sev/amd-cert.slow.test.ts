/**
 * Exhaustive: every bit of the pinned Naples ARK and ASK flipped in turn (13,312 RSA verifications), so it
 * lives in the `slow` vitest project (`npm test` runs it; `npm run test:unit` does not).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyAmdPair } from './amd-cert';
import { SevError } from './errors';

const rd = (gen: string, which: 'ark' | 'ask') =>
  new Uint8Array(readFileSync(path.join(process.cwd(), 'assets/amd-roots', gen, `${which}.cert`)));

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SevError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'ok';
}

describe('pinned AMD roots, bit flips', () => {
  it('every flipped bit of a pinned ARK or ASK breaks the pair', () => {
    // 2 x 832 x 8 bits for Naples; RSA verification is fast (~0.05 ms).
    const ark = rd('naples', 'ark');
    const ask = rd('naples', 'ask');
    let failures = 0;
    for (const target of [ark, ask]) {
      for (let bit = 0; bit < target.length * 8; bit++) {
        target[bit >> 3]! ^= 1 << (bit & 7);
        if (codeOf(() => verifyAmdPair(ark, ask)) !== 'ok') failures++;
        target[bit >> 3]! ^= 1 << (bit & 7);
      }
    }
    expect(failures).toBe(2 * 832 * 8);
  });
});
