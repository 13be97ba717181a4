/**
 * Turns anything a service throws into the contract's structured error `{ error, message }`.
 * Expected failures are DomainErrors (app/errors.ts) and pass through with their code and message. Anything
 * else is a bug: the caller gets `internal` and a fixed sentence, the detail goes to the main-process log
 * only (never a stack to the UI).
 */
import type { IpcResponse } from '../../app/contract/ipc';
import { isDomainError, type ErrorCode } from '../../app/errors';

const MAX_MESSAGE = 4000;

/** Logs unexpected errors; replaceable in tests. */
export type ErrorLogger = (context: string, error: unknown) => void;

const defaultLogger: ErrorLogger = (context, error) => {
  console.error(`[ipc] ${context}:`, error);
};

/** The `{ ok: false }` response for a thrown value. */
export function errorResponse(
  e: unknown,
  context: string,
  log: ErrorLogger = defaultLogger,
): { ok: false; error: ErrorCode; message: string } {
  if (isDomainError(e)) return { ok: false, error: e.code, message: e.message.slice(0, MAX_MESSAGE) };
  log(context, e);
  return { ok: false, error: 'internal', message: 'an internal error occurred (details are in the app log)' };
}

/** A structured error response with a known code. */
export function failure(error: ErrorCode, message: string): IpcResponse<never> {
  return { ok: false, error, message };
}
