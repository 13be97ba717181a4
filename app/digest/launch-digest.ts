/**
 * The SEV / SEV-ES launch digest (GCTX.LD, docs/protocol.md §6): SHA-256 over the firmware image, then the
 * padded kernel hashes table when QEMU measured a kernel, then (SEV-ES) one VMSA page per vCPU.
 *
 * The firmware is hashed once into a node:crypto Hash that is never finalised (the "midstate"); every
 * digest for a (hashes table, vCPU count, CPU signature, VMSA variant) combination copies it and appends
 * only the small parts, so a 64-row matrix costs one firmware pass plus 64 small hashes.
 */
import { createHash, type Hash } from 'node:crypto';
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { toBase64, toHex } from '../sev/bytes';
import { SevError } from '../sev/errors';
import {
  buildHashesTable,
  kernelHashesHex,
  parseSha256Hex,
  resolveKernelHashes,
  type HashInput,
  type KernelHashes,
} from './hashes-table';
import {
  hasSevEsResetAddress,
  parseOvmfFooter,
  readFirmwareFooter,
  readFirmwareFooterSync,
  supportsMeasuredDirectBoot,
  type FirmwareInfo,
  type GpaArea,
  type OvmfFooterInfo,
} from './ovmf';
import { updateHashFromFile, type StreamOptions } from './stream-hash';
import {
  buildVmsaPair,
  cpuSignatureEax,
  DEFAULT_VMSA_VARIANT,
  VMSA_VARIANTS,
  type CpuSignature,
  type VmsaVariant,
} from './vmsa';

/** QEMU's limit on vCPUs for a q35 machine; a larger count is a typo, not a VM. */
export const MAX_VCPUS = 4096;

/** A firmware hashed once: its footer info and the unfinalised SHA-256 state over its bytes. */
export interface FirmwareMeasurementState {
  readonly info: FirmwareInfo;
  /** The path, or '<bytes>' for an in-memory image; for explanations only. */
  readonly source: string;
  /** SHA-256 state after the whole image; never digest() it directly, copy() it. */
  readonly midstate: Hash;
}

/** Hashes a firmware image (file streamed, or bytes) into a reusable midstate; fails fast on a non-OVMF file. */
export async function prepareFirmware(
  firmware: string | Uint8Array,
  opts: StreamOptions = {},
): Promise<FirmwareMeasurementState> {
  const midstate = createHash('sha256');
  let footer: OvmfFooterInfo;
  let size: number;
  let source: string;
  if (typeof firmware === 'string') {
    ({ footer, size } = opts.blocking
      ? readFirmwareFooterSync(firmware)
      : await readFirmwareFooter(firmware));
    await updateHashFromFile(midstate, firmware, opts);
    source = firmware;
  } else {
    opts.signal?.throwIfAborted();
    footer = parseOvmfFooter(firmware, firmware.length);
    midstate.update(firmware);
    size = firmware.length;
    source = '<bytes>';
    opts.onProgress?.(size, size);
  }
  const sha256 = midstate.copy().digest('hex');
  return { info: { ...footer, sha256, size }, source, midstate };
}

/** What is appended after the firmware for one digest. */
export interface DigestParams {
  /** The 176-byte padded kernel hashes table (see buildHashesTable), when a kernel was measured. */
  hashesTable?: Uint8Array;
  sevEs: boolean;
  /** SEV-ES only: number of vCPUs (one VMSA page each). */
  cpus?: number;
  /** SEV-ES only: the guest vCPU signature that goes into rdx. */
  cpuSignature?: CpuSignature;
  /** SEV-ES only: defaults to DEFAULT_VMSA_VARIANT ('kvm-init2'; libvirt's validator and sevctl build 'legacy'). */
  vmsaVariant?: VmsaVariant;
}

interface CheckedEs {
  cpus: number;
  cpuSignature: CpuSignature;
  vmsaVariant: VmsaVariant;
  resetAddress: number;
}

function checkParams(info: OvmfFooterInfo, p: DigestParams): CheckedEs | undefined {
  if (p.hashesTable !== undefined) {
    const cap = supportsMeasuredDirectBoot(info);
    if (!cap.ok) throw new SevError('firmware-unsupported', `a kernel was given but ${cap.reason}`);
    if (p.hashesTable.length !== 176) {
      throw new SevError('bad-length', `the padded hashes table is 176 bytes, got ${p.hashesTable.length}`);
    }
  }
  if (!p.sevEs) {
    if (p.cpus !== undefined || p.cpuSignature !== undefined || p.vmsaVariant !== undefined) {
      throw new SevError('bad-format', 'vCPU count, CPU signature and VMSA variant only apply to SEV-ES');
    }
    return undefined;
  }
  const cpus = p.cpus;
  if (cpus === undefined || !Number.isInteger(cpus) || cpus < 1 || cpus > MAX_VCPUS) {
    throw new SevError('bad-format', `SEV-ES needs a vCPU count in 1..${MAX_VCPUS}, got ${String(cpus)}`);
  }
  if (!p.cpuSignature) {
    throw new SevError(
      'bad-format',
      'SEV-ES needs the guest CPU signature (family, model, stepping) or a preset',
    );
  }
  cpuSignatureEax(p.cpuSignature); // validates ranges
  const vmsaVariant = p.vmsaVariant ?? DEFAULT_VMSA_VARIANT;
  if (!VMSA_VARIANTS.includes(vmsaVariant)) {
    throw new SevError(
      'bad-format',
      `VMSA variant must be 'legacy' or 'kvm-init2', got '${String(vmsaVariant)}'`,
    );
  }
  const reset = hasSevEsResetAddress(info);
  if (!reset.ok || info.resetAddress === undefined) {
    throw new SevError('firmware-unsupported', `SEV-ES was requested but ${reset.reason}`);
  }
  return { cpus, cpuSignature: p.cpuSignature, vmsaVariant, resetAddress: info.resetAddress };
}

/** The launch digest for one parameter set, from a prepared firmware (synchronous, small work). */
export function digestFor(state: FirmwareMeasurementState, params: DigestParams): Uint8Array {
  const es = checkParams(state.info, params);
  const h = state.midstate.copy();
  if (params.hashesTable) h.update(params.hashesTable);
  if (es) {
    const { bsp, ap } = buildVmsaPair(es.resetAddress, es.cpuSignature, es.vmsaVariant);
    h.update(bsp);
    for (let i = 1; i < es.cpus; i++) h.update(ap);
  }
  return new Uint8Array(h.digest());
}

/** One row of an expected-digest matrix. */
export interface DigestMatrixRow {
  params: DigestParams;
  digestHex: string;
}

/** Expected digests for many parameter sets over one prepared firmware (e.g. vCPU counts x signatures x variants). */
export function expectedDigestsMatrix(
  state: FirmwareMeasurementState,
  rows: DigestParams[],
): DigestMatrixRow[] {
  return rows.map((params) => ({ params, digestHex: toHex(digestFor(state, params)) }));
}

/** Everything computeLaunchDigest needs. Paths are streamed; hashes are hex. */
export interface LaunchDigestInput {
  firmware: string | Uint8Array | FirmwareMeasurementState;
  kernel?: HashInput;
  initrd?: HashInput;
  cmdline?: string;
  cmdlineHash?: string;
  sevEs: boolean;
  cpus?: number;
  cpuSignature?: CpuSignature;
  vmsaVariant?: VmsaVariant;
  /** Bytes read so far over all files to hash, and their total size. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  signal?: AbortSignal;
  chunkSize?: number;
  /** Blocking reads (StreamOptions.blocking): for the one-shot CLI, not for the service. */
  blocking?: boolean;
}

/** What went into a digest, for explanations (all hashes hex). */
export interface LaunchDigestInputs {
  firmware: {
    source: string;
    size: number;
    sha256: string;
    resetAddress?: number;
    hashesTable?: GpaArea;
    secretArea?: GpaArea;
  };
  kernelHashes?: { kernel: string; initrd: string; cmdline: string };
  hashesTableHex?: string;
  sevEs: boolean;
  cpus?: number;
  cpuSignature?: CpuSignature & { eax: string };
  vmsaVariant?: VmsaVariant;
}

export interface LaunchDigestResult {
  digest: Uint8Array;
  digestHex: string;
  digestBase64: string;
  inputs: LaunchDigestInputs;
}

function isState(f: LaunchDigestInput['firmware']): f is FirmwareMeasurementState {
  return typeof f === 'object' && !(f instanceof Uint8Array) && 'midstate' in f;
}

/** Only the fields the caller set, so checkParams can flag SEV-ES options given without SEV-ES. */
function digestParams(input: LaunchDigestInput, hashesTable: Uint8Array | undefined): DigestParams {
  const p: DigestParams = { sevEs: input.sevEs };
  if (hashesTable) p.hashesTable = hashesTable;
  if (input.cpus !== undefined) p.cpus = input.cpus;
  if (input.cpuSignature !== undefined) p.cpuSignature = input.cpuSignature;
  if (input.vmsaVariant !== undefined) p.vmsaVariant = input.vmsaVariant;
  return p;
}

async function fileSize(input: HashInput | undefined, blocking?: boolean): Promise<number> {
  if (typeof input !== 'string') return 0;
  return blocking ? statSync(input).size : (await stat(input)).size;
}

/**
 * Computes the launch digest for one VM configuration. Checks what the firmware supports from its footer
 * before streaming anything large; the firmware and the kernel/initrd are streamed concurrently.
 */
export async function computeLaunchDigest(input: LaunchDigestInput): Promise<LaunchDigestResult> {
  const { signal } = input;
  signal?.throwIfAborted();
  if (
    input.kernel === undefined &&
    (input.initrd !== undefined || input.cmdline !== undefined || input.cmdlineHash !== undefined)
  ) {
    throw new SevError('bad-format', 'an initrd or command line is only measured together with a kernel');
  }
  // Footer first: a wrong firmware or an impossible request fails before any large read.
  let footer: OvmfFooterInfo;
  let firmwareBytes = 0;
  if (isState(input.firmware)) footer = input.firmware.info;
  else if (typeof input.firmware === 'string') {
    const r = input.blocking
      ? readFirmwareFooterSync(input.firmware)
      : await readFirmwareFooter(input.firmware);
    footer = r.footer;
    firmwareBytes = r.size;
  } else {
    footer = parseOvmfFooter(input.firmware, input.firmware.length);
    firmwareBytes = input.firmware.length;
  }
  // A zero table stands in for the real one: only its presence matters to the checks.
  const params = digestParams(input, input.kernel !== undefined ? new Uint8Array(176) : undefined);
  checkParams(footer, params);
  // Owner-given hashes are checked now too, not after the large files were read.
  if (typeof input.kernel === 'object') parseSha256Hex(input.kernel.sha256hex, 'kernel-hash');
  if (typeof input.initrd === 'object') parseSha256Hex(input.initrd.sha256hex, 'initrd-hash');
  if (input.cmdlineHash !== undefined) parseSha256Hex(input.cmdlineHash, 'cmdline-hash');
  if (input.cmdline !== undefined && input.cmdlineHash !== undefined) {
    throw new SevError('bad-format', 'give either a command line or its hash, not both');
  }

  const total =
    firmwareBytes +
    (await fileSize(input.kernel, input.blocking)) +
    (await fileSize(input.initrd, input.blocking));
  const done = { firmware: 0, kernel: 0, initrd: 0 };
  const report = () => input.onProgress?.(done.firmware + done.kernel + done.initrd, total);
  // One controller for both streams: the caller's abort, or the first failure, stops the other stream too.
  const inner = new AbortController();
  const forward = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', forward, { once: true });
  const stream = { signal: inner.signal, chunkSize: input.chunkSize, blocking: input.blocking };

  const firmwareP = isState(input.firmware)
    ? Promise.resolve(input.firmware)
    : prepareFirmware(input.firmware, {
        ...stream,
        onProgress: (d) => {
          done.firmware = d;
          report();
        },
      });
  const kernelP: Promise<KernelHashes | undefined> =
    input.kernel === undefined
      ? Promise.resolve(undefined)
      : resolveKernelHashes(
          {
            kernel: input.kernel,
            initrd: input.initrd,
            cmdline: input.cmdline,
            cmdlineHash: input.cmdlineHash,
          },
          {
            ...stream,
            onProgress: (which, d) => {
              done[which] = d;
              report();
            },
          },
        );
  let state: FirmwareMeasurementState;
  let kernelHashes: KernelHashes | undefined;
  try {
    [state, kernelHashes] = await Promise.all([
      firmwareP.catch((e: unknown) => {
        inner.abort(e);
        throw e;
      }),
      kernelP.catch((e: unknown) => {
        inner.abort(e);
        throw e;
      }),
    ]);
  } finally {
    signal?.removeEventListener('abort', forward);
  }
  signal?.throwIfAborted();

  const hashesTable = kernelHashes ? buildHashesTable(kernelHashes) : undefined;
  const digest = digestFor(state, digestParams(input, hashesTable));

  const info = state.info;
  const inputs: LaunchDigestInputs = {
    firmware: { source: state.source, size: info.size, sha256: info.sha256 },
    sevEs: input.sevEs,
  };
  if (info.resetAddress !== undefined) inputs.firmware.resetAddress = info.resetAddress;
  if (info.hashesTable) inputs.firmware.hashesTable = info.hashesTable;
  if (info.secretArea) inputs.firmware.secretArea = info.secretArea;
  if (kernelHashes && hashesTable) {
    inputs.kernelHashes = kernelHashesHex(kernelHashes);
    inputs.hashesTableHex = toHex(hashesTable);
  }
  if (input.sevEs && input.cpuSignature) {
    inputs.cpus = input.cpus;
    inputs.cpuSignature = {
      ...input.cpuSignature,
      eax: '0x' + cpuSignatureEax(input.cpuSignature).toString(16).padStart(8, '0'),
    };
    inputs.vmsaVariant = input.vmsaVariant ?? DEFAULT_VMSA_VARIANT;
  }
  return { digest, digestHex: toHex(digest), digestBase64: toBase64(digest), inputs };
}
