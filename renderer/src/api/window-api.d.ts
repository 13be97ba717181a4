import type { SevAttestApi } from '../../../app/contract/ipc';

declare global {
  interface Window {
    /** Set by the Electron preload (preload/index.ts); absent in a browser (`sev-attest serve --ui`). */
    readonly api?: SevAttestApi;
  }
}
