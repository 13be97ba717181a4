/**
 * The one IPC contract between the owner UI and the main process (GitHub Desktop `ipc-shared.ts` style).
 *
 * - `InvokeChannels` maps each request channel (`feature:action`) to its call signature.
 * - `EventChannels` maps each push channel (main → UI) to its listener signature.
 * - `invokeArgSchemas` holds a zod tuple per invoke channel: main (Electron IPC and the web bridge) parses
 *   every argument list with it before a service sees it. The renderer only needs the types.
 * - `SevAttestApi` is the shape of `window.api` (Electron preload) and of the browser implementation
 *   (renderer/src/api/web-api.ts): one method per channel grouped by feature, plus `onX` subscriptions.
 *
 * Importable by the renderer: zod and pure app/ types only, no node or electron imports.
 */
import { z } from 'zod';
import type { ErrorCode } from '../errors';
import {
  ApiVersionSchema,
  APPROVAL_MODES,
  CpuSignatureSchema,
  ResourcePathSchema,
  SCHEMES,
  SnpSettingsSchema,
  VmIdSchema,
  VmProfileSchema,
  VMSA_VARIANTS,
  type ApiVersion,
  type CpuSignature,
  type Scheme,
  type SecretRef,
  type VmProfile,
  type VmsaVariant,
} from '../profile';
import { DEFAULT_VMSA_VARIANT } from '../digest/vmsa-default';
import {
  AUDIT_EVENT_TYPES,
  AUDIT_RESULTS,
  AuditFilterSchema,
  type AuditEvent,
  type AuditEventType,
  type AuditFilter,
  type AuditResult,
} from '../audit';

// ---------------------------------------------------------------------------------------------------------
// Shared value types (what the UI shows). Main adapts service results to these shapes.
// ---------------------------------------------------------------------------------------------------------

/** A profile as the UI submits it: schema defaults (cpuSignatures, vmsaVariants, approval, secrets) optional. */
export type VmProfileInput = z.input<typeof VmProfileSchema>;

export {
  ARTIFACT_KINDS,
  type ArtifactImportRequest,
  type ArtifactInspection,
  type ArtifactKind,
  type ArtifactProgress,
  type ArtifactSummary,
  type Capability,
  type FirmwareCapabilities,
} from '../artifacts';
import {
  ARTIFACT_KINDS,
  type ArtifactImportRequest,
  type ArtifactImportRequest as DomainImportRequest,
} from '../artifacts';
import type { ArtifactInspection, ArtifactProgress, ArtifactSummary } from '../artifacts';

export type { DigestCandidate, DigestInputs, DigestPreview } from '../digest/candidates';
import type { DigestCandidate, DigestDraft as DomainDigestDraft, DigestPreview } from '../digest/candidates';

/** The secret value, only ever returned by `secrets:reveal`. */
export interface SecretValue {
  guid: string;
  kind: SecretRef['kind'];
  /** UTF-8 text for a LUKS passphrase; absent for raw bytes. */
  text?: string;
  base64: string;
}

export const APPROVAL_STATES = ['pending', 'approved', 'denied', 'expired'] as const;
export type ApprovalState = (typeof APPROVAL_STATES)[number];
/**
 * approve; deny (for a while: identical launches are refused until `refusedUntil`, or until the owner
 * forgets the decision); deny-once (the waiting host is told, an identical launch asks again).
 */
export const DECISIONS = ['approve', 'deny', 'deny-once'] as const;
export type Decision = (typeof DECISIONS)[number];

/** What an SEV-SNP guest's verified report showed (server/services/approvals.ts SnpApprovalInfo). */
export interface SnpApprovalView {
  /** 'Milan', 'Genoa', 'Turin'. */
  product: string;
  /** The launch measurement, 96 hex. */
  measurement: string;
  reportedTcb: string;
  /** The guest policy in hex (0x...). */
  policy: string;
  vmpl: number;
  /** Which AMD key signed the report: the chip's own VCEK, or a cloud provider's VLEK. */
  signer: 'vcek' | 'vlek';
  vouchedBy: 'measurement' | 'id-key' | 'author-key';
  /** The resource paths the profile holds. */
  resources: string[];
  /** How revocation was checked ('CRL checked' or why not). */
  revocation: string;
}

/** One launch request (or SNP guest attestation) waiting for (or decided by) the owner. */
export interface ApprovalView {
  id: string;
  /** A host's SEV launch, or an SEV-SNP guest's attestation (then `snp` says what it showed). */
  kind: 'sev-launch' | 'snp-attest';
  snp?: SnpApprovalView;
  state: ApprovalState;
  /** The owner's VM id, or null for `/v1/launch` without a VM. */
  vmId: string | null;
  connection: string | null;
  clientAddress: string;
  /** Chip id (64 bytes) in hex, when the host sent it. */
  chipId: string | null;
  /** Which AMD root anchored the chain (e.g. 'milan'), or null when it failed. */
  anchoredBy: string | null;
  /** Why the chain did not verify, when it did not. */
  chainError?: string;
  firmwareApi?: ApiVersion;
  buildId?: number;
  policy: number;
  scheme?: Scheme;
  createdAt: string;
  /** When the request is denied automatically. */
  expiresAt: string;
  decidedAt?: string;
  /** The profile's name, when the VM id names one. */
  profileName?: string;
  /** What a verified launch would release: names or GUIDs (and SNP resource paths), never values. */
  secrets?: Array<{ guid: string; kind: SecretRef['kind']; label?: string; resource?: string }>;
  /** Whether the chain proves the chip id; absent when not known. */
  chipProven?: boolean;
  /** A denial still refusing identical launches: until when (then they ask again). */
  refusedUntil?: string;
  /** How the owner denied: once, or for a while. */
  denyMode?: 'once' | 'for-a-while';
}

/** The detail a failed validate carries so the owner sees why (never sent to the host). */
export interface MismatchExplanation {
  tried: DigestCandidate[];
  reported: {
    apiMajor?: number;
    apiMinor?: number;
    buildId?: number;
    policy?: number;
    cpuCount?: number;
    measurement?: string;
  };
}

/** One audit-log entry (app/audit.ts); a failed validate carries `details.mismatch: MismatchExplanation`. */
export type { AuditEvent, AuditFilter, AuditEventType, AuditResult };
export { AUDIT_EVENT_TYPES, AUDIT_RESULTS };

export { LISTENER_STATES, type ListenerStatus, type TunnelStatus } from '../status';
import type { ListenerStatus, TunnelStatus } from '../status';

export const ListenerConfigSchema = z
  .object({
    host: z.string().min(1).max(255),
    port: z.number().int().min(0).max(65535),
    tls: z.boolean(),
    /** keep the current host token, require none, or generate a new one. */
    hostToken: z.enum(['keep', 'none', 'generate']).default('keep'),
    /** Must be true to bind anything but loopback (other machines could then reach the listener). */
    confirmNonLoopback: z.boolean().optional(),
  })
  .strict();
export type ListenerConfig = z.input<typeof ListenerConfigSchema>;

export interface ListenerTokens {
  /** The owner token (for copying into `sev-attest` owner commands or the browser UI). */
  ownerToken: string;
  /** The host token hosts send, or null when none is required. */
  hostToken: string | null;
}

export const TunnelConfigSchema = z
  .object({
    enabled: z.boolean(),
    target: z
      .string()
      .max(255)
      .regex(/^[A-Za-z0-9._-]+@[A-Za-z0-9.:_[\]-]+$/, 'user@host'),
    sshPort: z.number().int().min(1).max(65535).default(22),
    remotePort: z.number().int().min(1).max(65535),
    identityFile: z.string().max(4096).optional(),
  })
  .strict();
export type TunnelConfig = z.input<typeof TunnelConfigSchema>;

/** `hostSetup:get`: what to paste on the host for one profile (domain types in app/host-setup.ts). */
import type { HostSetup, HostSetupOptions, SnpKeysResult } from '../host-setup';
export type {
  SnpKeysResult,
  HostSetup,
  HostSetupFile,
  HostSetupOptions,
  SnpHostSetup,
  SnpIdBlockMaterial,
  SnpMeasurementRow,
} from '../host-setup';

const hex16Bytes = z.string().regex(/^[0-9a-f]{32}$/, '16 bytes in lower-case hex (32 digits)');
/** `hostSetup:get` options (SEV-SNP ID block). */
export const HostSetupOptionsSchema = z
  .object({
    row: z.number().int().min(0).max(4095).optional(),
    familyId: hex16Bytes.optional(),
    imageId: hex16Bytes.optional(),
    guestSvn: z.number().int().min(0).max(0xffffffff).optional(),
    authorKey: z.boolean().optional(),
  })
  .strict();
const hostSetupOptionsAgree = (o: z.output<typeof HostSetupOptionsSchema>): HostSetupOptions => o;
void hostSetupOptionsAgree;

/** `hostSetup:snpKeys` options. */
export const SnpKeysRequestSchema = z
  .object({ authorKey: z.boolean().optional(), replace: z.boolean().optional() })
  .strict();
export type SnpKeysRequest = z.input<typeof SnpKeysRequestSchema>;

export const DemoRunSchema = z
  .object({
    /**
     * The profile to launch. Without it, the first-run demo: the profile `demo` (SEV-ES, 2 vCPUs,
     * EPYC-Milan, manual approval) with the shipped demo firmware and a demo passphrase, created on first use.
     */
    vmId: VmIdSchema.optional(),
    /** Override the vCPU count the simulated host launches with (to show a mismatch). */
    cpuCount: z.number().int().min(1).max(512).optional(),
    vmsaVariant: z.enum(VMSA_VARIANTS).optional(),
    /**
     * Without vmId: run the SEV-SNP demo instead, the simulated SNP guest fetching its disk key for the
     * profile `demo-snp` (created on first use).
     */
    snp: z.boolean().optional(),
  })
  .strict();
export type DemoRunOptions = z.input<typeof DemoRunSchema>;
const demoAgrees = (d: z.output<typeof DemoRunSchema>): DemoRunRequest => d;
void demoAgrees;

export type { DemoRunResult } from '../demo';
import type { DemoRunRequest, DemoRunResult } from '../demo';

export interface AppInfo {
  version: string;
  mode: 'desktop' | 'browser';
  platform: string;
  firstRunComplete: boolean;
  dataDir: string;
  secretStore: {
    /** 'database': serve --database keeps them in PostgreSQL, sealed under the service key. */
    kind: 'keychain' | 'memory' | 'database';
    note?: string;
    /**
     * Set when the keychain cannot be used right now (no Secret Service, locked, keytar not loadable):
     * what the keychain said. Secrets cannot be saved then; the first-run demo still runs.
     */
    unavailable?: string;
  };
}

/** Measurement bundle export targets (docs/bundles.md; the same list as app/bundle/export.ts). */
export const BUNDLE_EXPORT_FORMATS = ['native', 'vqsv', 'simple-kbs', 'simple-kbs-sql', 'csv'] as const;
export type BundleExportFormat = (typeof BUNDLE_EXPORT_FORMATS)[number];

/** A CPU signature as a bundle records it: CPUID(1).EAX as 0x-hex and the QEMU model name when known. */
export interface BundleCpuSignatureView extends CpuSignature {
  eax: string;
  name?: string;
}

/** One row of a bundle's digest matrix (SEV without ES: one row without vCPUs, signature or variant). */
export interface BundleRowView {
  row: number;
  /** Expected launch digest, lower-case hex. */
  digest: string;
  'sev-es': boolean;
  'kernel-hashes-table': boolean;
  cpus?: number;
  'cpu-signature'?: BundleCpuSignatureView;
  'vmsa-variant'?: VmsaVariant;
}

/**
 * A bundle's body (app/bundle/bundle.ts BundleBody; main checks that one is assignable to the other), as
 * `bundles:preview` returns it unsigned for the export dialog's table.
 */
export interface BundleBodyView {
  'created-at': string;
  generator: string;
  vm: { id: string; name: string };
  scheme: Scheme;
  policy: number;
  'min-api'?: ApiVersion;
  'allowed-build-ids'?: number[];
  'allowed-cpu-ids'?: string[];
  firmware: {
    sha256: string;
    size: number;
    name?: string;
    'reset-address'?: number;
    'secret-area'?: { base: number; size: number };
  };
  kernel?: { 'kernel-hash': string; 'initrd-hash': string; 'cmdline-hash': string; cmdline?: string };
  matrix: {
    'cpu-counts': number[];
    'cpu-signatures': BundleCpuSignatureView[];
    'vmsa-variants': VmsaVariant[];
    /** True for SEV without ES: no VMSA is measured, the selection collapses to one row. */
    collapsed: boolean;
    note: string;
  };
  rows: BundleRowView[];
}

/** `bundles:export`: the file to save, signed with this machine's key. */
export interface BundleExportFile {
  fileName: string;
  contentType: string;
  text: string;
  /** The signing key's fingerprint (ed25519:...). */
  fingerprint: string;
}

/** Who signed a bundle: the fingerprint, plus the label the owner gave the key when it is trusted. */
export interface BundleSigner {
  fingerprint: string;
  label?: string;
  /** The raw public key (base64), given for an intact bundle from an untrusted key so it can be trusted. */
  publicKey?: string;
}

/** What a bundle claims to be (read before or without a successful verification: show it as unverified). */
export interface BundleSummary {
  vmId: string;
  vmName: string;
  scheme: Scheme;
  policy: number;
  rows: number;
  firmwareSha256: string;
  createdAt: string;
  generator: string;
  /** The fingerprint the signature block states, if any. */
  statedSigner?: string;
}

/**
 * `bundles:verify`: never rejects for a bad bundle, so the UI can show the check. `code` is the refusal
 * (bundle-invalid | bundle-unsigned | bundle-signature-invalid | bundle-key-untrusted); `summary` is null
 * when the text is not a bundle at all.
 */
export interface BundleVerification {
  ok: boolean;
  code?: string;
  message: string;
  signer?: BundleSigner;
  summary: BundleSummary | null;
}

/** `bundles:import`: the VM profile it became (precomputed digests, no firmware needed here). */
export interface BundleImportResult {
  vm: VmProfile;
  warnings: string[];
  signer: BundleSigner;
  rows: number;
}

/** This machine's bundle signing key (the private half stays in the OS keychain). */
export interface BundleSigningKey {
  fingerprint: string;
  /** Raw Ed25519 public key, base64: what another owner trusts. */
  publicKey: string;
}

/** A key trusted to sign bundles (DIR/trusted-keys.json). */
export interface TrustedBundleKey {
  fingerprint: string;
  publicKey?: string;
  label?: string;
  addedAt: string;
}

// ---------------------------------------------------------------------------------------------------------
// Argument schemas (main parses with these) and the channel maps.
// ---------------------------------------------------------------------------------------------------------

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex');
const guid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a lower-case GUID');
const importId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'an import id (letters, digits, - and _)');

export const SecretInputSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('luks-passphrase'),
      passphrase: z.string().min(1).max(4096),
      label: z.string().max(200).optional(),
      /** SEV-SNP profiles: the path the guest fetches it by (repository/type/tag); required there. */
      resource: ResourcePathSchema.optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('raw'),
      guid,
      /** Standard base64 of the secret bytes. */
      dataBase64: z
        .string()
        .min(1)
        .max(65536)
        .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'standard base64'),
      label: z.string().max(200).optional(),
      resource: ResourcePathSchema.optional(),
    })
    .strict(),
]);
export type SecretInput = z.input<typeof SecretInputSchema>;

export const ArtifactImportSchema = z
  .object({
    importId,
    /** A filesystem path from `files.pathFor(file)` (Electron), or the browser's upload handle. */
    path: z.string().min(1).max(4096),
    kind: z.enum(ARTIFACT_KINDS),
  })
  .strict();
const importAgrees = (r: z.output<typeof ArtifactImportSchema>): DomainImportRequest => r;
void importAgrees;

/** The profile fields the launch digest depends on (a draft may be incomplete elsewhere). */
export const DigestDraftSchema = z.object({
  scheme: z.enum(SCHEMES),
  policy: z.number().int().min(0).max(0xffffffff),
  cpuCounts: z.array(z.number().int().min(1).max(512)).min(1).max(64),
  cpuSignatures: z.array(CpuSignatureSchema).max(16).default([]),
  vmsaVariants: z.array(z.enum(VMSA_VARIANTS)).max(2).default([DEFAULT_VMSA_VARIANT]),
  firmware: VmProfileSchema.shape.firmware,
  kernelHash: sha256Hex.optional(),
  initrdHash: sha256Hex.optional(),
  cmdline: z.string().max(4096).optional(),
  cmdlineHash: sha256Hex.optional(),
  /** SEV-SNP drafts: the VMM type and guest features the measured VMSAs depend on. */
  snp: SnpSettingsSchema.pick({ vmmType: true, guestFeatures: true }).optional(),
});
export type DigestDraft = z.input<typeof DigestDraftSchema>;
// The parsed draft is what the service takes (app/digest/candidates.ts); this stops compiling if they drift.
const draftAgrees = (d: z.output<typeof DigestDraftSchema>): DomainDigestDraft => d;
void draftAgrees;

const ExternalUrlSchema = z.string().max(2048).url();

/** Which rows a bundle spans (SEV-ES); an absent or empty list falls back to the profile's own. */
export const BundleSelectionSchema = z
  .object({
    cpuCounts: z.array(z.number().int().min(1).max(4096)).max(512).optional(),
    cpuSignatures: z
      .array(CpuSignatureSchema.extend({ name: z.string().max(64).optional() }).strict())
      .max(64)
      .optional(),
    vmsaVariants: z.array(z.enum(VMSA_VARIANTS)).max(2).optional(),
  })
  .strict();
export type BundleSelection = z.input<typeof BundleSelectionSchema>;

/** Bundle text as read from a file (at most 8 MiB, the bundle parser's limit). */
const bundleText = z
  .string()
  .min(1)
  .max(8 * 1024 * 1024);

export const BundleImportOptionsSchema = z
  .object({
    /** Register under this id instead of the bundle's. */
    vmId: VmIdSchema.optional(),
    name: z.string().min(1).max(200).optional(),
    approval: z.enum(APPROVAL_MODES).optional(),
  })
  .strict();
export type BundleImportOptions = z.input<typeof BundleImportOptionsSchema>;

const bundleFingerprint = z.string().regex(/^ed25519:[A-Za-z0-9+/]{43}$/, 'an ed25519:... fingerprint');

/** A chip id (cpu0-id, 64 bytes) as 128 hex digits. */
const chipIdHex = z.string().regex(/^[0-9a-fA-F]{128}$/, 'a chip id: 128 hex digits');
/** A CEK certificate (2084 bytes) in standard base64. */
const cekBase64 = z
  .string()
  .length(2780, 'a CEK certificate: base64 of 2084 bytes')
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'standard base64');

/** A CEK the owner pinned for a chip (the key server's, imported once by an offline owner). */
export interface PinnedCekView {
  /** Lower-case hex. */
  chipId: string;
  label?: string;
  pinnedAt: string;
}

/** Every request channel: name → call signature (what `window.api.<feature>.<action>` is). */
export interface InvokeChannels {
  'profiles:list': () => Promise<VmProfile[]>;
  /** null when no profile has that id. */
  'profiles:get': (id: string) => Promise<VmProfile | null>;
  /** Creates or replaces; warnings e.g. secrets for a firmware without a secret area. */
  'profiles:save': (profile: VmProfileInput) => Promise<{ profile: VmProfile; warnings: string[] }>;
  /** Copies the profile with its secrets (refs and keychain values); warnings name any not copied. */
  'profiles:duplicate': (id: string, newId: string) => Promise<{ profile: VmProfile; warnings: string[] }>;
  /** Deletes the profile and its secrets from the keychain. */
  'profiles:delete': (id: string) => Promise<void>;

  /** Stores the value in the keychain and adds (or updates) the reference on the profile. */
  'secrets:set': (vmId: string, secret: SecretInput) => Promise<{ ref: SecretRef; warnings: string[] }>;
  'secrets:reveal': (vmId: string, guid: string) => Promise<SecretValue>;
  'secrets:delete': (vmId: string, guid: string) => Promise<void>;

  'artifacts:list': () => Promise<ArtifactSummary[]>;
  /** Hashes in a worker with `artifacts:progress` events; rejects with code 'cancelled' when cancelled. */
  'artifacts:import': (request: ArtifactImportRequest) => Promise<ArtifactInspection>;
  'artifacts:cancelImport': (importId: string) => Promise<void>;
  'artifacts:inspect': (sha256: string) => Promise<ArtifactInspection>;
  /** A new display name (the SHA-256 stays the artifact's identity). */
  'artifacts:rename': (sha256: string, name: string) => Promise<ArtifactSummary>;
  /** Deletes the file; refused (artifact-in-use) while a profile uses it, naming the profiles. */
  'artifacts:delete': (sha256: string) => Promise<void>;

  'digests:preview': (draft: DigestDraft) => Promise<DigestPreview>;

  'approvals:list': () => Promise<ApprovalView[]>;
  'approvals:decide': (id: string, decision: Decision) => Promise<void>;
  /** Forgets a decision: identical launches ask the owner again instead of being refused. */
  'approvals:forget': (id: string) => Promise<void>;

  'events:list': (filter?: AuditFilter) => Promise<AuditEvent[]>;
  /** The filtered log as pretty JSON plus a suggested file name (the UI saves it). */
  'events:export': (filter?: AuditFilter) => Promise<{ fileName: string; json: string }>;

  'listener:status': () => Promise<ListenerStatus>;
  'listener:configure': (config: ListenerConfig) => Promise<ListenerStatus>;
  'listener:tokens': () => Promise<ListenerTokens>;

  'tunnel:status': () => Promise<TunnelStatus>;
  'tunnel:configure': (config: TunnelConfig) => Promise<TunnelStatus>;

  /** SEV-SNP: `options` chooses the row the ID block signs, its family/image id and SVN, the author key. */
  'hostSetup:get': (vmId: string, options?: HostSetupOptions) => Promise<HostSetup>;
  /**
   * SEV-SNP: creates this VM's ID key (P-384, OS keychain) and, with authorKey, the owner's author key, and
   * trusts their digests in the profile. Keeps existing keys unless replace.
   */
  'hostSetup:snpKeys': (vmId: string, options?: SnpKeysRequest) => Promise<SnpKeysResult>;

  /** A simulated host launches against the listener; resolves when it got its secret or was refused. */
  'demo:run': (options: DemoRunOptions) => Promise<DemoRunResult>;

  /** The unsigned body for a selection (the export dialog's preview table); needs no signing key. */
  'bundles:preview': (vmId: string, selection: BundleSelection) => Promise<BundleBodyView>;
  /** Builds, signs and renders the bundle (bundle-no-signing-key until bundles:keygen). */
  'bundles:export': (
    vmId: string,
    selection: BundleSelection,
    format: BundleExportFormat,
  ) => Promise<BundleExportFile>;
  /** Checks a bundle against the trusted keys; resolves with the refusal instead of rejecting. */
  'bundles:verify': (text: string) => Promise<BundleVerification>;
  /** Verifies and registers the bundle as a VM with precomputed digests. */
  'bundles:import': (text: string, options?: BundleImportOptions) => Promise<BundleImportResult>;
  /** This machine's signing key, or null before bundles:keygen. */
  'bundles:key': () => Promise<BundleSigningKey | null>;
  /** Creates the signing key (and trusts it); an existing key is kept unless `replace`. */
  'bundles:keygen': (options?: { replace?: boolean }) => Promise<BundleSigningKey & { created: boolean }>;
  'bundles:trusted': () => Promise<TrustedBundleKey[]>;
  /** Trusts a fingerprint or base64 public key (also the `public-key ...` line `bundle key` prints). */
  'bundles:trust': (keyText: string, label?: string) => Promise<TrustedBundleKey>;
  /** True when the key was trusted and no longer is. */
  'bundles:untrust': (fingerprint: string) => Promise<boolean>;

  'chips:list': () => Promise<PinnedCekView[]>;
  /** Pins the ASK-signed CEK AMD's key server gives for the chip: it proves that chip's cpu-id claims. */
  'chips:pinCek': (chipId: string, cekBase64: string, label?: string) => Promise<PinnedCekView>;
  /** True when a CEK was pinned for the chip and no longer is. */
  'chips:unpin': (chipId: string) => Promise<boolean>;

  'app:info': () => Promise<AppInfo>;
  'app:completeFirstRun': () => Promise<void>;

  /** Opens an https URL from the allow-list (EXTERNAL_URL_ALLOW_LIST) in the system browser. */
  'shell:openExternal': (url: string) => Promise<void>;
}

/** Every push channel: name → listener signature. */
export interface EventChannels {
  /** The full current list (main pushes the truth; the UI replaces its cache). */
  'approvals:changed': (snapshot: ApprovalView[]) => void;
  'events:appended': (event: AuditEvent) => void;
  'artifacts:progress': (progress: ArtifactProgress) => void;
  'listener:changed': (status: ListenerStatus) => void;
  'tunnel:changed': (status: TunnelStatus) => void;
}

export type InvokeChannel = keyof InvokeChannels;
export type EventChannel = keyof EventChannels;
/** What a caller passes. */
export type InvokeArgs<K extends InvokeChannel> = Parameters<InvokeChannels[K]>;
/** What a call resolves to. */
export type InvokeResult<K extends InvokeChannel> = Awaited<ReturnType<InvokeChannels[K]>>;
export type EventPayload<K extends EventChannel> = Parameters<EventChannels[K]>[0];

/**
 * One zod tuple per invoke channel. The `satisfies` clause makes the compiler check that every channel has a
 * schema and that each schema accepts exactly what the channel's signature lets callers pass.
 */
export const invokeArgSchemas = {
  'profiles:list': z.tuple([]),
  'profiles:get': z.tuple([VmIdSchema]),
  'profiles:save': z.tuple([VmProfileSchema]),
  'profiles:duplicate': z.tuple([VmIdSchema, VmIdSchema]),
  'profiles:delete': z.tuple([VmIdSchema]),
  'secrets:set': z.tuple([VmIdSchema, SecretInputSchema]),
  'secrets:reveal': z.tuple([VmIdSchema, guid]),
  'secrets:delete': z.tuple([VmIdSchema, guid]),
  'artifacts:list': z.tuple([]),
  'artifacts:import': z.tuple([ArtifactImportSchema]),
  'artifacts:cancelImport': z.tuple([importId]),
  'artifacts:inspect': z.tuple([sha256Hex]),
  'artifacts:rename': z.tuple([sha256Hex, z.string().trim().min(1).max(255)]),
  'artifacts:delete': z.tuple([sha256Hex]),
  'digests:preview': z.tuple([DigestDraftSchema]),
  'approvals:list': z.tuple([]),
  'approvals:decide': z.tuple([z.string().min(1).max(128), z.enum(DECISIONS)]),
  'approvals:forget': z.tuple([z.string().min(1).max(128)]),
  'events:list': z.tuple([AuditFilterSchema.strict().optional()]),
  'events:export': z.tuple([AuditFilterSchema.strict().optional()]),
  'listener:status': z.tuple([]),
  'listener:configure': z.tuple([ListenerConfigSchema]),
  'listener:tokens': z.tuple([]),
  'tunnel:status': z.tuple([]),
  'tunnel:configure': z.tuple([TunnelConfigSchema]),
  'hostSetup:get': z.tuple([VmIdSchema, HostSetupOptionsSchema.optional()]),
  'hostSetup:snpKeys': z.tuple([VmIdSchema, SnpKeysRequestSchema.optional()]),
  'demo:run': z.tuple([DemoRunSchema]),
  'bundles:preview': z.tuple([VmIdSchema, BundleSelectionSchema]),
  'bundles:export': z.tuple([VmIdSchema, BundleSelectionSchema, z.enum(BUNDLE_EXPORT_FORMATS)]),
  'bundles:verify': z.tuple([bundleText]),
  'bundles:import': z.tuple([bundleText, BundleImportOptionsSchema.optional()]),
  'bundles:key': z.tuple([]),
  'bundles:keygen': z.tuple([z.object({ replace: z.boolean().optional() }).strict().optional()]),
  'bundles:trusted': z.tuple([]),
  'bundles:trust': z.tuple([z.string().min(1).max(4096), z.string().max(200).optional()]),
  'bundles:untrust': z.tuple([bundleFingerprint]),
  'chips:list': z.tuple([]),
  'chips:pinCek': z.tuple([chipIdHex, cekBase64, z.string().max(200).optional()]),
  'chips:unpin': z.tuple([chipIdHex]),
  'app:info': z.tuple([]),
  'app:completeFirstRun': z.tuple([]),
  'shell:openExternal': z.tuple([ExternalUrlSchema]),
} as const satisfies { [K in InvokeChannel]: z.ZodType<unknown, InvokeArgs<K>> };

/** What a handler in main receives: the parsed (defaults applied) argument list. */
export type ParsedArgs<K extends InvokeChannel> = z.output<(typeof invokeArgSchemas)[K]>;

/** The service side of the contract: one function per channel taking the parsed arguments. */
export type InvokeHandlers = {
  [K in InvokeChannel]: (...args: ParsedArgs<K>) => Promise<InvokeResult<K>>;
};

/** The request channels as a runtime list (deny by default: nothing outside it is ever registered). */
export const INVOKE_CHANNELS = Object.keys(invokeArgSchemas) as InvokeChannel[];

const eventChannelSet: { [K in EventChannel]: true } = {
  'approvals:changed': true,
  'events:appended': true,
  'artifacts:progress': true,
  'listener:changed': true,
  'tunnel:changed': true,
};
/** The push channels as a runtime list. */
export const EVENT_CHANNELS = Object.keys(eventChannelSet) as EventChannel[];

/** True for a string that names a request channel of the contract. */
export function isInvokeChannel(name: string): name is InvokeChannel {
  return Object.prototype.hasOwnProperty.call(invokeArgSchemas, name);
}

/** True for a string that names a push channel of the contract. */
export function isEventChannel(name: string): name is EventChannel {
  return Object.prototype.hasOwnProperty.call(eventChannelSet, name);
}

// ---------------------------------------------------------------------------------------------------------
// Errors across the boundary
// ---------------------------------------------------------------------------------------------------------

/** What main sends back for every call: a value, or a structured error (never a stack). */
export type IpcResponse<T> = { ok: true; value: T } | { ok: false; error: ErrorCode; message: string };

export { ApiError, apiErrorOf, encodeApiErrorMessage } from './api-error';

// ---------------------------------------------------------------------------------------------------------
// window.api, derived from the maps
// ---------------------------------------------------------------------------------------------------------

type FeatureOf<K> = K extends `${infer F}:${string}` ? F : never;
type ActionOf<K> = K extends `${string}:${infer A}` ? A : never;
export type Feature = FeatureOf<InvokeChannel> | FeatureOf<EventChannel>;
/** Calling it stops the subscription. */
export type Unsubscribe = () => void;

type InvokeGroup<F extends string> = {
  [K in InvokeChannel as FeatureOf<K> extends F ? ActionOf<K> : never]: InvokeChannels[K];
};
type EventGroup<F extends string> = {
  [K in EventChannel as FeatureOf<K> extends F ? `on${Capitalize<ActionOf<K>>}` : never]: (
    listener: EventChannels[K],
  ) => Unsubscribe;
};

/** The method name of an event subscription: 'approvals:changed' → approvals.onChanged. */
export function eventMethodName(channel: EventChannel): string {
  const action = channel.slice(channel.indexOf(':') + 1);
  return `on${action.charAt(0).toUpperCase()}${action.slice(1)}`;
}

/** Files the UI got from a drop or an <input type=file>. */
export interface FilesApi {
  /**
   * A reference `artifacts.import` accepts for this file: its filesystem path in Electron
   * (webUtils.getPathForFile), an upload handle in the browser (the web API uploads it).
   */
  pathFor(file: File): string;
}

/** The shape of `window.api`: `api.approvals.list()`, `api.approvals.onChanged(cb)`, ... */
export type SevAttestApi = { [F in Feature]: InvokeGroup<F> & EventGroup<F> } & { files: FilesApi };

/** External links the app may open (checked in main before shell.openExternal). */
export const EXTERNAL_URL_ALLOW_LIST: readonly string[] = [
  'https://github.com/',
  'https://www.amd.com/',
  'https://libvirt.org/',
  'https://www.qemu.org/',
  'https://kdsintf.amd.com/',
];

/** True for an https URL under one of the allowed prefixes (no credentials, no other schemes). */
export function isAllowedExternalUrl(raw: string): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.protocol !== 'https:' || u.username !== '' || u.password !== '') return false;
  const normalized = u.href;
  return EXTERNAL_URL_ALLOW_LIST.some((prefix) => normalized.startsWith(prefix));
}

/** Re-exported so the renderer gets the option lists from one place. */
export { APPROVAL_MODES, SCHEMES, VMSA_VARIANTS, ApiVersionSchema };

// ---------------------------------------------------------------------------------------------------------
// window.api written once from the channel lists (the browser bridge and the component-test fake)
// ---------------------------------------------------------------------------------------------------------

/** Sends one request channel's arguments; resolves with its result. */
export type InvokeTransport = <K extends InvokeChannel>(
  channel: K,
  ...args: InvokeArgs<K>
) => Promise<InvokeResult<K>>;
/** Subscribes one listener to a push channel. */
export type SubscribeTransport = <K extends EventChannel>(
  channel: K,
  listener: EventChannels[K],
) => Unsubscribe;

/**
 * Every `window.api` method except `files`, derived from INVOKE_CHANNELS and EVENT_CHANNELS: `f.a(...)`
 * calls `invoke('f:a', ...)` and `f.onA(cb)` calls `subscribe('f:a', cb)`. A channel added to the contract
 * appears here with no further code.
 */
export function apiFromTransport(
  invoke: InvokeTransport,
  subscribe: SubscribeTransport,
): Omit<SevAttestApi, 'files'> {
  const api: Record<string, Record<string, unknown>> = {};
  const group = (channel: string) => (api[channel.slice(0, channel.indexOf(':'))] ??= {});
  for (const channel of INVOKE_CHANNELS) {
    const action = channel.slice(channel.indexOf(':') + 1);
    group(channel)[action] = (...args: unknown[]) =>
      (invoke as (c: string, ...a: unknown[]) => Promise<unknown>)(channel, ...args);
  }
  for (const channel of EVENT_CHANNELS) {
    group(channel)[eventMethodName(channel)] = (listener: unknown) =>
      (subscribe as (c: string, l: unknown) => Unsubscribe)(channel, listener);
  }
  return api as unknown as Omit<SevAttestApi, 'files'>;
}
