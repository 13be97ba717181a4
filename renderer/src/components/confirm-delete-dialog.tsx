/**
 * The one confirmation before a destructive delete (profiles, secrets, artifacts): what goes, a safe
 * "Keep it" and a danger button that names the action, and the service's refusal in plain words.
 */
import type { ReactNode } from 'react';
import { Dialog } from './dialog';
import { ErrorMessage } from './error-message';

export function ConfirmDeleteDialog({
  title,
  confirmLabel,
  deleting,
  error,
  errorPrefix = 'Delete failed',
  onConfirm,
  onClose,
  children,
}: {
  title: string;
  /** The danger button's words, e.g. "Delete secret". */
  confirmLabel: string;
  deleting: boolean;
  error: unknown;
  errorPrefix?: string;
  onConfirm(): void;
  onClose(): void;
  /** What the delete removes and what follows from it. */
  children: ReactNode;
}) {
  return (
    <Dialog
      title={title}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Keep it
          </button>
          <button type="button" className="danger" disabled={deleting} onClick={onConfirm}>
            {confirmLabel}
          </button>
        </>
      }
    >
      {children}
      <ErrorMessage error={error} prefix={errorPrefix} />
    </Dialog>
  );
}
