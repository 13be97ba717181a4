/**
 * A SevAttestApi for component tests: every call is a vi.fn that rejects unless the test gives it an
 * implementation, and every subscription records its listener so the test can push events.
 */
import { vi, type Mock } from 'vitest';
import { apiFromTransport, type EventChannels, type SevAttestApi } from '../../app/contract/ipc';

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
  // Every method from the contract's channel lists; each call is its own vi.fn, rejecting until given one.
  const fromContract = apiFromTransport(
    (channel, ..._args) => Promise.reject(new Error(`${channel} was not expected in this test`)),
    (channel, fn) => sub(channel)(fn as never),
  );
  const base = { files: { pathFor: (file: File) => `upload:${file.name}` } } as SevAttestApi;
  for (const [feature, group] of Object.entries(fromContract)) {
    const methods: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(group as Record<string, (...a: unknown[]) => unknown>)) {
      methods[name] = name.startsWith('on') ? fn : unused(`${feature}.${name}`);
    }
    (base as unknown as Record<string, object>)[feature] = methods;
  }
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
