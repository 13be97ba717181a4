/**
 * Refusals of the decision: a DomainError whose message (the evidence, for the owner's audit log) is
 * never shown to a host. A host reads only the code and the generic sentence of HOST_MESSAGES: no VM's
 * policy, no other VM, no allow list, no file path of a trust anchor.
 */
import { DomainError, type ErrorCode } from '../errors';

/** The codes a launch or validate can be refused with. */
export type DecisionCode = Extract<
  ErrorCode,
  | 'bad-request'
  | 'unknown-vm'
  | 'policy-not-allowed'
  | 'cpu-id-not-allowed'
  | 'cpu-id-unproven'
  | 'chain-not-trusted'
  | 'cek-unknown-chip'
  | 'kds-unavailable'
  | 'denied'
  | 'measurement-mismatch'
  | 'policy-mismatch'
  | 'api-too-old'
  | 'build-not-allowed'
  | 'unknown-connection'
  | 'connection-used'
  | 'connection-expired'
  | 'secret-store-unavailable'
  | 'database-unavailable'
  | 'rate-limited'
  | 'internal'
>;

/** What a host may read for each refusal. */
export const HOST_MESSAGES: Record<DecisionCode, string> = {
  'bad-request': 'the request is malformed',
  'unknown-vm': 'no VM with that id',
  'policy-not-allowed': 'the launch policy is not allowed',
  'cpu-id-not-allowed': 'this chip is not allowed',
  'cpu-id-unproven':
    "the claimed cpu-id could not be proven: the chain's CEK is not the one AMD's key server gives for that chip",
  'chain-not-trusted': 'the platform certificate chain is not trusted',
  'cek-unknown-chip': "AMD's key server does not know this chip id",
  'kds-unavailable':
    "the signed CEK could not be fetched from AMD's key server; retry later or send it in cek",
  denied: 'the owner did not allow this',
  'measurement-mismatch': 'the launch measurement matches no launch the owner allows',
  'policy-mismatch': 'the reported policy is not the launch policy',
  'api-too-old': 'the firmware API version is not allowed',
  'build-not-allowed': 'the firmware build is not allowed',
  'unknown-connection': 'no such connection',
  'connection-used': 'this connection already validated (a connection releases secrets once)',
  'connection-expired': 'this connection expired; launch again',
  'secret-store-unavailable': "the owner's secret store is unavailable; try later",
  'database-unavailable': 'the service is temporarily unavailable; try again shortly',
  'rate-limited': 'too many requests; try later',
  internal: 'internal error',
};

/**
 * A refusal: `message` and `details` are for the owner's audit event; the host gets HOST_MESSAGES[code],
 * or `hostMessage` when the caller knows the sentence reveals nothing of the owner's (e.g. what the
 * host itself sent wrong).
 */
export function refusal(
  code: DecisionCode,
  message: string,
  details: Record<string, unknown> = {},
  options: { hostMessage?: string; retryAfterSeconds?: number } = {},
): DomainError<DecisionCode> {
  return new DomainError(code, message, {
    hostMessage: options.hostMessage ?? HOST_MESSAGES[code],
    details,
    ...(options.retryAfterSeconds !== undefined ? { retryAfterSeconds: options.retryAfterSeconds } : {}),
  });
}
