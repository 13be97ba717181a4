/**
 * Imported artifacts (firmware, kernels, initrds) as the owner sees them. Domain types: the artifact
 * services produce and take them; the IPC contract re-exports them for the UI.
 */

/** A yes/no answer with the sentence that explains it (firmware capabilities, checks). */
export interface Capability {
  ok: boolean;
  reason: string;
}

export const ARTIFACT_KINDS = ['firmware', 'kernel', 'initrd'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

/** What an OVMF image supports, read from its footer table. */
export interface FirmwareCapabilities {
  /** SEV-ES AP reset address; `address` present when found. */
  sevEsResetAddress: Capability & { address?: number };
  /** Whether QEMU can write the kernel hashes table (kernelHashes='yes'). */
  measuredDirectBoot: Capability;
  /** Whether QEMU has a default place to inject the launch secret. */
  secretArea: Capability & { base?: number; size?: number };
}

/** An imported artifact, content-addressed by SHA-256. */
export interface ArtifactSummary {
  sha256: string;
  size: number;
  /** The file name it was imported from (display only). */
  name: string;
  /** The kind chosen at import, when the store knows it (firmware is also recognised by its footer). */
  kind?: ArtifactKind;
  importedAt: string;
}

/** `artifacts:inspect`: the artifact plus, for firmware, what it supports. */
export interface ArtifactInspection extends ArtifactSummary {
  firmware?: FirmwareCapabilities;
}

/** A progress report of one import (hashing in main, or uploading in browser mode). */
export interface ArtifactProgress {
  importId: string;
  phase: 'uploading' | 'hashing' | 'done' | 'cancelled' | 'error';
  bytes: number;
  total: number;
  message?: string;
}

/** An import of a file by path (Electron), or of a browser upload handle, with the kind the owner chose. */
export interface ArtifactImportRequest {
  importId: string;
  /** A filesystem path from `files.pathFor(file)` (Electron), or the browser's upload handle. */
  path: string;
  kind: ArtifactKind;
}
