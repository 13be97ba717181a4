/**
 * The chips:* channels (pinned key-server CEKs) over a running service, arguments parsed by the
 * contract's schemas as Electron IPC and the browser bridge do: the same store and audit as /v1/chips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  invokeArgSchemas,
  type InvokeChannel,
  type InvokeHandlers,
  type InvokeResult,
} from '../../app/contract/ipc';
import { toBase64, toHex } from '../../app/sev/bytes';
import { createInvokeHandlers } from '../../server/owner-api/handlers';
import { platform, request, startHarness, type Harness } from '../helpers/listener-harness';

let h: Harness;
let handlers: InvokeHandlers;

async function call<K extends InvokeChannel>(channel: K, ...args: unknown[]): Promise<InvokeResult<K>> {
  const parsed = invokeArgSchemas[channel].parse(args) as Parameters<InvokeHandlers[K]>;
  return (handlers[channel] as (...a: unknown[]) => Promise<InvokeResult<K>>)(...parsed);
}

beforeAll(async () => {
  h = await startHarness();
  handlers = createInvokeHandlers({
    service: h.svc,
    mode: 'browser',
    version: 'test',
    dataDir: h.dataDir,
    firstRun: { get: () => false, complete: () => {} },
    openExternal: async () => {},
  });
});
afterAll(async () => {
  await h?.close();
});

describe('chips:* channels', () => {
  const chip = () => toHex(platform().chipId);

  it('pins, lists (also over REST), audits and unpins a chip CEK', async () => {
    const pinned = await call('chips:pinCek', chip().toUpperCase(), toBase64(platform().signedCek), 'rack 3');
    expect(pinned).toMatchObject({ chipId: chip(), label: 'rack 3' });
    expect((await call('chips:list')).map((c) => c.chipId)).toEqual([chip()]);
    const rest = await request(h.svc.url, 'GET', '/v1/chips');
    expect(rest.json.chips[0]['chip-id']).toBe(chip());
    const ev = await request(h.svc.url, 'GET', '/v1/events?type=profile');
    expect(ev.json.events.at(-1)).toMatchObject({
      chipId: chip(),
      message: expect.stringMatching(/CEK pinned/),
    });
    expect(await call('chips:unpin', chip())).toBe(true);
    expect(await call('chips:unpin', chip())).toBe(false);
    expect(await call('chips:list')).toEqual([]);
  });

  it('refuses malformed arguments and a CEK without an ASK signature', async () => {
    expect(invokeArgSchemas['chips:pinCek'].safeParse(['ab', toBase64(platform().signedCek)]).success).toBe(
      false,
    );
    expect(invokeArgSchemas['chips:unpin'].safeParse(['../x']).success).toBe(false);
    const unsignedCek = toBase64(platform().certChain.subarray(2 * 2084));
    await expect(call('chips:pinCek', chip(), unsignedCek)).rejects.toMatchObject({ code: 'bad-request' });
  });
});
