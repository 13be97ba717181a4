import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readU32le, toHex } from '../sev/bytes';
import { CPU_PRESETS, findCpuPreset } from './cpu-presets';
import { buildVmsa, buildVmsaPair, cpuSignatureEax, BSP_RESET_EIP } from './vmsa';

const V = join(process.cwd(), 'test/fixtures/vectors/sevctl');

describe('SEV-ES VMSA', () => {
  it("legacy pages are byte-identical to sevctl's vmsa0.bin / vmsa1.bin (Milan 25/1/1, reset 0x80b004)", () => {
    const { bsp, ap } = buildVmsaPair(0x0080b004, { family: 25, model: 1, stepping: 1 }, 'legacy');
    expect(toHex(bsp)).toBe(toHex(readFileSync(join(V, 'vmsa0.bin'))));
    expect(toHex(ap)).toBe(toHex(readFileSync(join(V, 'vmsa1.bin'))));
  });

  it('kvm-init2 differs from legacy only in mxcsr (0x1f80) and x87 fcw (0x37f)', () => {
    const sig = { family: 23, model: 1, stepping: 2 };
    const a = buildVmsa(BSP_RESET_EIP, sig, 'legacy');
    const b = buildVmsa(BSP_RESET_EIP, sig, 'kvm-init2');
    const diff = [...a.keys()].filter((i) => a[i] !== b[i]);
    expect(diff).toEqual([0x408, 0x409, 0x410, 0x411]);
    expect(readU32le(b, 0x408)).toBe(0x1f80);
    expect(b[0x410]! | (b[0x411]! << 8)).toBe(0x37f);
  });

  it('BSP and AP differ only in cs.base and rip', () => {
    const { bsp, ap } = buildVmsaPair(0x0080b004, { family: 25, model: 17, stepping: 0 }, 'kvm-init2');
    expect(readU32le(bsp, 0x18)).toBe(0xffff0000);
    expect(readU32le(bsp, 0x178)).toBe(0xfff0);
    expect(readU32le(ap, 0x18)).toBe(0x00800000);
    expect(readU32le(ap, 0x178)).toBe(0xb004);
    const diff = [...bsp.keys()].filter((i) => bsp[i] !== ap[i]);
    expect(diff.every((i) => (i >= 0x18 && i < 0x20) || (i >= 0x178 && i < 0x180))).toBe(true);
  });

  it('rdx = CPUID(1).EAX from the doc formula', () => {
    expect(cpuSignatureEax({ family: 23, model: 1, stepping: 2 })).toBe(0x00800f12);
    expect(cpuSignatureEax({ family: 25, model: 1, stepping: 1 })).toBe(0x00a00f11);
    expect(cpuSignatureEax({ family: 25, model: 17, stepping: 0 })).toBe(0x00a10f10);
    expect(cpuSignatureEax({ family: 23, model: 49, stepping: 0 })).toBe(0x00830f10);
    expect(cpuSignatureEax({ family: 6, model: 0x55, stepping: 4 })).toBe(0x00050654);
    const p = buildVmsa(BSP_RESET_EIP, { family: 26, model: 2, stepping: 1 }, 'legacy');
    expect(readU32le(p, 0x310)).toBe(0x00b00f21);
  });

  it('rejects out-of-range signatures and unknown variants with clear messages', () => {
    expect(() => cpuSignatureEax({ family: 23, model: 256, stepping: 0 })).toThrow(
      /CPU model must be an integer/,
    );
    expect(() => cpuSignatureEax({ family: 23, model: 1, stepping: 16 })).toThrow(/CPU stepping/);
    expect(() => cpuSignatureEax({ family: -1, model: 1, stepping: 1 })).toThrow(/CPU family/);
    expect(() => buildVmsa(0, { family: 23, model: 1, stepping: 2 }, 'new' as never)).toThrow(
      /legacy' or 'kvm-init2/,
    );
  });

  it('presets: names resolve case-insensitively and the doc-given signatures match', () => {
    expect(findCpuPreset('epyc-v4')).toMatchObject({ family: 23, model: 1, stepping: 2 });
    expect(findCpuPreset('EPYC-Milan')).toMatchObject({ family: 25, model: 1, stepping: 1 });
    expect(cpuSignatureEax(findCpuPreset('epyc-genoa')!)).toBe(0x00a10f10);
    expect(findCpuPreset('nope')).toBeUndefined();
    for (const p of CPU_PRESETS) expect(() => cpuSignatureEax(p)).not.toThrow();
  });
});
