/**
 * SEV-SNP profiles through the IPC contract's handlers (the dispatch Electron IPC and the browser bridge
 * use): profiles:save with SNP settings, digests:preview of an SNP draft, secrets:set with resource paths,
 * approvals:list with an SNP attestation's facts, and the refusals in plain words.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalView, DigestPreview, VmProfileInput } from '../../app/contract/ipc';
import type { VmProfile } from '../../app/profile';
import { startHarness, type Harness } from '../helpers/listener-harness';
import { ipcClient, ownerHandlers, type OwnerApiClient } from '../helpers/ipc';

const OVMF = join(process.cwd(), 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin');
const MILAN = { family: 25, model: 1, stepping: 1 };

let h: Harness;
let api: OwnerApiClient;
let ovmf: string;
beforeAll(async () => {
  h = await startHarness();
  api = ipcClient(ownerHandlers(h.svc, { mode: 'desktop' }));
  ovmf = (await h.svc.artifacts.importBytes(new Uint8Array(fs.readFileSync(OVMF)), { name: 'snp.fd' }))
    .sha256;
});
afterAll(async () => h?.close());

function snpProfile(id: string, extra: Partial<VmProfileInput> = {}): VmProfileInput {
  return {
    id,
    name: `SNP ${id}`,
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1, 4],
    cpuSignatures: [MILAN],
    firmware: { kind: 'artifact', sha256: ovmf, size: 1 },
    snp: { vmmType: 'qemu', minimumTcb: { snp: 8 }, minimumReportVersion: 3 },
    ...extra,
  };
}

async function refusal(channel: string, ...args: unknown[]): Promise<{ error: string; message: string }> {
  const r = await api.raw(channel, ...args);
  if (r.ok) throw new Error(`${channel} was accepted`);
  expect(r.message).not.toMatch(/\n\s+at /);
  return r;
}

describe('profiles:save and digests:preview for SNP', () => {
  it('saves an SNP profile; its preview lists the same measurements the service expects', async () => {
    const saved = await api.call('profiles:save', snpProfile('snp-a'));
    const p = saved.profile;
    expect(p.snp).toMatchObject({ vmmType: 'qemu', vmpl: 0, minimumReportVersion: 3, guestFeatures: 1 });
    const preview = (await api.call('digests:preview', {
      scheme: 'amd-sev-snp',
      policy: p.policy,
      cpuCounts: p.cpuCounts,
      cpuSignatures: p.cpuSignatures,
      firmware: p.firmware,
      snp: { vmmType: 'qemu', guestFeatures: 1 },
    })) as DigestPreview;
    if (!preview.ok) throw new Error(preview.reason);
    expect(preview.candidates.map((c) => c.launchDigest)).toEqual(
      await h.svc.snpMeasurements.measurementsFor(p),
    );
    expect(preview.candidates).toHaveLength(2);
  });

  it('refuses the debug policy, SHA-256 digests and an OVMF without SNP metadata, in plain words', async () => {
    const debug = await refusal('profiles:save', snpProfile('snp-debug', { policy: 0x30000 | (1 << 19) }));
    expect(debug.message).toMatch(/bit 19 \(debug\).*never releases/);
    const sha256 = await refusal(
      'profiles:save',
      snpProfile('snp-256', { firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] } }),
    );
    expect(sha256.message).toMatch(/SNP launch measurement is a SHA-384 \(96 hex characters\)/);
    const demo = (
      await h.svc.artifacts.importBytes(
        new Uint8Array(fs.readFileSync(join(process.cwd(), 'assets/demo/OVMF.amdsev-trimmed.fd'))),
        { name: 'demo.fd' },
      )
    ).sha256;
    const old = await refusal(
      'profiles:save',
      snpProfile('snp-old', { firmware: { kind: 'artifact', sha256: demo, size: 1 } }),
    );
    expect(old.message).toMatch(/no SEV metadata/);
    const noSig = await refusal('profiles:save', snpProfile('snp-nosig', { cpuSignatures: [] }));
    expect(noSig.message).toMatch(/vCPU signature/);
    expect(h.svc.profiles.get('snp-debug')).toBeUndefined();
  });
});

describe('secrets:set on an SNP profile', () => {
  it('stores the value with its resource path; the approval view lists the paths', async () => {
    await api.call('profiles:save', snpProfile('snp-s'));
    const set = await api.call('secrets:set', 'snp-s', {
      kind: 'luks-passphrase',
      passphrase: 'disk key',
      resource: 'default/luks/snp-s',
    });
    expect(set.ref).toMatchObject({ kind: 'luks-passphrase', resource: 'default/luks/snp-s' });
    const profile = (await api.call('profiles:get', 'snp-s')) as VmProfile;
    expect(profile.secrets.map((s) => s.resource)).toEqual(['default/luks/snp-s']);
  });

  it('refuses a secret without a resource path and a path another secret has, storing no value', async () => {
    const none = await refusal('secrets:set', 'snp-s', {
      kind: 'raw',
      guid: '0a0b0c0d-0000-4000-8000-000000000002',
      dataBase64: 'eA==',
    });
    expect(none.error).toBe('bad-arguments');
    expect(none.message).toMatch(/needs its resource path \(repository\/type\/tag\)/);
    const twice = await refusal('secrets:set', 'snp-s', {
      kind: 'raw',
      guid: '0a0b0c0d-0000-4000-8000-000000000002',
      dataBase64: 'eA==',
      resource: 'default/luks/snp-s',
    });
    expect(twice.message).toMatch(/resource default\/luks\/snp-s is named twice/);
    const bad = await refusal('secrets:set', 'snp-s', {
      kind: 'luks-passphrase',
      passphrase: 'x',
      resource: '../../etc',
    });
    expect(bad.error).toBe('bad-arguments');
    expect(await h.svc.secretStore.list('vm/snp-s/0a0b0c0d')).toEqual([]);
  });

  it('refuses a resource path on an SEV profile', async () => {
    await api.call('profiles:save', {
      id: 'sev-x',
      name: 'SEV',
      scheme: 'amd-sev',
      policy: 1,
      cpuCounts: [1],
      firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] },
    });
    const r = await refusal('secrets:set', 'sev-x', {
      kind: 'luks-passphrase',
      passphrase: 'x',
      resource: 'default/luks/sev-x',
    });
    expect(r.message).toMatch(/resource paths are for SEV-SNP profiles/);
    expect(await h.svc.secretStore.list('vm/sev-x/')).toEqual([]);
  });
});

describe('approvals:list for an SNP attestation', () => {
  it('carries kind, the snp facts and the secrets with their resource paths', async () => {
    const { approval } = h.svc.approvals.request('snp-ipc', {
      kind: 'snp-attest',
      vmId: 'snp-s',
      client: '192.0.2.8',
      chipId: 'cd'.repeat(64),
      anchor: 'Milan',
      policy: 0x30000,
      snp: {
        product: 'Milan',
        measurement: 'ef'.repeat(48),
        reportedTcb: 'bl 3 tee 0 snp 8 ucode 115',
        policy: '0x30000',
        vmpl: 0,
        signer: 'vcek',
        vouchedBy: 'measurement',
        resources: ['default/luks/snp-s'],
        revocation: 'CRL checked',
      },
    });
    const views = (await api.call('approvals:list')) as ApprovalView[];
    const v = views.find((x) => x.id === approval.id)!;
    expect(v.kind).toBe('snp-attest');
    expect(v.snp).toMatchObject({ product: 'Milan', signer: 'vcek', resources: ['default/luks/snp-s'] });
    expect(v.secrets).toEqual([
      { guid: expect.any(String), kind: 'luks-passphrase', resource: 'default/luks/snp-s' },
    ]);
    const sev = h.svc.approvals.request('sev-ipc', {
      vmId: undefined,
      client: '192.0.2.9',
      chipId: undefined,
      anchor: undefined,
      policy: 1,
    });
    const again = (await api.call('approvals:list')) as ApprovalView[];
    expect(again.find((x) => x.id === sev.approval.id)!.kind).toBe('sev-launch');
  });
});

describe('profiles:save keeps the stored secrets, with the resource paths the editor changed', () => {
  it('a changed path is stored; a repeated one is refused; values stay in the keychain', async () => {
    await api.call('profiles:save', snpProfile('snp-r'));
    await api.call('secrets:set', 'snp-r', {
      kind: 'luks-passphrase',
      passphrase: 'disk key',
      resource: 'default/luks/snp-r',
    });
    await api.call('secrets:set', 'snp-r', {
      kind: 'raw',
      guid: '0a0b0c0d-0000-4000-8000-000000000003',
      dataBase64: 'eA==',
      resource: 'default/token/snp-r',
    });
    const stored = (await api.call('profiles:get', 'snp-r')) as VmProfile;
    const moved = stored.secrets.map((s) =>
      s.kind === 'raw' ? { ...s, resource: 'default/token/snp-r-v2' } : s,
    );
    const saved = await api.call('profiles:save', { ...stored, secrets: moved });
    expect(saved.profile.secrets.map((s) => s.resource).sort()).toEqual([
      'default/luks/snp-r',
      'default/token/snp-r-v2',
    ]);
    // A ref the editor invents is not added: secrets come with values through secrets:set only.
    const invented = await api.call('profiles:save', {
      ...saved.profile,
      secrets: [
        ...saved.profile.secrets,
        { guid: '0a0b0c0d-0000-4000-8000-00000000000f', kind: 'raw', resource: 'x/y/z' },
      ],
    });
    expect(invented.profile.secrets).toHaveLength(2);
    const twice = await refusal('profiles:save', {
      ...saved.profile,
      secrets: saved.profile.secrets.map((s) => ({ ...s, resource: 'default/luks/snp-r' })),
    });
    expect(twice.message).toMatch(/resource default\/luks\/snp-r is named twice/);
    expect((await h.svc.secretStore.list('vm/snp-r/')).length).toBe(2);
  });
});
