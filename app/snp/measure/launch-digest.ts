/**
 * The expected SEV-SNP launch digest (MEASUREMENT of the attestation report) of a QEMU/OVMF guest
 * (docs/protocol.md §13): every OVMF page, then the SEV metadata sections OVMF declares, then one VMSA
 * per vCPU, chained through PAGE_INFO records (see page-info.ts).
 *
 * The OVMF pages are hashed once into a 48-byte "OVMF hash" (what `--snp-ovmf-hash` carries); every digest
 * continues from it. The metadata part depends only on the VMM type and the kernel hashes, and the VMSA part
 * on (VMM type, vCPU signature, guest features) and the vCPU count, so a matrix of rows shares all of that:
 * see computeSnpDigestMatrix.
 */
import { open, stat } from 'node:fs/promises';
import { toBase64, toHex } from '../../sev/bytes';
import { SevError } from '../../sev/errors';
import {
  buildHashesTable,
  kernelHashesHex,
  PADDED_HASHES_TABLE_SIZE,
  resolveKernelHashes,
  type HashInput,
  type KernelHashes,
} from '../../digest/hashes-table';
import { DEFAULT_CHUNK_SIZE } from '../../digest/stream-hash';
import {
  readSnpOvmfInfo,
  snpOvmfInfoFromTail,
  type SnpMetadataSection,
  type SnpOvmfInfo,
} from './ovmf-metadata';
import { LaunchDigestChain, PAGE_SIZE, PageType, sha384, SNP_DIGEST_SIZE } from './page-info';
import { BSP_EIP, buildSnpVmsa, VMM_TYPES, type VmmType } from './vmsa';

/** QEMU's vCPU limit for a q35 machine; more is a typo, not a VM. */
export const MAX_SNP_VCPUS = 4096;
/** The guest features (sev_features) QEMU enables by default: SNP active. */
export const DEFAULT_GUEST_FEATURES = 0x1n;

/** An OVMF image measured once: its SNP layout and the launch digest after all its pages. */
export interface SnpOvmfState {
  readonly info: SnpOvmfInfo;
  /** The path, or '<bytes>' for an in-memory image; for explanations only. */
  readonly source: string;
  /** The digest after every OVMF page (sev-snp-measure's `snp:ovmf-hash`). */
  readonly ovmfHash: Uint8Array;
  /** Whether ovmfHash was computed here or given by the caller (then the pages were not read). */
  readonly ovmfHashOrigin: 'computed' | 'given';
}

export interface SnpStreamOptions {
  /** Bytes read so far over every file being hashed, and their total. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Read size, rounded down to whole pages; default 4 MiB. */
  chunkSize?: number;
}

/** Parses a 48-byte digest given as 96 hex digits; `what` names it in the error. */
export function parseSnpDigestHex(hex: string, what: string): Uint8Array {
  const clean = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{96}$/.test(clean)) {
    throw new SevError('bad-format', `${what} must be a SHA-384 digest in hex (96 hex digits), got '${hex}'`);
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/** Streams a file's pages into the chain starting at `gpa`; the file holds exactly `size` bytes. */
async function measureFilePages(
  chain: LaunchDigestChain,
  path: string,
  gpa: number,
  size: number,
  opts: SnpStreamOptions,
): Promise<void> {
  opts.signal?.throwIfAborted();
  const chunk = Math.max(
    PAGE_SIZE,
    Math.floor((opts.chunkSize ?? DEFAULT_CHUNK_SIZE) / PAGE_SIZE) * PAGE_SIZE,
  );
  const fh = await open(path, 'r');
  try {
    // Two buffers: the next read is in flight while this one is hashed.
    const buffers = [new Uint8Array(chunk), new Uint8Array(chunk)];
    let which = 0;
    let done = 0;
    const readFull = async (buf: Uint8Array, pos: number): Promise<number> => {
      const want = Math.min(buf.length, size - pos);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got;
    };
    let pending = readFull(buffers[0]!, 0);
    while (done < size) {
      const got = await pending;
      opts.signal?.throwIfAborted();
      if (got === 0 || got % PAGE_SIZE !== 0) {
        throw new SevError('io', `${path} changed while it was read (${done + got} of ${size} bytes)`);
      }
      const current = buffers[which]!;
      which ^= 1;
      if (done + got < size) pending = readFull(buffers[which]!, done + got);
      chain.updateNormalPages(gpa + done, current.subarray(0, got));
      done += got;
      opts.onProgress?.(done, size);
    }
  } finally {
    await fh.close();
  }
}

/**
 * Reads an OVMF image's SNP layout and (unless `ovmfHash` is given) hashes all its pages once. A file is
 * streamed; its footer and metadata are checked before the pages are read, so a wrong file fails fast.
 */
export async function prepareSnpOvmf(
  ovmf: string | Uint8Array,
  opts: SnpStreamOptions & { ovmfHash?: Uint8Array | string; info?: SnpOvmfInfo } = {},
): Promise<SnpOvmfState> {
  opts.signal?.throwIfAborted();
  const given =
    typeof opts.ovmfHash === 'string' ? parseSnpDigestHex(opts.ovmfHash, 'the OVMF hash') : opts.ovmfHash;
  if (given !== undefined && given.length !== SNP_DIGEST_SIZE) {
    throw new SevError('bad-length', `the OVMF hash is ${SNP_DIGEST_SIZE} bytes, got ${given.length}`);
  }
  const info =
    typeof ovmf === 'string' ? await readSnpOvmfInfo(ovmf) : snpOvmfInfoFromTail(ovmf, ovmf.length);
  const source = typeof ovmf === 'string' ? ovmf : '<bytes>';
  if (given !== undefined) {
    return { info, source, ovmfHash: Uint8Array.from(given), ovmfHashOrigin: 'given' };
  }
  const chain = new LaunchDigestChain();
  if (typeof ovmf === 'string') {
    await measureFilePages(chain, ovmf, info.gpa, info.size, opts);
  } else {
    chain.updateNormalPages(info.gpa, ovmf);
    opts.onProgress?.(ovmf.length, ovmf.length);
  }
  return { info, source, ovmfHash: chain.current(), ovmfHashOrigin: 'computed' };
}

/**
 * The page(s) QEMU measures for the KERNEL_HASHES section: zeros with the padded hashes table at the
 * table's offset within its page (QEMU puts it at hashes-table GPA mod 4 KiB).
 */
export function buildKernelHashesPages(
  info: SnpOvmfInfo,
  section: SnpMetadataSection,
  hashes: KernelHashes,
): Uint8Array {
  if (info.hashesTableGpa === undefined) {
    throw new SevError(
      'firmware-unsupported',
      'a kernel was given but the firmware declares no SEV hashes table address (use an AmdSev OVMF build)',
    );
  }
  const offset = info.hashesTableGpa % PAGE_SIZE;
  if (offset + PADDED_HASHES_TABLE_SIZE > section.size) {
    throw new SevError(
      'bad-format',
      `the hashes table at page offset 0x${offset.toString(16)} does not fit the ${section.size}-byte KERNEL_HASHES section`,
    );
  }
  const pages = new Uint8Array(section.size);
  pages.set(buildHashesTable(hashes), offset);
  return pages;
}

function measureSection(
  chain: LaunchDigestChain,
  info: SnpOvmfInfo,
  s: SnpMetadataSection,
  vmm: VmmType,
  hashes: KernelHashes | undefined,
): void {
  switch (s.kind) {
    case 'sec-mem':
      // GCE adds the early firmware memory without measuring its contents.
      chain.updateEmptyPages(vmm === 'gce' ? PageType.unmeasured : PageType.zero, s.gpa, s.size);
      return;
    case 'secrets':
      chain.update(PageType.secrets, s.gpa, new Uint8Array(SNP_DIGEST_SIZE));
      return;
    case 'cpuid':
      chain.update(PageType.cpuid, s.gpa, new Uint8Array(SNP_DIGEST_SIZE));
      return;
    case 'svsm-caa':
      chain.updateEmptyPages(PageType.zero, s.gpa, s.size);
      return;
    case 'kernel-hashes':
      if (hashes) chain.updateNormalPages(s.gpa, buildKernelHashesPages(info, s, hashes));
      else chain.updateEmptyPages(PageType.zero, s.gpa, s.size);
      return;
  }
}

/** Adds the metadata sections to `chain` as the given VMM does. */
export function measureMetadataSections(
  chain: LaunchDigestChain,
  info: SnpOvmfInfo,
  vmm: VmmType,
  hashes: KernelHashes | undefined,
): void {
  if (hashes && !info.sections.some((s) => s.kind === 'kernel-hashes')) {
    throw new SevError(
      'firmware-unsupported',
      'a kernel was given but the firmware declares no KERNEL_HASHES section in its SEV metadata (use an AmdSev OVMF build)',
    );
  }
  for (const s of info.sections) {
    // EC2 adds the CPUID page after every other section.
    if (vmm === 'ec2' && s.kind === 'cpuid') continue;
    measureSection(chain, info, s, vmm, hashes);
  }
  if (vmm === 'ec2') {
    for (const s of info.sections) if (s.kind === 'cpuid') measureSection(chain, info, s, vmm, hashes);
  }
}

/** One row of a digest matrix: everything after the OVMF pages. */
export interface SnpDigestRow {
  vcpus: number;
  /** CPUID(1).EAX of the guest vCPU; required for QEMU, unused by EC2 and GCE. */
  vcpuSignature?: number;
  /** sev_features of every VMSA; default 0x1. */
  guestFeatures?: bigint;
  /** Default 'qemu'. */
  vmmType?: VmmType;
  /** The cmdline/initrd/kernel SHA-256s QEMU writes into the hashes table (kernel-hashes=on). */
  kernelHashes?: KernelHashes;
}

export interface SnpDigestMatrixEntry {
  row: SnpDigestRow;
  digest: Uint8Array;
  digestHex: string;
}

interface CheckedRow {
  vcpus: number;
  vcpuSignature: number;
  guestFeatures: bigint;
  vmmType: VmmType;
  kernelHashes: KernelHashes | undefined;
}

function checkRow(info: SnpOvmfInfo, row: SnpDigestRow): CheckedRow {
  const { vcpus } = row;
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_SNP_VCPUS) {
    throw new SevError(
      'bad-format',
      `the vCPU count must be an integer in 1..${MAX_SNP_VCPUS}, got ${vcpus}`,
    );
  }
  const vmmType = row.vmmType ?? 'qemu';
  if (!VMM_TYPES.includes(vmmType)) {
    throw new SevError('bad-format', `unknown VMM type '${String(vmmType)}'; known: ${VMM_TYPES.join(', ')}`);
  }
  if (row.vcpuSignature === undefined && vmmType === 'qemu') {
    throw new SevError(
      'bad-format',
      'QEMU puts the guest vCPU signature in the VMSA: give a vCPU type or signature',
    );
  }
  const sig = row.vcpuSignature;
  if (sig !== undefined && (!Number.isInteger(sig) || sig < 0 || sig > 0xffffffff)) {
    throw new SevError('bad-format', `a vCPU signature is a u32 (CPUID(1).EAX), got ${sig}`);
  }
  const features = row.guestFeatures ?? DEFAULT_GUEST_FEATURES;
  if (features < 0n || features > 0xffff_ffff_ffff_ffffn) {
    throw new SevError('bad-format', `guest features are a u64, got ${features}`);
  }
  if (vcpus > 1 && info.resetAddress === 0) {
    throw new SevError(
      'firmware-unsupported',
      'the firmware declares AP reset address 0, so only one vCPU can start',
    );
  }
  return {
    vcpus,
    vcpuSignature: sig ?? 0,
    guestFeatures: features,
    vmmType,
    kernelHashes: row.kernelHashes,
  };
}

function kernelKey(h: KernelHashes | undefined): string {
  return h ? `${toHex(h.cmdline)}/${toHex(h.initrd)}/${toHex(h.kernel)}` : '-';
}

/**
 * Expected digests for many rows over one measured OVMF. Each distinct (VMM type, kernel hashes) pair
 * measures the metadata sections once; each distinct VMSA is hashed once; rows that differ only in the
 * vCPU count extend one chain in ascending order. Results come back in the order of `rows`.
 */
export function computeSnpDigestMatrix(
  state: SnpOvmfState,
  rows: readonly SnpDigestRow[],
): SnpDigestMatrixEntry[] {
  const checked = rows.map((r) => checkRow(state.info, r));
  const afterMetadata = new Map<string, LaunchDigestChain>();
  const groups = new Map<string, number[]>();
  for (const [i, r] of checked.entries()) {
    const metaKey = `${r.vmmType}|${kernelKey(r.kernelHashes)}`;
    if (!afterMetadata.has(metaKey)) {
      const chain = new LaunchDigestChain(state.ovmfHash);
      measureMetadataSections(chain, state.info, r.vmmType, r.kernelHashes);
      afterMetadata.set(metaKey, chain);
    }
    const sig = r.vmmType === 'qemu' ? r.vcpuSignature : 0;
    const groupKey = `${metaKey}|${sig}|${r.guestFeatures}`;
    const g = groups.get(groupKey);
    if (g) g.push(i);
    else groups.set(groupKey, [i]);
  }
  const out = new Array<SnpDigestMatrixEntry>(rows.length);
  for (const indices of groups.values()) {
    const first = checked[indices[0]!]!;
    const vmsa = {
      vmmType: first.vmmType,
      vcpuSignature: first.vcpuSignature,
      guestFeatures: first.guestFeatures,
    };
    const bspHash = sha384(buildSnpVmsa(BSP_EIP, vmsa));
    const apHash = sha384(buildSnpVmsa(state.info.resetAddress, vmsa));
    const chain = afterMetadata.get(`${first.vmmType}|${kernelKey(first.kernelHashes)}`)!.fork();
    let measured = 0;
    indices.sort((a, b) => checked[a]!.vcpus - checked[b]!.vcpus);
    for (const i of indices) {
      const want = checked[i]!.vcpus;
      for (; measured < want; measured++) chain.updateVmsa(measured === 0 ? bspHash : apHash);
      const digest = chain.current();
      out[i] = { row: rows[i]!, digest, digestHex: toHex(digest) };
    }
  }
  return out;
}

/** One digest from a measured OVMF (a matrix of one row). */
export function snpDigestFor(state: SnpOvmfState, row: SnpDigestRow): Uint8Array {
  return computeSnpDigestMatrix(state, [row])[0]!.digest;
}

/** Everything computeSnpLaunchDigest needs. Paths are streamed. */
export interface SnpLaunchDigestInput extends SnpStreamOptions {
  ovmf: string | Uint8Array | SnpOvmfState;
  /** The digest after the OVMF pages, when known: the pages are then not read (the footer still is). */
  ovmfHash?: string | Uint8Array;
  kernel?: HashInput;
  initrd?: HashInput;
  /** The kernel command line as given to -append (hashed with a trailing NUL). */
  cmdline?: string;
  vcpus: number;
  vcpuSignature?: number;
  guestFeatures?: bigint;
  vmmType?: VmmType;
}

/** What went into a digest, for explanations (hashes in hex). */
export interface SnpLaunchDigestInputs {
  ovmf: {
    source: string;
    size: number;
    gpa: number;
    resetAddress: number;
    hashesTableGpa?: number;
    sections: SnpMetadataSection[];
    ovmfHash: string;
    ovmfHashOrigin: 'computed' | 'given';
  };
  kernelHashes?: { kernel: string; initrd: string; cmdline: string };
  vcpus: number;
  vcpuSignature?: number;
  guestFeatures: string;
  vmmType: VmmType;
}

export interface SnpLaunchDigestResult {
  digest: Uint8Array;
  digestHex: string;
  digestBase64: string;
  inputs: SnpLaunchDigestInputs;
}

function isState(o: SnpLaunchDigestInput['ovmf']): o is SnpOvmfState {
  return typeof o === 'object' && !(o instanceof Uint8Array) && 'ovmfHash' in o;
}

/**
 * Computes the launch digest of one VM configuration. The firmware layout and the row are checked before
 * any large read; the OVMF pages and the kernel/initrd SHA-256s are streamed concurrently.
 */
export async function computeSnpLaunchDigest(input: SnpLaunchDigestInput): Promise<SnpLaunchDigestResult> {
  const { signal } = input;
  signal?.throwIfAborted();
  if (input.kernel === undefined && (input.initrd !== undefined || input.cmdline !== undefined)) {
    throw new SevError('bad-format', 'an initrd or command line is only measured together with a kernel');
  }
  if (isState(input.ovmf) && input.ovmfHash !== undefined) {
    throw new SevError('bad-format', 'an OVMF hash was given for an OVMF that is already measured');
  }
  const row: SnpDigestRow = { vcpus: input.vcpus };
  if (input.vcpuSignature !== undefined) row.vcpuSignature = input.vcpuSignature;
  if (input.guestFeatures !== undefined) row.guestFeatures = input.guestFeatures;
  if (input.vmmType !== undefined) row.vmmType = input.vmmType;

  // Layout first: a wrong firmware or an impossible row fails before the large reads.
  const info = isState(input.ovmf)
    ? input.ovmf.info
    : typeof input.ovmf === 'string'
      ? await readSnpOvmfInfo(input.ovmf)
      : snpOvmfInfoFromTail(input.ovmf, input.ovmf.length);
  checkRow(info, row);
  if (input.kernel !== undefined) {
    if (!info.sections.some((s) => s.kind === 'kernel-hashes') || info.hashesTableGpa === undefined) {
      throw new SevError(
        'firmware-unsupported',
        'a kernel was given but the firmware has no KERNEL_HASHES section or hashes table (use an AmdSev OVMF build)',
      );
    }
  }
  const ovmfHashGiven = input.ovmfHash !== undefined;
  const ovmfBytes =
    isState(input.ovmf) || ovmfHashGiven ? 0 : typeof input.ovmf === 'string' ? info.size : input.ovmf.length;
  const sizeOf = async (h: HashInput | undefined) => (typeof h === 'string' ? (await stat(h)).size : 0);
  const total = ovmfBytes + (await sizeOf(input.kernel)) + (await sizeOf(input.initrd));
  const done = { ovmf: 0, kernel: 0, initrd: 0 };
  const report = () => input.onProgress?.(done.ovmf + done.kernel + done.initrd, total);

  // One controller: the caller's abort, or the first failure, stops the other stream too.
  const inner = new AbortController();
  const forward = () => inner.abort(signal?.reason);
  signal?.addEventListener('abort', forward, { once: true });
  const stream = { signal: inner.signal, chunkSize: input.chunkSize };
  const stateP: Promise<SnpOvmfState> = isState(input.ovmf)
    ? Promise.resolve(input.ovmf)
    : prepareSnpOvmf(input.ovmf, {
        ...stream,
        info,
        ...(input.ovmfHash !== undefined ? { ovmfHash: input.ovmfHash } : {}),
        onProgress: (d) => {
          done.ovmf = d;
          report();
        },
      });
  const hashesP: Promise<KernelHashes | undefined> =
    input.kernel === undefined
      ? Promise.resolve(undefined)
      : resolveKernelHashes(
          { kernel: input.kernel, initrd: input.initrd, cmdline: input.cmdline },
          {
            ...stream,
            onProgress: (which, d) => {
              done[which] = d;
              report();
            },
          },
        );
  const failFast = (e: unknown) => {
    inner.abort(e);
    throw e;
  };
  let state: SnpOvmfState;
  let kernelHashes: KernelHashes | undefined;
  try {
    [state, kernelHashes] = await Promise.all([stateP.catch(failFast), hashesP.catch(failFast)]);
  } finally {
    signal?.removeEventListener('abort', forward);
  }
  signal?.throwIfAborted();
  if (kernelHashes) row.kernelHashes = kernelHashes;
  const digest = snpDigestFor(state, row);

  const inputs: SnpLaunchDigestInputs = {
    ovmf: {
      source: state.source,
      size: state.info.size,
      gpa: state.info.gpa,
      resetAddress: state.info.resetAddress,
      sections: state.info.sections,
      ovmfHash: toHex(state.ovmfHash),
      ovmfHashOrigin: state.ovmfHashOrigin,
    },
    vcpus: input.vcpus,
    guestFeatures: '0x' + (input.guestFeatures ?? DEFAULT_GUEST_FEATURES).toString(16),
    vmmType: input.vmmType ?? 'qemu',
  };
  if (state.info.hashesTableGpa !== undefined) inputs.ovmf.hashesTableGpa = state.info.hashesTableGpa;
  if (kernelHashes) inputs.kernelHashes = kernelHashesHex(kernelHashes);
  if (input.vcpuSignature !== undefined) inputs.vcpuSignature = input.vcpuSignature;
  return { digest, digestHex: toHex(digest), digestBase64: toBase64(digest), inputs };
}

/** The OVMF hash alone (sev-snp-measure `--mode snp:ovmf-hash`), streamed. */
export async function computeSnpOvmfHash(
  ovmf: string | Uint8Array,
  opts: SnpStreamOptions = {},
): Promise<Uint8Array> {
  return (await prepareSnpOvmf(ovmf, opts)).ovmfHash;
}
