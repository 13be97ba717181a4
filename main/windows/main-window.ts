/**
 * The one application window. webPreferences follow the checklist: sandbox, context isolation, no Node,
 * no <webview>, devtools only in development.
 */
import { BrowserWindow, type WebPreferences } from 'electron';

/** The window's webPreferences (exported so tests assert exactly what the window gets). */
export function mainWindowWebPreferences(preloadPath: string, isPackaged: boolean): WebPreferences {
  return {
    preload: preloadPath,
    sandbox: true,
    contextIsolation: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webviewTag: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    experimentalFeatures: false,
    navigateOnDragDrop: false,
    spellcheck: false,
    devTools: !isPackaged,
  };
}

export interface MainWindowOptions {
  preloadPath: string;
  isPackaged: boolean;
  url: string;
  icon?: string;
  /** Closing hides the window (the listener keeps answering from the tray) unless the app is quitting. */
  isQuitting(): boolean;
}

/** Creates the window and loads the renderer. */
export function createMainWindow(opts: MainWindowOptions): BrowserWindow {
  const win = new BrowserWindow({
    width: 1200,
    height: 800,
    minWidth: 800,
    minHeight: 560,
    show: false,
    title: 'SEV Attest',
    ...(opts.icon ? { icon: opts.icon } : {}),
    webPreferences: mainWindowWebPreferences(opts.preloadPath, opts.isPackaged),
  });
  win.once('ready-to-show', () => win.show());
  win.on('close', (e) => {
    if (!opts.isQuitting()) {
      e.preventDefault();
      win.hide();
    }
  });
  void win.loadURL(opts.url);
  return win;
}
