/**
 * The measurements an SNP profile admits, against sev-snp-measure's own outputs
 * (test/fixtures/snp/measure/vectors.json): the firmware matrix over vCPU counts x CPU signatures with the
 * profile's kernel hashes, the OVMF pages hashed once per artifact, and precomputed digests as given.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VmProfileSchema } from '../../app/profile';
import { findSnpVcpuType } from '../../app/snp/measure/vcpu-types';
import { SnpMeasurements } from './snp-measurements';

const DIR = join(process.cwd(), 'test/fixtures/snp/measure');
const OVMF = join(DIR, 'ovmf_AmdSev_suffix.bin');
const OVMF_SHA = createHash('sha256').update(readFileSync(OVMF)).digest('hex');
const sha256 = (f: string) =>
  createHash('sha256')
    .update(readFileSync(join(DIR, f)))
    .digest('hex');
const sig = (name: string) => {
  const t = findSnpVcpuType(name)!;
  return { family: t.family, model: t.model, stepping: t.stepping };
};
// sev-snp-measure --mode snp --vcpus 4 --vcpu-type EPYC-Milan --kernel inputs/kernel-17k.bin
//   --initrd inputs/initrd-9k.bin --append 'root=/dev/vda1 ro quiet' --guest-features 0x1
const MILAN_4 =
  'b6ca04a92689bfc08c3c73521d5d383b6b6f9258e07774115084374be218cbeef7356bad65bc71ae5ee6fc2196bfa1d5';
// sev-snp-measure --mode snp --vcpus 1 --vcpu-type EPYC-v4 --guest-features 0x21 (no kernel)
const V4_1 =
  'e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b';

function profile(over: Record<string, unknown>, snp: Record<string, unknown> = {}) {
  return VmProfileSchema.parse({
    id: 'g',
    name: 'g',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1],
    firmware: { kind: 'artifact', sha256: OVMF_SHA, size: readFileSync(OVMF).length },
    snp,
    ...over,
  });
}

describe('SnpMeasurements', () => {
  it('computes the matrix for a firmware artifact, matching sev-snp-measure, and hashes the OVMF once', async () => {
    let lookups = 0;
    const m = new SnpMeasurements({
      firmwarePath: (sha) => {
        lookups++;
        return sha === OVMF_SHA ? OVMF : undefined;
      },
    });
    const milan = profile(
      {
        cpuCounts: [2, 4],
        cpuSignatures: [sig('EPYC-Genoa'), sig('EPYC-Milan')],
        kernelHash: sha256('inputs/kernel-17k.bin'),
        initrdHash: sha256('inputs/initrd-9k.bin'),
        cmdline: 'root=/dev/vda1 ro quiet',
      },
      { guestFeatures: 1 },
    );
    const list = await m.forProfile(milan);
    expect(list).toHaveLength(4);
    expect(list).toContain(MILAN_4);
    const v4 = await m.forProfile(profile({ cpuSignatures: [sig('EPYC-v4')] }, { guestFeatures: 0x21 }));
    expect(v4).toEqual([V4_1]);
    expect(lookups).toBe(1);
    expect(await m.forProfile(milan)).toBe(list);
  });

  it('returns precomputed digests as given; a missing artifact or signature is an error', async () => {
    const m = new SnpMeasurements({ firmwarePath: () => undefined });
    const digests = profile({ firmware: { kind: 'digests', launchDigests: [MILAN_4] } });
    expect(await m.forProfile(digests)).toEqual([MILAN_4]);
    await expect(m.forProfile(profile({ cpuSignatures: [sig('EPYC-v4')] }))).rejects.toThrow(
      /not in the artifact store/,
    );
    await expect(m.forProfile(profile({}))).rejects.toThrow(/vCPU signature/);
  });
});
