/**
 * Registers a handler for every request channel of the contract, and nothing else (deny by default:
 * a channel outside INVOKE_CHANNELS is never registered, so ipcRenderer.invoke on it fails in Electron).
 */
import { INVOKE_CHANNELS, type InvokeChannel, type InvokeHandlers } from '../../app/contract/ipc';
import type { ErrorLogger } from '../../server/owner-api/errors';
import { handle, type SenderGuard } from './handle';

/** Returns the function that removes every handler again (used on quit and in tests). */
export function registerIpcHandlers(
  handlers: InvokeHandlers,
  guard: SenderGuard,
  log?: ErrorLogger,
): () => void {
  const removers = INVOKE_CHANNELS.map(<K extends InvokeChannel>(channel: K) =>
    handle(channel, handlers[channel], guard, log),
  );
  return () => {
    for (const remove of removers) remove();
  };
}
