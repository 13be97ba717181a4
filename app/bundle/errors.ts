import { DomainError } from '../errors';

/**
 * Errors of measurement bundles. Each code names one distinct failure so the CLI, the listener and the UI
 * can tell "the bundle was modified" from "the signer is not trusted" from "this is not a bundle".
 */
export type BundleErrorCode =
  /** Not a bundle: bad JSON, wrong shape, unknown version. */
  | 'bundle-invalid'
  /** No signature at all. */
  | 'bundle-unsigned'
  /** The signature does not verify: the bundle was modified after signing (or signed wrongly). */
  | 'bundle-signature-invalid'
  /** The signature verifies, but the key is not one the owner trusts. */
  | 'bundle-key-untrusted'
  /** The profile cannot be exported as asked (no firmware, an impossible format). */
  | 'bundle-export-unsupported'
  /** A matrix selection (vCPU counts, CPU signatures, VMSA variants) or format that cannot be read. */
  | 'bundle-bad-selection'
  /** An SEV-SNP bundle for an SEV profile's id, or an SEV bundle for an SEV-SNP profile's. */
  | 'bundle-scheme-mismatch'
  /** No signing key yet (run `sev-attest bundle keygen`). */
  | 'bundle-no-signing-key';

export class BundleError extends DomainError<BundleErrorCode> {
  constructor(code: BundleErrorCode, message: string) {
    super(code, message);
    this.name = 'BundleError';
  }
}

export function isBundleError(e: unknown): e is BundleError {
  return e instanceof BundleError;
}
