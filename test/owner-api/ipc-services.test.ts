/**
 * The contract channels backed by the demo, import, host-setup and preview services, called through
 * createInvokeHandlers over a real running service (arguments parsed by the contract's schemas, as
 * Electron IPC and the browser bridge do), with artifacts:progress delivered through connectUiEvents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  invokeArgSchemas,
  type ArtifactProgress,
  type InvokeChannel,
  type InvokeHandlers,
  type InvokeResult,
} from '../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { connectUiEvents } from '../../server/owner-api/handlers';
import { UiEventBus } from '../../server/owner-api/event-bus';
import { FIRMWARE_PATH, MILAN, startHarness, type Harness } from '../helpers/listener-harness';
import { ownerHandlers } from '../helpers/ipc';

let h: Harness;
let handlers: InvokeHandlers;
let disconnect: () => void;
const progress: ArtifactProgress[] = [];

async function call<K extends InvokeChannel>(channel: K, ...args: unknown[]): Promise<InvokeResult<K>> {
  const parsed = invokeArgSchemas[channel].parse(args) as Parameters<InvokeHandlers[K]>;
  return (handlers[channel] as (...a: unknown[]) => Promise<InvokeResult<K>>)(...parsed);
}

beforeAll(async () => {
  h = await startHarness({ trustSim: false });
  handlers = ownerHandlers(h.svc, { mode: 'browser' });
  const bus = new UiEventBus();
  bus.subscribe((channel, payload) => {
    if (channel === 'artifacts:progress') progress.push(payload as ArtifactProgress);
  });
  disconnect = connectUiEvents(h.svc, bus);
}, 60_000);
afterAll(async () => {
  disconnect?.();
  await h?.close();
});

describe('IPC channels over the running service', () => {
  it('import firmware -> preview -> save profile + secret -> host setup -> demo run released', async () => {
    const fw = await call('artifacts:import', { importId: 'fw', path: FIRMWARE_PATH, kind: 'firmware' });
    expect(fw.firmware?.secretArea.ok).toBe(true);
    expect(progress.filter((p) => p.importId === 'fw').at(-1)?.phase).toBe('done');
    expect((await call('artifacts:list')).map((a) => a.sha256)).toContain(fw.sha256);
    expect((await call('artifacts:inspect', fw.sha256)).firmware?.measuredDirectBoot.ok).toBe(true);

    const draft = {
      scheme: 'amd-sev-es',
      policy: 0x07,
      cpuCounts: [2],
      cpuSignatures: [MILAN],
      firmware: { kind: 'artifact', sha256: fw.sha256, size: fw.size },
    };
    const preview = await call('digests:preview', draft);
    expect(preview).toMatchObject({ ok: true, candidates: [{ inputs: { cpuCount: 2 } }] });

    await call('profiles:save', { ...draft, id: 'vm1', name: 'VM 1', approval: 'auto' });
    await call('secrets:set', 'vm1', { kind: 'luks-passphrase', passphrase: 'correct horse' });
    const setup = await call('hostSetup:get', 'vm1');
    expect(setup.domainXml).toContain('<policy>0x0007</policy>');
    expect(setup.hostCommand).toContain(`--service ${h.svc.url}`);

    const run = await call('demo:run', { vmId: 'vm1' });
    expect(run).toMatchObject({ outcome: 'released', releasedGuids: [LUKS_PASSPHRASE_GUID] });
    const mismatch = await call('demo:run', { vmId: 'vm1', cpuCount: 1 });
    expect(mismatch).toMatchObject({ outcome: 'refused', code: 'measurement-mismatch' });
  });

  it('cancelImport of an unknown id is a no-op; bad arguments are refused by the contract schema', async () => {
    await expect(call('artifacts:cancelImport', 'nothing-running')).resolves.toBeUndefined();
    expect(() => invokeArgSchemas['demo:run'].parse([{ vmId: 'vm1', cpuCount: 0 }])).toThrow();
    await expect(call('hostSetup:get', 'missing')).rejects.toMatchObject({ code: 'unknown-vm' });
  });
});
