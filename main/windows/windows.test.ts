import { EventEmitter } from 'node:events';
import path from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const { created, openExternal } = vi.hoisted(() => ({
  created: [] as Array<{ options: Record<string, unknown>; win: unknown }>,
  openExternal: vi.fn(async (_url: string) => {}),
}));
vi.mock('electron', async () => {
  const { EventEmitter: Emitter } = await import('node:events');
  class BrowserWindow extends Emitter {
    loadURL = vi.fn(async () => {});
    show = vi.fn();
    hide = vi.fn();
    constructor(options: Record<string, unknown>) {
      super();
      created.push({ options, win: this as never });
    }
  }
  return {
    BrowserWindow,
    shell: { openExternal: (url: string) => openExternal(url) },
    protocol: { registerSchemesAsPrivileged: vi.fn(), handle: vi.fn() },
    net: { fetch: vi.fn() },
  };
});

const { createMainWindow, mainWindowWebPreferences } = await import('./main-window');
const { installWebContentsGuards, denyAllPermissions, openExternalChecked } = await import('./security');
const { resolveAppFile } = await import('./app-protocol');
const { isAppUrl, APP_INDEX_URL } = await import('./app-origin');
const { menuTemplate } = await import('../menu');

beforeEach(() => {
  openExternal.mockClear();
  created.length = 0;
});

describe('main window', () => {
  it('is created sandboxed, isolated, without Node or webview, with our preload', () => {
    const win = createMainWindow({
      preloadPath: '/app/out/preload/index.js',
      isPackaged: true,
      url: APP_INDEX_URL,
      isQuitting: () => false,
    });
    expect(created).toHaveLength(1);
    const prefs = created[0]!.options['webPreferences'] as Record<string, unknown>;
    expect(prefs).toMatchObject({
      preload: '/app/out/preload/index.js',
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webviewTag: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      devTools: false,
    });
    expect((win as unknown as { loadURL: ReturnType<typeof vi.fn> }).loadURL).toHaveBeenCalledWith(
      'app://sev-attest/index.html',
    );
    expect(mainWindowWebPreferences('/p', false).devTools).toBe(true);
  });

  it('hides instead of closing unless quitting (the listener keeps answering)', () => {
    let quitting = false;
    const win = createMainWindow({
      preloadPath: '/p',
      isPackaged: true,
      url: APP_INDEX_URL,
      isQuitting: () => quitting,
    });
    const ev = { preventDefault: vi.fn() };
    win.emit('close', ev);
    expect(ev.preventDefault).toHaveBeenCalled();
    expect((win as unknown as { hide: ReturnType<typeof vi.fn> }).hide).toHaveBeenCalled();
    quitting = true;
    const ev2 = { preventDefault: vi.fn() };
    win.emit('close', ev2);
    expect(ev2.preventDefault).not.toHaveBeenCalled();
  });
});

describe('web-contents guards', () => {
  function setup() {
    const app = new EventEmitter();
    installWebContentsGuards(app as never, (u) => isAppUrl(u));
    const contents = Object.assign(new EventEmitter(), {
      openHandler: undefined as undefined | ((d: { url: string }) => { action: string }),
      setWindowOpenHandler(fn: (d: { url: string }) => { action: string }) {
        this.openHandler = fn;
      },
    });
    app.emit('web-contents-created', {}, contents);
    return contents;
  }

  it('denies navigation away from the app and allows in-app URLs', () => {
    const contents = setup();
    for (const event of ['will-navigate', 'will-redirect']) {
      expect(contents.listenerCount(event)).toBe(1);
      const away = { preventDefault: vi.fn() };
      contents.emit(event, away, 'https://evil.example/');
      expect(away.preventDefault).toHaveBeenCalled();
      const file = { preventDefault: vi.fn() };
      contents.emit(event, file, 'file:///etc/passwd');
      expect(file.preventDefault).toHaveBeenCalled();
      const inApp = { preventDefault: vi.fn() };
      contents.emit(event, inApp, 'app://sev-attest/index.html');
      expect(inApp.preventDefault).not.toHaveBeenCalled();
    }
    const webview = { preventDefault: vi.fn() };
    contents.emit('will-attach-webview', webview);
    expect(webview.preventDefault).toHaveBeenCalled();
  });

  it('denies every window.open; only allow-listed https links go to the system browser', () => {
    const contents = setup();
    expect(contents.openHandler!({ url: 'https://libvirt.org/kbase/launch_security_sev.html' })).toEqual({
      action: 'deny',
    });
    expect(openExternal).toHaveBeenCalledWith('https://libvirt.org/kbase/launch_security_sev.html');
    openExternal.mockClear();
    for (const url of [
      'https://evil.example/',
      'http://libvirt.org/',
      'file:///etc/passwd',
      'app://sev-attest/',
    ]) {
      expect(contents.openHandler!({ url })).toEqual({ action: 'deny' });
    }
    expect(openExternal).not.toHaveBeenCalled();
  });

  it('denies every permission request and check', () => {
    const handlers: Record<string, (...a: unknown[]) => unknown> = {};
    const session = {
      setPermissionRequestHandler: (fn: never) => (handlers['request'] = fn),
      setPermissionCheckHandler: (fn: never) => (handlers['check'] = fn),
      setDevicePermissionHandler: (fn: never) => (handlers['device'] = fn),
    };
    denyAllPermissions(session as never);
    for (const permission of ['media', 'notifications', 'geolocation', 'clipboard-read']) {
      const cb = vi.fn();
      handlers['request']!({}, permission, cb);
      expect(cb).toHaveBeenCalledWith(false);
    }
    expect(handlers['check']!({}, 'media')).toBe(false);
    expect(handlers['device']!({})).toBe(false);
  });

  it('openExternalChecked opens only allowed https URLs', async () => {
    await openExternalChecked('https://github.com/virtee/sev');
    expect(openExternal).toHaveBeenCalledTimes(1);
    await expect(openExternalChecked('http://github.com/')).rejects.toMatchObject({
      code: 'url-not-allowed',
    });
    await expect(openExternalChecked('smb://host/share')).rejects.toMatchObject({ code: 'url-not-allowed' });
    expect(openExternal).toHaveBeenCalledTimes(1);
  });

  it('the Help menu links are on the allow-list', () => {
    const opened: string[] = [];
    const help = menuTemplate({ quit: () => {}, openExternal: (u) => opened.push(u) }, false).find(
      (m) => m.role === 'help',
    );
    for (const item of help!.submenu as Array<{ click: () => void }>) item.click();
    expect(opened.length).toBeGreaterThan(0);
    for (const u of opened) expect(isAppUrl(u)).toBe(false);
  });
});

describe('app:// protocol', () => {
  it('maps app URLs into the renderer directory and nothing outside it', () => {
    const root = path.resolve('/app/out/renderer');
    expect(resolveAppFile(root, 'app://sev-attest/')).toBe(path.join(root, 'index.html'));
    expect(resolveAppFile(root, 'app://sev-attest/assets/index-1.js')).toBe(
      path.join(root, 'assets/index-1.js'),
    );
    expect(resolveAppFile(root, 'app://sev-attest/..%2F..%2Fpackage.json')).toBeUndefined();
    expect(resolveAppFile(root, 'app://other/index.html')).toBeUndefined();
    expect(resolveAppFile(root, 'file:///etc/passwd')).toBeUndefined();
  });
});
