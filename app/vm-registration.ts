/**
 * What registering a VM takes, transport-free: the profile fields, where its firmware comes from and,
 * optionally, the secret values to release to it. The REST owner API, the bundle import and the demo build
 * one; OwnerService.registerVm stores it.
 */
import type { SecretRef, VmProfile } from './profile';

/** The profile fields a registration determines (the firmware reference and secrets are resolved apart). */
export type VmProfileFields = Omit<VmProfile, 'firmware' | 'secrets' | 'createdAt' | 'updatedAt'>;

/** Where the VM's firmware comes from. */
export type FirmwareSource =
  /** Precomputed launch digests (hex): no firmware on this machine. */
  | { kind: 'digests'; launchDigests: string[] }
  /** A firmware image, stored as an artifact first. */
  | { kind: 'bytes'; bytes: Uint8Array }
  /** An artifact already in the store (SHA-256, hex). */
  | { kind: 'artifact'; sha256: string };

/** A secret value to store for the VM (wiped by the secret service once stored). */
export interface SecretValue {
  guid: string;
  kind: SecretRef['kind'];
  label?: string;
  /** SEV-SNP: the resource path the guest fetches it by. */
  resource?: string;
  value: Uint8Array;
}

export interface VmRegistration {
  fields: VmProfileFields;
  firmware: FirmwareSource;
  /** The VM's secrets, replacing the stored ones; absent, a replaced VM keeps its secrets. */
  secrets?: SecretValue[];
}

/** A stored registration and what the owner should know about it. */
export interface VmRegistrationResult {
  profile: VmProfile;
  warnings: string[];
}

/** The owner service's state, as /v1/health reports it. */
export interface ServiceHealth {
  version: string;
  tls: { enabled: boolean; fingerprint?: string };
  secretStore: string;
  uptimeSeconds: number;
  connections: number;
  pendingApprovals: number;
  /** The retained audit stream against its disk budget, when the log keeps one. */
  audit?: { retainedBytes: number; retainedBudgetBytes: number; full: boolean };
}
