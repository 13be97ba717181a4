/**
 * The one error type of the protocol core. `code` is a stable kebab-case identifier that the CLI,
 * the listener and the UI map to their own messages; `message` says exactly what was wrong.
 */
export class SevError extends Error {
  constructor(
    readonly code: SevErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SevError';
  }
}

export type SevErrorCode =
  | 'bad-length'
  | 'bad-version'
  | 'bad-usage'
  | 'bad-algorithm'
  | 'bad-curve'
  | 'bad-key'
  | 'bad-signature'
  | 'bad-format'
  | 'bad-policy'
  | 'chain-not-trusted'
  | 'cek-unsigned'
  | 'kds-unavailable'
  | 'measurement-mismatch'
  | 'mac-mismatch'
  | 'api-too-old'
  | 'firmware-unsupported'
  | 'io';

export function isSevError(e: unknown): e is SevError {
  return e instanceof SevError;
}
