/**
 * End to end through real HTTP on 127.0.0.1: a simulated host (app/sim firmware) runs launch and
 * validate against the headless service and decrypts the released secret, for SEV, SEV with measured
 * direct boot, and SEV-ES with several vCPU counts.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID } from '../../app/profile';
import { hostFlow, registerVm, request, startHarness, type Harness } from '../helpers/listener-harness';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const KERNEL = {
  kernelHash: sha('kernel'),
  initrdHash: sha('initrd'),
  cmdline: 'console=ttyS0 root=/dev/vda1',
};

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
  expect((await registerVm(h, { id: 'sev1', passphrase: 'sev one' })).status).toBe(200);
  expect((await registerVm(h, { id: 'mdb', kernel: KERNEL, passphrase: 'direct boot' })).status).toBe(200);
  const es = await registerVm(h, {
    id: 'es',
    sevEs: true,
    cpuCounts: [1, 2, 4, 8],
    vmsaVariants: ['legacy', 'kvm-init2'],
    passphrase: 'es secret',
  });
  expect(es.status).toBe(200);
  expect(es.json.warnings).toEqual([]);
});
afterAll(async () => {
  await h.close();
});

describe('e2e over HTTP with the simulated platform', () => {
  it('SEV: launch, measure, validate, and the guest decrypts the passphrase', async () => {
    const r = await hostFlow(h, { vmId: 'sev1' });
    expect(r.launch.status).toBe(200);
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('sev one');
    expect(Buffer.from(r.validate!.json['secret-header'], 'base64')).toHaveLength(52);
  });

  it('SEV with measured direct boot (kernel hashes table)', async () => {
    const r = await hostFlow(h, { vmId: 'mdb', kernel: KERNEL });
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('direct boot');
  });

  it('measured direct boot with another cmdline is refused measurement-mismatch', async () => {
    const r = await hostFlow(h, {
      vmId: 'mdb',
      kernel: { ...KERNEL, cmdline: 'console=ttyS0 init=/bin/sh' },
    });
    expect(r.validate?.status).toBe(403);
    expect(r.validate?.json).toEqual({ error: 'measurement-mismatch', message: expect.any(String) });
  });

  for (const cpus of [1, 2, 4, 8]) {
    for (const vmsaVariant of ['legacy', 'kvm-init2'] as const) {
      it(`SEV-ES with ${cpus} vCPU(s), ${vmsaVariant} VMSA`, async () => {
        const r = await hostFlow(h, { vmId: 'es', sevEs: true, cpus, vmsaVariant });
        expect(r.validate?.status).toBe(200);
        expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('es secret');
      });
    }
  }

  it('SEV-ES: a wrong cpu-count hint still matches (the hint only orders the tries)', async () => {
    const r = await hostFlow(h, { vmId: 'es', sevEs: true, cpus: 4, validateExtra: { 'cpu-count': 2 } });
    expect(r.validate?.status).toBe(200);
  });

  it('SEV-ES with a vCPU count the owner did not list: mismatch, and the owner sees every digest tried', async () => {
    const r = await hostFlow(h, { vmId: 'es', sevEs: true, cpus: 3 });
    expect(r.validate?.status).toBe(403);
    expect(r.validate?.json.error).toBe('measurement-mismatch');
    expect(r.validate?.text).not.toContain('tried');
    const ev = await request(h.svc.url, 'GET', '/v1/events?type=validate&vm=es&result=refused');
    const last = ev.json.events.at(-1);
    expect(last.reason).toBe('measurement-mismatch');
    const mismatch = last.details.mismatch as {
      tried: Array<{ launchDigest: string; inputs: { cpuCount: number; vmsaVariant: string } }>;
      reported: { cpuCount?: number; policy: number };
    };
    expect(mismatch.tried).toHaveLength(8);
    expect(new Set(mismatch.tried.map((t) => `${t.inputs.cpuCount}/${t.inputs.vmsaVariant}`)).size).toBe(8);
    expect(mismatch.tried.every((t) => /^[0-9a-f]{64}$/.test(t.launchDigest))).toBe(true);
  });

  it('validate by VM id uses the latest connection', async () => {
    const r = await hostFlow(h, { vmId: 'sev1', validateByVm: true });
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('sev one');
  });

  it('POST /v1/launch without a VM id: secrets go to the VM whose measurement matches', async () => {
    // Policy 0x01 is used by sev1 and mdb: the measurement picks mdb.
    const r = await hostFlow(h, { kernel: KERNEL, policy: 0x01 });
    expect(r.launch.status).toBe(200);
    expect(r.validate?.status).toBe(200);
    expect(r.secret?.get(LUKS_PASSPHRASE_GUID)).toBe('direct boot');
  });

  it('the audit log has launch, validate and secret-release events with client, VM, chip and anchor', async () => {
    const ev = await request(h.svc.url, 'GET', '/v1/events?type=secret-release&vm=sev1');
    const e = ev.json.events.at(-1);
    expect(e).toMatchObject({ type: 'secret-release', result: 'ok', vmId: 'sev1' });
    expect(e.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(e.chipId).toBeUndefined(); // no cpu-id was sent
    expect(e.anchor).toMatch(/^extra:/);
    expect(JSON.stringify(ev.json)).not.toContain('sev one');
  });
});
