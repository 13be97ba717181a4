/**
 * The transport-free half of every request: validate the argument list with the contract's zod schema,
 * call the handler, wrap the result or the error. Electron IPC (handle.ts) and the browser bridge
 * (server/web/ui-server.ts) both go through here, so both enforce exactly the same schemas.
 */
import {
  invokeArgSchemas,
  isInvokeChannel,
  type InvokeChannel,
  type InvokeHandlers,
  type IpcResponse,
} from '../../app/contract/ipc';
import { errorResponse, type ErrorLogger } from './errors';

const MAX_ISSUES = 8;

/** Validates `rawArgs` for `channel` and calls its handler; never throws. */
export async function dispatch(
  handlers: InvokeHandlers,
  channel: string,
  rawArgs: unknown,
  log?: ErrorLogger,
): Promise<IpcResponse<unknown>> {
  // Deny by default: only contract channels exist.
  if (!isInvokeChannel(channel)) {
    return { ok: false, error: 'unknown-channel', message: `no such channel: ${channel.slice(0, 64)}` };
  }
  return invokeChecked(channel, handlers[channel], rawArgs, log);
}

/** Parses `rawArgs` with the channel's schema; only valid arguments reach `fn`. Never throws. */
export async function invokeChecked<K extends InvokeChannel>(
  channel: K,
  fn: InvokeHandlers[K],
  rawArgs: unknown,
  log?: ErrorLogger,
): Promise<IpcResponse<unknown>> {
  const parsed = invokeArgSchemas[channel].safeParse(rawArgs);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, MAX_ISSUES)
      .map((i) => `${i.path.length > 0 ? `argument ${i.path.join('.')}` : 'arguments'}: ${i.message}`)
      .join('; ');
    return { ok: false, error: 'bad-arguments', message: `invalid arguments for ${channel}: ${issues}` };
  }
  try {
    const value = await (fn as (...a: unknown[]) => Promise<unknown>)(...(parsed.data as unknown[]));
    return { ok: true, value };
  } catch (e) {
    return errorResponse(e, channel, log);
  }
}

/** Narrowing helper for tests and callers that want a channel-typed result. */
export type ChannelResponse<K extends InvokeChannel> = IpcResponse<Awaited<ReturnType<InvokeHandlers[K]>>>;
