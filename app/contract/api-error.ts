/**
 * A rejected API call as the renderer sees it, in Electron and in the browser: a kebab-case code and a
 * sentence. Kept apart from ipc.ts (no zod) so the preload bundle stays small.
 */

// contextBridge copies only an Error's message across worlds, so the code travels inside it.
const API_ERROR_MARK = 'sev-attest-error:';

/** Packs a code and message into one Error message (the preload rejects with it). */
export function encodeApiErrorMessage(code: string, message: string): string {
  return `${API_ERROR_MARK}${code}:${message}`;
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
  ) {
    super(encodeApiErrorMessage(code, detail));
    this.name = 'ApiError';
  }
}

/** Turns any rejection into `{ code, message }` (ApiError, an encoded message from the preload, or other). */
export function apiErrorOf(e: unknown): { code: string; message: string } {
  if (e instanceof ApiError) return { code: e.code, message: e.detail };
  const raw = e instanceof Error ? e.message : String(e);
  const at = raw.indexOf(API_ERROR_MARK);
  if (at >= 0) {
    const rest = raw.slice(at + API_ERROR_MARK.length);
    const colon = rest.indexOf(':');
    if (colon > 0) return { code: rest.slice(0, colon), message: rest.slice(colon + 1) };
  }
  return { code: 'internal', message: raw };
}
