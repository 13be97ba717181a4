/**
 * The app-wide Electron guards of the security checklist: navigation and window.open denied for every
 * webContents (external links only through openExternalChecked), no <webview>, and every permission
 * request denied. Installed once, before the first window.
 */
import { shell, type App, type Session } from 'electron';
import { isAllowedExternalUrl } from '../../app/contract/ipc';
import { DomainError } from '../../app/errors';

/** Opens an allow-listed https URL in the system browser; refuses anything else (checklist: openExternal). */
export async function openExternalChecked(url: string): Promise<void> {
  if (!isAllowedExternalUrl(url)) {
    throw new DomainError('url-not-allowed', `not an allowed external link: ${url.slice(0, 200)}`);
  }
  await shell.openExternal(url);
}

/** Checklist: "navigation and window.open denied" and "no webview", for every webContents ever created. */
export function installWebContentsGuards(app: App, isAppUrl: (url: string) => boolean): void {
  app.on('web-contents-created', (_event, contents) => {
    const denyNavigation = (e: { preventDefault(): void }, url: string): void => {
      // In-app routing uses history/hash, which does not fire will-navigate; anything else leaves the app.
      if (!isAppUrl(url)) {
        e.preventDefault();
        console.warn(`[security] navigation to ${url.slice(0, 200)} denied`);
      }
    };
    contents.on('will-navigate', denyNavigation);
    contents.on('will-redirect', denyNavigation);
    contents.on('will-attach-webview', (e) => e.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      // A target=_blank link to an allowed page opens in the system browser; nothing opens in-app.
      if (isAllowedExternalUrl(url)) void shell.openExternal(url);
      else console.warn(`[security] window.open(${url.slice(0, 200)}) denied`);
      return { action: 'deny' };
    });
  });
}

/** Checklist: "permission requests denied" (camera, notifications-from-page, geolocation, ...). */
export function denyAllPermissions(session: Session): void {
  session.setPermissionRequestHandler((_wc, permission, callback) => {
    console.warn(`[security] permission ${permission} denied`);
    callback(false);
  });
  session.setPermissionCheckHandler(() => false);
  session.setDevicePermissionHandler(() => false);
}
