/**
 * The one error model of SEV Attest. Every expected failure, in the core and in the services, is a
 * `DomainError` with a code from one typed union; a transport only translates it: the listener picks the HTTP
 * status (server/listener), IPC and the browser bridge pass `{ error: code, message }`, the CLIs pick an exit
 * code. One failure has one code on every transport. Anything that is not a DomainError is a bug and reaches
 * users as `internal` with a fixed sentence.
 */
import type { BundleErrorCode } from './bundle/errors';
import type { KbsErrorCode } from './kbs/errors';
import type { SevErrorCode } from './sev/errors';

/** Codes of the services (owner decisions, stores, the listener's own refusals). */
export const SERVICE_ERROR_CODES = [
  // Requests that are malformed or not allowed, whatever sent them.
  'bad-request',
  'bad-arguments',
  'unknown-channel',
  'forbidden-sender',
  'misdirected',
  'unauthorized',
  'origin-not-allowed',
  'not-found',
  'method-not-allowed',
  'request-timeout',
  'payload-too-large',
  'unsupported-media-type',
  'rate-limited',
  // Launch and validate refusals.
  'policy-not-allowed',
  'cpu-id-not-allowed',
  'cpu-id-unproven',
  'denied',
  'policy-mismatch',
  'build-not-allowed',
  'unknown-vm',
  'unknown-connection',
  'unknown-approval',
  'connection-used',
  'connection-expired',
  'approval-decided',
  // Stores and owner data.
  'secret-store-unavailable',
  'secret-format',
  'secret-missing',
  'unknown-secret',
  'profile-invalid',
  'vm-exists',
  'settings-invalid',
  'store-corrupt',
  'audit-invalid',
  'audit-write-failed',
  'audit-full',
  // serve --database: PostgreSQL unreachable (503, retry), or its schema is not this version's.
  'database-unavailable',
  'database-schema',
  'row-undecryptable',
  'store-conflict',
  'unknown-artifact',
  'artifact-not-found',
  'artifact-io',
  'artifact-aborted',
  'artifact-bad-digest',
  'import-in-progress',
  'artifact-in-use',
  'bad-format',
  'cancelled',
  'url-not-allowed',
  'not-supported',
  'bad-key',
  'demo-not-possible',
  'service-closed',
  'listener-restart-failed',
  'data-dir-locked',
  'host-token-required',
  'non-loopback-not-confirmed',
  // The renderer's own view of a call that did not come back.
  'unreachable',
  'http-error',
  // A bug: never chosen for a user's mistake.
  'internal',
] as const;

export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

/** Every code a DomainError can carry. */
export type ErrorCode = ServiceErrorCode | SevErrorCode | BundleErrorCode | KbsErrorCode;

export interface DomainErrorOptions {
  /**
   * What an untrusted caller (a host) may read; the full message goes to the owner's audit log only.
   * Defaults to the message.
   */
  hostMessage?: string;
  /** Evidence for the owner's audit event (never sent to a host). */
  details?: Record<string, unknown>;
  /** Seconds after which repeating the request may succeed (Retry-After). */
  retryAfterSeconds?: number;
}

/** An expected failure: a stable code and a sentence that says exactly what was wrong. */
export class DomainError<C extends ErrorCode = ErrorCode> extends Error {
  readonly hostMessage: string;
  readonly details: Record<string, unknown>;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: C,
    message: string,
    options: DomainErrorOptions = {},
  ) {
    super(message);
    this.name = 'DomainError';
    this.hostMessage = options.hostMessage ?? message;
    this.details = options.details ?? {};
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isDomainError(e: unknown): e is DomainError {
  return e instanceof DomainError;
}

/** The message of anything thrown, for logs and audit details. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
