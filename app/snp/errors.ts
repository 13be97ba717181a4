/**
 * The error type of SNP report verification (docs/protocol.md §11, §12). `code` is a stable kebab-case
 * identifier the CLI and the listener map to exit codes and messages; `message` says exactly what was wrong.
 */
export class SnpError extends Error {
  constructor(
    readonly code: SnpErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SnpError';
  }
}

export type SnpErrorCode =
  /** The report bytes are not an SNP attestation report (size, version, fields). */
  | 'bad-report'
  /** A certificate or CRL is not well-formed DER / X.509 as AMD issues them. */
  | 'bad-der'
  | 'bad-certificate'
  /** The product (Milan/Genoa/Turin) is unknown or disagrees between report, key and argument. */
  | 'unknown-product'
  | 'product-mismatch'
  /** The report names another signing key than the one given (VCEK vs VLEK). */
  | 'signer-mismatch'
  /** A chain that does not end in a pinned ARK, or a link whose signature does not verify. */
  | 'root-not-pinned'
  | 'chain-not-trusted'
  /** The report's ECDSA P-384 signature does not verify with the VCEK / VLEK. */
  | 'bad-signature'
  /** The key's TCB / hwid extensions disagree with the report. */
  | 'tcb-mismatch'
  | 'hwid-mismatch'
  | 'chip-id-masked'
  /** A certificate outside its validity at the verification time. */
  | 'cert-expired'
  | 'cert-not-yet-valid'
  /** Revocation: an intermediate on the ARK-signed CRL, a CRL that does not verify, or no CRL. */
  | 'revoked'
  | 'crl-invalid'
  | 'crl-unavailable'
  /** The key server: no such object (HTTP 404) vs. could not be reached / answered garbage. */
  | 'kds-not-found'
  | 'kds-unavailable'
  /** The offline VCEK store has no key for this chip and TCB. */
  | 'vcek-not-found'
  | 'io';

export function isSnpError(e: unknown): e is SnpError {
  return e instanceof SnpError;
}
