/**
 * A SevAttestApi for component tests: every call is a vi.fn that rejects unless the test gives it an
 * implementation, and every subscription records its listener so the test can push events.
 */
import { vi, type Mock } from 'vitest';
import type { EventChannels, SevAttestApi } from '../../app/contract/ipc';

type Listeners = { [K in keyof EventChannels]: EventChannels[K][] };

export interface FakeApi {
  api: SevAttestApi;
  /** Calls every listener of a push channel, as main would. */
  emit<K extends keyof EventChannels>(channel: K, payload: Parameters<EventChannels[K]>[0]): void;
  listeners: Listeners;
}

function unused(name: string): Mock {
  return vi.fn(() => Promise.reject(new Error(`${name} was not expected in this test`)));
}

/** Builds the fake; `overrides` replaces whole feature groups or single methods. */
export function createFakeApi(overrides: DeepPartial<SevAttestApi> = {}): FakeApi {
  const listeners: Listeners = {
    'approvals:changed': [],
    'events:appended': [],
    'artifacts:progress': [],
    'listener:changed': [],
    'tunnel:changed': [],
  };
  const sub =
    <K extends keyof EventChannels>(channel: K) =>
    (fn: EventChannels[K]) => {
      listeners[channel].push(fn);
      return () => {
        listeners[channel] = listeners[channel].filter((f) => f !== fn) as Listeners[K];
      };
    };
  const base: SevAttestApi = {
    profiles: {
      list: unused('profiles.list'),
      get: unused('profiles.get'),
      save: unused('profiles.save'),
      duplicate: unused('profiles.duplicate'),
      delete: unused('profiles.delete'),
    },
    secrets: {
      set: unused('secrets.set'),
      reveal: unused('secrets.reveal'),
      delete: unused('secrets.delete'),
    },
    artifacts: {
      list: unused('artifacts.list'),
      import: unused('artifacts.import'),
      cancelImport: unused('artifacts.cancelImport'),
      inspect: unused('artifacts.inspect'),
      rename: unused('artifacts.rename'),
      delete: unused('artifacts.delete'),
      onProgress: sub('artifacts:progress'),
    },
    digests: { preview: unused('digests.preview') },
    approvals: {
      list: unused('approvals.list'),
      decide: unused('approvals.decide'),
      forget: unused('approvals.forget'),
      onChanged: sub('approvals:changed'),
    },
    events: {
      list: unused('events.list'),
      export: unused('events.export'),
      onAppended: sub('events:appended'),
    },
    listener: {
      status: unused('listener.status'),
      configure: unused('listener.configure'),
      tokens: unused('listener.tokens'),
      onChanged: sub('listener:changed'),
    },
    tunnel: {
      status: unused('tunnel.status'),
      configure: unused('tunnel.configure'),
      onChanged: sub('tunnel:changed'),
    },
    hostSetup: { get: unused('hostSetup.get') },
    demo: { run: unused('demo.run') },
    bundles: {
      preview: unused('bundles.preview'),
      export: unused('bundles.export'),
      verify: unused('bundles.verify'),
      import: unused('bundles.import'),
      key: unused('bundles.key'),
      keygen: unused('bundles.keygen'),
      trusted: unused('bundles.trusted'),
      trust: unused('bundles.trust'),
      untrust: unused('bundles.untrust'),
    },
    app: { info: unused('app.info'), completeFirstRun: unused('app.completeFirstRun') },
    shell: { openExternal: unused('shell.openExternal') },
    files: { pathFor: (file: File) => `upload:${file.name}` },
  };
  for (const [feature, group] of Object.entries(overrides)) {
    Object.assign((base as unknown as Record<string, object>)[feature]!, group);
  }
  return {
    api: base,
    listeners,
    emit(channel, payload) {
      for (const fn of listeners[channel]) (fn as (p: typeof payload) => void)(payload);
    },
  };
}

type DeepPartial<T> = { [K in keyof T]?: Partial<T[K]> };
