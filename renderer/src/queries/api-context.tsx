/**
 * The contract implementation the UI talks to, injected by context: main.tsx provides `api` from ./api
 * (window.api in Electron, HTTP/SSE in a browser); component tests provide a fake typed as SevAttestApi.
 */
import { createContext, useContext, type ReactNode } from 'react';
import type { SevAttestApi } from '../../../app/contract/ipc';

const ApiContext = createContext<SevAttestApi | null>(null);

/** Makes `api` available to every hook below it. */
export function ApiProvider({ api, children }: { api: SevAttestApi; children: ReactNode }) {
  return <ApiContext.Provider value={api}>{children}</ApiContext.Provider>;
}

/** The contract implementation; throws when used outside ApiProvider (a wiring bug). */
export function useApi(): SevAttestApi {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi() outside <ApiProvider>');
  return api;
}
