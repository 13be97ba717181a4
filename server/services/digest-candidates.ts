/**
 * The owner-facing description of expected digests (the IPC contract's DigestCandidate), shared by the
 * live preview and by the mismatch explanation a failed validate leaves in the audit log, so the UI
 * reads one shape in both places.
 */
import type { DigestCandidate, DigestInputs } from '../../app/digest/candidates';
import { kernelHashesHex, resolveKernelHashes } from '../../app/digest/hashes-table';
import type { VmProfile } from '../../app/profile';
import type { ExpectedDigest } from './expected-digests';

/** The kernel, initrd and cmdline hashes a profile measures, in hex; undefined without direct boot. */
export async function profileKernelHashes(
  p: Pick<VmProfile, 'kernelHash' | 'initrdHash' | 'cmdline' | 'cmdlineHash'>,
): Promise<DigestInputs['kernelHashes']> {
  if (p.kernelHash === undefined) return undefined;
  return kernelHashesHex(
    await resolveKernelHashes({
      kernel: { sha256hex: p.kernelHash },
      ...(p.initrdHash !== undefined ? { initrd: { sha256hex: p.initrdHash } } : {}),
      ...(p.cmdline !== undefined ? { cmdline: p.cmdline } : {}),
      ...(p.cmdlineHash !== undefined ? { cmdlineHash: p.cmdlineHash } : {}),
    }),
  );
}

/** One expected digest with the inputs behind it, in the contract's words. */
export function digestCandidate(
  p: Pick<VmProfile, 'scheme' | 'policy' | 'firmware'>,
  d: ExpectedDigest,
  kernelHashes: DigestInputs['kernelHashes'],
): DigestCandidate {
  const inputs: DigestInputs = { scheme: p.scheme, policy: p.policy };
  if (p.firmware.kind === 'artifact') inputs.firmwareSha256 = p.firmware.sha256;
  if (d.inputs.cpus !== undefined) inputs.cpuCount = d.inputs.cpus;
  if (d.inputs.cpuSignature !== undefined) inputs.cpuSignature = d.inputs.cpuSignature;
  if (d.inputs.vmsaVariant !== undefined) inputs.vmsaVariant = d.inputs.vmsaVariant;
  if (kernelHashes) inputs.kernelHashes = kernelHashes;
  return { launchDigest: d.hex, inputs };
}
