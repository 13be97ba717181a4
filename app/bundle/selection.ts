/**
 * The matrix selection as owners type it (CLI options, REST query parameters): vCPU counts "1-8", "1,2,4",
 * "1-4,8"; CPU signatures "milan,genoa", "EPYC-Rome", "25:1:1"; VMSA variants "legacy", "kvm-init2", "both".
 */
import { CPU_PRESETS, findCpuPreset } from '../digest/cpu-presets';
import { VMSA_VARIANTS, type CpuSignature, type VmsaVariant } from '../digest/vmsa';
import { BundleError } from './errors';

/** Parses "1-8", "1,2,4", "1-4,8" into a sorted list of distinct vCPU counts. */
export function parseCpuList(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const m = /^\s*(\d{1,4})\s*(?:-\s*(\d{1,4})\s*)?$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m && m[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo < 1 || hi < lo || hi > 4096) {
      throw new BundleError(
        'bundle-bad-selection',
        `cpus must be counts or ranges in 1..4096 like 1-8 or 1,2,4, got '${s}'`,
      );
    }
    if (hi - lo > 511) throw new BundleError('bundle-bad-selection', 'cpus spans at most 512 counts');
    for (let n = lo; n <= hi; n++) out.add(n);
  }
  if (out.size > 512) throw new BundleError('bundle-bad-selection', 'cpus spans at most 512 counts');
  return [...out].sort((a, b) => a - b);
}

/** Parses "milan,genoa" / "EPYC-Rome" / "25:1:1" into named CPU signatures. */
export function parseCpuSignatures(s: string): Array<CpuSignature & { name?: string }> {
  return s.split(',').map((raw) => {
    const t = raw.trim();
    const m = /^(\d{1,3})[:/](\d{1,3})[:/](\d{1,2})$/.exec(t);
    if (m) {
      const sig = { family: Number(m[1]), model: Number(m[2]), stepping: Number(m[3]) };
      if (sig.family > 0x10e || sig.model > 0xff || sig.stepping > 0xf) {
        throw new BundleError(
          'bundle-bad-selection',
          `cpu-signature ${t}: family <= 270, model <= 255, stepping <= 15`,
        );
      }
      return sig;
    }
    const p = findCpuPreset(t);
    if (!p) {
      throw new BundleError(
        'bundle-bad-selection',
        `unknown cpu-signature '${t}'; use FAMILY:MODEL:STEPPING or one of ${CPU_PRESETS.map((x) => x.name).join(', ')}`,
      );
    }
    return { family: p.family, model: p.model, stepping: p.stepping, name: p.name };
  });
}

export function parseVmsaVariants(s: string): VmsaVariant[] {
  if (s === 'both') return [...VMSA_VARIANTS];
  const list = s.split(',').map((x) => x.trim());
  for (const v of list) {
    if (!VMSA_VARIANTS.includes(v as VmsaVariant)) {
      throw new BundleError(
        'bundle-bad-selection',
        `vmsa-variant must be legacy, kvm-init2 or both, got '${s}'`,
      );
    }
  }
  return [...new Set(list as VmsaVariant[])];
}
