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

describe('VmProfileSchema: SEV-SNP profiles', () => {
  const snp = {
    ...base,
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    firmware: { kind: 'digests', launchDigests: ['b'.repeat(96)] },
    snp: {},
    secrets: [
      {
        guid: '736869e5-84f0-4973-92ec-06879ce3da0b',
        kind: 'luks-passphrase',
        resource: 'default/luks/root',
      },
    ],
  };
  const messages = (v: unknown) =>
    (VmProfileSchema.safeParse(v).error?.issues ?? []).map((i) => i.message).join('; ');

  it('accepts an SNP profile with a measurement and fills the SNP defaults', () => {
    const p = VmProfileSchema.parse(snp);
    expect(p.snp).toEqual({
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: [],
      trustedAuthorKeyDigests: [],
      vmpl: 0,
      minimumReportVersion: 3,
    });
  });

  it('refuses a debug policy, a policy without bit 17 and reserved high bits', () => {
    expect(messages({ ...snp, policy: 0x30000 | (1 << 19) })).toContain('debug');
    expect(messages({ ...snp, policy: 0x10000 })).toContain('bit 17');
    expect(messages({ ...snp, policy: 0x30000 | (1 << 26) })).toContain('26..63');
  });

  it('needs SNP settings, SHA-384 measurements and something that vouches for the launch', () => {
    const { snp: _omit, ...noSettings } = snp;
    expect(messages(noSettings)).toContain('needs its SNP settings');
    expect(messages({ ...snp, firmware: { kind: 'digests', launchDigests: ['a'.repeat(64)] } })).toContain(
      'SHA-384',
    );
    expect(messages({ ...snp, firmware: { kind: 'digests', launchDigests: [] } })).toContain(
      'trusted ID or author key',
    );
    expect(
      VmProfileSchema.safeParse({
        ...snp,
        firmware: { kind: 'digests', launchDigests: [] },
        snp: { trustedIdKeyDigests: ['c'.repeat(96)] },
      }).success,
    ).toBe(true);
  });

  it('needs one resource path per secret, each named once', () => {
    expect(messages({ ...snp, secrets: [{ ...snp.secrets[0], resource: undefined }] })).toContain(
      'resource path',
    );
    expect(messages({ ...snp, secrets: [{ ...snp.secrets[0], resource: 'default/luks' }] })).toContain(
      'repository/type/tag',
    );
    expect(messages({ ...snp, secrets: [{ ...snp.secrets[0], resource: 'a/../b' }] })).toContain(
      'repository/type/tag',
    );
    const twice = [
      snp.secrets[0],
      { ...snp.secrets[0], guid: '00000000-0000-0000-0000-000000000001', kind: 'raw' },
    ];
    expect(messages({ ...snp, secrets: twice })).toContain('named twice');
  });

  it('keeps SEV profiles free of SNP parts', () => {
    expect(messages({ ...base, snp: {} })).toContain('SEV-SNP profile');
    expect(messages({ ...base, secrets: [{ ...snp.secrets[0] }] })).toContain(
      'resource paths are for SEV-SNP',
    );
    expect(messages({ ...base, firmware: { kind: 'digests', launchDigests: ['b'.repeat(96)] } })).toContain(
      'SHA-256',
    );
    expect(messages({ ...base, firmware: { kind: 'digests', launchDigests: [] } })).toContain('at least one');
  });
});
