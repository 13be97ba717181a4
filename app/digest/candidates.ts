/**
 * Expected launch digests as the owner sees them: each digest with the inputs behind it (what makes a
 * mismatch explainable), and the draft of profile fields a preview is computed from. Domain types: the
 * services produce and take them; the IPC contract re-exports them for the UI.
 */
import type { CpuSignature, FirmwareRef, Scheme, SnpVmmType, VmsaVariant } from '../profile';

/** The inputs behind one expected launch digest. */
export interface DigestInputs {
  scheme: Scheme;
  policy: number;
  firmwareSha256?: string;
  cpuCount?: number;
  cpuSignature?: CpuSignature;
  vmsaVariant?: VmsaVariant;
  kernelHashes?: { kernel: string; initrd: string; cmdline: string };
  /** SEV-SNP: the VMM whose VMSA layout was measured. */
  vmmType?: SnpVmmType;
  /** SEV-SNP: the VMSAs' sev_features, 0x-hex. */
  guestFeatures?: string;
}

export interface DigestCandidate {
  /** Expected launch digest (SEV: SHA-256 GCTX.LD; SEV-SNP: the SHA-384 MEASUREMENT), lower-case hex. */
  launchDigest: string;
  inputs: DigestInputs;
}

/** Every digest a host may legitimately report for a draft, or why none can be computed. */
export type DigestPreview =
  { ok: true; candidates: DigestCandidate[]; warnings: string[] } | { ok: false; reason: string };

/** The profile fields the launch digest depends on (a draft may be incomplete elsewhere), defaults applied. */
export interface DigestDraft {
  scheme: Scheme;
  policy: number;
  cpuCounts: number[];
  cpuSignatures: CpuSignature[];
  vmsaVariants: VmsaVariant[];
  firmware: FirmwareRef;
  kernelHash?: string | undefined;
  initrdHash?: string | undefined;
  cmdline?: string | undefined;
  cmdlineHash?: string | undefined;
  /** SEV-SNP: what the measured VMSAs depend on besides the vCPU signature. */
  snp?: { vmmType: SnpVmmType; guestFeatures: number } | undefined;
}
