import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromBase64, toBase64, toHex } from '../sev/bytes';
import { SevError } from '../sev/errors';
import { buildHashesTable, hashCmdline, EMPTY_SHA256 } from './hashes-table';
import {
  computeLaunchDigest,
  digestFor,
  expectedDigestsMatrix,
  prepareFirmware,
  type DigestParams,
} from './launch-digest';
import { launchMeasure } from '../../test/helpers/digest-support';
import { computeMeasurement } from '../sev/measurement';

const V = join(process.cwd(), 'test/fixtures/vectors');
const AMDSEV = join(V, 'virtee-sev/ovmf_AmdSev_suffix.bin');
const OVMFX64 = join(V, 'virtee-sev/ovmf_OvmfX64_suffix.bin');
const S = join(V, 'sevctl');
const SEVCTL_FW = join(S, 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const EPYC_V4 = { family: 23, model: 1, stepping: 2 };
const MILAN = { family: 25, model: 1, stepping: 1 };
const tmp = mkdtempSync(join(tmpdir(), 'digest-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('launch digest: virtee/sev + sev-snp-measure vectors (docs/protocol.md §9)', () => {
  it('SEV, AmdSev, kernel=initrd=/dev/null, append', async () => {
    const r = await computeLaunchDigest({
      firmware: AMDSEV,
      kernel: '/dev/null',
      initrd: '/dev/null',
      cmdline: 'console=ttyS0 loglevel=7',
      sevEs: false,
    });
    expect(r.digestHex).toBe('82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff');
    expect(r.digestBase64).toBe(toBase64(r.digest));
    expect(r.inputs.kernelHashes?.cmdline).toBe(toHex(hashCmdline('console=ttyS0 loglevel=7')));
  });

  it('SEV, AmdSev, kernel only', async () => {
    const r = await computeLaunchDigest({ firmware: AMDSEV, kernel: '/dev/null', sevEs: false });
    expect(r.digestHex).toBe('77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898');
  });

  it('SEV, OvmfX64, no kernel = SHA-256 of the file', async () => {
    const r = await computeLaunchDigest({ firmware: OVMFX64, sevEs: false });
    expect(r.digestHex).toBe('b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da');
    expect(r.digestHex).toBe(createHash('sha256').update(readFileSync(OVMFX64)).digest('hex'));
  });

  it('SEV-ES, AmdSev, kernel=initrd=/dev/null, EPYC-v4, kvm-init2 VMSA, 1 and 4 vCPUs', async () => {
    const base = {
      firmware: AMDSEV,
      kernel: '/dev/null',
      initrd: '/dev/null',
      sevEs: true,
      cpuSignature: EPYC_V4,
    };
    const one = await computeLaunchDigest({ ...base, cpus: 1, vmsaVariant: 'kvm-init2' });
    expect(one.digestHex).toBe('13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c');
    const four = await computeLaunchDigest({ ...base, cpus: 4, vmsaVariant: 'kvm-init2' });
    expect(four.digestHex).toBe('0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91');
    // The legacy page gives a different digest: the variant matters.
    const legacy = await computeLaunchDigest({ ...base, cpus: 4, vmsaVariant: 'legacy' });
    expect(legacy.digestHex).not.toBe(four.digestHex);
  });

  it('kernel with OvmfX64 (no hashes table) is a firmware-unsupported error, before hashing anything', async () => {
    let progress = 0;
    const err = await computeLaunchDigest({
      firmware: OVMFX64,
      kernel: '/dev/null',
      sevEs: false,
      onProgress: () => progress++,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SevError);
    expect((err as SevError).code).toBe('firmware-unsupported');
    expect((err as SevError).message).toMatch(/kernel was given/);
    expect(progress).toBe(0);
  });
});

describe('launch digest: sevctl measurementbuild vectors (docs/protocol.md §9)', () => {
  const tik = readFileSync(join(S, 'measurement/tik1.bin'));
  const nonce = fromBase64('wxP6tRHCFrFQWxsuqZA8QA==');
  const blob = (
    digest: Uint8Array,
    p = { apiMajor: 1, apiMinor: 40, build: 40, policy: 0x03 },
    mnonce = nonce,
  ) => toBase64(Uint8Array.from([...launchMeasure({ tik, ...p, digest, mnonce }), ...mnonce]));

  it('the measurement helper reproduces the given-digest vector', () => {
    expect(blob(fromBase64('xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM='))).toBe(
      'lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA',
    );
  });

  it('firmware only: digest = SHA-256(file), measurement matches', async () => {
    const r = await computeLaunchDigest({ firmware: SEVCTL_FW, sevEs: false });
    expect(r.digestHex).toBe(createHash('sha256').update(readFileSync(SEVCTL_FW)).digest('hex'));
    expect(blob(r.digest)).toBe('oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA');
  });

  it('firmware + fake kernel, initrd and cmdline: measurement matches', async () => {
    const r = await computeLaunchDigest({
      firmware: SEVCTL_FW,
      kernel: join(S, 'measurement/vmlinuz-fake'),
      initrd: join(S, 'measurement/initrd-fake'),
      cmdline: 'foo bar baz fake kernel=cmdline',
      sevEs: false,
    });
    expect(blob(r.digest)).toBe('h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA');
  });

  it('SEV-ES, 4 vCPUs, Milan, legacy VMSA, policy 0x05, api 1.49 build 6: measurement matches', async () => {
    const expected = '/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny';
    const mnonce = fromBase64(expected).subarray(32);
    const r = await computeLaunchDigest({
      firmware: SEVCTL_FW,
      sevEs: true,
      cpus: 4,
      cpuSignature: MILAN,
      vmsaVariant: 'legacy',
    });
    expect(blob(r.digest, { apiMajor: 1, apiMinor: 49, build: 6, policy: 0x05 }, mnonce)).toBe(expected);
    // The product's measurement code agrees on the same digest.
    const viaProduct = computeMeasurement({
      tik,
      apiMajor: 1,
      apiMinor: 49,
      build: 6,
      policy: 0x05,
      digest: r.digest,
      mnonce,
    });
    expect(toBase64(Uint8Array.from([...viaProduct, ...mnonce]))).toBe(expected);
    const three = await computeLaunchDigest({
      firmware: SEVCTL_FW,
      sevEs: true,
      cpus: 3,
      cpuSignature: MILAN,
    });
    expect(blob(three.digest, { apiMajor: 1, apiMinor: 49, build: 6, policy: 0x05 }, mnonce)).not.toBe(
      expected,
    );
  });
});

describe('firmware midstate reuse', () => {
  it('digestFor over a prepared firmware equals a from-scratch SHA-256 for every matrix row', async () => {
    const state = await prepareFirmware(AMDSEV);
    const fw = readFileSync(AMDSEV);
    const table = buildHashesTable({
      kernel: EMPTY_SHA256,
      initrd: EMPTY_SHA256,
      cmdline: hashCmdline(undefined),
    });
    const rows: DigestParams[] = [{ sevEs: false }, { sevEs: false, hashesTable: table }];
    for (const cpus of [1, 2, 64])
      for (const cpuSignature of [EPYC_V4, MILAN])
        for (const vmsaVariant of ['legacy', 'kvm-init2'] as const)
          rows.push({ sevEs: true, cpus, cpuSignature, vmsaVariant, hashesTable: table });
    const matrix = expectedDigestsMatrix(state, rows);
    expect(matrix).toHaveLength(14);
    expect(new Set(matrix.map((r) => r.digestHex)).size).toBe(14);
    // Row for the published 4-vCPU vector shape, computed via the matrix path.
    const v = digestFor(state, {
      sevEs: true,
      cpus: 4,
      cpuSignature: EPYC_V4,
      vmsaVariant: 'kvm-init2',
      hashesTable: table,
    });
    expect(toHex(v)).toBe('0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91');
    // The midstate is not consumed: the firmware-only row is still SHA-256(file).
    expect(matrix[0]!.digestHex).toBe(createHash('sha256').update(fw).digest('hex'));
    expect(toHex(digestFor(state, { sevEs: false }))).toBe(matrix[0]!.digestHex);
    // A prepared state and bytes input are accepted by computeLaunchDigest too.
    const viaState = await computeLaunchDigest({
      firmware: state,
      sevEs: true,
      cpus: 2,
      cpuSignature: MILAN,
    });
    const viaBytes = await computeLaunchDigest({ firmware: fw, sevEs: true, cpus: 2, cpuSignature: MILAN });
    expect(viaState.digestHex).toBe(viaBytes.digestHex);
    expect(viaBytes.digestHex).toBe(toHex(digestFor(state, { sevEs: true, cpus: 2, cpuSignature: MILAN })));
  });

  it('clear errors for bad parameters', async () => {
    const state = await prepareFirmware(AMDSEV);
    expect(() => digestFor(state, { sevEs: true, cpuSignature: MILAN })).toThrow(/vCPU count/);
    expect(() => digestFor(state, { sevEs: true, cpus: 0, cpuSignature: MILAN })).toThrow(/vCPU count/);
    expect(() => digestFor(state, { sevEs: true, cpus: 2 })).toThrow(/CPU signature/);
    expect(() => digestFor(state, { sevEs: false, cpus: 2 })).toThrow(/only apply to SEV-ES/);
    await expect(
      computeLaunchDigest({ firmware: AMDSEV, initrd: '/dev/null', sevEs: false }),
    ).rejects.toThrow(/only measured together with a kernel/);
    // SEV-ES needs the AP reset address: strip the SEV info block from a copy of the footer.
    const noReset = Uint8Array.from(readFileSync(AMDSEV));
    const guidAt = noReset.length - 50 - 16; // the first entry before the footer is the SEV info block
    noReset[guidAt] = noReset[guidAt]! ^ 0xff;
    const err = await computeLaunchDigest({
      firmware: noReset,
      sevEs: true,
      cpus: 1,
      cpuSignature: MILAN,
    }).catch((e: unknown) => e);
    expect((err as SevError).code).toBe('firmware-unsupported');
    expect((err as SevError).message).toMatch(/SEV-ES was requested but .*no SEV info block/);
  });
});

describe('streaming', () => {
  const SIZE = 64 * 1024 * 1024;
  const big = join(tmp, 'big-kernel.bin');
  {
    // Non-sparse: 1 MiB of random data written 64 times, so the file really is 64 MiB on disk.
    const chunk = randomBytes(1024 * 1024);
    const fd = openSync(big, 'w');
    for (let i = 0; i < 64; i++) writeSync(fd, chunk);
    closeSync(fd);
  }

  it('hashes a 64 MiB kernel with bounded memory and reports progress', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const seen: [number, number][] = [];
    const r = await computeLaunchDigest({
      firmware: AMDSEV,
      kernel: big,
      sevEs: false,
      onProgress: (d, t) => {
        seen.push([d, t]);
        peak = Math.max(peak, process.memoryUsage().rss);
      },
    });
    const expectedKernel = createHash('sha256');
    const chunk = readFileSync(big).subarray(0, 1024 * 1024);
    for (let i = 0; i < 64; i++) expectedKernel.update(chunk);
    expect(r.inputs.kernelHashes?.kernel).toBe(expectedKernel.digest('hex'));
    const total = SIZE + 4096;
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.every(([, t]) => t === total)).toBe(true);
    expect(seen.at(-1)![0]).toBe(total);
    for (let i = 1; i < seen.length; i++) expect(seen[i]![0]).toBeGreaterThanOrEqual(seen[i - 1]![0]);
    // Two 4 MiB buffers per stream: growth must stay far below the file size.
    expect(peak - before).toBeLessThan(SIZE / 2);
  });

  it('cancels through an AbortSignal mid-file and when already aborted', async () => {
    const ac = new AbortController();
    let calls = 0;
    const p = computeLaunchDigest({
      firmware: AMDSEV,
      kernel: big,
      sevEs: false,
      signal: ac.signal,
      onProgress: (d) => {
        calls++;
        if (d > 8 * 1024 * 1024) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toBeLessThan(10);
    await expect(
      computeLaunchDigest({ firmware: AMDSEV, sevEs: false, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({
      name: 'AbortError',
    });
  });
});
