import { describe, expect, it } from 'vitest';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { sevKdf } from './kdf';
import { toHex } from './bytes';

// An independent SP 800-108 counter-mode KDF on @noble/hashes, with the LE counter/length of docs/protocol.md §4.
function referenceKdf(key: Uint8Array, label: string, ctx: Uint8Array, bits: number): Uint8Array {
  const le = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  const out: number[] = [];
  for (let i = 1; out.length < bits / 8; i++) {
    const msg = [...le(i), ...new TextEncoder().encode(label), 0, ...ctx, ...le(bits)];
    out.push(...hmac(sha256, key, Uint8Array.from(msg)));
  }
  return Uint8Array.from(out.slice(0, bits / 8));
}

describe('sevKdf', () => {
  it('matches the virtee/sev key.rs `derive` vector', () => {
    const out = sevKdf(new Uint8Array(16), 'sev-master-secret', new Uint8Array(16), 128);
    expect(toHex(out)).toBe('ab4d269fcc62bedb4511d56c386ce706');
  });

  it('agrees with an independent implementation for multi-block and odd lengths', () => {
    const key = Uint8Array.from({ length: 48 }, (_, i) => i * 7);
    const ctx = Uint8Array.from({ length: 16 }, (_, i) => 255 - i);
    for (const bits of [8, 128, 256, 264, 512, 1024]) {
      expect(toHex(sevKdf(key, 'sev-kek', ctx, bits))).toBe(toHex(referenceKdf(key, 'sev-kek', ctx, bits)));
    }
    expect(toHex(sevKdf(key, 'sev-kik', new Uint8Array(0), 128))).toBe(
      toHex(referenceKdf(key, 'sev-kik', new Uint8Array(0), 128)),
    );
  });

  it('differs by label and encodes the length (a 256-bit output is not 128 bits extended)', () => {
    const key = new Uint8Array(16).fill(1);
    const a = sevKdf(key, 'sev-kek', new Uint8Array(0), 128);
    const b = sevKdf(key, 'sev-kik', new Uint8Array(0), 128);
    const c = sevKdf(key, 'sev-kek', new Uint8Array(0), 256);
    expect(toHex(a)).not.toBe(toHex(b));
    expect(toHex(c.subarray(0, 16))).not.toBe(toHex(a));
  });

  it('rejects bad output lengths and empty keys with SevError', () => {
    expect(() => sevKdf(new Uint8Array(16), 'x', new Uint8Array(0), 0)).toThrow(/positive multiple of 8/);
    expect(() => sevKdf(new Uint8Array(16), 'x', new Uint8Array(0), 12)).toThrow(/multiple of 8/);
    expect(() => sevKdf(new Uint8Array(0), 'x', new Uint8Array(0), 128)).toThrow(/empty/);
  });
});
