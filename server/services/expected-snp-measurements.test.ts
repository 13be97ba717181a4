import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DigestDraftSchema, type DigestDraft } from '../../app/contract/ipc';
import { VmProfileSchema, type VmProfile } from '../../app/profile';
import { computeSnpLaunchDigest } from '../../app/snp/measure/launch-digest';
import { findSnpVcpuType, vcpuSignatureOf } from '../../app/snp/measure/vcpu-types';
import { ArtifactStore } from './artifact-store';
import { ExpectedSnpMeasurements } from './expected-snp-measurements';
import { previewSnpMeasurements } from './snp-measurement-preview';

const AMDSEV = join(process.cwd(), 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin');
const OVMFX64 = join(process.cwd(), 'test/fixtures/snp/measure/ovmf_OvmfX64_suffix.bin');
/** The SEV demo firmware: an AmdSev image too old to carry SNP metadata. */
const DEMO = join(process.cwd(), 'assets/demo/OVMF.amdsev-trimmed.fd');
const MILAN = { family: 25, model: 1, stepping: 1 };
const GENOA = { family: 25, model: 17, stepping: 0 };
const KERNEL = 'a'.repeat(64);

let store: ArtifactStore;
let amdSev: string;
let generic: string;
let demo: string;

beforeAll(async () => {
  store = new ArtifactStore({ dir: fs.mkdtempSync(join(os.tmpdir(), 'snp-measure-')) });
  amdSev = (await store.importFile(AMDSEV)).sha256;
  generic = (await store.importFile(OVMFX64)).sha256;
  demo = (await store.importFile(DEMO)).sha256;
});

const service = () =>
  new ExpectedSnpMeasurements({ firmwarePath: (s) => (store.has(s) ? store.path(s) : undefined) });

function profile(
  over: Partial<Omit<VmProfile, 'snp'>> & { snp?: Partial<NonNullable<VmProfile['snp']>> } = {},
): VmProfile {
  return VmProfileSchema.parse({
    id: 'snp-vm',
    name: 'SNP VM',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1, 4],
    cpuSignatures: [MILAN, GENOA],
    firmware: { kind: 'artifact', sha256: amdSev, size: 4096 },
    ...over,
    snp: { ...over.snp },
  });
}

describe('ExpectedSnpMeasurements', () => {
  it('an artifact firmware gives the cpuCounts x cpuSignatures matrix, each equal to computeSnpLaunchDigest', async () => {
    const m = service();
    const got = await m.detailedFor(profile());
    expect(got).toHaveLength(4);
    for (const e of got) {
      const sig = e.inputs.cpuSignature!;
      const want = await computeSnpLaunchDigest({
        ovmf: AMDSEV,
        vcpus: e.inputs.vcpus!,
        vcpuSignature: vcpuSignatureOf(sig.family, sig.model, sig.stepping),
      });
      expect(e.hex).toBe(want.digestHex);
      expect(e.hex).toMatch(/^[0-9a-f]{96}$/);
    }
    expect(new Set(got.map((e) => e.hex)).size).toBe(4);
    expect(await m.measurementsFor(profile())).toEqual(got.map((e) => e.hex));
  });

  it('VMM type, guest features and the kernel hashes reach the measurement', async () => {
    const m = service();
    const base = await m.measurementsFor(profile({ cpuCounts: [2], cpuSignatures: [MILAN] }));
    const features = await m.measurementsFor(
      profile({ cpuCounts: [2], cpuSignatures: [MILAN], snp: { guestFeatures: 0x21 } }),
    );
    const ec2 = await m.detailedFor(profile({ cpuCounts: [2], cpuSignatures: [], snp: { vmmType: 'ec2' } }));
    const kernel = await m.measurementsFor(
      profile({ cpuCounts: [2], cpuSignatures: [MILAN], kernelHash: KERNEL, cmdline: 'console=ttyS0' }),
    );
    const sig = vcpuSignatureOf(MILAN.family, MILAN.model, MILAN.stepping);
    expect(features[0]).toBe(
      (await computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 2, vcpuSignature: sig, guestFeatures: 0x21n }))
        .digestHex,
    );
    expect(ec2[0]!.hex).toBe(
      (await computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 2, vmmType: 'ec2' })).digestHex,
    );
    expect(ec2[0]!.inputs.cpuSignature).toBeUndefined();
    expect(kernel[0]).toBe(
      (
        await computeSnpLaunchDigest({
          ovmf: AMDSEV,
          vcpus: 2,
          vcpuSignature: sig,
          kernel: { sha256hex: KERNEL },
          cmdline: 'console=ttyS0',
        })
      ).digestHex,
    );
    expect(new Set([base[0], features[0], ec2[0]!.hex, kernel[0]]).size).toBe(4);
  });

  it('measures each OVMF once and caches lists by their inputs; forget starts over', async () => {
    const m = service();
    const a = await m.detailedFor(profile());
    const b = await m.detailedFor(profile({ id: 'other', name: 'Other' }));
    await m.measurementsFor(profile({ cpuCounts: [8] }));
    expect(b).toBe(a);
    expect(m.firmwarePasses).toBe(1);
    m.forget(amdSev);
    const again = await m.detailedFor(profile());
    expect(again).not.toBe(a);
    expect(again).toEqual(a);
    expect(m.firmwarePasses).toBe(2);
  });

  it('refuses an artifact whose file no longer hashes to its name', async () => {
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'snp-changed-'));
    const file = join(dir, 'ovmf.fd');
    const bytes = fs.readFileSync(AMDSEV);
    bytes[0] = bytes[0]! ^ 1;
    fs.writeFileSync(file, bytes);
    const m = new ExpectedSnpMeasurements({ firmwarePath: () => file });
    await expect(m.measurementsFor(profile())).rejects.toThrow(/changed on disk/);
  });

  it('precomputed measurements are the list itself', async () => {
    const list = ['ab'.repeat(48), 'CD'.repeat(48)];
    const got = await service().measurementsFor(
      profile({ firmware: { kind: 'digests', launchDigests: list.map((d) => d.toLowerCase()) } }),
    );
    expect(got).toEqual(['ab'.repeat(48), 'cd'.repeat(48)]);
  });

  it('refuses what cannot be measured: no SNP metadata, no signature for QEMU, a missing artifact, an SEV profile', async () => {
    const m = service();
    await expect(
      m.measurementsFor(profile({ firmware: { kind: 'artifact', sha256: demo, size: 4096 } })),
    ).rejects.toThrow(/no SEV metadata/);
    await expect(m.measurementsFor(profile({ cpuSignatures: [] }))).rejects.toThrow(/vCPU signature/);
    await expect(
      m.measurementsFor(profile({ firmware: { kind: 'artifact', sha256: 'f'.repeat(64), size: 1 } })),
    ).rejects.toThrow(/not in the artifact store/);
    await expect(m.measurementsFor({ ...profile(), scheme: 'amd-sev', snp: undefined })).rejects.toThrow(
      /no SNP launch measurements/,
    );
  });

  it('a large matrix does not hold the event loop: a timer fires between signature groups', async () => {
    const m = service();
    await m.firmwareInfo(amdSev);
    const counts = Array.from({ length: 64 }, (_, i) => i + 1);
    const sigs = Array.from({ length: 8 }, (_, i) => ({ family: 25, model: i, stepping: 0 }));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      const got = await m.measurementsFor(profile({ cpuCounts: counts, cpuSignatures: sigs }));
      expect(got).toHaveLength(64 * 8);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });
});

describe('digests:preview for SNP drafts', () => {
  const preview = (d: DigestDraft) => previewSnpMeasurements(service(), DigestDraftSchema.parse(d));
  const draft = (over: Partial<DigestDraft> = {}): DigestDraft => ({
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [2],
    cpuSignatures: [MILAN],
    firmware: { kind: 'artifact', sha256: amdSev, size: 4096 },
    snp: { vmmType: 'qemu', guestFeatures: 1 },
    ...over,
  });

  it('gives each measurement with its inputs', async () => {
    const r = await preview(draft({ cpuCounts: [1, 2] }));
    if (!r.ok) throw new Error(r.reason);
    expect(r.candidates.map((c) => c.launchDigest)).toEqual(
      await service().measurementsFor(profile({ cpuCounts: [1, 2], cpuSignatures: [MILAN] })),
    );
    expect(r.candidates[1]!.inputs).toMatchObject({
      scheme: 'amd-sev-snp',
      cpuCount: 2,
      cpuSignature: MILAN,
      vmmType: 'qemu',
      guestFeatures: '0x1',
      firmwareSha256: amdSev,
    });
  });

  it('explains what makes a measurement impossible, in plain words', async () => {
    const reason = async (d: DigestDraft) => {
      const r = await preview(d);
      expect(r.ok).toBe(false);
      return r.ok ? '' : r.reason;
    };
    expect(await reason(draft({ policy: 0x30000 | (1 << 19) }))).toMatch(/debugging/);
    expect(await reason(draft({ policy: 0 }))).toMatch(/reserved bit 17/);
    expect(await reason(draft({ cpuSignatures: [] }))).toMatch(/vCPU signature/);
    expect(
      await reason(
        draft({ firmware: { kind: 'artifact', sha256: generic, size: 4096 }, kernelHash: KERNEL }),
      ),
    ).toMatch(/KERNEL_HASHES/);
    expect(await reason(draft({ firmware: { kind: 'artifact', sha256: demo, size: 4096 } }))).toMatch(
      /no SEV metadata/,
    );
    expect(await reason(draft({ firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] } }))).toMatch(
      /96 hex/,
    );
  });

  it('precomputed measurements are listed with a warning that this machine cannot check them', async () => {
    const r = await preview(draft({ firmware: { kind: 'digests', launchDigests: ['ab'.repeat(48)] } }));
    if (!r.ok) throw new Error(r.reason);
    expect(r.candidates.map((c) => c.launchDigest)).toEqual(['ab'.repeat(48)]);
    expect(r.warnings.join(' ')).toMatch(/precomputed/);
  });
});

describe('ExpectedSnpMeasurements against sev-snp-measure (test/fixtures/snp/measure)', () => {
  const DIR = join(process.cwd(), 'test/fixtures/snp/measure');
  const sha256 = (f: string) =>
    createHash('sha256')
      .update(fs.readFileSync(join(DIR, f)))
      .digest('hex');
  const sig = (name: string) => {
    const t = findSnpVcpuType(name)!;
    return { family: t.family, model: t.model, stepping: t.stepping };
  };
  // sev-snp-measure --mode snp --vcpus 4 --vcpu-type EPYC-Milan --kernel inputs/kernel-17k.bin
  //   --initrd inputs/initrd-9k.bin --append 'root=/dev/vda1 ro quiet' --guest-features 0x1
  const MILAN_4 =
    'b6ca04a92689bfc08c3c73521d5d383b6b6f9258e07774115084374be218cbeef7356bad65bc71ae5ee6fc2196bfa1d5';
  // sev-snp-measure --mode snp --vcpus 1 --vcpu-type EPYC-v4 --guest-features 0x21 (no kernel)
  const V4_1 =
    'e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b';

  it('the matrix with kernel hashes contains sev-snp-measure’s digest; guest features 0x21 too', async () => {
    const m = service();
    const list = await m.forProfile(
      profile({
        cpuCounts: [2, 4],
        cpuSignatures: [sig('EPYC-Genoa'), sig('EPYC-Milan')],
        kernelHash: sha256('inputs/kernel-17k.bin'),
        initrdHash: sha256('inputs/initrd-9k.bin'),
        cmdline: 'root=/dev/vda1 ro quiet',
      }),
    );
    expect(list).toHaveLength(4);
    expect(list).toContain(MILAN_4);
    expect(
      await m.forProfile(
        profile({ cpuCounts: [1], cpuSignatures: [sig('EPYC-v4')], snp: { guestFeatures: 0x21 } }),
      ),
    ).toEqual([V4_1]);
    expect(m.firmwarePasses).toBe(1);
  });
});
