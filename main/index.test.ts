/**
 * The Electron composition root (main/index.ts) with a mocked `electron` and a stand-in service: the
 * single-instance lock, app.enableSandbox before ready, the navigation guards before the first window,
 * permissions denied, every contract channel registered, the tray keeping the app (and its listener)
 * alive when the window closes, a notification for a request while hidden, and a quit that drains the
 * listener before the app exits.
 */
import { describe, expect, it, vi } from 'vitest';
import { INVOKE_CHANNELS } from '../app/contract/ipc';

const m = vi.hoisted(() => {
  // Packaged builds find the tray icon under process.resourcesPath.
  Object.assign(process, { resourcesPath: '/nonexistent/resources' });
  return {
    order: [] as string[],
    windows: [] as Array<{ options: Record<string, unknown>; win: { webContents: unknown } }>,
    /** What ipcMain.handle received: channel -> listener (a second registration of a channel throws). */
    ipcChannels: new Map<string, (event: unknown, ...args: unknown[]) => Promise<unknown>>(),
    /** The handlers object the composition root got from createInvokeHandlers. */
    handlers: undefined as undefined | Record<string, ReturnType<typeof vi.fn>>,
    trays: 0,
    notifications: 0,
    quits: 0,
    serviceClosed: 0,
    resolveClose: undefined as undefined | (() => void),
    emit: undefined as undefined | ((channel: string, payload: unknown) => void),
  };
});

vi.mock('electron', async () => {
  const { EventEmitter: Emitter } = await import('node:events');
  const app = Object.assign(new Emitter(), {
    isPackaged: true,
    requestSingleInstanceLock: vi.fn(() => (m.order.push('lock'), true)),
    enableSandbox: vi.fn(() => m.order.push('enableSandbox')),
    setPath: vi.fn(),
    getPath: vi.fn(() => '/nonexistent/sev-attest-index-test'),
    getVersion: () => '0.0.0-test',
    whenReady: vi.fn(async () => void m.order.push('ready')),
    quit: vi.fn(() => {
      m.quits++;
      const e = { defaultPrevented: false, preventDefault: () => (e.defaultPrevented = true) };
      app.emit('before-quit', e);
    }),
    exit: vi.fn(),
  });
  const origOn = app.on.bind(app);
  app.on = ((event: string, fn: (...a: unknown[]) => void) => {
    if (event === 'web-contents-created') m.order.push('guards');
    return origOn(event, fn);
  }) as typeof app.on;
  class BrowserWindow extends Emitter {
    webContents = {
      isDestroyed: () => false,
      send: vi.fn(),
      mainFrame: { url: 'app://sev-attest/index.html', parent: null },
    };
    loadURL = vi.fn(async () => {});
    isDestroyed = () => false;
    isVisible = () => false;
    isFocused = () => false;
    isMinimized = () => false;
    show = vi.fn();
    hide = vi.fn();
    override once = vi.fn() as never;
    constructor(options: Record<string, unknown>) {
      super();
      m.order.push('window');
      m.windows.push({ options, win: this });
    }
  }
  const session = {
    defaultSession: {
      setPermissionRequestHandler: vi.fn(() => m.order.push('permissions')),
      setPermissionCheckHandler: vi.fn(),
      setDevicePermissionHandler: vi.fn(),
    },
  };
  class Notification {
    static isSupported = () => true;
    on = vi.fn();
    show = () => m.notifications++;
  }
  class Tray {
    constructor() {
      m.trays++;
    }
    setToolTip = vi.fn();
    setContextMenu = vi.fn();
    on = vi.fn();
    destroy = vi.fn();
  }
  return {
    app,
    BrowserWindow,
    session,
    Notification,
    Tray,
    nativeImage: { createFromPath: () => ({ resize: () => ({}) }) },
    Menu: { buildFromTemplate: vi.fn(() => ({})), setApplicationMenu: vi.fn() },
    shell: { openExternal: vi.fn() },
    protocol: { registerSchemesAsPrivileged: vi.fn(), handle: vi.fn() },
    net: { fetch: vi.fn() },
    ipcMain: {
      handle: vi.fn((channel: string, fn: (event: unknown, ...args: unknown[]) => Promise<unknown>) => {
        if (m.ipcChannels.has(channel)) throw new Error(`second handler for ${channel}`);
        m.ipcChannels.set(channel, fn);
      }),
      removeHandler: vi.fn((channel: string) => m.ipcChannels.delete(channel)),
    },
  };
});

vi.mock('node:fs', async (orig) => {
  const real = await orig<typeof import('node:fs')>();
  // The data directory is not created; the tray icon "exists" so the tray is built.
  return {
    ...real,
    mkdirSync: vi.fn(),
    existsSync: (p: string) => p.endsWith('icon.png') || real.existsSync(p),
  };
});
vi.mock('./settings/electron-store-backend', () => ({ electronStoreBackend: () => ({}) }));
vi.mock('../server/serve/serve', () => ({
  startService: vi.fn(async () => ({
    url: 'http://127.0.0.1:8470',
    hostToken: 'h',
    close: () =>
      new Promise<void>((resolve) => {
        m.resolveClose = () => {
          m.serviceClosed++;
          resolve();
        };
      }),
  })),
}));
vi.mock('../server/owner-api/handlers', async () => {
  const { INVOKE_CHANNELS: channels } = await import('../app/contract/ipc');
  return {
    createInvokeHandlers: () =>
      (m.handlers = Object.fromEntries(channels.map((c) => [c, vi.fn(async () => `result of ${c}`)]))),
    settingsFirstRun: () => ({}),
    connectUiEvents: (_service: unknown, bus: { emit(c: string, p: unknown): void }) => {
      m.emit = (c, p) => bus.emit(c, p);
      return () => {};
    },
  };
});

const { app } = await import('electron');
await import('./index');
await vi.waitFor(() => expect(m.windows).toHaveLength(1));

describe('main/index.ts wiring', () => {
  it('lock, sandbox and guards before ready; permissions denied before the window', () => {
    expect(m.order.slice(0, 4)).toEqual(['lock', 'enableSandbox', 'guards', 'ready']);
    expect(m.order.indexOf('permissions')).toBeLessThan(m.order.indexOf('window'));
  });

  it('one window with the checklist webPreferences, loaded from app://', () => {
    const prefs = m.windows[0]!.options['webPreferences'] as Record<string, unknown>;
    expect(prefs).toMatchObject({
      sandbox: true,
      contextIsolation: true,
      nodeIntegration: false,
      webviewTag: false,
      devTools: false,
    });
  });

  it('ipcMain.handle received every contract channel, once, each wired to its own handler', async () => {
    expect([...m.ipcChannels.keys()].sort()).toEqual([...INVOKE_CHANNELS].sort());
    const handlers = m.handlers!;
    const win = m.windows[0]!.win as { webContents: { mainFrame: unknown } };
    const event = { sender: win.webContents, senderFrame: win.webContents.mainFrame };
    let reached = 0;
    for (const [channel, listener] of m.ipcChannels) {
      for (const h of Object.values(handlers)) h.mockClear();
      // No arguments: channels that take none reach their handler, the others refuse before any handler.
      const r = (await listener(event)) as { ok: boolean; value?: unknown };
      const called = Object.entries(handlers).filter(([, h]) => h.mock.calls.length > 0);
      expect(called.map(([c]) => c)).toEqual(r.ok ? [channel] : []);
      if (r.ok) {
        expect(r.value).toBe(`result of ${channel}`);
        reached++;
      }
    }
    expect(reached).toBeGreaterThan(0);
  });

  it('the tray keeps the app alive when every window closed; a hidden window gets a notification', () => {
    expect(m.trays).toBe(1);
    app.emit('window-all-closed');
    expect(m.quits).toBe(0);
    m.emit!('approvals:changed', [{ id: 'a1', state: 'pending', vmId: 'v', clientAddress: '127.0.0.1' }]);
    m.emit!('approvals:changed', [{ id: 'a1', state: 'pending', vmId: 'v', clientAddress: '127.0.0.1' }]);
    expect(m.notifications).toBe(1); // once per request
  });

  it('quit waits for the listener to drain, then exits and unregisters IPC', async () => {
    app.quit();
    expect(m.serviceClosed).toBe(0);
    expect(m.quits).toBe(1); // held: the service is still closing
    m.resolveClose!();
    await vi.waitFor(() => expect(m.quits).toBe(2));
    expect(m.serviceClosed).toBe(1);
    expect(m.ipcChannels.size).toBe(0);
  });
});
