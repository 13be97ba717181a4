/**
 * The preload: the renderer's only door to main. It exposes `window.api` with exactly one method per
 * contract channel and typed event subscriptions (electron/fiddle style); nothing generic, so the renderer
 * can never name an arbitrary channel, and it never sees ipcRenderer or an IpcRendererEvent.
 * Bundled as one CommonJS file so it runs with `sandbox: true`.
 */
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import { encodeApiErrorMessage } from '../app/contract/api-error';
import type {
  EventChannel,
  EventChannels,
  EventPayload,
  InvokeArgs,
  InvokeChannel,
  InvokeResult,
  IpcResponse,
  SevAttestApi,
} from '../app/contract/ipc';

async function invoke<K extends InvokeChannel>(channel: K, ...args: InvokeArgs<K>): Promise<InvokeResult<K>> {
  const res = (await ipcRenderer.invoke(channel, ...args)) as IpcResponse<InvokeResult<K>>;
  if (res.ok) return res.value;
  // Only the message survives contextBridge: the code travels inside it (apiErrorOf decodes it).
  throw new Error(encodeApiErrorMessage(res.error, res.message));
}

function subscribe<K extends EventChannel>(channel: K, listener: EventChannels[K]): () => void {
  // Strip the event: it carries `sender`, which must not reach the page.
  const wrapped = (_event: IpcRendererEvent, payload: EventPayload<K>): void => {
    (listener as (p: EventPayload<K>) => void)(payload);
  };
  ipcRenderer.on(channel, wrapped);
  return () => {
    ipcRenderer.removeListener(channel, wrapped);
  };
}

/** window.api: built by hand so every exposed method is visible in review. */
export const api: SevAttestApi = {
  profiles: {
    list: () => invoke('profiles:list'),
    get: (id) => invoke('profiles:get', id),
    save: (profile) => invoke('profiles:save', profile),
    duplicate: (id, newId) => invoke('profiles:duplicate', id, newId),
    delete: (id) => invoke('profiles:delete', id),
  },
  secrets: {
    set: (vmId, secret) => invoke('secrets:set', vmId, secret),
    reveal: (vmId, guid) => invoke('secrets:reveal', vmId, guid),
    delete: (vmId, guid) => invoke('secrets:delete', vmId, guid),
  },
  artifacts: {
    list: () => invoke('artifacts:list'),
    import: (request) => invoke('artifacts:import', request),
    cancelImport: (importId) => invoke('artifacts:cancelImport', importId),
    inspect: (sha256) => invoke('artifacts:inspect', sha256),
    rename: (sha256, name) => invoke('artifacts:rename', sha256, name),
    delete: (sha256) => invoke('artifacts:delete', sha256),
    onProgress: (listener) => subscribe('artifacts:progress', listener),
  },
  digests: {
    preview: (draft) => invoke('digests:preview', draft),
  },
  approvals: {
    list: () => invoke('approvals:list'),
    decide: (id, decision) => invoke('approvals:decide', id, decision),
    forget: (id) => invoke('approvals:forget', id),
    onChanged: (listener) => subscribe('approvals:changed', listener),
  },
  events: {
    list: (filter) => invoke('events:list', filter),
    export: (filter) => invoke('events:export', filter),
    onAppended: (listener) => subscribe('events:appended', listener),
  },
  listener: {
    status: () => invoke('listener:status'),
    configure: (config) => invoke('listener:configure', config),
    tokens: () => invoke('listener:tokens'),
    onChanged: (listener) => subscribe('listener:changed', listener),
  },
  tunnel: {
    status: () => invoke('tunnel:status'),
    configure: (config) => invoke('tunnel:configure', config),
    onChanged: (listener) => subscribe('tunnel:changed', listener),
  },
  hostSetup: {
    get: (vmId, options) => invoke('hostSetup:get', vmId, options),
    snpKeys: (vmId, options) => invoke('hostSetup:snpKeys', vmId, options),
  },
  demo: {
    run: (options) => invoke('demo:run', options),
  },
  bundles: {
    preview: (vmId, selection) => invoke('bundles:preview', vmId, selection),
    export: (vmId, selection, format) => invoke('bundles:export', vmId, selection, format),
    verify: (text) => invoke('bundles:verify', text),
    import: (text, options) => invoke('bundles:import', text, options),
    key: () => invoke('bundles:key'),
    keygen: (options) => invoke('bundles:keygen', options),
    trusted: () => invoke('bundles:trusted'),
    trust: (keyText, label) => invoke('bundles:trust', keyText, label),
    untrust: (fingerprint) => invoke('bundles:untrust', fingerprint),
  },
  chips: {
    list: () => invoke('chips:list'),
    pinCek: (chipId, cekBase64, label) => invoke('chips:pinCek', chipId, cekBase64, label),
    unpin: (chipId) => invoke('chips:unpin', chipId),
  },
  app: {
    info: () => invoke('app:info'),
    completeFirstRun: () => invoke('app:completeFirstRun'),
  },
  shell: {
    openExternal: (url) => invoke('shell:openExternal', url),
  },
  files: {
    // For drag and drop and <input type=file>: File.path is gone since Electron 32.
    pathFor: (file) => webUtils.getPathForFile(file),
  },
};

// Deliberately unconditional: the window always runs with contextIsolation (checked in main/windows).
contextBridge.exposeInMainWorld('api', api);
