/**
 * The REST contract v1: every request and response body of the attestation listener, and its error
 * codes, as zod schemas. One typed file for this boundary: the listener validates untrusted bodies with
 * these, the OpenAPI document is generated from them, and the docs describe them. Field names are
 * kebab-case as in libvirt's proposal; binary values are standard base64 (RFC 4648 §4, padded).
 */
import { DomainError } from '../errors';
import { z } from 'zod';
import {
  APPROVAL_MODES,
  ApiVersionSchema,
  CpuSignatureSchema,
  LUKS_PASSPHRASE_GUID,
  ResourcePathSchema,
  SCHEMES,
  SEV_SCHEMES,
  SNP_POLICY_DEBUG_BIT,
  SNP_VMM_TYPES,
  VMSA_VARIANTS,
  VmIdSchema,
  type SnpSettings,
  type VmProfile,
} from '../profile';
import { guestPolicyProblem } from '../snp/policy';
import { fromBase64, toHex } from '../sev/bytes';
import { POLICY_RESERVED_MASK } from '../sev/policy';

/** Exact sizes of the binary fields (docs/protocol.md §1, §3, §4, §5, §7). */
export const SIZES = {
  sevCert: 2084,
  certChain: 3 * 2084,
  chipId: 64,
  session: 128,
  measurement: 48,
  secretHeader: 52,
} as const;

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The number of bytes a well-formed standard base64 string decodes to. */
export function base64DecodedLength(s: string): number {
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

function b64Len(s: string): number {
  return s.length % 4 === 0 ? base64DecodedLength(s) : -1;
}

/** Standard padded base64 that decodes to exactly `bytes` bytes. */
export function base64Exact(bytes: number, what: string) {
  const chars = 4 * Math.ceil(bytes / 3);
  return z
    .string()
    .length(chars, `${what} must be base64 of exactly ${bytes} bytes (${chars} characters)`)
    .regex(STD_BASE64, `${what} must be standard base64`)
    .refine((s) => b64Len(s) === bytes, `${what} must decode to exactly ${bytes} bytes`)
    .meta({ contentEncoding: 'base64', description: `${what}: base64 of ${bytes} bytes` });
}

/** Standard padded base64 of at most `maxBytes` bytes (at least 1). */
export function base64Max(maxBytes: number, what: string) {
  return z
    .string()
    .min(4, `${what} must not be empty`)
    .max(4 * Math.ceil(maxBytes / 3), `${what} must be at most ${maxBytes} bytes`)
    .regex(STD_BASE64, `${what} must be standard base64`)
    .meta({ contentEncoding: 'base64', description: `${what}: base64, at most ${maxBytes} bytes` });
}

const u8 = z.number().int().min(0).max(255);
const u32 = z.number().int().min(0).max(0xffffffff);
const hex64 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'a SHA-256 in hex (64 characters)')
  .meta({ description: 'SHA-256, hex' });
const hex96 = z
  .string()
  .regex(/^[0-9a-fA-F]{96}$/, 'a SHA-384 in hex (96 characters)')
  .meta({ description: 'SHA-384, hex' });
/** A SEV launch digest (SHA-256) or an SEV-SNP launch measurement (SHA-384); the scheme decides which. */
const launchDigestHex = z
  .string()
  .regex(
    /^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{96})$/,
    'a launch digest in hex: 64 characters (SEV, SEV-ES) or 96 (SEV-SNP)',
  )
  .meta({ description: 'SHA-256 (SEV, SEV-ES) or SHA-384 (SEV-SNP), hex' });
const guid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'a GUID');
const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a UUID');
/** A chip id (cpu0-id) in the profile: 128 hex digits, or base64 of 64 bytes as libvirt prints it. */
const chipIdText = z
  .string()
  .refine(
    (s) => /^[0-9a-fA-F]{128}$/.test(s) || (STD_BASE64.test(s) && b64Len(s) === SIZES.chipId),
    'a chip id: 128 hex digits or base64 of 64 bytes',
  );

// ------------------------------------------------------------------------------------------------
// Errors

/** Every error code the listener answers with, and its HTTP status. */
export const ERROR_STATUS = {
  'bad-request': 400,
  misdirected: 421,
  unauthorized: 401,
  'chain-not-trusted': 403,
  'policy-not-allowed': 403,
  'cpu-id-not-allowed': 403,
  'cpu-id-unproven': 403,
  'cek-unknown-chip': 403,
  denied: 403,
  'measurement-mismatch': 403,
  'policy-mismatch': 403,
  'api-too-old': 403,
  'build-not-allowed': 403,
  'origin-not-allowed': 403,
  'unknown-vm': 404,
  'unknown-connection': 404,
  'unknown-approval': 404,
  'unknown-artifact': 404,
  'not-found': 404,
  'method-not-allowed': 405,
  'request-timeout': 408,
  'connection-used': 409,
  'approval-decided': 409,
  'store-conflict': 409,
  'connection-expired': 410,
  'payload-too-large': 413,
  'unsupported-media-type': 415,
  'rate-limited': 429,
  internal: 500,
  'kds-unavailable': 502,
  'secret-store-unavailable': 503,
  'audit-full': 503,
  'database-unavailable': 503,
  // Measurement bundles (docs/bundles.md; server/listener/bundle-routes.ts).
  'bundle-invalid': 400,
  'bundle-bad-selection': 400,
  'bundle-unsigned': 422,
  'bundle-signature-invalid': 422,
  'bundle-key-untrusted': 403,
  'bundle-export-unsupported': 409,
  'bundle-no-signing-key': 409,
  'bundle-scheme-mismatch': 409,
} as const;
export type ApiErrorCode = keyof typeof ERROR_STATUS;
export const API_ERROR_CODES = Object.keys(ERROR_STATUS) as ApiErrorCode[];

export const ErrorBodySchema = z
  .object({
    error: z.enum(API_ERROR_CODES as [ApiErrorCode, ...ApiErrorCode[]]),
    message: z.string(),
  })
  .meta({ id: 'Error' });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/**
 * A DomainError whose code the REST contract lists (ERROR_STATUS). The listener alone turns a code into an
 * HTTP status; `headers` carries extra response headers (Retry-After).
 */
export class ApiError extends DomainError<ApiErrorCode> {
  constructor(
    code: ApiErrorCode,
    message: string,
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
    this.name = 'ApiError';
  }
}

/** True for a code the REST contract answers with (and so has a status in ERROR_STATUS). */
export function isApiErrorCode(code: string): code is ApiErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_STATUS, code);
}

// ------------------------------------------------------------------------------------------------
// Host-facing

export const LaunchRequestSchema = z
  .strictObject({
    pdh: base64Exact(SIZES.sevCert, 'pdh'),
    'cert-chain': base64Exact(SIZES.certChain, 'cert-chain'),
    'cpu-id': base64Exact(SIZES.chipId, 'cpu-id').optional(),
    cek: base64Exact(SIZES.sevCert, 'cek').optional(),
    policy: u32.optional(),
    scheme: z.enum(SEV_SCHEMES).optional(),
  })
  .meta({ id: 'LaunchRequest' });
export type LaunchRequest = z.infer<typeof LaunchRequestSchema>;

export const LaunchResponseSchema = z
  .object({
    connection: uuid,
    session: base64Exact(SIZES.session, 'session'),
    'owner-cert': base64Exact(SIZES.sevCert, 'owner-cert'),
    policy: u32,
  })
  .meta({ id: 'LaunchResponse' });
export type LaunchResponse = z.infer<typeof LaunchResponseSchema>;

/** The 202 body while the owner has not decided (with a Retry-After header). */
export const PendingResponseSchema = z
  .object({
    status: z.literal('pending'),
    approval: uuid,
    'retry-after': z.number().int().min(1),
    message: z.string(),
  })
  .meta({ id: 'PendingResponse' });
export type PendingResponse = z.infer<typeof PendingResponseSchema>;

export const ValidateRequestSchema = z
  .strictObject({
    'api-major': u8,
    'api-minor': u8,
    'build-id': u8,
    policy: u32,
    measurement: base64Exact(SIZES.measurement, 'measurement'),
    'cpu-count': z.number().int().min(1).max(512).optional(),
  })
  .meta({ id: 'ValidateRequest' });
export type ValidateRequest = z.infer<typeof ValidateRequestSchema>;

export const ValidateResponseSchema = z
  .object({
    'secret-header': base64Exact(SIZES.secretHeader, 'secret-header'),
    'secret-table': base64Max(0x5000, 'secret-table'),
  })
  .meta({ id: 'ValidateResponse' });
export type ValidateResponse = z.infer<typeof ValidateResponseSchema>;

// ------------------------------------------------------------------------------------------------
// Owner-facing

/** A secret to release: a disk passphrase (well-known GUID) or raw data under any GUID. */
export const SecretInputSchema = z.union([
  z.strictObject({
    type: z.literal('luks-passphrase'),
    passphrase: z.string().min(1).max(4096),
    label: z.string().max(200).optional(),
    /** SEV-SNP: the path the guest fetches it by (`GET /kbs/v0/resource/<resource>`). */
    resource: ResourcePathSchema.optional(),
  }),
  z.strictObject({
    type: z.literal('raw').optional(),
    guid,
    data: base64Max(16 * 1024, 'secret data'),
    label: z.string().max(200).optional(),
    resource: ResourcePathSchema.optional(),
  }),
]);

const snpSpl = z.number().int().min(0).max(255);
/** An SEV-SNP VM's settings in a VM body (kebab-case; app/profile.ts SnpSettingsSchema; docs/protocol.md §11-§15). */
export const SnpSettingsBodySchema = z
  .strictObject({
    'vmm-type': z.enum(SNP_VMM_TYPES).optional(),
    'guest-features': z.number().int().min(0).max(0xffffffff).optional(),
    'trusted-id-key-digests': z.array(hex96).max(64).optional(),
    'trusted-author-key-digests': z.array(hex96).max(64).optional(),
    'minimum-tcb': z
      .strictObject({
        bootloader: snpSpl.optional(),
        tee: snpSpl.optional(),
        snp: snpSpl.optional(),
        microcode: snpSpl.optional(),
        fmc: snpSpl.optional(),
      })
      .optional(),
    'host-data': hex64.optional(),
    vmpl: z.number().int().min(0).max(3).optional(),
    'minimum-report-version': z.number().int().min(2).max(5).optional(),
  })
  .meta({ id: 'SnpSettings' });
export type SnpSettingsBody = z.infer<typeof SnpSettingsBodySchema>;
export type SecretInput = z.infer<typeof SecretInputSchema>;

/** Largest inline firmware image accepted in a VM body (base64 inflates it by a third). */
export const MAX_INLINE_FIRMWARE = 16 * 1024 * 1024;

export const VmPutRequestSchema = z
  .strictObject({
    name: z.string().min(1).max(200),
    scheme: z.enum(SCHEMES),
    policy: u32,
    'cpu-count': z.number().int().min(1).max(512).optional(),
    'cpu-counts': z.array(z.number().int().min(1).max(512)).min(1).max(64).optional(),
    'cpu-signature': z.union([CpuSignatureSchema, z.array(CpuSignatureSchema).max(16)]).optional(),
    'vmsa-variant': z.union([z.enum(VMSA_VARIANTS), z.array(z.enum(VMSA_VARIANTS)).min(1).max(2)]).optional(),
    firmware: base64Max(MAX_INLINE_FIRMWARE, 'firmware').optional(),
    'firmware-artifact': hex64.optional(),
    'launch-digests': z.array(launchDigestHex).max(4096).optional(),
    'kernel-hash': hex64.optional(),
    'initrd-hash': hex64.optional(),
    cmdline: z.string().max(4096).optional(),
    'cmdline-hash': hex64.optional(),
    'min-api': ApiVersionSchema.optional(),
    'allowed-build-ids': z.array(u8).max(256).optional(),
    'allowed-cpu-ids': z.array(chipIdText).max(1024).optional(),
    approval: z.enum(APPROVAL_MODES).optional(),
    secrets: z.union([SecretInputSchema, z.array(SecretInputSchema).max(64)]).optional(),
    /** SEV-SNP only; absent on an SNP VM: every setting takes its default. */
    snp: SnpSettingsBodySchema.optional(),
  })
  .superRefine((v, ctx) => {
    const sources = ['firmware', 'firmware-artifact', 'launch-digests'].filter(
      (k) => v[k as keyof typeof v] !== undefined,
    );
    if (sources.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['firmware'],
        message: 'give exactly one of firmware, firmware-artifact, launch-digests',
      });
    }
    if (v['cpu-count'] !== undefined && v['cpu-counts'] !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['cpu-counts'],
        message: 'give cpu-count or cpu-counts, not both',
      });
    }
    if (v.cmdline !== undefined && v['cmdline-hash'] !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['cmdline-hash'],
        message: 'give cmdline or cmdline-hash, not both',
      });
    }
    const direct =
      v['initrd-hash'] !== undefined || v.cmdline !== undefined || v['cmdline-hash'] !== undefined;
    if (direct && v['kernel-hash'] === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['kernel-hash'],
        message: 'initrd-hash, cmdline and cmdline-hash need kernel-hash (measured direct boot)',
      });
    }
    const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const digests = v['launch-digests'] ?? [];
    const secrets = v.secrets === undefined ? [] : [v.secrets].flat();
    if (v.scheme !== 'amd-sev-snp') {
      const reserved = v.policy & POLICY_RESERVED_MASK;
      if (reserved !== 0)
        issue(
          ['policy'],
          `policy 0x${v.policy.toString(16)} sets reserved bits (mask 0x${reserved.toString(16)}); bits 6-15 must be zero`,
        );
      const es = (v.policy & 0x4) !== 0;
      if (es !== (v.scheme === 'amd-sev-es'))
        issue(['scheme'], `scheme ${v.scheme} disagrees with the policy's ES bit (${es ? 'set' : 'clear'})`);
      if (v['launch-digests'] !== undefined && digests.length === 0)
        issue(['launch-digests'], 'give at least one launch digest');
      if (digests.some((d) => d.length !== 64))
        issue(['launch-digests'], `a ${v.scheme} launch digest is a SHA-256 (64 hex characters)`);
      if (v.snp !== undefined) issue(['snp'], 'snp settings are for scheme amd-sev-snp');
      if (secrets.some((s) => s.resource !== undefined))
        issue(['secrets'], 'resource paths are for amd-sev-snp VMs (SEV secrets are addressed by GUID)');
      return;
    }
    // SEV-SNP: the policy is the SNP guest policy (docs/protocol.md §11), not SEV's.
    const problem = guestPolicyProblem(BigInt(v.policy));
    if (problem) issue(['policy'], `SNP guest policy 0x${v.policy.toString(16)}: ${problem}`);
    if ((v.policy & SNP_POLICY_DEBUG_BIT) !== 0)
      issue(
        ['policy'],
        'SNP policy bit 19 (debug) lets the host read guest memory; SEV Attest never releases to such a guest',
      );
    if (digests.some((d) => d.length !== 96))
      issue(['launch-digests'], 'an SNP launch measurement is a SHA-384 (96 hex characters), not a SHA-256');
    if (v['vmsa-variant'] !== undefined)
      issue(['vmsa-variant'], 'vmsa-variant is for SEV-ES; an SNP VM has vmm-type in its snp settings');
    const seen = new Set<string>();
    for (const s of secrets) {
      if (s.resource === undefined)
        issue(['secrets'], 'every secret of an amd-sev-snp VM needs its resource path (repository/type/tag)');
      else if (seen.has(s.resource)) issue(['secrets'], `resource ${s.resource} is named twice`);
      else seen.add(s.resource);
    }
  })
  .meta({ id: 'VmPutRequest' });
export type VmPutRequest = z.infer<typeof VmPutRequestSchema>;

const SecretRefOut = z.object({
  guid,
  type: z.enum(['luks-passphrase', 'raw']),
  label: z.string().optional(),
  resource: z.string().optional(),
});

/** An SEV-SNP VM's settings as the owner API returns them (every default filled in). */
const SnpSettingsOut = z.object({
  'vmm-type': z.enum(SNP_VMM_TYPES),
  'guest-features': u32,
  'trusted-id-key-digests': z.array(hex96),
  'trusted-author-key-digests': z.array(hex96),
  'minimum-tcb': SnpSettingsBodySchema.shape['minimum-tcb'],
  'host-data': hex64.optional(),
  vmpl: z.number().int(),
  'minimum-report-version': z.number().int(),
});

/** A VM as the owner API returns it: secret values never appear, only their GUIDs. */
export const VmResponseSchema = z
  .object({
    id: VmIdSchema,
    name: z.string(),
    scheme: z.enum(SCHEMES),
    policy: u32,
    'cpu-counts': z.array(z.number().int()),
    'cpu-signatures': z.array(CpuSignatureSchema),
    'vmsa-variants': z.array(z.enum(VMSA_VARIANTS)),
    'firmware-artifact': hex64.optional(),
    'launch-digests': z.array(launchDigestHex).optional(),
    'kernel-hash': hex64.optional(),
    'initrd-hash': hex64.optional(),
    cmdline: z.string().optional(),
    'cmdline-hash': hex64.optional(),
    'min-api': ApiVersionSchema.optional(),
    'allowed-build-ids': z.array(u8).optional(),
    'allowed-cpu-ids': z.array(z.string()).optional(),
    approval: z.enum(APPROVAL_MODES),
    secrets: z.array(SecretRefOut),
    /** Present exactly for scheme amd-sev-snp. */
    snp: SnpSettingsOut.optional(),
    'created-at': z.string().optional(),
    'updated-at': z.string().optional(),
  })
  .meta({ id: 'Vm' });
export type VmResponse = z.infer<typeof VmResponseSchema>;

export const VmPutResponseSchema = z
  .object({ vm: VmResponseSchema, warnings: z.array(z.string()) })
  .meta({ id: 'VmPutResponse' });
export type VmPutResponse = z.infer<typeof VmPutResponseSchema>;

export const VmListResponseSchema = z.object({ vms: z.array(VmResponseSchema) }).meta({ id: 'VmList' });

export const ArtifactResponseSchema = z
  .object({ sha256: hex64, size: z.number().int().nonnegative() })
  .meta({ id: 'Artifact' });

export const ApprovalSchema = z
  .object({
    id: uuid,
    state: z.enum(['pending', 'approved', 'denied', 'used']),
    reason: z.string().optional(),
    'vm-id': z.string().optional(),
    client: z.string(),
    'chip-id': z.string().optional(),
    anchor: z.string().optional(),
    policy: u32,
    'created-at': z.string(),
    'expires-at': z.string(),
    'decided-at': z.string().optional(),
    /** What asks: a host's SEV launch, or an SEV-SNP guest's attestation (then `snp` says what it showed). */
    kind: z.enum(['sev-launch', 'snp-attest']),
    snp: z
      .object({
        product: z.string(),
        measurement: z.string(),
        'reported-tcb': z.string(),
        policy: z.string(),
        vmpl: z.number().int(),
        signer: z.enum(['vcek', 'vlek']),
        'vouched-by': z.enum(['measurement', 'id-key', 'author-key']),
        resources: z.array(z.string()),
        revocation: z.string(),
      })
      .optional(),
  })
  .meta({ id: 'Approval' });
export type ApprovalBody = z.infer<typeof ApprovalSchema>;

export const ApprovalListResponseSchema = z
  .object({ approvals: z.array(ApprovalSchema) })
  .meta({ id: 'ApprovalList' });

export const DecisionRequestSchema = z
  .strictObject({ decision: z.enum(['approve', 'deny']) })
  .meta({ id: 'DecisionRequest' });
export type DecisionRequest = z.infer<typeof DecisionRequestSchema>;

/** POST /v1/bundles: a measurement bundle (docs/bundle.schema.json) and how to register it. */
export const BundleImportRequestSchema = z
  .strictObject({
    bundle: z.unknown().meta({ description: 'a signed bundle document (docs/bundle.schema.json)' }),
    'vm-id': VmIdSchema.optional(),
    name: z.string().min(1).max(200).optional(),
    approval: z.enum(APPROVAL_MODES).optional(),
    secrets: z.union([SecretInputSchema, z.array(SecretInputSchema).max(64)]).optional(),
  })
  .meta({ id: 'BundleImportRequest' });
export type BundleImportRequest = z.infer<typeof BundleImportRequestSchema>;

export const BundleImportResponseSchema = z
  .object({
    vm: VmResponseSchema,
    warnings: z.array(z.string()),
    signer: z.object({ fingerprint: z.string(), label: z.string().optional() }),
    rows: z.number().int(),
  })
  .meta({ id: 'BundleImportResponse' });

/** PUT /v1/chips/{chipid}/cek: the ASK-signed CEK AMD's key server gives for that chip, pinned. */
export const PinCekRequestSchema = z
  .strictObject({
    cek: base64Exact(SIZES.sevCert, 'cek'),
    label: z.string().max(200).optional(),
  })
  .meta({ id: 'PinCekRequest' });
export type PinCekRequest = z.infer<typeof PinCekRequestSchema>;

export const PinnedCekSchema = z
  .object({
    'chip-id': z.string().regex(/^[0-9a-f]{128}$/),
    label: z.string().optional(),
    'pinned-at': z.string(),
  })
  .meta({ id: 'PinnedCek' });
export type PinnedCekBody = z.infer<typeof PinnedCekSchema>;

export const PinnedCekListResponseSchema = z
  .object({ chips: z.array(PinnedCekSchema) })
  .meta({ id: 'PinnedCekList' });

export const HealthResponseSchema = z
  .object({
    status: z.literal('ok'),
    version: z.string(),
    tls: z.object({ enabled: z.boolean(), fingerprint: z.string().optional() }),
    'secret-store': z.string(),
    'uptime-seconds': z.number(),
    connections: z.number().int(),
    'pending-approvals': z.number().int(),
    /** The retained audit stream (releases, decisions, profile changes) against its disk budget. */
    audit: z
      .object({
        'retained-bytes': z.number().int(),
        'retained-budget-bytes': z.number().int(),
        /** The budget is reached: secret releases are refused (audit-full) until the owner makes room. */
        full: z.boolean(),
      })
      .optional(),
  })
  .meta({ id: 'Health' });
export type HealthResponse = z.infer<typeof HealthResponseSchema>;

// ------------------------------------------------------------------------------------------------
// Mapping between the kebab-case REST body and the camelCase profile

/** Normalizes a chip id (hex or base64) to the profile's lower-case hex. */
export function chipIdToHex(s: string): string {
  if (/^[0-9a-fA-F]{128}$/.test(s)) return s.toLowerCase();
  return toHex(fromBase64(s));
}

/**
 * The profile fields a VM body determines, except the firmware reference and secrets, which the owner
 * service resolves (artifact import, keychain).
 */
export function vmBodyToProfileFields(
  id: string,
  b: VmPutRequest,
): Omit<VmProfile, 'firmware' | 'secrets' | 'createdAt' | 'updatedAt'> {
  const sigs =
    b['cpu-signature'] === undefined
      ? []
      : Array.isArray(b['cpu-signature'])
        ? b['cpu-signature']
        : [b['cpu-signature']];
  const variants =
    b['vmsa-variant'] === undefined
      ? (['kvm-init2'] as const)
      : Array.isArray(b['vmsa-variant'])
        ? b['vmsa-variant']
        : [b['vmsa-variant']];
  return {
    id,
    name: b.name,
    scheme: b.scheme,
    policy: b.policy,
    cpuCounts: b['cpu-counts'] ?? (b['cpu-count'] !== undefined ? [b['cpu-count']] : [1]),
    cpuSignatures: sigs,
    vmsaVariants: [...new Set(variants)],
    kernelHash: b['kernel-hash']?.toLowerCase(),
    initrdHash: b['initrd-hash']?.toLowerCase(),
    cmdline: b.cmdline,
    cmdlineHash: b['cmdline-hash']?.toLowerCase(),
    minApi: b['min-api'],
    allowedBuildIds: b['allowed-build-ids'],
    allowedCpuIds: b['allowed-cpu-ids']?.map(chipIdToHex),
    approval: b.approval ?? 'manual',
    ...(b.scheme === 'amd-sev-snp' ? { snp: snpSettingsOfBody(b.snp ?? {}) } : {}),
  };
}

/** The profile's SNP settings from a VM body's (defaults filled in; digests lower-cased). */
export function snpSettingsOfBody(b: SnpSettingsBody): SnpSettings {
  const tcb = b['minimum-tcb'];
  return {
    vmmType: b['vmm-type'] ?? 'qemu',
    guestFeatures: b['guest-features'] ?? 1,
    trustedIdKeyDigests: (b['trusted-id-key-digests'] ?? []).map((d) => d.toLowerCase()),
    trustedAuthorKeyDigests: (b['trusted-author-key-digests'] ?? []).map((d) => d.toLowerCase()),
    ...(tcb !== undefined ? { minimumTcb: tcb } : {}),
    ...(b['host-data'] !== undefined ? { hostData: b['host-data'].toLowerCase() } : {}),
    vmpl: b.vmpl ?? 0,
    minimumReportVersion: b['minimum-report-version'] ?? 3,
  };
}

/** A profile's SNP settings in the VM body's words. */
export function snpSettingsToBody(s: SnpSettings): z.infer<typeof SnpSettingsOut> {
  return {
    'vmm-type': s.vmmType,
    'guest-features': s.guestFeatures,
    'trusted-id-key-digests': s.trustedIdKeyDigests,
    'trusted-author-key-digests': s.trustedAuthorKeyDigests,
    ...(s.minimumTcb !== undefined ? { 'minimum-tcb': s.minimumTcb } : {}),
    ...(s.hostData !== undefined ? { 'host-data': s.hostData } : {}),
    vmpl: s.vmpl,
    'minimum-report-version': s.minimumReportVersion,
  };
}

/** The GUID a secret input is stored under. */
export function secretInputGuid(s: SecretInput): string {
  return s.type === 'luks-passphrase' ? LUKS_PASSPHRASE_GUID : s.guid.toLowerCase();
}

/** The bytes a secret input releases (a passphrase as UTF-8, no terminator). */
export function secretInputBytes(s: SecretInput): Uint8Array {
  return s.type === 'luks-passphrase' ? new TextEncoder().encode(s.passphrase) : fromBase64(s.data);
}

/** The REST view of a profile (no secret values). */
export function profileToVmResponse(p: VmProfile): VmResponse {
  const out: VmResponse = {
    id: p.id,
    name: p.name,
    scheme: p.scheme,
    policy: p.policy,
    'cpu-counts': p.cpuCounts,
    'cpu-signatures': p.cpuSignatures,
    'vmsa-variants': p.vmsaVariants,
    approval: p.approval,
    secrets: p.secrets.map((s) => ({
      guid: s.guid,
      type: s.kind,
      ...(s.label !== undefined ? { label: s.label } : {}),
      ...(s.resource !== undefined ? { resource: s.resource } : {}),
    })),
  };
  if (p.snp !== undefined) out.snp = snpSettingsToBody(p.snp);
  if (p.firmware.kind === 'artifact') out['firmware-artifact'] = p.firmware.sha256;
  else out['launch-digests'] = p.firmware.launchDigests;
  if (p.kernelHash !== undefined) out['kernel-hash'] = p.kernelHash;
  if (p.initrdHash !== undefined) out['initrd-hash'] = p.initrdHash;
  if (p.cmdline !== undefined) out.cmdline = p.cmdline;
  if (p.cmdlineHash !== undefined) out['cmdline-hash'] = p.cmdlineHash;
  if (p.minApi !== undefined) out['min-api'] = p.minApi;
  if (p.allowedBuildIds !== undefined) out['allowed-build-ids'] = p.allowedBuildIds;
  if (p.allowedCpuIds !== undefined) out['allowed-cpu-ids'] = p.allowedCpuIds;
  if (p.createdAt !== undefined) out['created-at'] = p.createdAt;
  if (p.updatedAt !== undefined) out['updated-at'] = p.updatedAt;
  return out;
}

/** The first problem of a failed parse, as "path: message" for a 400 bad-request. */
export function describeZodError(e: z.ZodError): string {
  const issue = e.issues[0];
  if (!issue) return 'invalid body';
  const path = issue.path.length ? issue.path.map(String).join('.') : '(body)';
  return `${path}: ${issue.message}`;
}
