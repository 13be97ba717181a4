/**
 * The owner's VM profile: what the owner expects a host to launch, and which secrets it may receive.
 * One schema, used by the REST contract, the IPC contract, the stores and bundles. Secret VALUES are never
 * part of a profile: a profile only names them; the values live in the OS keychain (SecretStore).
 */
import { z } from 'zod';
import { DEFAULT_VMSA_VARIANT } from './digest/vmsa-default';
import { POLICY_RESERVED_MASK } from './sev/policy';

export const SCHEMES = ['amd-sev', 'amd-sev-es'] as const;
export type Scheme = (typeof SCHEMES)[number];

/** VMSA layout of the host kernel: 'legacy' before KVM_SEV_INIT2, 'kvm-init2' on host Linux 6.10+. */
export const VMSA_VARIANTS = ['legacy', 'kvm-init2'] as const;
export type VmsaVariant = (typeof VMSA_VARIANTS)[number];

export const APPROVAL_MODES = ['manual', 'auto'] as const;
export type ApprovalMode = (typeof APPROVAL_MODES)[number];

/** The well-known GUID of a disk (LUKS) passphrase in the EFI secret table (grub efisecret, libvirt `luks-key`). */
export const LUKS_PASSPHRASE_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex (64 characters)');
const guid = z
  .string()
  .regex(
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    'a GUID in lower-case canonical form',
  );
const u8 = z.number().int().min(0).max(255);

export const VmIdSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'letters, digits, dot, dash and underscore, starting with a letter or digit',
  );

export const CpuSignatureSchema = z.object({
  family: z
    .number()
    .int()
    .min(0)
    .max(0xff + 0xf),
  model: z.number().int().min(0).max(0xff),
  stepping: z.number().int().min(0).max(0xf),
});
export type CpuSignature = z.infer<typeof CpuSignatureSchema>;

export const ApiVersionSchema = z.object({ major: u8, minor: u8 });
export type ApiVersion = z.infer<typeof ApiVersionSchema>;

/** Where the expected launch digests come from. */
export const FirmwareRefSchema = z.discriminatedUnion('kind', [
  /** An imported firmware image, content-addressed in the artifact store. */
  z.object({
    kind: z.literal('artifact'),
    sha256: hex64,
    size: z.number().int().nonnegative(),
    name: z.string().max(255).optional(),
  }),
  /** Launch digests computed elsewhere (a bundle, another tool): no firmware needed on this machine. */
  z.object({ kind: z.literal('digests'), launchDigests: z.array(hex64).min(1).max(4096) }),
]);
export type FirmwareRef = z.infer<typeof FirmwareRefSchema>;

/** A secret the profile releases; its value is in the SecretStore under secretAccount(vmId, guid). */
export const SecretRefSchema = z.object({
  guid,
  kind: z.enum(['luks-passphrase', 'raw']),
  label: z.string().max(200).optional(),
});
export type SecretRef = z.infer<typeof SecretRefSchema>;

export const VmProfileSchema = z.object({
  id: VmIdSchema,
  name: z.string().min(1).max(200),
  scheme: z.enum(SCHEMES),
  policy: z
    .number()
    .int()
    .min(0)
    .max(0xffffffff)
    // The firmware refuses LAUNCH_START for reserved bits 6-15: such a profile could never launch.
    .refine((p) => (p & POLICY_RESERVED_MASK) === 0, 'policy bits 6-15 are reserved and must be zero'),
  cpuCounts: z.array(z.number().int().min(1).max(512)).min(1).max(64),
  cpuSignatures: z.array(CpuSignatureSchema).max(16).default([]),
  vmsaVariants: z.array(z.enum(VMSA_VARIANTS)).max(2).default([DEFAULT_VMSA_VARIANT]),
  firmware: FirmwareRefSchema,
  /** Measured direct boot (kernel hashes table): all three present or all absent. */
  kernelHash: hex64.optional(),
  initrdHash: hex64.optional(),
  cmdline: z.string().max(4096).optional(),
  cmdlineHash: hex64.optional(),
  minApi: ApiVersionSchema.optional(),
  allowedBuildIds: z.array(u8).max(256).optional(),
  /** Chip ids (cpu0-id, 64 bytes) in lower-case hex; absent means any chip. */
  allowedCpuIds: z
    .array(z.string().regex(/^[0-9a-f]{128}$/))
    .max(1024)
    .optional(),
  approval: z.enum(APPROVAL_MODES).default('manual'),
  secrets: z.array(SecretRefSchema).max(64).default([]),
  createdAt: z.string().optional(),
  updatedAt: z.string().optional(),
  /**
   * Changes on every store write (create, replace, delete + create): a launch is bound to the revision it
   * was launched for, so a VM replaced or registered again under the same id is another VM.
   */
  revision: z.string().max(64).optional(),
});
export type VmProfile = z.infer<typeof VmProfileSchema>;

/** The keychain account that holds one secret of one VM. */
export function secretAccount(vmId: string, secretGuid: string): string {
  return `vm/${vmId}/${secretGuid}`;
}

/** True when the profile measures a direct-boot kernel (kernel hashes table in the launch digest). */
export function usesMeasuredDirectBoot(
  p: Pick<VmProfile, 'kernelHash' | 'initrdHash' | 'cmdline' | 'cmdlineHash'>,
): boolean {
  return p.kernelHash !== undefined;
}
