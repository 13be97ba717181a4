/**
 * Expected launch digests as the owner sees them: each digest with the inputs behind it (what makes a
 * mismatch explainable), and the draft of profile fields a preview is computed from. Domain types: the
 * services produce and take them; the IPC contract re-exports them for the UI.
 */
import type { CpuSignature, FirmwareRef, Scheme, VmsaVariant } from '../profile';

/** The inputs behind one expected launch digest. */
export interface DigestInputs {
  scheme: Scheme;
  policy: number;
  firmwareSha256?: string;
  cpuCount?: number;
  cpuSignature?: CpuSignature;
  vmsaVariant?: VmsaVariant;
  kernelHashes?: { kernel: string; initrd: string; cmdline: string };
}

export interface DigestCandidate {
  /** Expected launch digest (SHA-256 / GCTX.LD), lower-case hex. */
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
}
