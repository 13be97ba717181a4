/** An error line for a failed query or action, as plain text (never HTML). */
import { apiErrorOf } from '../../../app/contract/ipc';

/** A sentence for the codes where the server's message alone does not say what to do. */
function advice(code: string): string | undefined {
  switch (code) {
    case 'secret-store-unavailable':
      return 'The keychain is locked or unavailable. Unlock your login keyring (or start the Secret Service) and try again; nothing was saved.';
    case 'unauthorized':
      return 'The owner session has expired: reload the page with the owner token link.';
    default:
      return undefined;
  }
}

/** The contract's `{code, message}` of any rejection, for display. */
export function describeError(error: unknown): { code: string; message: string; advice?: string } {
  const { code, message } = apiErrorOf(error);
  return { code, message, advice: advice(code) };
}

/** Shows `error` (an ApiError, an encoded preload rejection or anything else) when present. */
export function ErrorMessage({ error, prefix }: { error: unknown; prefix?: string }) {
  if (error === null || error === undefined) return null;
  const d = describeError(error);
  return (
    <div className="error" role="alert">
      <p>
        {prefix ? `${prefix}: ` : ''}
        {d.message} <span className="muted">({d.code})</span>
      </p>
      {d.advice && <p>{d.advice}</p>}
    </div>
  );
}
