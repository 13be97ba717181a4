/**
 * The launch measurements an SEV-SNP profile admits (docs/protocol.md §13): its precomputed `digests`,
 * or for an imported firmware every row of cpuCounts x cpuSignatures with the profile's VMM type, guest
 * features and (measured direct boot) kernel hashes. The OVMF pages are hashed once per artifact (the
 * "OVMF hash"); each list is cached per artifact and inputs.
 */
import { resolveKernelHashes, type KernelHashes } from '../../app/digest/hashes-table';
import type { VmProfile } from '../../app/profile';
import { SevError } from '../../app/sev/errors';
import {
  computeSnpDigestMatrix,
  prepareSnpOvmf,
  type SnpDigestRow,
  type SnpOvmfState,
} from '../../app/snp/measure/launch-digest';
import { vcpuSignatureOf } from '../../app/snp/measure/vcpu-types';
import type { FirmwarePathResolver } from './expected-digests';

export interface SnpMeasurementsOptions {
  firmwarePath: FirmwarePathResolver;
  /** Measured firmwares kept (default 8); each is 48 bytes and its layout, not the image. */
  maxFirmwares?: number;
  /** Cached measurement lists kept (default 256). */
  maxEntries?: number;
}

/** Expected SNP measurements per profile (lower-case hex, 96 characters each). */
export class SnpMeasurements {
  private readonly firmwares = new Map<string, Promise<SnpOvmfState>>();
  private readonly lists = new Map<string, string[]>();
  private readonly maxFirmwares: number;
  private readonly maxEntries: number;

  constructor(private readonly opts: SnpMeasurementsOptions) {
    this.maxFirmwares = opts.maxFirmwares ?? 8;
    this.maxEntries = opts.maxEntries ?? 256;
  }

  /** Every measurement the profile admits; throws SevError when its firmware is missing or unsuitable. */
  async forProfile(p: VmProfile): Promise<string[]> {
    if (p.firmware.kind === 'digests') return p.firmware.launchDigests.map((d) => d.toLowerCase());
    const snp = p.snp;
    if (!snp) throw new SevError('bad-format', `profile ${p.id} has no SNP settings`);
    const key = JSON.stringify([
      p.firmware.sha256,
      snp.vmmType,
      snp.guestFeatures,
      p.cpuCounts,
      p.cpuSignatures,
      p.kernelHash ?? null,
      p.initrdHash ?? null,
      p.cmdline ?? null,
      p.cmdlineHash ?? null,
    ]);
    const cached = this.lists.get(key);
    if (cached) return cached;
    if (snp.vmmType === 'qemu' && p.cpuSignatures.length === 0) {
      throw new SevError(
        'bad-format',
        `profile ${p.id}: QEMU measures the vCPU signature; give at least one`,
      );
    }
    let kernelHashes: KernelHashes | undefined;
    if (p.kernelHash !== undefined) {
      kernelHashes = await resolveKernelHashes({
        kernel: { sha256hex: p.kernelHash },
        ...(p.initrdHash !== undefined ? { initrd: { sha256hex: p.initrdHash } } : {}),
        ...(p.cmdline !== undefined ? { cmdline: p.cmdline } : {}),
        ...(p.cmdlineHash !== undefined ? { cmdlineHash: p.cmdlineHash } : {}),
      });
    }
    const signatures =
      snp.vmmType === 'qemu'
        ? p.cpuSignatures.map((s) => vcpuSignatureOf(s.family, s.model, s.stepping))
        : [undefined];
    const rows: SnpDigestRow[] = [];
    for (const vcpus of p.cpuCounts) {
      for (const vcpuSignature of signatures) {
        rows.push({
          vcpus,
          ...(vcpuSignature !== undefined ? { vcpuSignature } : {}),
          guestFeatures: BigInt(snp.guestFeatures),
          vmmType: snp.vmmType,
          ...(kernelHashes ? { kernelHashes } : {}),
        });
      }
    }
    const state = await this.prepared(p.firmware.sha256);
    const out = [...new Set(computeSnpDigestMatrix(state, rows).map((e) => e.digestHex))];
    if (this.lists.size >= this.maxEntries) {
      const first = this.lists.keys().next();
      if (!first.done) this.lists.delete(first.value);
    }
    this.lists.set(key, out);
    return out;
  }

  /** Forgets a firmware (its artifact was replaced or deleted). */
  forget(sha256: string): void {
    this.firmwares.delete(sha256);
    for (const k of [...this.lists.keys()]) if (k.includes(sha256)) this.lists.delete(k);
  }

  private prepared(sha256: string): Promise<SnpOvmfState> {
    let p = this.firmwares.get(sha256);
    if (!p) {
      p = (async () => {
        const path = await this.opts.firmwarePath(sha256);
        if (!path) throw new SevError('io', `firmware artifact ${sha256} is not in the artifact store`);
        return prepareSnpOvmf(path);
      })();
      p.catch(() => this.firmwares.delete(sha256));
      if (this.firmwares.size >= this.maxFirmwares) {
        const first = this.firmwares.keys().next();
        if (!first.done) this.firmwares.delete(first.value);
      }
      this.firmwares.set(sha256, p);
    }
    return p;
  }
}
