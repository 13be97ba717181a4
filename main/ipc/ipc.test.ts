import { beforeEach, describe, expect, it, vi } from 'vitest';
import { DomainError } from '../../app/errors';
import { INVOKE_CHANNELS, type InvokeHandlers } from '../../app/contract/ipc';

const registered = new Map<string, (event: unknown, ...args: unknown[]) => Promise<unknown>>();
vi.mock('electron', () => ({
  ipcMain: {
    handle: vi.fn((channel: string, fn: (event: unknown, ...args: unknown[]) => Promise<unknown>) => {
      if (registered.has(channel)) throw new Error(`second handler for ${channel}`);
      registered.set(channel, fn);
    }),
    removeHandler: vi.fn((channel: string) => registered.delete(channel)),
  },
}));

const { createSenderGuard } = await import('./handle');
const { registerIpcHandlers } = await import('./register');
const { isAppUrl, APP_INDEX_URL } = await import('../windows/app-origin');

function fakeHandlers(): InvokeHandlers {
  return Object.fromEntries(INVOKE_CHANNELS.map((c) => [c, vi.fn(async () => `result of ${c}`)])) as never;
}

interface FakeFrame {
  url: string;
  parent: FakeFrame | null;
}
function fakeWindow(url = APP_INDEX_URL) {
  const mainFrame: FakeFrame = { url, parent: null };
  const sender = { mainFrame, isDestroyed: () => false };
  return { sender, mainFrame };
}

describe('IPC registration and checks', () => {
  const known = fakeWindow();
  const guard = createSenderGuard({
    isTrustedUrl: (u) => isAppUrl(u),
    isKnownWebContents: (wc) => wc === (known.sender as never),
  });
  let handlers: InvokeHandlers;
  let unregister: () => void;

  beforeEach(() => {
    registered.clear();
    handlers = fakeHandlers();
    unregister = registerIpcHandlers(handlers, guard, () => {});
  });

  it('registers exactly the contract channels', () => {
    expect(new Set(registered.keys())).toEqual(new Set(INVOKE_CHANNELS));
    expect(registered.size).toBe(INVOKE_CHANNELS.length);
    unregister();
    expect(registered.size).toBe(0);
  });

  it('calls the service with parsed arguments for a trusted sender', async () => {
    const res = await registered.get('approvals:decide')!(
      { ...known, senderFrame: known.mainFrame },
      'a1',
      'approve',
    );
    expect(res).toEqual({ ok: true, value: 'result of approvals:decide' });
    expect(handlers['approvals:decide']).toHaveBeenCalledWith('a1', 'approve');
  });

  it('applies schema defaults before the service sees the arguments', async () => {
    await registered.get('listener:configure')!(
      { ...known, senderFrame: known.mainFrame },
      { host: '127.0.0.1', port: 8470, tls: false },
    );
    expect(handlers['listener:configure']).toHaveBeenCalledWith({
      host: '127.0.0.1',
      port: 8470,
      tls: false,
      hostToken: 'keep',
    });
  });

  it('rejects invalid arguments without calling the service', async () => {
    const call = registered.get('approvals:decide')!;
    const res = await call({ ...known, senderFrame: known.mainFrame }, 'a1', 'maybe');
    expect(res).toMatchObject({ ok: false, error: 'bad-arguments' });
    const extra = await registered.get('profiles:list')!({ ...known, senderFrame: known.mainFrame }, 'x');
    expect(extra).toMatchObject({ ok: false, error: 'bad-arguments' });
    const inject = await registered.get('profiles:get')!(
      { ...known, senderFrame: known.mainFrame },
      {
        toString: 'x',
      },
    );
    expect(inject).toMatchObject({ ok: false, error: 'bad-arguments' });
    expect(handlers['approvals:decide']).not.toHaveBeenCalled();
    expect(handlers['profiles:list']).not.toHaveBeenCalled();
    expect(handlers['profiles:get']).not.toHaveBeenCalled();
  });

  it('rejects a subframe, a foreign origin, an unknown window and a vanished frame', async () => {
    const call = registered.get('listener:tokens')!;
    const sub: FakeFrame = { url: APP_INDEX_URL, parent: known.mainFrame };
    expect(await call({ sender: known.sender, senderFrame: sub })).toMatchObject({
      ok: false,
      error: 'forbidden-sender',
    });

    const foreign = fakeWindow('https://evil.example/');
    const foreignGuardOk = createSenderGuard({
      isTrustedUrl: (u) => isAppUrl(u),
      isKnownWebContents: () => true,
    });
    expect(foreignGuardOk.check({ sender: foreign.sender, senderFrame: foreign.mainFrame } as never)).toMatch(
      /origin/,
    );
    // Same window, but the main frame navigated away from app://.
    const navigated = { ...known.mainFrame, url: 'file:///etc/passwd' };
    const nav = { mainFrame: navigated, isDestroyed: () => false };
    expect(foreignGuardOk.check({ sender: nav, senderFrame: navigated } as never)).toMatch(/origin/);

    const stranger = fakeWindow();
    expect(await call({ sender: stranger.sender, senderFrame: stranger.mainFrame })).toMatchObject({
      error: 'forbidden-sender',
    });
    expect(await call({ sender: known.sender, senderFrame: null })).toMatchObject({
      error: 'forbidden-sender',
    });
    expect(handlers['listener:tokens']).not.toHaveBeenCalled();
  });

  it('returns a coded error for expected failures and hides unexpected ones', async () => {
    const ev = { ...known, senderFrame: known.mainFrame };
    vi.mocked(handlers['profiles:delete']).mockRejectedValueOnce(
      new DomainError('secret-store-unavailable', 'the keychain is locked'),
    );
    expect(await registered.get('profiles:delete')!(ev, 'vm1')).toEqual({
      ok: false,
      error: 'secret-store-unavailable',
      message: 'the keychain is locked',
    });
    vi.mocked(handlers['profiles:list']).mockRejectedValueOnce(
      new TypeError('x is undefined at /src/secret.ts:12'),
    );
    const res = (await registered.get('profiles:list')!(ev)) as { error: string; message: string };
    expect(res.error).toBe('internal');
    expect(res.message).not.toContain('secret.ts');
  });
});

describe('app origin', () => {
  it('trusts app://sev-attest and the dev server only', () => {
    expect(isAppUrl('app://sev-attest/index.html')).toBe(true);
    expect(isAppUrl('app://sev-attestx/index.html')).toBe(false);
    expect(isAppUrl('file:///index.html')).toBe(false);
    expect(isAppUrl('http://localhost:5173/', 'http://localhost:5173')).toBe(true);
    expect(isAppUrl('http://localhost:5174/', 'http://localhost:5173')).toBe(false);
  });
});
