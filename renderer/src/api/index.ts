/**
 * Picks the contract implementation for this mode: `window.api` from the Electron preload, else the
 * HTTP/SSE bridge of `sev-attest serve --ui`. The rest of the renderer is the same in both modes.
 * Rejections are normalised to ApiError (code + message) in both.
 */
import { ApiError, apiErrorOf, type SevAttestApi } from '../../../app/contract/ipc';
import { createWebApi } from './web-api';

/** Wraps the preload's methods so a rejection is an ApiError (contextBridge keeps only the message). */
export function withApiErrors(raw: SevAttestApi): SevAttestApi {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [group, methods] of Object.entries(raw as unknown as Record<string, Record<string, unknown>>)) {
    const wrapped: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(methods)) {
      if (typeof fn !== 'function') continue;
      const passThrough = group === 'files' || /^on[A-Z]/.test(name);
      wrapped[name] = passThrough
        ? fn
        : (...args: unknown[]) =>
            (fn as (...a: unknown[]) => Promise<unknown>)(...args).catch((e: unknown) => {
              const { code, message } = apiErrorOf(e);
              throw new ApiError(code, message);
            });
    }
    out[group] = wrapped;
  }
  return out as unknown as SevAttestApi;
}

export const api: SevAttestApi = window.api ? withApiErrors(window.api) : createWebApi();
export { ApiError, apiErrorOf };
