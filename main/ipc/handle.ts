/**
 * Typed IPC handlers with the security checklist built in (docs/architecture.md §6.2):
 * every call is checked for its sender (main frame, our app:// origin, a window we created) and its
 * arguments are parsed with the contract's zod schema before the service sees them. Errors come back as
 * `{ ok: false, error, message }` (never a stack). Only this file and send.ts touch ipcMain/webContents.
 */
import { ipcMain, type IpcMainInvokeEvent, type WebContents } from 'electron';
import type { InvokeChannel, InvokeHandlers, IpcResponse } from '../../app/contract/ipc';
import { invokeChecked } from '../../server/owner-api/dispatch';
import type { ErrorLogger } from '../../server/owner-api/errors';

/** Decides whether an IPC event comes from our UI. */
export interface SenderGuard {
  /** undefined when trusted, else the reason it is refused (logged, and returned to the caller). */
  check(event: Pick<IpcMainInvokeEvent, 'sender' | 'senderFrame'>): string | undefined;
}

export interface SenderGuardOptions {
  /** True for a URL our renderer is served from (app://sev-attest/...). */
  isTrustedUrl(url: string): boolean;
  /** True for the webContents of a window we created. */
  isKnownWebContents(wc: WebContents): boolean;
}

/** The checklist's "every IPC handler checks its sender frame" (Electron security guide item 17). */
export function createSenderGuard(opts: SenderGuardOptions): SenderGuard {
  return {
    check(event) {
      // The window first: a destroyed webContents must not be touched (mainFrame would throw).
      if (!event.sender || event.sender.isDestroyed() || !opts.isKnownWebContents(event.sender)) {
        return 'not sent from a window of this app';
      }
      const frame = event.senderFrame;
      if (!frame) return 'the sending frame is gone (navigated or destroyed)';
      if (frame !== event.sender.mainFrame || frame.parent !== null) return 'not sent from the main frame';
      if (!opts.isTrustedUrl(frame.url)) return 'not sent from the app origin';
      return undefined;
    },
  };
}

/** Registers one contract channel: sender check, schema parse, then `fn`. Returns the unregister function. */
export function handle<K extends InvokeChannel>(
  channel: K,
  fn: InvokeHandlers[K],
  guard: SenderGuard,
  log?: ErrorLogger,
): () => void {
  ipcMain.handle(channel, async (event, ...rawArgs: unknown[]): Promise<IpcResponse<unknown>> => {
    const refused = guard.check(event);
    if (refused !== undefined) {
      console.warn(`[ipc] refused ${channel}: ${refused}`);
      return { ok: false, error: 'forbidden-sender', message: `refused: ${refused}` };
    }
    return invokeChecked(channel, fn, rawArgs, log);
  });
  return () => ipcMain.removeHandler(channel);
}
