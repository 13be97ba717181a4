/** The tray icon that keeps the app (and its listener) reachable while the window is closed. */
import { Menu, Tray, nativeImage } from 'electron';

export interface TrayActions {
  show(): void;
  quit(): void;
  /** e.g. "Listening on 127.0.0.1:8470" */
  status(): string;
}

/** Creates the tray; rebuild its menu with the returned function when the status changes. */
export function createTray(iconPath: string, actions: TrayActions): { tray: Tray; refresh(): void } {
  const tray = new Tray(nativeImage.createFromPath(iconPath).resize({ width: 16, height: 16 }));
  tray.setToolTip('SEV Attest');
  const refresh = (): void => {
    tray.setContextMenu(
      Menu.buildFromTemplate([
        { label: actions.status(), enabled: false },
        { type: 'separator' },
        { label: 'Open SEV Attest', click: () => actions.show() },
        { label: 'Quit (stops the listener)', click: () => actions.quit() },
      ]),
    );
  };
  tray.on('click', () => actions.show());
  refresh();
  return { tray, refresh };
}
