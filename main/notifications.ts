/** OS notifications: a new launch request while the window is hidden or unfocused. */
import { Notification, type BrowserWindow } from 'electron';
import type { ApprovalView } from '../app/contract/ipc';

/** Shows a notification for a new pending approval unless the owner is looking at the window. */
export function notifyNewApproval(
  approval: ApprovalView,
  win: BrowserWindow | undefined,
  show: () => void,
): boolean {
  if (approval.state !== 'pending') return false;
  if (win && !win.isDestroyed() && win.isVisible() && win.isFocused()) return false;
  if (!Notification.isSupported()) return false;
  const n = new Notification({
    title: approval.kind === 'snp-attest' ? 'SEV-SNP guest waiting' : 'Launch request waiting',
    // Host-supplied strings are plain text here; notifications never render HTML.
    body: `${approval.vmId ?? 'unregistered VM'} from ${approval.clientAddress}: approve or deny in SEV Attest`,
  });
  n.on('click', show);
  n.show();
  return true;
}
