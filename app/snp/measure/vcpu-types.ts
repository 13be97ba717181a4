/**
 * Guest vCPU models by QEMU name and their CPUID(1).EAX signature, which QEMU puts in the VMSA's rdx
 * (docs/protocol.md §13). The names are those sev-snp-measure accepts (QEMU's builtin x86 models); the
 * versions of a model share its family/model/stepping.
 *
 * No node imports, so the UI can list the names.
 */
import { cpuSignatureEax } from '../../digest/vmsa';

export interface SnpVcpuType {
  name: string;
  family: number;
  model: number;
  stepping: number;
}

const NAPLES = { family: 23, model: 1, stepping: 2 };
const ROME = { family: 23, model: 49, stepping: 0 };
const MILAN = { family: 25, model: 1, stepping: 1 };
const GENOA = { family: 25, model: 17, stepping: 0 };
const TURIN = { family: 26, model: 0, stepping: 0 };

export const SNP_VCPU_TYPES: readonly SnpVcpuType[] = [
  { name: 'EPYC', ...NAPLES },
  { name: 'EPYC-v1', ...NAPLES },
  { name: 'EPYC-v2', ...NAPLES },
  { name: 'EPYC-IBPB', ...NAPLES },
  { name: 'EPYC-v3', ...NAPLES },
  { name: 'EPYC-v4', ...NAPLES },
  { name: 'EPYC-Rome', ...ROME },
  { name: 'EPYC-Rome-v1', ...ROME },
  { name: 'EPYC-Rome-v2', ...ROME },
  { name: 'EPYC-Rome-v3', ...ROME },
  { name: 'EPYC-Milan', ...MILAN },
  { name: 'EPYC-Milan-v1', ...MILAN },
  { name: 'EPYC-Milan-v2', ...MILAN },
  { name: 'EPYC-Genoa', ...GENOA },
  { name: 'EPYC-Genoa-v1', ...GENOA },
  { name: 'EPYC-Turin', ...TURIN },
];

/** The vCPU type with this name (case-insensitive), or undefined. */
export function findSnpVcpuType(name: string): SnpVcpuType | undefined {
  const n = name.trim().toLowerCase();
  return SNP_VCPU_TYPES.find((t) => t.name.toLowerCase() === n);
}

/** The largest display family CPUID(1).EAX can express (base 0xf plus an 8-bit extended family). */
export const MAX_VCPU_FAMILY = 0xf + 0xff;

/** CPUID(1).EAX from display family, model and stepping; out-of-range values are a SevError. */
export function vcpuSignatureOf(family: number, model: number, stepping: number): number {
  return cpuSignatureEax({ family, model, stepping });
}
