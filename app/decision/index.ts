/**
 * The attestation decision, beside the protocol core and free of transports (no REST or IPC types):
 * what a launch admits (candidate profiles, policy/scheme/chip rules), whether a claimed chip is proven,
 * the firmware rules, which expected digest the measurement matches, and the one way a secret is
 * released (for a VerifiedLaunch only). server/services/attestation.ts orchestrates stores, approvals,
 * connections and audit around it. The SEV-SNP decision is ./snp.ts (imported directly, so the SEV-only
 * CLI commands do not pull the KBS protocol code in); server/services/kbs-service.ts orchestrates it.
 */
export * from './types';
export * from './refusal';
export * from './launch';
export * from './firmware';
export * from './chip';
export { matchMeasurement, releaseSecret, VerifiedLaunch } from './verified';
export type { MeasurementOutcome, SessionKeys, Tried } from './verified';
