/** Fixtures shared by the bundle tests (not used by the product): firmware paths, CPU signatures, a profile. */
import { join } from 'node:path';
import type { VmProfile } from '../../app/profile';

/** Debian's OVMF (package ovmf). */
export const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
/** sevctl's trimmed AmdSev firmware from the test vectors. */
export const SEVCTL_FW = join(
  process.cwd(),
  'test/fixtures/vectors/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9',
);
export const MILAN = { family: 25, model: 1, stepping: 1 };
export const GENOA = { family: 25, model: 17, stepping: 0 };

/** A valid SEV-ES profile (policy 0x05, 1 vCPU, Milan, legacy VMSA, placeholder firmware), with `over` on top. */
export function testProfile(over: Partial<VmProfile> = {}): VmProfile {
  return {
    id: 'vm-1',
    name: 'VM 1',
    scheme: 'amd-sev-es',
    policy: 0x05,
    cpuCounts: [1],
    cpuSignatures: [MILAN],
    vmsaVariants: ['legacy'],
    firmware: { kind: 'artifact', sha256: '0'.repeat(64), size: 0 },
    approval: 'manual',
    secrets: [],
    ...over,
  };
}
