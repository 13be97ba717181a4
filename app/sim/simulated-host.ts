/**
 * A simulated virtualization host: plays what QEMU (and libvirt on top of it) do with an SEV platform,
 * for the listener tests and the demo. It reports the platform's capabilities like
 * `query-sev-capabilities`, and for a launch feeds the firmware the bytes QEMU measures (docs/protocol.md §6): the
 * OVMF image, then the padded kernel hashes table when a kernel is measured, then one VMSA per vCPU for
 * SEV-ES; then LAUNCH_MEASURE, `sev-inject-launch-secret` and resume (LAUNCH_FINISH).
 * The table and VMSA bytes come from app/digest (QEMU builds those on the host too).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fromBase64, toBase64 } from '../sev/bytes';
import { buildHashesTable, EMPTY_SHA256, hashCmdline } from '../digest/hashes-table';
import {
  hasSecretArea,
  parseOvmfFooter,
  supportsMeasuredDirectBoot,
  type OvmfFooterInfo,
} from '../digest/ovmf';
import { BSP_RESET_EIP, buildVmsa, type CpuSignature, type VmsaVariant } from '../digest/vmsa';
import { POLICY_ES } from './firmware-crypto';
import type { LaunchSecretResult, SimulatedGuest, SimulatedSevPlatform } from './platform';

/** A host-side (QEMU/libvirt) failure, as opposed to a firmware status. */
export class SimHostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimHostError';
  }
}

/** Bytes, or a path to read. */
export type BytesOrPath = Uint8Array | string;

export interface SimulatedHostOptions {
  platform: SimulatedSevPlatform;
  /** The OVMF image QEMU loads (the whole AmdSev OVMF.fd, or the CODE part of a split build). */
  firmware: BytesOrPath;
  /** Direct boot: -kernel / -initrd / -append. */
  kernel?: BytesOrPath;
  initrd?: BytesOrPath;
  cmdline?: string;
  /** QEMU's sev-guest kernel-hashes (libvirt kernelHashes='yes'); defaults to on when a kernel is given. */
  kernelHashes?: boolean;
  /** vCPU count (SEV-ES: one VMSA each). Default 1. */
  cpus?: number;
  /** The guest vCPU model's CPUID signature (QEMU -cpu). Default EPYC-v4 (23, 1, 2). */
  cpuSignature?: CpuSignature;
  /** VMSA layout of the host kernel. Default 'legacy' (hosts before Linux 6.10 / KVM_SEV_INIT2). */
  vmsaVariant?: VmsaVariant;
}

/** What QEMU's query-sev-capabilities returns (base64 fields as QMP carries them). */
export interface SevCapabilities {
  pdh: string;
  'cert-chain': string;
  'cpu0-id': string;
  cbitpos: number;
  'reduced-phys-bits': number;
}

export interface LaunchRequest {
  policy: number;
  /** The owner's GODH cert: raw 2084 bytes or the base64 QEMU's dh-cert-file holds. */
  dhCert: Uint8Array | string;
  /** The 128-byte session: raw or base64 (QEMU's session-file). */
  session: Uint8Array | string;
}

const asBytes = (v: Uint8Array | string, what: string): Uint8Array => {
  if (v instanceof Uint8Array) return v;
  try {
    return fromBase64(v);
  } catch {
    throw new SimHostError(`${what} is neither bytes nor standard base64`);
  }
};

async function load(v: BytesOrPath): Promise<Uint8Array> {
  return v instanceof Uint8Array ? v : new Uint8Array(await readFile(v));
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

export class SimulatedHost {
  readonly platform: SimulatedSevPlatform;
  readonly firmware: Uint8Array;
  readonly footer: OvmfFooterInfo;
  readonly cpus: number;
  readonly cpuSignature: CpuSignature;
  readonly vmsaVariant: VmsaVariant;
  /** The padded table QEMU measures after the firmware, when kernel hashes are on. */
  readonly hashesTable: Uint8Array | undefined;

  private constructor(init: Omit<SimulatedHost, 'capabilities' | 'launch' | 'querySevCapabilities'>) {
    this.platform = init.platform;
    this.firmware = init.firmware;
    this.footer = init.footer;
    this.cpus = init.cpus;
    this.cpuSignature = init.cpuSignature;
    this.vmsaVariant = init.vmsaVariant;
    this.hashesTable = init.hashesTable;
  }

  /** Loads the images and checks, as QEMU does at machine creation, that the firmware supports the request. */
  static async create(opts: SimulatedHostOptions): Promise<SimulatedHost> {
    const firmware = await load(opts.firmware);
    let footer: OvmfFooterInfo;
    try {
      footer = parseOvmfFooter(firmware);
    } catch (e) {
      throw new SimHostError(`SEV: the firmware has no OVMF footer table: ${(e as Error).message}`);
    }
    if (firmware.length === 0 || firmware.length % 16 !== 0) {
      throw new SimHostError(`SEV: firmware size ${firmware.length} is not a multiple of 16`);
    }
    const cpus = opts.cpus ?? 1;
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 4096) {
      throw new SimHostError(`vCPU count must be 1..4096, got ${cpus}`);
    }
    if (opts.kernel === undefined && (opts.initrd !== undefined || opts.cmdline !== undefined)) {
      throw new SimHostError('-initrd and -append need -kernel');
    }
    let hashesTable: Uint8Array | undefined;
    if (opts.kernel !== undefined && opts.kernelHashes !== false) {
      const cap = supportsMeasuredDirectBoot(footer);
      if (!cap.ok) throw new SimHostError(`SEV: kernel specified but ${cap.reason}`);
      hashesTable = buildHashesTable({
        kernel: sha256(await load(opts.kernel)),
        initrd: opts.initrd === undefined ? EMPTY_SHA256 : sha256(await load(opts.initrd)),
        cmdline: hashCmdline(opts.cmdline),
      });
    }
    return new SimulatedHost({
      platform: opts.platform,
      firmware,
      footer,
      cpus,
      cpuSignature: opts.cpuSignature ?? { family: 23, model: 1, stepping: 2 },
      vmsaVariant: opts.vmsaVariant ?? 'legacy',
      hashesTable,
    });
  }

  /** query-sev-capabilities / virNodeGetSEVInfo. */
  querySevCapabilities(): SevCapabilities {
    return {
      pdh: toBase64(this.platform.pdh),
      'cert-chain': toBase64(this.platform.certChain),
      'cpu0-id': toBase64(this.platform.chipId),
      cbitpos: 47,
      'reduced-phys-bits': 1,
    };
  }

  /**
   * Starts a guest: LAUNCH_START with the owner's dh-cert and session, LAUNCH_UPDATE_DATA of the firmware
   * and hashes table, LAUNCH_UPDATE_VMSA per vCPU when the policy has ES, then LAUNCH_MEASURE.
   * Firmware failures surface as SimFirmwareError, host-side ones as SimHostError.
   */
  launch(req: LaunchRequest): SimulatedLaunch {
    const guest = this.platform.launchStart({
      policy: req.policy,
      ownerCert: asBytes(req.dhCert, 'dh-cert'),
      session: asBytes(req.session, 'session'),
    });
    const sevEs = (req.policy & POLICY_ES) !== 0;
    if (sevEs && this.cpus > 1 && this.footer.resetAddress === undefined) {
      throw new SimHostError('SEV-ES: the firmware has no AP reset address, cannot start more than one vCPU');
    }
    guest.launchUpdateData(this.firmware);
    if (this.hashesTable) guest.launchUpdateData(this.hashesTable);
    if (sevEs) {
      guest.launchUpdateVmsa(buildVmsa(BSP_RESET_EIP, this.cpuSignature, this.vmsaVariant));
      if (this.cpus > 1) {
        const ap = buildVmsa(this.footer.resetAddress!, this.cpuSignature, this.vmsaVariant);
        for (let i = 1; i < this.cpus; i++) guest.launchUpdateVmsa(ap);
      }
    }
    const measurement = guest.launchMeasure();
    return new SimulatedLaunch(this, guest, req.policy, measurement);
  }
}

/** A launched, paused guest waiting for its secret, like QEMU after query-sev-launch-measure. */
export class SimulatedLaunch {
  constructor(
    private readonly host: SimulatedHost,
    readonly guest: SimulatedGuest,
    readonly policy: number,
    /** measure(32) || mnonce(16) */
    readonly measurement: Uint8Array,
  ) {}

  /** query-sev-launch-measure's `data`. */
  get measurementBase64(): string {
    return toBase64(this.measurement);
  }

  /** query-sev / virDomainGetLaunchSecurityInfo. */
  launchSecurityInfo(): {
    'sev-measurement': string;
    'sev-api-major': number;
    'sev-api-minor': number;
    'sev-build-id': number;
    'sev-policy': number;
  } {
    const p = this.host.platform;
    return {
      'sev-measurement': this.measurementBase64,
      'sev-api-major': p.apiMajor,
      'sev-api-minor': p.apiMinor,
      'sev-build-id': p.build,
      'sev-policy': this.policy,
    };
  }

  /**
   * sev-inject-launch-secret into the firmware's secret area (base64 or raw header / payload).
   * QEMU refuses when the firmware declares no secret area or the secret does not fit in it.
   */
  injectSecret(packet: { header: Uint8Array | string; payload: Uint8Array | string }): LaunchSecretResult {
    const cap = hasSecretArea(this.host.footer);
    if (!cap.ok) throw new SimHostError(`SEV: cannot inject the launch secret: ${cap.reason}`);
    const header = asBytes(packet.header, 'packet-header');
    const payload = asBytes(packet.payload, 'secret');
    const area = this.host.footer.secretArea!;
    if (payload.length > area.size) {
      throw new SimHostError(
        `SEV: the ${payload.length}-byte secret does not fit the ${area.size}-byte secret area`,
      );
    }
    return this.guest.launchSecret({ header, payload });
  }

  /** cont / virDomainResume: LAUNCH_FINISH. */
  resume(): void {
    this.guest.launchFinish();
  }
}
