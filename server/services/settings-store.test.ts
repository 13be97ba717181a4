import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createConfBackend } from './kv-backend';
import {
  DEFAULT_LISTENER_PORT,
  SettingsStore,
  SettingsValidationError,
  defaultSettings,
  type SettingsUpdate,
} from './settings-store';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'settings-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function open() {
  const backend = createConfBackend<{ settings: Record<string, unknown> }>({
    cwd: dir,
    configName: 'settings',
    defaults: { settings: {} },
  });
  return { backend, store: new SettingsStore({ backend }) };
}

describe('SettingsStore', () => {
  it('has documented defaults', () => {
    const s = open().store.get();
    expect(s).toEqual(defaultSettings());
    expect(s.listener).toEqual({
      host: '127.0.0.1',
      port: DEFAULT_LISTENER_PORT,
      tls: false,
      allowedHosts: [],
    });
    expect(s.kdsUrl).toBe('https://kdsintf.amd.com');
    expect(s.approvalTimeoutSeconds).toBe(120);
    expect(s.connectionTtlSeconds).toBe(600);
    expect(s.tunnel.enabled).toBe(false);
    expect(s.firstRunDone).toBe(false);
  });

  it('merges nested updates, validates, and persists', () => {
    const { store } = open();
    store.update({ listener: { port: 9000 }, firstRunDone: true });
    store.update({
      listener: { allowedHosts: ['attest.example.org'] },
      tunnel: { enabled: true, target: 'owner@host.example:2222' },
    });
    const again = open().store.get();
    expect(again.listener).toEqual({
      host: '127.0.0.1',
      port: 9000,
      tls: false,
      allowedHosts: ['attest.example.org'],
    });
    expect(again.tunnel).toEqual({ enabled: true, target: 'owner@host.example:2222', remotePort: 8470 });
    expect(again.firstRunDone).toBe(true);
  });

  it.each<[string, SettingsUpdate, string]>([
    ['port out of range', { listener: { port: 70000 } }, 'listener.port'],
    ['tunnel enabled without target', { tunnel: { enabled: true } }, 'tunnel.target'],
    ['bad tunnel target', { tunnel: { target: 'host-without-user' } }, 'tunnel.target'],
    ['non-http KDS', { kdsUrl: 'ftp://kds.example' }, 'kdsUrl'],
    ['relative CA path', { trustedCaFiles: ['ca.pem'] }, 'trustedCaFiles[0]'],
    ['zero approval timeout', { approvalTimeoutSeconds: 0 }, 'approvalTimeoutSeconds'],
    ['bad host', { listener: { host: 'a b' } }, 'listener.host'],
    ['unknown key', { nope: 1 } as SettingsUpdate, 'nope'],
  ])('rejects %s without writing', (_name, update, path) => {
    const { store, backend } = open();
    const before = readFileSync(backend.path, 'utf8');
    let err: unknown;
    try {
      store.update(update);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SettingsValidationError);
    expect((err as SettingsValidationError).issues.map((i) => i.path)).toContain(path);
    expect(readFileSync(backend.path, 'utf8')).toBe(before);
  });

  it('accepts IPv6 listen addresses and bracketed IPv6 tunnel hosts', () => {
    const { store } = open();
    expect(store.update({ listener: { host: '::1' } }).listener.host).toBe('::1');
    expect(store.update({ tunnel: { target: 'root@[2001:db8::1]:22' } }).tunnel.target).toBe(
      'root@[2001:db8::1]:22',
    );
  });

  it('a hand-edited invalid field falls back to its default, is reported, and the file is left alone', () => {
    const { store, backend } = open();
    store.update({ approvalTimeoutSeconds: 30 });
    const onDisk = JSON.parse(readFileSync(backend.path, 'utf8'));
    onDisk.settings.listener = { port: 'eighty' };
    writeFileSync(backend.path, JSON.stringify(onDisk));
    const s = store.get();
    expect(s.listener.port).toBe(8470);
    expect(s.approvalTimeoutSeconds).toBe(30);
    expect(store.problems().join('\n')).toMatch(/^listener: port: .*using the default/);
    expect(JSON.parse(readFileSync(backend.path, 'utf8')).settings.listener).toEqual({ port: 'eighty' });
  });
});
