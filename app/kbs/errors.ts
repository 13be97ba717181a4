/**
 * Errors of the Trustee KBS protocol primitives (docs/protocol.md §15). Each carries the Trustee error
 * kind a compatible server names in its reply (`.../kbs/errors/<Kind>`); the HTTP status for a kind is
 * the guest-facing contract's business (app/contract/kbs.ts, `KBS_ERROR_STATUS`).
 */
import { DomainError, type DomainErrorOptions } from '../errors';

/**
 * The kinds Trustee's KBS puts in its error replies (kbs/src/error.rs: the variant name of its error enum).
 * SEV Attest uses the same names so that guest logs read the same as against Trustee.
 */
export const KBS_ERROR_KINDS = [
  /**
   * Anything that goes wrong in /auth or /attest, malformed bodies included: Trustee reads those bodies
   * inside its attestation service, whose errors all surface under this kind.
   */
  'AttestationError',
  /** A JSON body outside /auth and /attest that does not parse. */
  'SerdeError',
  /** The resource route without a valid session (no cookie, expired, never attested). */
  'TokenNotFound',
  'TokenVerifierError',
  /** The session's attestation does not allow this resource. */
  'PolicyDeny',
  /** A path outside the KBS routes, or a resource that does not exist. */
  'InvalidRequestPath',
  'PluginNotFound',
  /** Encrypting the resource to the guest's key failed. */
  'JweError',
  'PluginInternalError',
] as const;

export type KbsErrorKind = (typeof KBS_ERROR_KINDS)[number];

export type KbsErrorCode = 'kbs-protocol';

/** A malformed or refused KBS message; `message` is plain words safe to return to the guest. */
export class KbsProtocolError extends DomainError<KbsErrorCode> {
  constructor(
    readonly kind: KbsErrorKind,
    message: string,
    options: DomainErrorOptions = {},
  ) {
    super('kbs-protocol', message, options);
    this.name = 'KbsProtocolError';
  }
}

export function isKbsProtocolError(e: unknown): e is KbsProtocolError {
  return e instanceof KbsProtocolError;
}
