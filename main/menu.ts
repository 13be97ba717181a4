/** The native application menu (standard roles plus help links through the checked openExternal). */
import { Menu, type MenuItemConstructorOptions } from 'electron';

export interface MenuActions {
  quit(): void;
  openExternal(url: string): void;
}

/** The menu template (exported for tests). */
export function menuTemplate(actions: MenuActions, isMac: boolean): MenuItemConstructorOptions[] {
  return [
    ...(isMac ? [{ role: 'appMenu' as const }] : []),
    {
      label: 'File',
      submenu: [{ label: 'Quit', accelerator: 'CmdOrCtrl+Q', click: () => actions.quit() }],
    },
    { role: 'editMenu' },
    { role: 'viewMenu' },
    { role: 'windowMenu' },
    {
      role: 'help',
      submenu: [
        {
          label: 'libvirt: AMD SEV launch security',
          click: () => actions.openExternal('https://libvirt.org/kbase/launch_security_sev.html'),
        },
      ],
    },
  ];
}

/** Installs the menu. */
export function installMenu(actions: MenuActions): void {
  Menu.setApplicationMenu(Menu.buildFromTemplate(menuTemplate(actions, process.platform === 'darwin')));
}
