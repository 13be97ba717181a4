/**
 * Guest vCPU signatures for the SEV-ES VMSA rdx field (docs/protocol.md §6.3). The signature is that of the
 * *guest* CPU model QEMU presents (`-cpu EPYC-Milan` etc.); with `-cpu host` or libvirt's default it is the
 * host's own CPUID, whose stepping varies between silicon revisions, so enter family/model/stepping from
 * `virsh capabilities` (`<signature family= model= stepping=>`) in that case.
 *
 * Pure data: imported by the UI, no node imports.
 *
 * Confidence notes (values from the protocol document's vectors and from QEMU's CPU model table in
 * target/i386/cpu.c; EPYC-Genoa and EPYC-Turin were checked against that source):
 * - EPYC / EPYC-v4 (23,1,2): CERTAIN — the protocol doc's virtee/sev-snp-measure vectors use it (rdx 0x00800f12)
 *   and they reproduce in our tests.
 * - EPYC-Milan (25,1,1): CERTAIN — sevctl's vmsa0/vmsa1.bin were built for it and match byte for byte.
 * - EPYC-Rome (23,49,0): HIGH — QEMU's EPYC-Rome model (family 23, model 49, stepping 0); doc gives no vector.
 * - EPYC-Genoa (25,17,0): HIGH — QEMU's EPYC-Genoa model (family 25, model 17, stepping 0); the doc lists
 *   0x00a10f10 for Genoa.
 * - EPYC-Turin (26,0,0): HIGH — QEMU's EPYC-Turin model definition (target/i386/cpu.c: family 26,
 *   model 0, stepping 0), as read in QEMU's source; no measured vector exists for it.
 */

export interface CpuPreset {
  /** Name as QEMU's -cpu model spells it (findCpuPreset also takes it lower-case and without `EPYC-`). */
  name: string;
  family: number;
  model: number;
  stepping: number;
  /** How sure we are of the numbers: see the file comment. */
  confidence: 'certain' | 'high' | 'low';
  note: string;
}

export const CPU_PRESETS: readonly CpuPreset[] = [
  {
    name: 'EPYC',
    family: 23,
    model: 1,
    stepping: 2,
    confidence: 'certain',
    note: 'QEMU EPYC (Naples-era model); CPUID 0x00800f12',
  },
  {
    name: 'EPYC-v4',
    family: 23,
    model: 1,
    stepping: 2,
    confidence: 'certain',
    note: 'QEMU EPYC-v4; same signature as EPYC; used by the virtee/sev-snp-measure vectors',
  },
  {
    name: 'EPYC-Rome',
    family: 23,
    model: 49,
    stepping: 0,
    confidence: 'high',
    note: 'QEMU EPYC-Rome; CPUID 0x00830f10',
  },
  {
    name: 'EPYC-Milan',
    family: 25,
    model: 1,
    stepping: 1,
    confidence: 'certain',
    note: 'QEMU EPYC-Milan and real Milan B1 hosts; CPUID 0x00a00f11; matches sevctl test VMSAs',
  },
  {
    name: 'EPYC-Genoa',
    family: 25,
    model: 17,
    stepping: 0,
    confidence: 'high',
    note: 'QEMU EPYC-Genoa; CPUID 0x00a10f10 (real Genoa hosts may report another stepping)',
  },
  {
    name: 'EPYC-Turin',
    family: 26,
    model: 0,
    stepping: 0,
    confidence: 'high',
    note: "Zen 5 (family 0x1A), as QEMU's EPYC-Turin model defines it",
  },
];

/**
 * The preset with this name, or undefined. Case-insensitive, and the `EPYC-` prefix may be left out:
 * `milan`, `Milan`, `epyc-milan` and `EPYC-Milan` are all EPYC-Milan (the CLI's digest and bundle and the
 * REST selection all resolve names here).
 */
export function findCpuPreset(name: string): CpuPreset | undefined {
  const n = name.trim().toLowerCase();
  if (!n) return undefined;
  return CPU_PRESETS.find((p) => {
    const full = p.name.toLowerCase();
    return full === n || full === `epyc-${n}`;
  });
}
