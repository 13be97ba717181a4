import { DomainError } from '../errors';

/**
 * The protocol core's errors (a DomainError whose code is one of the core's). `code` is a stable kebab-case identifier that the CLI,
 * the listener and the UI map to their own messages; `message` says exactly what was wrong.
 */
export class SevError extends DomainError<SevErrorCode> {
  constructor(code: SevErrorCode, message: string) {
    super(code, message);
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
  | 'cek-unknown-chip'
  | 'measurement-mismatch'
  | 'mac-mismatch'
  | 'api-too-old'
  | 'firmware-unsupported'
  | 'io';

export function isSevError(e: unknown): e is SevError {
  return e instanceof SevError;
}
