/**
 * A verified bundle as a VM registration: precomputed launch digests plus the bundle's policy, matrix,
 * kernel hashes, minimum API, builds and chip ids, checked by the same rules as a VM registered by hand.
 * An SEV-SNP bundle also restores the profile's SNP rules (docs/bundles.md "SEV-SNP bundles").
 */
import { VmPutRequestSchema, describeZodError, vmBodyToProfileFields } from '../contract/rest';
import { DEFAULT_VMSA_VARIANT } from '../digest/vmsa-default';
import { VmProfileSchema, type SnpSettings } from '../profile';
import type { FirmwareSource, VmProfileFields, VmRegistration } from '../vm-registration';
import { bundleDigests, bundleToVmBody, type BundleBody } from './bundle';
import { BundleError } from './errors';

type BundleRegistration = VmRegistration & { firmware: Extract<FirmwareSource, { kind: 'digests' }> };

/** The registration of `b` under `id` (bundle-invalid when the bundle cannot be registered). */
export function bundleRegistration(
  b: BundleBody,
  id: string,
  opts: { approval?: 'manual' | 'auto'; name?: string } = {},
): BundleRegistration {
  if (b.scheme === 'amd-sev-snp') return snpBundleRegistration(b, id, opts);
  const parsed = VmPutRequestSchema.safeParse(bundleToVmBody(b, opts));
  if (!parsed.success) {
    throw new BundleError(
      'bundle-invalid',
      `the bundle cannot be registered: ${describeZodError(parsed.error)}`,
    );
  }
  return {
    fields: vmBodyToProfileFields(id, parsed.data),
    firmware: { kind: 'digests', launchDigests: parsed.data['launch-digests']! },
  };
}

/**
 * An SEV-SNP bundle's profile: its measurements as precomputed digests, the vCPU counts and signatures
 * they span, the kernel hashes, and the SNP rules (VMM type and guest features from its rows). Checked
 * with the profile schema itself, so an import can never store what the editor would refuse.
 */
function snpBundleRegistration(
  b: BundleBody,
  id: string,
  opts: { approval?: 'manual' | 'auto'; name?: string },
): BundleRegistration {
  const s = b.snp!;
  const row = b.rows[0]!;
  const features = BigInt(row['guest-features']!);
  if (features > 0xffffffffn) {
    throw new BundleError(
      'bundle-invalid',
      `the bundle's guest features ${row['guest-features']} do not fit a profile (at most 0xffffffff)`,
    );
  }
  const snp: SnpSettings = {
    vmmType: row['vmm-type']!,
    guestFeatures: Number(features),
    trustedIdKeyDigests: [...s['trusted-id-key-digests']],
    trustedAuthorKeyDigests: [...s['trusted-author-key-digests']],
    ...(s['minimum-tcb'] ? { minimumTcb: { ...s['minimum-tcb'] } } : {}),
    ...(s['host-data'] !== undefined ? { hostData: s['host-data'] } : {}),
    vmpl: s.vmpl,
    minimumReportVersion: s['minimum-report-version'],
  };
  const fields: VmProfileFields = {
    id,
    name: opts.name ?? b.vm.name,
    scheme: 'amd-sev-snp',
    policy: b.policy,
    cpuCounts: b.matrix['cpu-counts'],
    cpuSignatures: b.matrix['cpu-signatures'].map((x) => ({
      family: x.family,
      model: x.model,
      stepping: x.stepping,
    })),
    vmsaVariants: [DEFAULT_VMSA_VARIANT],
    approval: opts.approval ?? 'manual',
    snp,
  };
  if (b.kernel) {
    fields.kernelHash = b.kernel['kernel-hash'];
    fields.initrdHash = b.kernel['initrd-hash'];
    if (b.kernel.cmdline !== undefined) fields.cmdline = b.kernel.cmdline;
    else fields.cmdlineHash = b.kernel['cmdline-hash'];
  }
  if (b['allowed-cpu-ids']) fields.allowedCpuIds = [...b['allowed-cpu-ids']];
  const firmware = { kind: 'digests' as const, launchDigests: bundleDigests(b) };
  const checked = VmProfileSchema.safeParse({ ...fields, firmware, secrets: [] });
  if (!checked.success) {
    const i = checked.error.issues[0]!;
    throw new BundleError(
      'bundle-invalid',
      `the bundle cannot be registered: ${i.path.map(String).join('.') || '(profile)'}: ${i.message}`,
    );
  }
  return { fields, firmware };
}
