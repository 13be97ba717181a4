import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  POLICY_FLAGS,
  POLICY_RESERVED_MASK,
  decodePolicy,
  encodePolicy,
  parsePolicy,
  policyFlagNames,
  policyHex,
} from './policy';
import { SevError } from './errors';

describe('guest policy', () => {
  it('decodes QEMU default 0x1 and the sevctl vectors 0x3 / 0x5', () => {
    expect(decodePolicy(1)).toEqual({
      noDebug: true,
      noKeySharing: false,
      es: false,
      noSend: false,
      domain: false,
      sev: false,
      apiMajor: 0,
      apiMinor: 0,
    });
    expect(decodePolicy(3).noKeySharing).toBe(true);
    expect(decodePolicy(5).es).toBe(true);
    expect(policyFlagNames(0x3f)).toEqual(['NODBG', 'NOKS', 'ES', 'NOSEND', 'DOMAIN', 'SEV']);
  });

  it('reads the minimum API version from bits 16-31', () => {
    const p = decodePolicy(0x33_12_0001);
    expect(p.apiMajor).toBe(0x12);
    expect(p.apiMinor).toBe(0x33);
    expect(encodePolicy(p)).toBe(0x33120001);
  });

  it('rejects reserved bits 6-15 and non-u32 values with bad-policy', () => {
    for (const bad of [0x40, 0x80, 0x8000, 0xffc0, -1, 2 ** 32, 1.5, Number.NaN]) {
      expect(() => decodePolicy(bad)).toThrow(SevError);
    }
    expect(() => decodePolicy(0x41)).toThrow(/reserved bits \(mask 0x40\)/);
  });

  it('formats as libvirt writes it and parses decimal or hex', () => {
    expect(policyHex(5)).toBe('0x0005');
    expect(policyHex(0x33)).toBe('0x0033');
    expect(policyHex(0x00120001)).toBe('0x00120001');
    expect(parsePolicy('0x0005')).toBe(5);
    expect(parsePolicy('7')).toBe(7);
    expect(() => parsePolicy('five')).toThrow(/decimal or 0x-hex/);
    expect(() => parsePolicy('0x1ffffffff')).toThrow(SevError);
  });

  it('labels every flag bit 0-5 once, with a one-line explanation', () => {
    expect(POLICY_FLAGS.map((f) => f.bit)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const f of POLICY_FLAGS) {
      expect(f.label.length).toBeGreaterThan(3);
      expect(f.description).not.toMatch(/\n/);
      expect(decodePolicy(1 << f.bit)[f.key]).toBe(true);
    }
  });

  it('has no node imports (the renderer imports it)', () => {
    const src = readFileSync(join(__dirname, 'policy.ts'), 'utf8');
    expect(src).not.toMatch(/from ['"]node:/);
    const errors = readFileSync(join(__dirname, 'errors.ts'), 'utf8');
    expect(errors).not.toMatch(/from ['"]node:/);
  });

  it('property: any number either decodes and round-trips or throws bad-policy', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -(2 ** 33), max: 2 ** 33 }), fc.double()), (n) => {
        let decoded: ReturnType<typeof decodePolicy> | undefined;
        try {
          decoded = decodePolicy(n);
        } catch (e) {
          expect(e).toBeInstanceOf(SevError);
          expect((e as SevError).code).toBe('bad-policy');
          return;
        }
        expect(encodePolicy(decoded) === n).toBe(true); // -0 decodes as 0
        expect(n & POLICY_RESERVED_MASK).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });
});
