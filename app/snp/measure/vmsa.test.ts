import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildVmsa } from '../../digest/vmsa';
import { SevError } from '../../sev/errors';
import { LaunchDigestChain, PageType, VMSA_GPA } from './page-info';
import { vcpuSignatureOf } from './vcpu-types';
import { BSP_EIP, buildSnpVmsa } from './vmsa';

const AP_EIP = 0x80b004;
const MILAN = vcpuSignatureOf(25, 1, 1);
const u16 = (p: Uint8Array, off: number) => Buffer.from(p).readUInt16LE(off);
const u64 = (p: Uint8Array, off: number) => Buffer.from(p).readBigUInt64LE(off);

describe('SNP VMSA', () => {
  it('QEMU with guest features 0 is the SEV-ES KVM_SEV_INIT2 VMSA of the SEV digest code', () => {
    for (const eip of [BSP_EIP, AP_EIP]) {
      const snp = buildSnpVmsa(eip, { vmmType: 'qemu', vcpuSignature: MILAN, guestFeatures: 0n });
      expect(snp).toEqual(buildVmsa(eip, { family: 25, model: 1, stepping: 1 }, 'kvm-init2'));
    }
  });

  it('sev_features at 0x3b0, rdx = signature for QEMU, 0x600 for EC2 and GCE', () => {
    const p = { vcpuSignature: MILAN, guestFeatures: 0xfedcba9876543210n };
    const qemu = buildSnpVmsa(AP_EIP, { ...p, vmmType: 'qemu' });
    const ec2 = buildSnpVmsa(AP_EIP, { ...p, vmmType: 'ec2' });
    const gce = buildSnpVmsa(AP_EIP, { ...p, vmmType: 'gce' });
    for (const v of [qemu, ec2, gce]) expect(u64(v, 0x3b0)).toBe(0xfedcba9876543210n);
    expect(u64(qemu, 0x310)).toBe(BigInt(MILAN));
    expect(u64(ec2, 0x310)).toBe(0x600n);
    expect(u64(gce, 0x310)).toBe(0x600n);
    expect(u64(gce, 0x268)).toBe(0x70106n);
    expect(u64(ec2, 0x268)).toBe(0x0007040600070406n);
    expect([u16(ec2, 0x408), u16(ec2, 0x410), u16(qemu, 0x408), u16(qemu, 0x410)]).toEqual([
      0, 0, 0x1f80, 0x37f,
    ]);
  });

  it('EC2: the boot CPU code segment is 0x9a, the APs 0x9b; SS 0x92, TR 0x83', () => {
    const p = { vmmType: 'ec2' as const, vcpuSignature: 0, guestFeatures: 1n };
    const bsp = buildSnpVmsa(BSP_EIP, p);
    const ap = buildSnpVmsa(AP_EIP, p);
    expect([u16(bsp, 0x12), u16(ap, 0x12), u16(ap, 0x22), u16(ap, 0x92)]).toEqual([0x9a, 0x9b, 0x92, 0x83]);
    expect(u64(ap, 0x18)).toBe(0x800000n); // cs.base = eip & 0xffff0000
    expect(u64(ap, 0x178)).toBe(0xb004n); // rip = eip & 0xffff
  });

  it('refuses a VMM it does not know and values out of range', () => {
    const p = { vcpuSignature: 0, guestFeatures: 1n };
    expect(() => buildSnpVmsa(BSP_EIP, { ...p, vmmType: 'xen' as never })).toThrow(SevError);
    expect(() => buildSnpVmsa(BSP_EIP, { ...p, vmmType: 'qemu', guestFeatures: -1n })).toThrow(/u64/);
    expect(() => buildSnpVmsa(2 ** 32, { ...p, vmmType: 'qemu' })).toThrow(/u32/);
  });
});

describe('PAGE_INFO chain', () => {
  it('one update is SHA-384 of digest || contents || 0x70 || type || zeros || gpa, all little-endian', () => {
    const contents = new Uint8Array(48).fill(0x5a);
    const chain = new LaunchDigestChain();
    chain.update(PageType.vmsa, VMSA_GPA, contents);
    const pageInfo = Buffer.alloc(0x70);
    pageInfo.set(contents, 0x30);
    pageInfo.writeUInt16LE(0x70, 0x60);
    pageInfo[0x62] = 2;
    pageInfo.writeBigUInt64LE(0xfffffffff000n, 0x68);
    expect(Buffer.from(chain.current()).toString('hex')).toBe(
      createHash('sha384').update(pageInfo).digest('hex'),
    );
  });

  it('a fork continues independently; wrong sizes are typed errors', () => {
    const a = new LaunchDigestChain();
    const b = a.fork();
    a.updateEmptyPages(PageType.zero, 0, 4096);
    expect(a.current()).not.toEqual(b.current());
    expect(() => a.updateNormalPages(0, new Uint8Array(100))).toThrow(SevError);
    expect(() => new LaunchDigestChain(new Uint8Array(32))).toThrow(SevError);
  });
});
