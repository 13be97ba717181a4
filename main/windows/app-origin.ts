/**
 * Where the renderer is loaded from: our own `app://sev-attest/` protocol (never file://), or the
 * electron-vite dev server in development. IPC sender checks and navigation guards both use this.
 */
export const APP_SCHEME = 'app';
export const APP_HOST = 'sev-attest';
export const APP_URL_PREFIX = `${APP_SCHEME}://${APP_HOST}/`;
export const APP_INDEX_URL = `${APP_URL_PREFIX}index.html`;

/** True for a URL of our renderer: app://sev-attest/..., or the dev server's origin when one is set. */
export function isAppUrl(url: string, devServerUrl?: string): boolean {
  if (url.startsWith(APP_URL_PREFIX)) return true;
  if (!devServerUrl) return false;
  try {
    const u = new URL(url);
    const dev = new URL(devServerUrl);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === dev.origin;
  } catch {
    return false;
  }
}
