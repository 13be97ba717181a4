/**
 * The SEV-ES VMSA page (4096 bytes) QEMU+KVM measure for each vCPU at reset (docs/protocol.md §6.3).
 * Only cs.base/rip differ between the boot CPU and the APs; rdx carries the guest CPU signature;
 * mxcsr/x87 fcw depend on the host kernel (KVM_SEV_INIT2, Linux 6.10+).
 */
import { writeU16le, writeU32le, writeU64le } from '../sev/bytes';
import { SevError } from '../sev/errors';

export const VMSA_SIZE = 4096;

/**
 * 'legacy': mxcsr = fcw = 0, what libvirt's virt-qemu-sev-validate and `sevctl vmsa build` produce
 * (hosts before KVM_SEV_INIT2). 'kvm-init2': mxcsr 0x1f80, fcw 0x37f (host Linux 6.10+;
 * sev-snp-measure >= 0.0.10, virtee/sev measurement).
 */
export type VmsaVariant = 'legacy' | 'kvm-init2';
export const VMSA_VARIANTS: readonly VmsaVariant[] = ['legacy', 'kvm-init2'];

export { DEFAULT_VMSA_VARIANT } from './vmsa-default';

/** CPUID(1).EAX inputs: display family, display model, stepping. */
export interface CpuSignature {
  family: number;
  model: number;
  stepping: number;
}

/** Reset EIP of the boot CPU. */
export const BSP_RESET_EIP = 0xfffffff0;

/** CPUID(1).EAX from family/model/stepping (libvirt `cpu_sku`, sev-snp-measure `cpu_sig`). */
export function cpuSignatureEax(sig: CpuSignature): number {
  const { family, model, stepping } = sig;
  checkRange(family, 0, 0xf + 0xff, 'CPU family');
  checkRange(model, 0, 0xff, 'CPU model');
  checkRange(stepping, 0, 0xf, 'CPU stepping');
  let eax = stepping & 0xf;
  eax |= family > 0xf ? 0xf00 | ((family - 0xf) << 20) : family << 8;
  eax |= ((model & 0xf) << 4) | ((model >> 4) << 16);
  return eax >>> 0;
}

function checkRange(n: number, lo: number, hi: number, what: string): void {
  if (!Number.isInteger(n) || n < lo || n > hi) {
    throw new SevError('bad-format', `${what} must be an integer in ${lo}..${hi}, got ${n}`);
  }
}

// Segment register attributes as QEMU's x86_cpu_reset leaves them (VMCB compressed attribute format).
const DATA_SEG_ATTR = 0x93; // present, S, writable, accessed
const CODE_SEG_ATTR = 0x9b; // present, S, code, readable, accessed
const LDT_ATTR = 0x82;
const TSS_BUSY_ATTR = 0x8b;

function writeSegment(
  p: Uint8Array,
  off: number,
  selector: number,
  attrib: number,
  limit: number,
  base: number,
) {
  writeU16le(p, off, selector);
  writeU16le(p, off + 2, attrib);
  writeU32le(p, off + 4, limit);
  writeU64le(p, off + 8, BigInt(base));
}

/** One VMSA page for a vCPU starting at `eip`. */
export function buildVmsa(eip: number, sig: CpuSignature, variant: VmsaVariant): Uint8Array {
  if (!VMSA_VARIANTS.includes(variant)) {
    throw new SevError(
      'bad-format',
      `VMSA variant must be 'legacy' or 'kvm-init2', got '${String(variant)}'`,
    );
  }
  checkRange(eip, 0, 0xffffffff, 'reset address');
  const p = new Uint8Array(VMSA_SIZE);
  const csBase = (eip & 0xffff0000) >>> 0;
  const rip = eip & 0xffff;
  writeSegment(p, 0x00, 0, DATA_SEG_ATTR, 0xffff, 0); // es
  writeSegment(p, 0x10, 0xf000, CODE_SEG_ATTR, 0xffff, csBase); // cs
  writeSegment(p, 0x20, 0, DATA_SEG_ATTR, 0xffff, 0); // ss
  writeSegment(p, 0x30, 0, DATA_SEG_ATTR, 0xffff, 0); // ds
  writeSegment(p, 0x40, 0, DATA_SEG_ATTR, 0xffff, 0); // fs
  writeSegment(p, 0x50, 0, DATA_SEG_ATTR, 0xffff, 0); // gs
  writeSegment(p, 0x60, 0, 0, 0xffff, 0); // gdtr
  writeSegment(p, 0x70, 0, LDT_ATTR, 0xffff, 0); // ldtr
  writeSegment(p, 0x80, 0, 0, 0xffff, 0); // idtr
  writeSegment(p, 0x90, 0, TSS_BUSY_ATTR, 0xffff, 0); // tr
  writeU64le(p, 0xd0, 0x1000n); // efer: SVME
  writeU64le(p, 0x148, 0x40n); // cr4: MCE
  writeU64le(p, 0x158, 0x10n); // cr0: ET
  writeU64le(p, 0x160, 0x400n); // dr7
  writeU64le(p, 0x168, 0xffff0ff0n); // dr6
  writeU64le(p, 0x170, 0x2n); // rflags
  writeU64le(p, 0x178, BigInt(rip));
  writeU64le(p, 0x268, 0x0007040600070406n); // g_pat
  writeU64le(p, 0x310, BigInt(cpuSignatureEax(sig))); // rdx
  writeU64le(p, 0x3e8, 0x1n); // xcr0
  if (variant === 'kvm-init2') {
    writeU32le(p, 0x408, 0x1f80); // mxcsr
    writeU16le(p, 0x410, 0x37f); // x87 fcw
  }
  return p;
}

/** The boot CPU page and the page shared by every AP (which start at the OVMF reset address). */
export function buildVmsaPair(
  resetAddress: number,
  sig: CpuSignature,
  variant: VmsaVariant,
): { bsp: Uint8Array; ap: Uint8Array } {
  return { bsp: buildVmsa(BSP_RESET_EIP, sig, variant), ap: buildVmsa(resetAddress, sig, variant) };
}
