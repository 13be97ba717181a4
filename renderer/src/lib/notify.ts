/**
 * Browser-mode notifications of new launch requests (the desktop app notifies from main): the Notification
 * API when the owner allowed it, one notification per request id.
 */
import { useEffect, useRef, useState } from 'react';
import type { ApprovalView } from '../../../app/contract/ipc';

type NotificationCtor = typeof Notification | undefined;

function notificationApi(): NotificationCtor {
  return typeof window !== 'undefined' && 'Notification' in window ? window.Notification : undefined;
}

/** The page's permission ('unsupported' without the API), re-read after asking. */
export function useNotificationPermission(): [NotificationPermission | 'unsupported', () => Promise<void>] {
  const N = notificationApi();
  const [permission, setPermission] = useState<NotificationPermission | 'unsupported'>(
    N ? N.permission : 'unsupported',
  );
  const ask = async () => {
    if (!N) return;
    setPermission(await N.requestPermission());
  };
  return [permission, ask];
}

/** The title and body of the notification for a new request (no secret values, no chip id). */
export function requestNotificationText(a: ApprovalView): { title: string; body: string } {
  const vm = a.profileName ? `${a.profileName} (${a.vmId})` : (a.vmId ?? 'a VM');
  return {
    title:
      a.kind === 'snp-attest'
        ? 'SEV Attest: an SEV-SNP guest is waiting for you'
        : 'SEV Attest: a launch is waiting for you',
    body: `${vm} from ${a.clientAddress}`,
  };
}

/** In browser mode, notifies each new pending approval once (when permitted). */
export function useRequestNotifications(approvals: ApprovalView[] | undefined, enabled: boolean): void {
  const seen = useRef<Set<string> | undefined>(undefined);
  useEffect(() => {
    if (!approvals) return;
    const pending = approvals.filter((a) => a.state === 'pending');
    // The first snapshot is what was already there when the page opened: not news.
    if (!seen.current) {
      seen.current = new Set(pending.map((a) => a.id));
      return;
    }
    const N = notificationApi();
    for (const a of pending) {
      if (seen.current.has(a.id)) continue;
      seen.current.add(a.id);
      if (!enabled || !N || N.permission !== 'granted') continue;
      const { title, body } = requestNotificationText(a);
      const n = new N(title, { body, tag: `approval-${a.id}` });
      n.onclick = () => {
        window.focus();
        window.location.hash = '/requests';
      };
    }
  }, [approvals, enabled]);
}
