/**
 * The one IPC helper of the tests: the owner API (the IPC contract's handlers over a running service) as
 * the renderer calls it, through the same dispatch Electron IPC and the browser bridge use (argument
 * schemas, error mapping), or through the real browser bridge over HTTP (sign-in, cookie, CSRF header).
 */
import type { InvokeChannel, InvokeHandlers, InvokeResult, IpcResponse } from '../../app/contract/ipc';
import { dispatch } from '../../server/owner-api/dispatch';
import { createInvokeHandlers, settingsFirstRun, type HandlerContext } from '../../server/owner-api/handlers';
import type { RunningService } from '../../server/serve/serve';
import { startUi } from '../../server/web/start-ui';
import { request } from './http';

export interface OwnerApiClient {
  /** The raw response: `{ ok: true, value }` or `{ ok: false, error, message }`. */
  raw(channel: string, ...args: unknown[]): Promise<IpcResponse<unknown>>;
  /** The value, or a thrown Error whose message is `code: message`. */
  call<K extends InvokeChannel>(channel: K, ...args: unknown[]): Promise<InvokeResult<K>>;
}

function valueOf<T>(r: IpcResponse<unknown>): T {
  if (!r.ok) throw Object.assign(new Error(`${r.error}: ${r.message}`), { code: r.error });
  return r.value as T;
}

/** The handlers of `service` as the desktop (mode 'desktop', actor 'ipc') or browser mode builds them. */
export function ownerHandlers(
  service: RunningService,
  overrides: Partial<Omit<HandlerContext, 'service'>> = {},
): InvokeHandlers {
  return createInvokeHandlers({
    service,
    mode: 'desktop',
    version: 'test',
    dataDir: service.dataDir,
    firstRun: settingsFirstRun(service),
    openExternal: async () => {},
    ...overrides,
  });
}

/** Calls over dispatch, exactly as main/ipc/handle.ts does after its sender check. */
export function ipcClient(handlers: InvokeHandlers): OwnerApiClient {
  const raw = (channel: string, ...args: unknown[]) => dispatch(handlers, channel, args, () => {});
  return {
    raw,
    call: async (channel, ...args) => valueOf(await raw(channel, ...args)),
  };
}

/** Starts the browser bridge for `service`, signs in with the owner token, and calls over real HTTP. */
export async function bridgeClient(
  service: RunningService,
): Promise<OwnerApiClient & { url: string; close(): Promise<void> }> {
  const ui = await startUi(service, {
    rendererDir: service.dataDir,
    dataDir: service.dataDir,
    version: 'test',
  });
  const login = new URL(ui.loginUrl);
  const signIn = await request(ui.url, 'GET', login.pathname + login.search, { token: null });
  const cookie = String(signIn.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';
  if (!cookie) throw new Error(`the bridge did not sign in (HTTP ${signIn.status})`);
  const raw = async (channel: string, ...args: unknown[]): Promise<IpcResponse<unknown>> => {
    const res = await request(ui.url, 'POST', `/ui/api/${channel}`, {
      token: null,
      body: args,
      headers: { cookie, origin: ui.url, 'x-sev-attest-ui': '1' },
    });
    return res.json as IpcResponse<unknown>;
  };
  return {
    url: ui.url,
    raw,
    call: async (channel, ...args) => valueOf(await raw(channel, ...args)),
    close: () => ui.close(),
  };
}
