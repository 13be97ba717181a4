/**
 * The launch digests a VM profile admits: for an imported firmware, every combination of its vCPU
 * counts x CPU signatures x VMSA variants (SEV-ES), with the kernel hashes table when the profile
 * measures a direct-boot kernel; for a profile with precomputed digests, those. The firmware is hashed
 * once per artifact (a SHA-256 midstate) and each combination's digest is cached per artifact + inputs.
 */
import { fromHex, toHex } from '../../app/sev/bytes';
import { SevError } from '../../app/sev/errors';
import { decodePolicy } from '../../app/sev/policy';
import { buildHashesTable, resolveKernelHashes } from '../../app/digest/hashes-table';
import {
  digestFor,
  prepareFirmware,
  type DigestParams,
  type FirmwareMeasurementState,
} from '../../app/digest/launch-digest';
import type { FirmwareInfo } from '../../app/digest/ovmf';
import type { CpuSignature, VmProfile, VmsaVariant } from '../../app/profile';

/** What went into one expected digest, for the owner's mismatch explanation. */
export interface DigestInputs {
  source: 'firmware' | 'precomputed';
  firmwareSha256?: string;
  kernelHashesTable?: boolean;
  sevEs?: boolean;
  cpus?: number;
  cpuSignature?: CpuSignature;
  vmsaVariant?: VmsaVariant;
  /** Position in the precomputed list. */
  index?: number;
}

export interface ExpectedDigest {
  digest: Uint8Array;
  hex: string;
  inputs: DigestInputs;
}

/** Resolves an artifact's sha256 to a file path (the ArtifactStore), or undefined when it is missing. */
export type FirmwarePathResolver = (sha256: string) => string | undefined | Promise<string | undefined>;

export interface ExpectedDigestsOptions {
  firmwarePath: FirmwarePathResolver;
  /** Prepared firmwares kept (default 16); each is a hash state, not the image. */
  maxFirmwares?: number;
  /** Cached digest lists kept (default 256). */
  maxEntries?: number;
}

/** Computes and caches expected digests per profile inputs. */
export class ExpectedDigests {
  private readonly firmwares = new Map<string, Promise<FirmwareMeasurementState>>();
  private readonly lists = new Map<string, ExpectedDigest[]>();
  private readonly opts: Required<ExpectedDigestsOptions>;
  /** How many firmware passes were made (tests check the once-per-artifact rule). */
  firmwarePasses = 0;

  constructor(opts: ExpectedDigestsOptions) {
    this.opts = { maxFirmwares: 16, maxEntries: 256, ...opts };
  }

  /** The firmware's footer info (secret area, hashes table), hashing it if not done yet. */
  async firmwareInfo(sha256: string): Promise<FirmwareInfo> {
    return (await this.prepared(sha256)).info;
  }

  /** Every expected digest of the profile, in a stable order. */
  async forProfile(p: VmProfile): Promise<ExpectedDigest[]> {
    if (p.firmware.kind === 'digests') {
      return p.firmware.launchDigests.map((hex, index) => ({
        digest: fromHex(hex),
        hex: hex.toLowerCase(),
        inputs: { source: 'precomputed', index },
      }));
    }
    const sevEs = decodePolicy(p.policy).es;
    const key = JSON.stringify([
      p.firmware.sha256,
      sevEs,
      p.kernelHash ?? null,
      p.initrdHash ?? null,
      p.cmdline ?? null,
      p.cmdlineHash ?? null,
      sevEs ? [p.cpuCounts, p.cpuSignatures, p.vmsaVariants] : null,
    ]);
    const cached = this.lists.get(key);
    if (cached) return cached;
    const state = await this.prepared(p.firmware.sha256);
    let hashesTable: Uint8Array | undefined;
    if (p.kernelHash !== undefined) {
      const h = await resolveKernelHashes({
        kernel: { sha256hex: p.kernelHash },
        ...(p.initrdHash !== undefined ? { initrd: { sha256hex: p.initrdHash } } : {}),
        ...(p.cmdline !== undefined ? { cmdline: p.cmdline } : {}),
        ...(p.cmdlineHash !== undefined ? { cmdlineHash: p.cmdlineHash } : {}),
      });
      hashesTable = buildHashesTable(h);
    }
    const base: DigestInputs = {
      source: 'firmware',
      firmwareSha256: p.firmware.sha256,
      kernelHashesTable: hashesTable !== undefined,
      sevEs,
    };
    const out: ExpectedDigest[] = [];
    const add = (params: DigestParams, inputs: DigestInputs) => {
      const digest = digestFor(state, params);
      out.push({ digest, hex: toHex(digest), inputs });
    };
    if (!sevEs) {
      add({ sevEs: false, ...(hashesTable ? { hashesTable } : {}) }, base);
    } else {
      if (p.cpuSignatures.length === 0) {
        throw new SevError('bad-format', 'an SEV-ES profile needs at least one CPU signature');
      }
      for (const cpus of p.cpuCounts) {
        for (const cpuSignature of p.cpuSignatures) {
          for (const vmsaVariant of p.vmsaVariants) {
            add(
              { sevEs: true, cpus, cpuSignature, vmsaVariant, ...(hashesTable ? { hashesTable } : {}) },
              { ...base, cpus, cpuSignature, vmsaVariant },
            );
          }
        }
      }
    }
    if (this.lists.size >= this.opts.maxEntries) {
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

  private prepared(sha256: string): Promise<FirmwareMeasurementState> {
    let p = this.firmwares.get(sha256);
    if (!p) {
      p = (async () => {
        const path = await this.opts.firmwarePath(sha256);
        if (!path) throw new SevError('io', `firmware artifact ${sha256} is not in the artifact store`);
        this.firmwarePasses++;
        const state = await prepareFirmware(path);
        if (state.info.sha256 !== sha256) {
          throw new SevError('io', `firmware artifact ${sha256} changed on disk (now ${state.info.sha256})`);
        }
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
