/**
 * The owner's VM profile: what the owner expects a host to launch, and which secrets it may receive.
 * One schema, used by the REST contract, the IPC contract, the stores and bundles. Secret VALUES are never
 * part of a profile: a profile only names them; the values live in the OS keychain (SecretStore).
 */
import { z } from 'zod';
import { DEFAULT_VMSA_VARIANT } from './digest/vmsa-default';
import { POLICY_RESERVED_MASK } from './sev/policy';
import { guestPolicyProblem } from './snp/policy';

/** Schemes whose secret is injected by the host before the guest runs (libvirt's launch flow). */
export const SEV_SCHEMES = ['amd-sev', 'amd-sev-es'] as const;
export type SevScheme = (typeof SEV_SCHEMES)[number];
/** Every scheme a profile can have; SEV-SNP guests attest themselves (Trustee KBS protocol). */
export const SCHEMES = [...SEV_SCHEMES, 'amd-sev-snp'] as const;
export type Scheme = (typeof SCHEMES)[number];

/** QEMU's default SNP guest policy (SMT allowed, reserved bit 17 set). */
export const DEFAULT_SNP_POLICY = 0x30000;
/** SNP policy bit 19: the host may debug (read) the guest; SEV Attest never releases to such a guest. */
export const SNP_POLICY_DEBUG_BIT = 1 << 19;

/** VMSA layout of the host kernel: 'legacy' before KVM_SEV_INIT2, 'kvm-init2' on host Linux 6.10+. */
export const VMSA_VARIANTS = ['legacy', 'kvm-init2'] as const;
export type VmsaVariant = (typeof VMSA_VARIANTS)[number];

export const APPROVAL_MODES = ['manual', 'auto'] as const;
export type ApprovalMode = (typeof APPROVAL_MODES)[number];

/** The well-known GUID of a disk (LUKS) passphrase in the EFI secret table (grub efisecret, libvirt `luks-key`). */
export const LUKS_PASSPHRASE_GUID = '736869e5-84f0-4973-92ec-06879ce3da0b';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex (64 characters)');
const hex96 = z.string().regex(/^[0-9a-f]{96}$/, 'a SHA-384 in lower-case hex (96 characters)');
/** A SEV launch digest (SHA-256, 64 hex) or an SNP launch measurement (SHA-384, 96 hex); the profile's scheme decides which. */
const launchDigestHex = z
  .string()
  .regex(/^(?:[0-9a-f]{64}|[0-9a-f]{96})$/, 'a digest in lower-case hex (64 characters, or 96 for SEV-SNP)');
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
  /**
   * Launch digests computed elsewhere (a bundle, another tool): no firmware needed on this machine.
   * SEV: SHA-256 digests, at least one. SEV-SNP: SHA-384 measurements; may be empty when the profile trusts
   * ID or author keys instead (checked on the profile).
   */
  z.object({ kind: z.literal('digests'), launchDigests: z.array(launchDigestHex).max(4096) }),
]);
export type FirmwareRef = z.infer<typeof FirmwareRefSchema>;

/**
 * Where an SNP guest fetches a resource: `GET /kbs/v0/resource/<repository>/<type>/<tag>` (Trustee's
 * resource URI; each part one path segment).
 */
export const ResourcePathSchema = z
  .string()
  .max(300)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\/[A-Za-z0-9][A-Za-z0-9._-]{0,99}\/[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/,
    'repository/type/tag: three parts of letters, digits, dot, dash and underscore',
  );

/** A secret the profile releases; its value is in the SecretStore under secretAccount(vmId, guid). */
export const SecretRefSchema = z.object({
  guid,
  kind: z.enum(['luks-passphrase', 'raw']),
  label: z.string().max(200).optional(),
  /** SEV-SNP only: the resource path the guest fetches this secret by (every SNP secret has one). */
  resource: ResourcePathSchema.optional(),
});
export type SecretRef = z.infer<typeof SecretRefSchema>;

const snpSpl = z.number().int().min(0).max(255);
/** Minimum security patch levels of the TCB the report's VCEK certifies (reported_tcb). */
export const SnpMinimumTcbSchema = z.object({
  bootloader: snpSpl.optional(),
  tee: snpSpl.optional(),
  snp: snpSpl.optional(),
  microcode: snpSpl.optional(),
  /** Turin and later only. */
  fmc: snpSpl.optional(),
});
export type SnpMinimumTcb = z.infer<typeof SnpMinimumTcbSchema>;

export const SNP_VMM_TYPES = ['qemu', 'ec2', 'gce'] as const;
export type SnpVmmType = (typeof SNP_VMM_TYPES)[number];

/**
 * What an SEV-SNP profile adds (docs/protocol.md §11-§15). The launch is vouched for by an expected
 * measurement (the profile's firmware: an artifact matrix over cpuCounts x cpuSignatures, or precomputed
 * measurements) or by a trusted ID / author key digest; the rest are rules every report must meet.
 */
export const SnpSettingsSchema = z.object({
  /** The VMM whose VMSA layout the measurement assumes (sev-snp-measure's --vmm-type). */
  vmmType: z.enum(SNP_VMM_TYPES).default('qemu'),
  /** SEV_FEATURES of the VMSAs (sev-snp-measure's --guest-features; default 0x1, SNP active). */
  guestFeatures: z.number().int().min(0).max(0xffffffff).default(1),
  /** SHA-384 digests of ID keys whose signed ID blocks vouch for a launch. */
  trustedIdKeyDigests: z.array(hex96).max(64).default([]),
  /** SHA-384 digests of author keys (count only when the report says the author key is enabled). */
  trustedAuthorKeyDigests: z.array(hex96).max(64).default([]),
  minimumTcb: SnpMinimumTcbSchema.optional(),
  /** Expected host_data (32 bytes the host set at launch, libvirt `<hostData>`), hex. */
  hostData: hex64.optional(),
  /** The VMPL the report must come from (0: the guest kernel itself). */
  vmpl: z.number().int().min(0).max(3).default(0),
  /**
   * Oldest report version accepted. Version 2 reports carry no CPUID, so the product comes from the key
   * alone (Trustee refuses them); SEV Attest accepts them only when a profile lowers this to 2.
   */
  minimumReportVersion: z.number().int().min(2).max(5).default(3),
});
export type SnpSettings = z.infer<typeof SnpSettingsSchema>;

export const VmProfileSchema = z
  .object({
    id: VmIdSchema,
    name: z.string().min(1).max(200),
    scheme: z.enum(SCHEMES),
    /** SEV: the 32-bit guest policy. SEV-SNP: the guest policy the report must carry exactly (bits 0-25). */
    policy: z.number().int().min(0).max(0xffffffff),
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
    /** Present exactly when scheme is amd-sev-snp. */
    snp: SnpSettingsSchema.optional(),
  })
  .superRefine(checkSchemeRules);
export type VmProfile = z.infer<typeof VmProfileSchema>;

type ProfileShape = Pick<VmProfile, 'scheme' | 'policy' | 'firmware' | 'secrets' | 'snp'>;

/** The rules that depend on the scheme (policy bits, digest sizes, resource paths, snp settings). */
function checkSchemeRules(p: ProfileShape, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message });
  const digests = p.firmware.kind === 'digests' ? p.firmware.launchDigests : [];
  if (p.scheme !== 'amd-sev-snp') {
    // The firmware refuses LAUNCH_START for reserved bits 6-15: such a profile could never launch.
    if ((p.policy & POLICY_RESERVED_MASK) !== 0)
      issue(['policy'], 'policy bits 6-15 are reserved and must be zero');
    if (p.firmware.kind === 'digests' && digests.length === 0)
      issue(['firmware', 'launchDigests'], 'give at least one launch digest');
    digests.forEach((d, i) => {
      if (d.length !== 64)
        issue(['firmware', 'launchDigests', i], 'a SEV launch digest is a SHA-256 (64 hex characters)');
    });
    p.secrets.forEach((s, i) => {
      if (s.resource !== undefined)
        issue(
          ['secrets', i, 'resource'],
          'resource paths are for SEV-SNP profiles (SEV secrets are addressed by GUID)',
        );
    });
    if (p.snp !== undefined) issue(['snp'], 'SNP settings belong to an SEV-SNP profile');
    return;
  }
  const problem = guestPolicyProblem(BigInt(p.policy));
  if (problem) issue(['policy'], `SNP guest policy 0x${p.policy.toString(16)}: ${problem}`);
  if ((p.policy & SNP_POLICY_DEBUG_BIT) !== 0)
    issue(
      ['policy'],
      'SNP policy bit 19 (debug) lets the host read guest memory; SEV Attest never releases to such a guest',
    );
  if (p.snp === undefined) {
    issue(['snp'], 'an SEV-SNP profile needs its SNP settings');
    return;
  }
  digests.forEach((d, i) => {
    if (d.length !== 96)
      issue(['firmware', 'launchDigests', i], 'an SNP launch measurement is a SHA-384 (96 hex characters)');
  });
  if (
    p.firmware.kind === 'digests' &&
    digests.length === 0 &&
    p.snp.trustedIdKeyDigests.length === 0 &&
    p.snp.trustedAuthorKeyDigests.length === 0
  ) {
    issue(['firmware', 'launchDigests'], 'give an expected measurement or a trusted ID or author key digest');
  }
  const seen = new Set<string>();
  p.secrets.forEach((s, i) => {
    if (s.resource === undefined)
      issue(['secrets', i, 'resource'], 'an SEV-SNP secret needs its resource path (repository/type/tag)');
    else if (seen.has(s.resource)) issue(['secrets', i, 'resource'], `resource ${s.resource} is named twice`);
    else seen.add(s.resource);
  });
}

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

/** The secret an SNP profile releases under a resource path, if any. */
export function secretForResource(p: Pick<VmProfile, 'secrets'>, resource: string): SecretRef | undefined {
  return p.secrets.find((s) => s.resource === resource);
}
