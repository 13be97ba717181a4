import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DigestDraftSchema, type DigestDraft } from '../../app/contract/ipc';
import { computeLaunchDigest } from '../../app/digest/launch-digest';
import { ArtifactStore } from './artifact-store';
import { previewDigests } from './digest-preview';
import { ExpectedDigests } from './expected-digests';

const AMDSEV = join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin');
const OVMFX64 = join(process.cwd(), 'test/fixtures/vectors/virtee-sev/ovmf_OvmfX64_suffix.bin');
const MILAN = { family: 25, model: 1, stepping: 1 };
const K = '1'.repeat(64);

let digests: ExpectedDigests;
let amdSev: string;
let generic: string;

beforeAll(async () => {
  const store = new ArtifactStore({ dir: fs.mkdtempSync(join(os.tmpdir(), 'preview-')) });
  amdSev = (await store.importFile(AMDSEV)).sha256;
  generic = (await store.importFile(OVMFX64)).sha256;
  digests = new ExpectedDigests({ firmwarePath: (s) => (store.has(s) ? store.path(s) : undefined) });
});

const preview = (d: DigestDraft) => previewDigests(digests, DigestDraftSchema.parse(d));
const fw = () => ({ kind: 'artifact' as const, sha256: amdSev, size: fs.statSync(AMDSEV).size });

describe('digests:preview', () => {
  it('SEV-ES: one candidate per vCPU count x signature x VMSA variant, each equal to computeLaunchDigest', async () => {
    const r = await preview({
      scheme: 'amd-sev-es',
      policy: 0x07,
      cpuCounts: [1, 2],
      cpuSignatures: [MILAN],
      vmsaVariants: ['legacy', 'kvm-init2'],
      firmware: fw(),
    });
    if (!r.ok) throw new Error(r.reason);
    expect(r.candidates).toHaveLength(4);
    for (const c of r.candidates) {
      const want = await computeLaunchDigest({
        firmware: AMDSEV,
        sevEs: true,
        cpus: c.inputs.cpuCount!,
        cpuSignature: c.inputs.cpuSignature!,
        vmsaVariant: c.inputs.vmsaVariant!,
      });
      expect(c.launchDigest).toBe(want.digestHex);
      expect(c.inputs.firmwareSha256).toBe(amdSev);
    }
    expect(new Set(r.candidates.map((c) => c.launchDigest)).size).toBe(4);
  });

  it('measured direct boot: the kernel hashes are part of the inputs and of the digest', async () => {
    const r = await preview({
      scheme: 'amd-sev',
      policy: 0x03,
      cpuCounts: [1],
      firmware: fw(),
      kernelHash: K,
      cmdline: 'console=ttyS0',
    });
    if (!r.ok) throw new Error(r.reason);
    const want = await computeLaunchDigest({
      firmware: AMDSEV,
      sevEs: false,
      kernel: { sha256hex: K },
      cmdline: 'console=ttyS0',
    });
    expect(r.candidates).toHaveLength(1);
    expect(r.candidates[0]!.launchDigest).toBe(want.digestHex);
    expect(r.candidates[0]!.inputs.kernelHashes).toEqual(want.inputs.kernelHashes);
    expect(r.warnings).toEqual([]);
  });

  it('the firmware is hashed once however often the draft changes; a preview of a cached firmware is fast', async () => {
    const before = digests.firmwarePasses;
    const t0 = performance.now();
    for (let cpus = 1; cpus <= 20; cpus++) {
      const r = await preview({
        scheme: 'amd-sev-es',
        policy: 0x05,
        cpuCounts: [cpus],
        cpuSignatures: [MILAN],
        firmware: fw(),
      });
      expect(r.ok).toBe(true);
    }
    const perEdit = (performance.now() - t0) / 20;
    expect(digests.firmwarePasses).toBe(before);
    expect(perEdit).toBeLessThan(50);
  });

  it('refusals explain themselves: scheme/policy disagreement, missing signature, kernel on generic OVMF, unknown firmware', async () => {
    const base = { cpuCounts: [1], firmware: fw() };
    const r1 = await preview({ ...base, scheme: 'amd-sev-es', policy: 0x01, cpuSignatures: [MILAN] });
    expect(r1).toEqual({ ok: false, reason: expect.stringContaining('ES bit') });
    const r2 = await preview({ ...base, scheme: 'amd-sev-es', policy: 0x05 });
    expect(r2).toEqual({ ok: false, reason: expect.stringContaining('CPU signature') });
    const r3 = await preview({
      ...base,
      scheme: 'amd-sev',
      policy: 1,
      firmware: { kind: 'artifact', sha256: generic, size: 1 },
      kernelHash: K,
    });
    expect(r3).toEqual({ ok: false, reason: expect.stringContaining('measured direct boot') });
    const r4 = await preview({
      ...base,
      scheme: 'amd-sev',
      policy: 1,
      firmware: { kind: 'artifact', sha256: 'f'.repeat(64), size: 1 },
    });
    expect(r4).toEqual({ ok: false, reason: expect.stringContaining('not in the artifact store') });
    const r5 = await preview({ ...base, scheme: 'amd-sev', policy: 1, cmdline: 'x' });
    expect(r5).toEqual({ ok: false, reason: expect.stringContaining('together with a kernel') });
    const r6 = await preview({ ...base, scheme: 'amd-sev', policy: 0x41 });
    expect(r6).toEqual({ ok: false, reason: expect.stringContaining('reserved') });
  });

  it('warnings: a firmware without a secret area, a debug policy; precomputed digests pass through', async () => {
    const r = await preview({
      scheme: 'amd-sev',
      policy: 0x00,
      cpuCounts: [1, 2],
      firmware: { kind: 'artifact', sha256: generic, size: 1 },
    });
    if (!r.ok) throw new Error(r.reason);
    const w = r.warnings.join('\n');
    expect(w).toContain('secret');
    expect(w).toContain('NODBG off');
    expect(w).toContain('does not measure the vCPU count');
    const d = await preview({
      scheme: 'amd-sev',
      policy: 3,
      cpuCounts: [1],
      firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] },
    });
    expect(d).toMatchObject({ ok: true, candidates: [{ launchDigest: 'ab'.repeat(32) }] });
  });
});
