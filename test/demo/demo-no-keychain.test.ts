/**
 * No keychain, still a demo: on a machine without a Secret Service (keytar fails), app:info says the
 * keychain is unavailable and why, the first-run demo runs anyway with its own passphrase kept in memory
 * (labelled so), and an owner secret is still refused with the keychain error (nothing is kept silently).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invokeArgSchemas, type InvokeHandlers } from '../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { createInvokeHandlers } from '../../server/owner-api/handlers';
import { DEMO_SECRET_LABEL_IN_MEMORY, DEMO_VM_ID } from '../../server/services/demo-setup';
import { KeytarSecretStore, type KeytarLike } from '../../server/services/secret-store';
import { startHarness, type Harness } from '../helpers/listener-harness';

const noSecretService = (): Promise<never> =>
  Promise.reject(new Error('Cannot autolaunch D-Bus without X11 $DISPLAY'));
const keytar: KeytarLike = {
  getPassword: noSecretService,
  setPassword: noSecretService,
  deletePassword: noSecretService,
  findCredentials: noSecretService,
};

let h: Harness;
let handlers: InvokeHandlers;

beforeAll(async () => {
  h = await startHarness({ trustSim: false, secretStore: new KeytarSecretStore({ keytar }) });
  handlers = createInvokeHandlers({
    service: h.svc,
    mode: 'browser',
    version: 'test',
    dataDir: h.dataDir,
    firstRun: { get: () => false, complete: () => {} },
    openExternal: async () => {},
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe('without an OS keychain', () => {
  it('app:info names the missing keychain', async () => {
    const info = await handlers['app:info']();
    expect(info.secretStore.kind).toBe('keychain');
    expect(info.secretStore.unavailable).toMatch(/D-Bus/);
  });

  it('the demo runs anyway, its passphrase kept in memory and labelled so', async () => {
    const decided = new Promise<void>((resolve) => {
      const off = h.svc.approvals.subscribe((a) => {
        if (a.state === 'pending') {
          off();
          setTimeout(() => {
            h.svc.owner.decide(a.id, 'approve');
            resolve();
          }, 10);
        }
      });
    });
    const args = invokeArgSchemas['demo:run'].parse([{}]) as Parameters<InvokeHandlers['demo:run']>;
    const [r] = await Promise.all([handlers['demo:run'](...args), decided]);
    expect(r).toMatchObject({ outcome: 'released', releasedGuids: [LUKS_PASSPHRASE_GUID] });
    expect(h.svc.profiles.get(DEMO_VM_ID)!.secrets).toEqual([
      { guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', label: DEMO_SECRET_LABEL_IN_MEMORY },
    ]);
  });

  it("an owner's secret is still refused with the keychain error", async () => {
    await expect(
      handlers['secrets:set'](DEMO_VM_ID, { kind: 'luks-passphrase', passphrase: 'real' }),
    ).rejects.toMatchObject({ code: 'secret-store-unavailable' });
  });
});
