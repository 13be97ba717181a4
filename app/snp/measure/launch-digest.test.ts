import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveKernelHashes } from '../../digest/hashes-table';
import { computeLaunchDigest } from '../../digest/launch-digest';
import { SevError } from '../../sev/errors';
import {
  computeSnpDigestMatrix,
  computeSnpLaunchDigest,
  computeSnpOvmfHash,
  prepareSnpOvmf,
  snpDigestFor,
  type SnpDigestRow,
  type SnpLaunchDigestInput,
} from './launch-digest';
import { findSnpVcpuType, vcpuSignatureOf } from './vcpu-types';
import type { VmmType } from './vmsa';

const DIR = 'test/fixtures/snp/measure';
const AMDSEV = join(DIR, 'ovmf_AmdSev_suffix.bin');
const OVMFX64 = join(DIR, 'ovmf_OvmfX64_suffix.bin');

interface Vector {
  args: string[];
  expected: string;
  note: string;
}
const vectors = (JSON.parse(readFileSync(join(DIR, 'vectors.json'), 'utf8')) as { cases: Vector[] }).cases;

/** The sev-snp-measure argument list of a vector as a map (every option there takes one value). */
function argMap(args: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) m.set(args[i]!, args[i + 1]!);
  return m;
}
const fixturePath = (p: string) => (p.startsWith('/') ? p : join(DIR, p));

function snpInput(a: Map<string, string>): SnpLaunchDigestInput {
  const input: SnpLaunchDigestInput = {
    ovmf: fixturePath(a.get('--ovmf')!),
    vcpus: Number(a.get('--vcpus')),
  };
  const type = a.get('--vcpu-type');
  if (type !== undefined) {
    const t = findSnpVcpuType(type)!;
    input.vcpuSignature = vcpuSignatureOf(t.family, t.model, t.stepping);
  }
  if (a.has('--vcpu-sig')) input.vcpuSignature = Number(a.get('--vcpu-sig'));
  if (a.has('--vmm-type')) input.vmmType = a.get('--vmm-type') as VmmType;
  if (a.has('--guest-features')) input.guestFeatures = BigInt(a.get('--guest-features')!);
  if (a.has('--kernel')) input.kernel = fixturePath(a.get('--kernel')!);
  if (a.has('--initrd')) input.initrd = fixturePath(a.get('--initrd')!);
  if (a.has('--append')) input.cmdline = a.get('--append')!;
  if (a.has('--snp-ovmf-hash')) input.ovmfHash = a.get('--snp-ovmf-hash')!;
  return input;
}

function asOutput(digest: Uint8Array, a: Map<string, string>): string {
  return a.get('--output-format') === 'base64'
    ? Buffer.from(digest).toString('base64')
    : Buffer.from(digest).toString('hex');
}

describe('SNP launch digest: every vector of sev-snp-measure', () => {
  for (const v of vectors) {
    const a = argMap(v.args);
    const mode = a.get('--mode');
    it(`${mode}: ${v.note}`, async () => {
      if (mode === 'snp') {
        const r = await computeSnpLaunchDigest(snpInput(a));
        expect(asOutput(r.digest, a)).toBe(v.expected);
      } else if (mode === 'snp:ovmf-hash') {
        expect(Buffer.from(await computeSnpOvmfHash(fixturePath(a.get('--ovmf')!))).toString('hex')).toBe(
          v.expected,
        );
      } else if (mode === 'seves') {
        // The SEV-ES digest lives in app/digest; sev-snp-measure builds the KVM_SEV_INIT2 VMSA.
        const t = findSnpVcpuType(a.get('--vcpu-type')!)!;
        const r = await computeLaunchDigest({
          firmware: fixturePath(a.get('--ovmf')!),
          kernel: fixturePath(a.get('--kernel')!),
          initrd: fixturePath(a.get('--initrd')!),
          cmdline: a.get('--append')!,
          sevEs: true,
          cpus: Number(a.get('--vcpus')),
          cpuSignature: { family: t.family, model: t.model, stepping: t.stepping },
          vmsaVariant: 'kvm-init2',
        });
        expect(r.digestHex).toBe(v.expected);
      } else {
        throw new Error(`vector with unhandled mode ${mode}`);
      }
    });
  }

  it('covers every vector mode (a new mode would be silently skipped otherwise)', () => {
    expect(new Set(vectors.map((v) => argMap(v.args).get('--mode')))).toEqual(
      new Set(['snp', 'snp:ovmf-hash', 'seves']),
    );
  });
});

const MILAN = vcpuSignatureOf(25, 1, 1);

describe('digest matrix', () => {
  it('equals one digest per row, in the order of the rows, from one OVMF pass', async () => {
    const image = new Uint8Array(readFileSync(AMDSEV));
    const state = await prepareSnpOvmf(image);
    const kernel = join(DIR, 'inputs/kernel-17k.bin');
    const initrd = join(DIR, 'inputs/initrd-9k.bin');
    const cmdline = 'console=ttyS0';
    const kernelHashes = await resolveKernelHashes({ kernel, initrd, cmdline });
    const rows: SnpDigestRow[] = [];
    for (const vmmType of ['qemu', 'ec2', 'gce'] as const)
      for (const vcpus of [7, 1, 3])
        for (const guestFeatures of [0x1n, 0x21n])
          rows.push({ vcpus, vmmType, guestFeatures, vcpuSignature: MILAN, kernelHashes });
    rows.push({ vcpus: 2, vcpuSignature: vcpuSignatureOf(23, 1, 2) });
    rows.push({ vcpus: 2, vcpuSignature: MILAN, guestFeatures: 0x21n });
    const matrix = computeSnpDigestMatrix(state, rows);
    expect(matrix.map((m) => m.row)).toEqual(rows);
    for (const [i, row] of rows.entries()) {
      const single = await computeSnpLaunchDigest({
        ovmf: AMDSEV,
        vcpus: row.vcpus,
        vcpuSignature: row.vcpuSignature!,
        guestFeatures: row.guestFeatures ?? 0x1n,
        vmmType: row.vmmType ?? 'qemu',
        ...(row.kernelHashes ? { kernel, initrd, cmdline } : {}),
      });
      expect(matrix[i]!.digestHex).toBe(single.digestHex);
    }
    expect(new Set(matrix.map((m) => m.digestHex)).size).toBe(rows.length);
  });

  it('the precomputed OVMF hash replaces the page pass (file not read for pages)', async () => {
    const full = await prepareSnpOvmf(AMDSEV);
    const given = await prepareSnpOvmf(AMDSEV, { ovmfHash: full.ovmfHash });
    expect(given.ovmfHashOrigin).toBe('given');
    const row = { vcpus: 4, vcpuSignature: MILAN };
    expect(snpDigestFor(given, row)).toEqual(snpDigestFor(full, row));
  });
});

describe('streaming, progress and cancellation', () => {
  it('chunk size does not change the digest and progress reaches the total', async () => {
    const kernel = join(DIR, 'inputs/kernel-17k.bin');
    const initrd = join(DIR, 'inputs/initrd-9k.bin');
    const seen: [number, number][] = [];
    const a = await computeSnpLaunchDigest({
      ovmf: AMDSEV,
      kernel,
      initrd,
      vcpus: 2,
      vcpuSignature: MILAN,
      chunkSize: 4096,
      onProgress: (d, t) => seen.push([d, t]),
    });
    const b = await computeSnpLaunchDigest({ ovmf: AMDSEV, kernel, initrd, vcpus: 2, vcpuSignature: MILAN });
    expect(a.digestHex).toBe(b.digestHex);
    const total = 4096 + 17000 + 9000;
    expect(seen.at(-1)).toEqual([total, total]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]![0]).toBeGreaterThanOrEqual(seen[i - 1]![0]);
  });

  it('an aborted signal rejects with its reason', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(
      computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 1, vcpuSignature: MILAN, signal: ac.signal }),
    ).rejects.toThrow('stop');
  });

  it('an abort while the files are streamed rejects with its reason', async () => {
    const ac = new AbortController();
    const p = computeSnpLaunchDigest({
      ovmf: AMDSEV,
      vcpus: 1,
      vcpuSignature: MILAN,
      signal: ac.signal,
      kernel: join(DIR, 'inputs/kernel-17k.bin'),
      chunkSize: 4096,
      onProgress: () => ac.abort(new Error('user cancelled')),
    });
    await expect(p).rejects.toThrow('user cancelled');
  });
});

describe('typed errors', () => {
  const cases: [string, () => Promise<unknown>, string, RegExp][] = [
    [
      'kernel with an OVMF lacking KERNEL_HASHES',
      () => computeSnpLaunchDigest({ ovmf: OVMFX64, kernel: '/dev/null', vcpus: 1, vcpuSignature: MILAN }),
      'firmware-unsupported',
      /KERNEL_HASHES/,
    ],
    [
      'QEMU without a vCPU signature',
      () => computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 1 }),
      'bad-format',
      /vCPU type or signature/,
    ],
    [
      'zero vCPUs',
      () => computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 0, vcpuSignature: MILAN }),
      'bad-format',
      /1\.\.4096/,
    ],
    [
      'initrd without kernel',
      () => computeSnpLaunchDigest({ ovmf: AMDSEV, initrd: '/dev/null', vcpus: 1, vcpuSignature: MILAN }),
      'bad-format',
      /only measured together with a kernel/,
    ],
    [
      'guest features beyond u64',
      () =>
        computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 1, vcpuSignature: MILAN, guestFeatures: 1n << 64n }),
      'bad-format',
      /u64/,
    ],
    [
      'a vCPU signature beyond u32',
      () => computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 1, vcpuSignature: 2 ** 32, vmmType: 'gce' }),
      'bad-format',
      /u32/,
    ],
    [
      'a short OVMF hash',
      () => computeSnpLaunchDigest({ ovmf: AMDSEV, vcpus: 1, vcpuSignature: MILAN, ovmfHash: 'abcd' }),
      'bad-format',
      /96 hex digits/,
    ],
    [
      'a file that is not OVMF',
      () => computeSnpOvmfHash('package-lock.json'),
      'bad-format',
      /not an OVMF image with a footer table/,
    ],
    [
      'an image of whole pages without a footer',
      () => computeSnpOvmfHash(new Uint8Array(8192)),
      'bad-format',
      /not an OVMF image with a footer table/,
    ],
    [
      'an image that is not whole pages',
      () => computeSnpOvmfHash(new Uint8Array(5000)),
      'bad-length',
      /whole number of 4 KiB pages/,
    ],
  ];
  for (const [name, run, code, msg] of cases) {
    it(name, async () => {
      const e = await run().then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(SevError);
      expect((e as SevError).code).toBe(code);
      expect((e as SevError).message).toMatch(msg);
    });
  }
});
