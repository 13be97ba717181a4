/**
 * Typed push to the renderer: only contract event channels, and never to a destroyed window.
 * The only place (with handle.ts) that calls webContents.send.
 */
import type { BrowserWindow, WebContents } from 'electron';
import type { EventChannel, EventPayload } from '../../app/contract/ipc';

/** Sends one event; false when the target is gone (closed window, crashed renderer). */
export function send<K extends EventChannel>(
  target: BrowserWindow | WebContents | null | undefined,
  channel: K,
  payload: EventPayload<K>,
): boolean {
  if (!target || target.isDestroyed()) return false;
  const wc = 'webContents' in target ? target.webContents : target;
  if (!wc || wc.isDestroyed()) return false;
  wc.send(channel, payload);
  return true;
}
