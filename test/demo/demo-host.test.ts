/**
 * The demo host end to end: a DemoHostRunner launches against a real listener over HTTP, trusted only
 * through its own 'demo' anchor; manual approval through the approval service, release, a vCPU mismatch,
 * a denial, and the cases that cannot be demoed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { approvalView } from '../../server/owner-api/handlers';
import { DEMO_ANCHOR_LABEL, DemoError, DemoHostRunner } from '../../server/services/demo-host';
import { registerVm, startHarness, type Harness } from '../helpers/listener-harness';

let h: Harness;
let runner: DemoHostRunner;

beforeAll(async () => {
  // trustSim: false — the harness platform is not trusted; the demo must bring its own anchor.
  h = await startHarness({ trustSim: false });
  runner = new DemoHostRunner({ service: h.svc });
  expect((await registerVm(h, { id: 'es2', sevEs: true, cpuCounts: [2], approval: 'manual' })).status).toBe(
    200,
  );
  expect((await registerVm(h, { id: 'auto', approval: 'auto' })).status).toBe(200);
  const pre = await registerVm(h, {
    id: 'pre',
    approval: 'auto',
    extra: { 'firmware-artifact': undefined, 'launch-digests': ['ab'.repeat(32)] },
  });
  expect(pre.status).toBe(200);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** What the owner's approval card showed for the last decided request. */
let lastApprovalCard: ReturnType<typeof approvalView> | undefined;

/** Runs the demo and decides the approval it creates, as the owner would in the UI. */
async function runWithDecision(
  options: Parameters<DemoHostRunner['run']>[0],
  decision: 'approve' | 'deny',
): Promise<Awaited<ReturnType<DemoHostRunner['run']>>> {
  const decided = new Promise<void>((resolve) => {
    const off = h.svc.approvals.subscribe((a) => {
      if (a.state === 'pending' && a.vmId === options.vmId) {
        off();
        lastApprovalCard = approvalView(a);
        // Decide on the next tick, like a click after the card appeared.
        setTimeout(() => {
          h.svc.owner.decide(a.id, decision);
          resolve();
        }, 20);
      }
    });
  });
  const [result] = await Promise.all([runner.run(options), decided]);
  return result;
}

describe('demo host against a real listener', () => {
  it('SEV-ES, 2 vCPUs, manual approval: waits, is approved, validates and the guest decrypts the secret', async () => {
    const t0 = performance.now();
    const r = await runWithDecision({ vmId: 'es2' }, 'approve');
    const ms = performance.now() - t0;
    expect(r).toMatchObject({ outcome: 'released', releasedGuids: [LUKS_PASSPHRASE_GUID] });
    expect(r.connection).toMatch(/^[0-9a-f-]{36}$/);
    // The card shows the firmware API the simulated firmware stamped into its PDH (1.51).
    expect(lastApprovalCard?.firmwareApi).toEqual({ major: 1, minor: 51 });
    console.log(`demo cycle with manual approval (incl. first platform creation): ${ms.toFixed(0)} ms`);
    const events = h.svc.audit.list({ vmId: 'es2' });
    const launch = events.find((e) => e.type === 'launch' && e.result === 'ok');
    expect(launch?.anchor).toBe(`extra:${DEMO_ANCHOR_LABEL}`);
    expect(events.some((e) => e.type === 'secret-release')).toBe(true);
    expect(h.svc.trust.anchors().filter((a) => a.label.kind === 'extra')).toHaveLength(1);
  });

  it('the platform is created once: a second run reuses it and the anchor is not added twice', async () => {
    const first = runner.simulatedPlatform();
    const t0 = performance.now();
    const r = await runner.run({ vmId: 'auto' });
    const ms = performance.now() - t0;
    expect(r.outcome).toBe('released');
    console.log(`demo cycle, auto-approved SEV VM, warm: ${ms.toFixed(1)} ms`);
    expect(runner.simulatedPlatform()).toBe(first);
    expect(h.svc.trust.anchors().filter((a) => a.label.kind === 'extra')).toHaveLength(1);
  });

  it('a wrong vCPU count is refused as measurement-mismatch and the owner sees the digests tried', async () => {
    const r = await runWithDecision({ vmId: 'es2', cpuCount: 3 }, 'approve');
    expect(r).toMatchObject({ outcome: 'refused', code: 'measurement-mismatch' });
    expect(r.releasedGuids).toBeUndefined();
    const v = h.svc.audit
      .list({ vmId: 'es2', types: ['validate'], result: 'refused' })
      .find((e) => e.connection === r.connection);
    expect(v?.reason).toBe('measurement-mismatch');
    const mismatch = v?.details?.['mismatch'] as {
      tried: Array<{ inputs: { cpuCount?: number } }>;
      reported: { cpuCount?: number };
    };
    expect(mismatch.tried.map((t) => t.inputs.cpuCount)).toContain(2);
    expect(mismatch.reported.cpuCount).toBe(3);
  });

  it('a wrong VMSA variant is refused too', async () => {
    const r = await runWithDecision({ vmId: 'es2', vmsaVariant: 'legacy' }, 'approve');
    expect(r).toMatchObject({ outcome: 'refused', code: 'measurement-mismatch' });
  });

  it('a denial is the host error code denied', async () => {
    const r = await runWithDecision({ vmId: 'es2' }, 'deny');
    expect(r).toMatchObject({ outcome: 'refused', code: 'denied' });
  });

  it('cannot demo: unknown VM, precomputed digests only', async () => {
    await expect(runner.run({ vmId: 'nope' })).rejects.toMatchObject({ code: 'unknown-vm' });
    const e = await runner.run({ vmId: 'pre' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DemoError);
    expect((e as DemoError).code).toBe('demo-not-possible');
    expect((e as Error).message).toContain('firmware image');
  });
});
