/**
 * The initial VMSA page (4096 bytes) of each SNP vCPU as QEMU, AWS EC2 and Google GCE hypervisors set it
 * (docs/protocol.md §13). The layout is the SEV-ES save area; what differs between vCPUs is the start address
 * (boot CPU at 0xfffffff0, APs at the firmware's SEV-ES reset address) and between VMMs a few attribute and
 * register values. `sev_features` carries the guest features the VMM enabled.
 */
import { SevError } from '../../sev/errors';
import { PAGE_SIZE } from './page-info';

export type VmmType = 'qemu' | 'ec2' | 'gce';
export const VMM_TYPES: readonly VmmType[] = ['qemu', 'ec2', 'gce'];

/** Reset EIP of the boot CPU. */
export const BSP_EIP = 0xfffffff0;

/** EC2 and GCE set rdx to this fixed value instead of the guest CPU signature. */
const CLOUD_RDX = 0x600n;
const DEFAULT_G_PAT = 0x0007040600070406n; // the PAT MSR's power-on value
const GCE_G_PAT = 0x00070106n;

const U64_MAX = (1n << 64n) - 1n;

interface VmmRegisters {
  csAttr: number;
  ssAttr: number;
  trAttr: number;
  gPat: bigint;
  mxcsr: number;
  x87Fcw: number;
  /** undefined: rdx is the guest CPU signature. */
  fixedRdx?: bigint;
}

function registersFor(vmm: VmmType, eip: number): VmmRegisters {
  switch (vmm) {
    case 'qemu':
      return { csAttr: 0x9b, ssAttr: 0x93, trAttr: 0x8b, gPat: DEFAULT_G_PAT, mxcsr: 0x1f80, x87Fcw: 0x37f };
    case 'ec2':
      // EC2 leaves the boot CPU's code segment not-accessed and uses different SS/TR types.
      return {
        csAttr: eip === BSP_EIP ? 0x9a : 0x9b,
        ssAttr: 0x92,
        trAttr: 0x83,
        gPat: DEFAULT_G_PAT,
        mxcsr: 0,
        x87Fcw: 0,
        fixedRdx: CLOUD_RDX,
      };
    case 'gce':
      return {
        csAttr: 0x9b,
        ssAttr: 0x93,
        trAttr: 0x8b,
        gPat: GCE_G_PAT,
        mxcsr: 0,
        x87Fcw: 0,
        fixedRdx: CLOUD_RDX,
      };
    default:
      throw new SevError('bad-format', `unknown VMM type '${String(vmm)}'; known: ${VMM_TYPES.join(', ')}`);
  }
}

export interface SnpVmsaParams {
  vmmType: VmmType;
  /** CPUID(1).EAX of the guest vCPU (QEMU only; EC2/GCE ignore it). */
  vcpuSignature: number;
  /** The VMSA's sev_features (u64). */
  guestFeatures: bigint;
}

/** One VMSA page for a vCPU that starts at `eip`. */
export function buildSnpVmsa(eip: number, p: SnpVmsaParams): Uint8Array {
  if (!Number.isInteger(eip) || eip < 0 || eip > 0xffffffff) {
    throw new SevError('bad-format', `a vCPU start address must be a u32, got ${eip}`);
  }
  if (p.guestFeatures < 0n || p.guestFeatures > U64_MAX) {
    throw new SevError('bad-format', `guest features must be a u64, got ${p.guestFeatures}`);
  }
  if (!Number.isInteger(p.vcpuSignature) || p.vcpuSignature < 0 || p.vcpuSignature > 0xffffffff) {
    throw new SevError('bad-format', `a vCPU signature must be a u32, got ${p.vcpuSignature}`);
  }
  const r = registersFor(p.vmmType, eip);
  const page = Buffer.alloc(PAGE_SIZE);
  const segment = (off: number, selector: number, attrib: number, base: number) => {
    page.writeUInt16LE(selector, off);
    page.writeUInt16LE(attrib, off + 2);
    page.writeUInt32LE(0xffff, off + 4); // limit
    page.writeBigUInt64LE(BigInt(base), off + 8);
  };
  segment(0x00, 0, 0x93, 0); // es
  segment(0x10, 0xf000, r.csAttr, (eip & 0xffff0000) >>> 0); // cs
  segment(0x20, 0, r.ssAttr, 0); // ss
  segment(0x30, 0, 0x93, 0); // ds
  segment(0x40, 0, 0x93, 0); // fs
  segment(0x50, 0, 0x93, 0); // gs
  segment(0x60, 0, 0, 0); // gdtr
  segment(0x70, 0, 0x82, 0); // ldtr
  segment(0x80, 0, 0, 0); // idtr
  segment(0x90, 0, r.trAttr, 0); // tr
  page.writeBigUInt64LE(0x1000n, 0xd0); // efer: SVME, set by KVM
  page.writeBigUInt64LE(0x40n, 0x148); // cr4: MCE, set by KVM
  page.writeBigUInt64LE(0x10n, 0x158); // cr0: ET
  page.writeBigUInt64LE(0x400n, 0x160); // dr7
  page.writeBigUInt64LE(0xffff0ff0n, 0x168); // dr6
  page.writeBigUInt64LE(0x2n, 0x170); // rflags
  page.writeBigUInt64LE(BigInt(eip & 0xffff), 0x178); // rip
  page.writeBigUInt64LE(r.gPat, 0x268);
  page.writeBigUInt64LE(r.fixedRdx ?? BigInt(p.vcpuSignature), 0x310); // rdx
  page.writeBigUInt64LE(p.guestFeatures, 0x3b0); // sev_features
  page.writeBigUInt64LE(0x1n, 0x3e8); // xcr0
  page.writeUInt32LE(r.mxcsr, 0x408);
  page.writeUInt16LE(r.x87Fcw, 0x410);
  return new Uint8Array(page.buffer, page.byteOffset, page.byteLength);
}
