/**
 * The SEV-SNP launch measurements an SNP profile admits (docs/protocol.md §13): for an imported OVMF, the
 * matrix over its vCPU counts x vCPU signatures with the profile's VMM type, guest features and kernel
 * hashes; for a profile with precomputed measurements, that list. The OVMF pages are hashed once per
 * artifact (prepareSnpOvmf, streamed with awaits between reads); each list is cached by its inputs.
 *
 * Like ExpectedDigests (the SEV matrix) this runs in-process, not in a worker: the OVMF pass is streamed
 * and the matrix is computed one signature group at a time with a turn of the event loop in between,
 * so a large profile (64 counts x 16 signatures) never holds the loop for more than one group.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { resolveKernelHashes, type KernelHashes } from '../../app/digest/hashes-table';
import type { CpuSignature, SnpVmmType, VmProfile } from '../../app/profile';
import { SevError } from '../../app/sev/errors';
import {
  computeSnpDigestMatrix,
  prepareSnpOvmf,
  type SnpDigestRow,
  type SnpOvmfState,
} from '../../app/snp/measure/launch-digest';
import type { SnpOvmfInfo } from '../../app/snp/measure/ovmf-metadata';
import { vcpuSignatureOf } from '../../app/snp/measure/vcpu-types';
import type { FirmwarePathResolver } from './expected-digests';

/** What went into one expected measurement, for explanations. */
export interface SnpMeasurementInputs {
  source: 'firmware' | 'precomputed';
  firmwareSha256?: string;
  vcpus?: number;
  /** Absent for EC2 and GCE, whose VMSAs do not carry it. */
  cpuSignature?: CpuSignature;
  vmmType?: SnpVmmType;
  /** 0x-hex. */
  guestFeatures?: string;
  kernelHashesTable?: boolean;
  /** Position in the precomputed list. */
  index?: number;
}

export interface ExpectedSnpMeasurement {
  /** 96 lower-case hex. */
  hex: string;
  inputs: SnpMeasurementInputs;
}

export interface ExpectedSnpMeasurementsOptions {
  firmwarePath: FirmwarePathResolver;
  /** Measured OVMFs kept (default 16); each is a 48-byte hash and the layout, not the image. */
  maxFirmwares?: number;
  /** Cached measurement lists kept (default 256). */
  maxEntries?: number;
}

type SnpProfileFields = Pick<
  VmProfile,
  | 'scheme'
  | 'firmware'
  | 'cpuCounts'
  | 'cpuSignatures'
  | 'kernelHash'
  | 'initrdHash'
  | 'cmdline'
  | 'cmdlineHash'
  | 'snp'
>;

/** Computes and caches the expected SNP launch measurements of profiles. */
export class ExpectedSnpMeasurements {
  private readonly firmwares = new Map<string, Promise<SnpOvmfState>>();
  private readonly lists = new Map<string, Promise<ExpectedSnpMeasurement[]>>();
  private readonly opts: Required<ExpectedSnpMeasurementsOptions>;
  /** How many OVMF passes were made (tests check the once-per-artifact rule). */
  firmwarePasses = 0;

  constructor(opts: ExpectedSnpMeasurementsOptions) {
    this.opts = { maxFirmwares: 16, maxEntries: 256, ...opts };
  }

  /** The expected measurements (96 hex each) of an SNP profile, in a stable order. */
  async measurementsFor(profile: SnpProfileFields): Promise<string[]> {
    return (await this.detailedFor(profile)).map((m) => m.hex);
  }

  /** The same list under the name the KBS service asks by (kbs-service.ts SnpMeasurementSource). */
  forProfile(profile: SnpProfileFields): Promise<string[]> {
    return this.measurementsFor(profile);
  }

  /** The OVMF's SNP layout (metadata sections, hashes table), measuring it if not done yet. */
  async firmwareInfo(sha256: string): Promise<SnpOvmfInfo> {
    return (await this.prepared(sha256)).info;
  }

  /** Every expected measurement with the inputs behind it. */
  async detailedFor(p: SnpProfileFields): Promise<ExpectedSnpMeasurement[]> {
    if (p.scheme !== 'amd-sev-snp' || p.snp === undefined) {
      throw new SevError('bad-format', `profile scheme ${p.scheme} has no SNP launch measurements`);
    }
    if (p.firmware.kind === 'digests') {
      return p.firmware.launchDigests.map((hex, index) => ({
        hex: hex.toLowerCase(),
        inputs: { source: 'precomputed', index },
      }));
    }
    const { vmmType, guestFeatures } = p.snp;
    // The signature is not in EC2's or GCE's VMSA: the list then has one row per count.
    const signatures: Array<CpuSignature | undefined> = vmmType === 'qemu' ? p.cpuSignatures : [undefined];
    if (vmmType === 'qemu' && signatures.length === 0) {
      throw new SevError(
        'bad-format',
        'QEMU puts the guest vCPU signature in every VMSA: give at least one vCPU type or signature',
      );
    }
    const key = JSON.stringify([
      p.firmware.sha256,
      vmmType,
      guestFeatures,
      p.cpuCounts,
      signatures,
      p.kernelHash ?? null,
      p.initrdHash ?? null,
      p.cmdline ?? null,
      p.cmdlineHash ?? null,
    ]);
    let list = this.lists.get(key);
    if (!list) {
      list = this.compute(p.firmware.sha256, p, vmmType, guestFeatures, signatures);
      list.catch(() => this.lists.delete(key));
      if (this.lists.size >= this.opts.maxEntries) {
        const first = this.lists.keys().next();
        if (!first.done) this.lists.delete(first.value);
      }
      this.lists.set(key, list);
    }
    return list;
  }

  /** Forgets an OVMF (its artifact was replaced or deleted) and every list computed from it. */
  forget(sha256: string): void {
    this.firmwares.delete(sha256);
    for (const k of [...this.lists.keys()]) if (k.includes(sha256)) this.lists.delete(k);
  }

  private async compute(
    sha256: string,
    p: SnpProfileFields,
    vmmType: SnpVmmType,
    guestFeatures: number,
    signatures: Array<CpuSignature | undefined>,
  ): Promise<ExpectedSnpMeasurement[]> {
    const state = await this.prepared(sha256);
    let kernelHashes: KernelHashes | undefined;
    if (p.kernelHash !== undefined) {
      kernelHashes = await resolveKernelHashes({
        kernel: { sha256hex: p.kernelHash },
        ...(p.initrdHash !== undefined ? { initrd: { sha256hex: p.initrdHash } } : {}),
        ...(p.cmdline !== undefined ? { cmdline: p.cmdline } : {}),
        ...(p.cmdlineHash !== undefined ? { cmdlineHash: p.cmdlineHash } : {}),
      });
    }
    const features = '0x' + guestFeatures.toString(16);
    // Computed one signature group at a time (other requests get the loop in between), listed count by
    // count (each count's signatures together), the order bundles list their rows in.
    const bySignature: ExpectedSnpMeasurement[][] = [];
    for (const sig of signatures) {
      const rows: SnpDigestRow[] = p.cpuCounts.map((vcpus) => ({
        vcpus,
        vmmType,
        guestFeatures: BigInt(guestFeatures),
        ...(sig ? { vcpuSignature: vcpuSignatureOf(sig.family, sig.model, sig.stepping) } : {}),
        ...(kernelHashes ? { kernelHashes } : {}),
      }));
      bySignature.push(
        computeSnpDigestMatrix(state, rows).map((entry, i) => ({
          hex: entry.digestHex,
          inputs: {
            source: 'firmware',
            firmwareSha256: sha256,
            vcpus: p.cpuCounts[i]!,
            ...(sig ? { cpuSignature: sig } : {}),
            vmmType,
            guestFeatures: features,
            kernelHashesTable: kernelHashes !== undefined,
          },
        })),
      );
      await nextTurn();
    }
    const out: ExpectedSnpMeasurement[] = [];
    for (let i = 0; i < p.cpuCounts.length; i++) for (const group of bySignature) out.push(group[i]!);
    return out;
  }

  private prepared(sha256: string): Promise<SnpOvmfState> {
    let p = this.firmwares.get(sha256);
    if (!p) {
      p = (async () => {
        const path = await this.opts.firmwarePath(sha256);
        if (!path) throw new SevError('io', `firmware artifact ${sha256} is not in the artifact store`);
        this.firmwarePasses++;
        const [state, onDisk] = await Promise.all([prepareSnpOvmf(path), fileSha256(path)]);
        // Content-addressed: a file that no longer hashes to its name would give wrong measurements.
        if (onDisk !== sha256)
          throw new SevError('io', `firmware artifact ${sha256} changed on disk (now ${onDisk})`);
        return state;
      })();
      p.catch(() => this.firmwares.delete(sha256));
      if (this.firmwares.size >= this.opts.maxFirmwares) {
        const first = this.firmwares.keys().next();
        if (!first.done) this.firmwares.delete(first.value);
      }
      this.firmwares.set(sha256, p);
    }
    return p;
  }
}

/** The SHA-256 of a file, streamed. */
async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}
