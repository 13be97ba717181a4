/**
 * The Electron composition root: one window, the tray, menus, notifications, the typed IPC, and the same
 * services as `sev-attest serve` (server/serve/serve.ts) with the data in app.getPath('userData').
 * Closing the window hides it (the listener keeps answering); Quit drains the listener, then exits.
 */
import { app, BrowserWindow, session } from 'electron';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { ApprovalView } from '../app/contract/ipc';
import { startService, type RunningService } from '../server/serve/serve';
import { connectUiEvents, createInvokeHandlers, settingsFirstRun } from '../server/owner-api/handlers';
import { UiEventBus } from '../server/owner-api/event-bus';
import { createSenderGuard } from './ipc/handle';
import { registerIpcHandlers } from './ipc/register';
import { send } from './ipc/send';
import { installMenu } from './menu';
import { notifyNewApproval } from './notifications';
import { electronStoreBackend } from './settings/electron-store-backend';
import { createTray } from './tray';
import { APP_INDEX_URL, isAppUrl } from './windows/app-origin';
import { handleAppProtocol, registerAppScheme } from './windows/app-protocol';
import { createMainWindow } from './windows/main-window';
import { denyAllPermissions, installWebContentsGuards, openExternalChecked } from './windows/security';

// electron-vite sets this in `dev`; packaged builds load app://sev-attest/.
const devServerUrl = app.isPackaged ? undefined : process.env['ELECTRON_RENDERER_URL'];
const trusted = (url: string): boolean => isAppUrl(url, devServerUrl);

let win: BrowserWindow | undefined;
let quitting = false;

function showWindow(): void {
  if (!win || win.isDestroyed()) return;
  if (win.isMinimized()) win.restore();
  win.show();
  win.focus();
}

async function main(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  app.on('second-instance', showWindow);
  app.enableSandbox();
  // Tests and portable setups: a separate data directory (never the user's own).
  const userDataOverride = process.env['SEV_ATTEST_USER_DATA'];
  if (userDataOverride) app.setPath('userData', userDataOverride);
  registerAppScheme();
  installWebContentsGuards(app, trusted);
  await app.whenReady();

  denyAllPermissions(session.defaultSession);
  const rendererDir = path.join(__dirname, '../renderer');
  handleAppProtocol(rendererDir);

  const dataDir = app.getPath('userData');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const portOverride = process.env['SEV_ATTEST_PORT'];
  let service: RunningService;
  try {
    // Bind address, port and TLS come from the stored settings (listener:configure changes them).
    service = await startService({
      ...(portOverride ? { port: Number(portOverride) } : {}),
      dataDir,
      kvBackend: electronStoreBackend,
      secretStore: process.env['SEV_ATTEST_SECRET_STORE'] === 'memory' ? 'memory' : 'keychain',
      ...(process.env['SEV_ATTEST_OWNER_TOKEN'] ? { ownerToken: process.env['SEV_ATTEST_OWNER_TOKEN'] } : {}),
      version: app.getVersion(),
      log: (line) => console.log(`[listener] ${line}`),
    });
  } catch (e) {
    console.error('[main] the attestation service did not start:', e);
    app.exit(1);
    return;
  }

  const bus = new UiEventBus();
  const disconnect = connectUiEvents(service, bus);
  const handlers = createInvokeHandlers({
    service,
    mode: 'desktop',
    version: app.getVersion(),
    dataDir,
    firstRun: settingsFirstRun(service),
    openExternal: openExternalChecked,
  });
  const guard = createSenderGuard({
    isTrustedUrl: trusted,
    isKnownWebContents: (wc) => win !== undefined && !win.isDestroyed() && wc === win.webContents,
  });
  const unregister = registerIpcHandlers(handlers, guard);

  // Packaged: electron-builder's extraResources copies assets/icon.png next to app.asar.
  const icon = app.isPackaged
    ? path.join(process.resourcesPath, 'icon.png')
    : path.join(__dirname, '../../assets/icon.png');
  win = createMainWindow({
    preloadPath: path.join(__dirname, '../preload/index.js'),
    isPackaged: app.isPackaged,
    url: devServerUrl ?? APP_INDEX_URL,
    ...(existsSync(icon) ? { icon } : {}),
    isQuitting: () => quitting,
  });
  const notified = new Set<string>();
  bus.subscribe((channel, payload) => {
    send(win, channel, payload);
    if (channel === 'approvals:changed') {
      for (const a of payload as ApprovalView[]) {
        if (a.state === 'pending' && !notified.has(a.id)) {
          notified.add(a.id);
          notifyNewApproval(a, win, showWindow);
        }
      }
    }
  });

  const quit = (): void => {
    quitting = true;
    app.quit();
  };
  installMenu({ quit, openExternal: (url) => void openExternalChecked(url).catch(() => {}) });
  const tray = existsSync(icon)
    ? createTray(icon, { show: showWindow, quit, status: () => `Listening on ${service.url}` })
    : undefined;

  app.on('activate', showWindow);
  app.on('window-all-closed', () => {
    // Stay alive in the tray: hosts may still call the listener.
  });
  let drained = false;
  app.on('before-quit', (e) => {
    quitting = true;
    if (drained) return;
    e.preventDefault();
    unregister();
    disconnect();
    tray?.tray.destroy();
    void service
      .close()
      .catch((err: unknown) => console.error('[main] closing the service failed:', err))
      .finally(() => {
        drained = true;
        app.quit();
      });
  });
}

void main();
