import { describe, expect, it, vi } from 'vitest';
import { apiErrorOf, EVENT_CHANNELS, eventMethodName, INVOKE_CHANNELS } from '../app/contract/ipc';

const exposed = new Map<string, unknown>();
const listeners = new Map<string, Set<(...a: unknown[]) => void>>();
const invoke = vi.fn(async (channel: string, ..._args: unknown[]) => ({ ok: true, value: `v:${channel}` }));
vi.mock('electron', () => ({
  contextBridge: { exposeInMainWorld: (key: string, value: unknown) => exposed.set(key, value) },
  ipcRenderer: {
    invoke: (channel: string, ...args: unknown[]) => invoke(channel, ...args),
    on: (channel: string, fn: (...a: unknown[]) => void) => {
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel)!.add(fn);
    },
    removeListener: (channel: string, fn: (...a: unknown[]) => void) => listeners.get(channel)?.delete(fn),
  },
  webUtils: { getPathForFile: (f: { name: string }) => `/dropped/${f.name}` },
}));

await import('./index');
const api = exposed.get('api') as Record<string, Record<string, (...a: unknown[]) => unknown>>;

describe('preload window.api', () => {
  it('exposes only `api`, with one method per invoke channel and one subscription per event channel', () => {
    expect([...exposed.keys()]).toEqual(['api']);
    const invokeMethods: string[] = [];
    const eventMethods: string[] = [];
    for (const [group, methods] of Object.entries(api)) {
      if (group === 'files') continue;
      for (const name of Object.keys(methods)) {
        (/^on[A-Z]/.test(name) ? eventMethods : invokeMethods).push(`${group}:${name}`);
      }
    }
    expect(invokeMethods.sort()).toEqual([...INVOKE_CHANNELS].sort());
    expect(eventMethods.sort()).toEqual(
      EVENT_CHANNELS.map((c) => `${c.split(':')[0]}:${eventMethodName(c)}`).sort(),
    );
    expect(Object.keys(api.files!)).toEqual(['pathFor']);
  });

  it('each method invokes its own channel with its arguments', async () => {
    for (const channel of INVOKE_CHANNELS) {
      const [group, action] = channel.split(':') as [string, string];
      invoke.mockClear();
      await expect(api[group]![action]!('a', 'b')).resolves.toBe(`v:${channel}`);
      expect(invoke).toHaveBeenCalledTimes(1);
      expect(invoke.mock.calls[0]![0]).toBe(channel);
    }
  });

  it('rejects with a decodable error code', async () => {
    invoke.mockResolvedValueOnce({
      ok: false,
      error: 'secret-store-unavailable',
      message: 'locked',
    } as never);
    const err = await (api.secrets!.reveal!('vm1', 'g') as Promise<unknown>).catch((e: unknown) => e);
    expect(apiErrorOf(err)).toEqual({ code: 'secret-store-unavailable', message: 'locked' });
  });

  it('event subscriptions strip the IPC event and unsubscribe', () => {
    const got: unknown[] = [];
    const off = api.approvals!.onChanged!((snapshot: unknown) => got.push(snapshot)) as () => void;
    const set = listeners.get('approvals:changed')!;
    expect(set.size).toBe(1);
    for (const fn of set) fn({ sender: 'secret-sender' }, [{ id: 'a1' }]);
    expect(got).toEqual([[{ id: 'a1' }]]);
    off();
    expect(set.size).toBe(0);
  });

  it('files.pathFor uses webUtils.getPathForFile', () => {
    expect(api.files!.pathFor!({ name: 'OVMF.fd' })).toBe('/dropped/OVMF.fd');
  });
});
