import { describe, expect, it } from 'vitest';
import { VmProfileSchema } from './profile';

const base = {
  id: 'web-1',
  name: 'web 1',
  scheme: 'amd-sev',
  policy: 0x3,
  cpuCounts: [1],
  firmware: { kind: 'digests', launchDigests: ['a'.repeat(64)] },
};

describe('VmProfileSchema', () => {
  it('accepts a plain SEV profile and fills defaults', () => {
    const p = VmProfileSchema.parse(base);
    expect(p.approval).toBe('manual');
    expect(p.secrets).toEqual([]);
  });

  it('refuses reserved policy bits 6-15 wherever a profile is saved (REST, UI, stores, bundles)', () => {
    for (const policy of [0x40, 0x41, 0x8000, 0x00ff]) {
      const r = VmProfileSchema.safeParse({ ...base, policy });
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.message).toContain('reserved');
    }
    expect(VmProfileSchema.safeParse({ ...base, policy: 0x00110007 }).success).toBe(true);
  });
});
