/** Shared by the SNP host setup tests: a profile store with one SEV-SNP profile and the key service. */
import { VmProfileSchema, type VmProfile } from '../../app/profile';
import { snpKeyDigest, verifyIdBlock } from '../../app/snp/id-block';
import { createMemoryBackend } from '../../server/services/kv-backend';
import { ProfileStore } from '../../server/services/profile-store';
import type { SecretStore } from '../../server/services/secret-store';
import { SnpIdKeyService, snpMeasurementRows } from '../../server/services/snp-id-keys';

export const M = (c: string) => c.repeat(96);

/** An SNP profile with three precomputed measurements and a host data value. */
export function snpTestProfile(over: Partial<VmProfile> = {}): VmProfile {
  return VmProfileSchema.parse({
    id: 'snp-vm',
    name: 'SNP VM',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [2, 4],
    cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
    firmware: { kind: 'digests', launchDigests: [M('1'), M('2'), M('3')] },
    approval: 'manual',
    secrets: [],
    snp: { hostData: '42'.repeat(32), trustedIdKeyDigests: [M('9')] },
    ...over,
  });
}

export function snpKeyService(secrets: SecretStore, profile: VmProfile = snpTestProfile()) {
  const profiles = new ProfileStore({ backend: createMemoryBackend({ profiles: {} }) });
  profiles.put(profile);
  const service = new SnpIdKeyService({
    profiles,
    secrets,
    measurements: (p) => snpMeasurementRows(p, () => Promise.reject(new Error('no firmware here'))),
  });
  return { profiles, service };
}

export { snpKeyDigest, verifyIdBlock };
