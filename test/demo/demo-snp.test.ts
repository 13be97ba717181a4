/**
 * The demo's SEV-SNP guest end to end: DemoService.runSnp creates the `demo-snp` profile, trusts its
 * simulated chip as an extra labelled root set (never AMD's), and the simulated guest attests to the real
 * listener over HTTP, waits for the owner's decision and decrypts its LUKS key; a denial releases nothing.
 * No key server is reachable here: the demo needs none (its VCEK comes with the evidence, its CRL is its own).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LUKS_PASSPHRASE_GUID, secretAccount } from '../../app/profile';
import { SnpTrustStore } from '../../app/snp/roots';
import {
  DEMO_SNP_ANCHOR_LABEL,
  DEMO_SNP_PASSPHRASE,
  DEMO_SNP_RESOURCE,
  DEMO_SNP_VM_ID,
} from '../../server/services/demo-snp';
import { startHarness, type Harness } from '../helpers/listener-harness';

let h: Harness;

beforeAll(async () => {
  // A key server that is not there: the demo must not need one.
  h = await startHarness({ kdsUrl: 'http://127.0.0.1:9' });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** Decides the next pending approval of `vmId` as the owner would in the UI. */
function decideNext(vmId: string, decision: 'approve' | 'deny'): Promise<{ anchor?: string; kind?: string }> {
  return new Promise((resolve) => {
    const off = h.svc.approvals.subscribe((a) => {
      if (a.state === 'pending' && a.vmId === vmId) {
        off();
        setTimeout(() => {
          h.svc.owner.decide(a.id, decision);
          resolve({ anchor: a.anchor, kind: a.kind });
        }, 20);
      }
    });
  });
}

const releases = () =>
  h.svc.audit.list().filter((e) => e.type === 'secret-release' && e.vmId === DEMO_SNP_VM_ID);

describe('the demo SEV-SNP guest against a real listener', () => {
  it('creates its profile, waits for approval, attests and decrypts its LUKS key', async () => {
    const decided = decideNext(DEMO_SNP_VM_ID, 'approve');
    const [result, card] = await Promise.all([h.svc.demo.run({ snp: true }), decided]);
    expect(result.outcome, result.message).toBe('released');
    expect(result.vmId).toBe(DEMO_SNP_VM_ID);
    expect(result.releasedGuids).toEqual([LUKS_PASSPHRASE_GUID]);
    expect(result.message).toContain(`(${new TextEncoder().encode(DEMO_SNP_PASSPHRASE).length} bytes)`);
    expect(card).toMatchObject({ kind: 'snp-attest', anchor: DEMO_SNP_ANCHOR_LABEL });

    const profile = h.svc.profiles.get(DEMO_SNP_VM_ID)!;
    expect(profile.scheme).toBe('amd-sev-snp');
    expect(profile.approval).toBe('manual');
    expect(profile.secrets).toEqual([
      expect.objectContaining({ guid: LUKS_PASSPHRASE_GUID, resource: DEMO_SNP_RESOURCE }),
    ]);
    const stored = await h.svc.secretStore.get(secretAccount(DEMO_SNP_VM_ID, LUKS_PASSPHRASE_GUID));
    expect(Buffer.from(stored!).toString()).toBe(DEMO_SNP_PASSPHRASE);

    const rel = releases();
    expect(rel).toHaveLength(1);
    expect(rel[0]!.details).toMatchObject({ resource: DEMO_SNP_RESOURCE });
    const ok = h.svc.audit
      .list()
      .find((e) => e.type === 'snp-attest' && e.result === 'ok' && e.vmId === DEMO_SNP_VM_ID);
    expect(ok?.anchor).toBe(DEMO_SNP_ANCHOR_LABEL);
    expect(JSON.stringify(h.svc.audit.list())).not.toContain(DEMO_SNP_PASSPHRASE);
  });

  it('the owner denies: refused, nothing released; the demo profile is reused', async () => {
    const before = releases().length;
    const decided = decideNext(DEMO_SNP_VM_ID, 'deny');
    const [result] = await Promise.all([h.svc.demo.run({ vmId: DEMO_SNP_VM_ID }), decided]);
    expect(result.outcome).toBe('refused');
    expect(result.code).toBe('AttestationError');
    expect(result.message).toMatch(/denied/);
    expect(releases().length).toBe(before);
    expect(h.svc.profiles.list().filter((p) => p.id === DEMO_SNP_VM_ID)).toHaveLength(1);
  });

  it("AMD's pinned roots still decide for everything else: the demo chip is an extra, labelled set", () => {
    const store = h.svc.snpTrust;
    const amd = SnpTrustStore.pinned(['Milan']).roots('Milan');
    expect(store.roots('Milan').ark.id).toBe(amd.ark.id);
    expect(store.extraRoots('Milan').map((e) => e.label)).toEqual([DEMO_SNP_ANCHOR_LABEL]);
  });
});
