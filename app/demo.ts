/** The first-run demo's request and result (domain types; the IPC contract re-exports them). */
import type { VmsaVariant } from './profile';

/** What the simulated host launches: a profile (default: the demo profile) and optional overrides. */
export interface DemoRunRequest {
  vmId?: string | undefined;
  /** Override the vCPU count the simulated host launches with (to show a mismatch). */
  cpuCount?: number | undefined;
  vmsaVariant?: VmsaVariant | undefined;
  /** Without vmId: the SEV-SNP demo (profile `demo-snp`, the simulated SNP guest). */
  snp?: boolean | undefined;
}

export interface DemoRunResult {
  outcome: 'released' | 'refused' | 'error';
  /** The profile the simulated host launched (the demo profile when none was named). */
  vmId?: string;
  connection?: string;
  /** The error code the host saw (e.g. 'measurement-mismatch', 'denied'). */
  code?: string;
  message: string;
  /** For a release: the GUIDs the simulated guest decrypted from the secret table. */
  releasedGuids?: string[];
}
