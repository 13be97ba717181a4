/**
 * The OVMF footer GUID table (docs/protocol.md §6.1): how QEMU finds the SEV-ES AP reset address, the kernel
 * hashes area and the secret area inside a firmware image. The table sits at the very end of the image,
 * so only the tail is read; the whole file is streamed once for its SHA-256.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { guidBytesLe, guidFromBytesLe, readU16le, readU32le, bytesEqual } from '../sev/bytes';
import { SevError } from '../sev/errors';
import { updateHashFromFile, type StreamOptions } from './stream-hash';
import { PADDED_HASHES_TABLE_SIZE } from './hashes-table';

export const OVMF_TABLE_FOOTER_GUID = '96b582de-1fb2-45f7-baea-a366c55a082d';
export const SEV_INFO_BLOCK_GUID = '00f771de-1a7e-4fcb-890e-68c77e2fb44e';
export const SEV_HASH_TABLE_RV_GUID = '7255371f-3a3b-4b04-927b-1da6efa8d454';
export const SEV_SECRET_GUID = '4c2eb361-7d9b-4cc3-8081-127c90d3d294';
export const SEV_SNP_METADATA_GUID = 'dc886566-984a-4798-a75e-5585a7bf67cc';

/** Footer: table ends 32 bytes before the end; [-48,-32) GUID, [-50,-48) u16 total table length. */
const FOOTER_END_OFFSET = 32;
const ENTRY_TRAILER = 18; // u16 length + 16-byte GUID
const FOOTER_MIN = FOOTER_END_OFFSET + ENTRY_TRAILER; // 50
/** The largest tail the table can occupy (u16 length + the 32 bytes after it). */
export const MAX_FOOTER_TAIL = 0xffff + FOOTER_END_OFFSET;

export interface GpaArea {
  base: number;
  size: number;
}

/** What the footer table says, as parsed. Optional fields are absent when the entry is absent. */
export interface OvmfFooterInfo {
  /** Total table length from the footer (includes the 18-byte footer entry). */
  tableLength: number;
  /** Every entry, from the end of the image backwards (QEMU's search order). */
  entries: { guid: string; data: Uint8Array }[];
  /** SEV-ES AP reset address (u32 from the SEV info block). */
  resetAddress?: number;
  /** Kernel hashes area; base 0 means the build does not support measured direct boot. */
  hashesTable?: GpaArea;
  /** Secret injection area; base/size 0 means none. */
  secretArea?: GpaArea;
  /** SNP metadata offset from the end of the image (not used for SEV/SEV-ES). */
  snpMetadataOffset?: number;
}

/** Footer information plus the image's SHA-256 (hex) and size. */
export interface FirmwareInfo extends OvmfFooterInfo {
  sha256: string;
  size: number;
}

const FOOTER_GUID_BYTES = guidBytesLe(OVMF_TABLE_FOOTER_GUID);

/**
 * Parses the footer table from the last bytes of an image. `tail` must be the end of the image
 * (any length ≥ 50); `imageSize` is the full image size, used only for messages and bounds.
 */
export function parseOvmfFooter(tail: Uint8Array, imageSize: number = tail.length): OvmfFooterInfo {
  if (tail.length < FOOTER_MIN) {
    throw new SevError(
      'bad-format',
      `not an OVMF image with a footer table: ${imageSize} bytes is shorter than the ${FOOTER_MIN}-byte footer`,
    );
  }
  const end = tail.length;
  const guid = tail.subarray(end - 48, end - 32);
  if (!bytesEqual(guid, FOOTER_GUID_BYTES)) {
    throw new SevError(
      'bad-format',
      `not an OVMF image with a footer table: the footer GUID ${OVMF_TABLE_FOOTER_GUID} is not 48 bytes before the end`,
    );
  }
  const tableLength = readU16le(tail, end - 50);
  if (tableLength < ENTRY_TRAILER) {
    throw new SevError(
      'bad-format',
      `OVMF footer table length ${tableLength} is smaller than the footer entry itself`,
    );
  }
  if (FOOTER_END_OFFSET + tableLength > tail.length) {
    const where = tail.length < imageSize ? 'the bytes read' : 'the image';
    throw new SevError(
      'bad-length',
      `OVMF footer table is truncated: it declares ${tableLength} bytes but ${where} (${tail.length}) cannot hold it`,
    );
  }
  let data = tail.subarray(end - FOOTER_END_OFFSET - tableLength, end - FOOTER_MIN);
  const entries: { guid: string; data: Uint8Array }[] = [];
  while (data.length > 0) {
    if (data.length < ENTRY_TRAILER) {
      throw new SevError(
        'bad-length',
        `OVMF footer table has a truncated entry: ${data.length} bytes left, need 18`,
      );
    }
    const entryGuid = guidFromBytesLe(data.subarray(data.length - 16));
    const entryLength = readU16le(data, data.length - ENTRY_TRAILER);
    if (entryLength < ENTRY_TRAILER || entryLength > data.length) {
      throw new SevError(
        'bad-length',
        `OVMF footer table entry ${entryGuid} declares length ${entryLength}, outside 18..${data.length}`,
      );
    }
    entries.push({
      guid: entryGuid,
      data: Uint8Array.from(data.subarray(data.length - entryLength, data.length - ENTRY_TRAILER)),
    });
    data = data.subarray(0, data.length - entryLength);
  }
  const find = (g: string) => entries.find((e) => e.guid === g)?.data;
  const info: OvmfFooterInfo = { tableLength, entries };
  const sevInfo = find(SEV_INFO_BLOCK_GUID);
  if (sevInfo) info.resetAddress = u32Field(sevInfo, 0, 'SEV info block (reset address)');
  const hashes = find(SEV_HASH_TABLE_RV_GUID);
  if (hashes) info.hashesTable = area(hashes, 'SEV hashes table area');
  const secret = find(SEV_SECRET_GUID);
  if (secret) info.secretArea = area(secret, 'SEV secret area');
  const snp = find(SEV_SNP_METADATA_GUID);
  if (snp) info.snpMetadataOffset = u32Field(snp, 0, 'SEV-SNP metadata offset');
  return info;
}

function u32Field(data: Uint8Array, off: number, what: string): number {
  if (data.length < off + 4) {
    throw new SevError(
      'bad-length',
      `OVMF footer ${what} entry has ${data.length} data bytes, need ${off + 4}`,
    );
  }
  return readU32le(data, off);
}

function area(data: Uint8Array, what: string): GpaArea {
  return { base: u32Field(data, 0, what), size: u32Field(data, 4, what) };
}

/** Footer info and SHA-256 of an in-memory image (for small inputs such as test tails). */
export function inspectFirmwareBytes(image: Uint8Array): FirmwareInfo {
  const footer = parseOvmfFooter(image, image.length);
  const sha256 = createHash('sha256').update(image).digest('hex');
  return { ...footer, sha256, size: image.length };
}

/**
 * Reads just the footer table from a firmware file: the last 4 KiB first, more only if the table
 * length field says the table is longer (bounded by the u16 length).
 */
export async function readFirmwareFooter(path: string): Promise<{ footer: OvmfFooterInfo; size: number }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    let want = Math.min(size, 4096);
    let tail = await readTail(fh, size, want);
    if (
      tail.length >= FOOTER_MIN &&
      bytesEqual(tail.subarray(tail.length - 48, tail.length - 32), FOOTER_GUID_BYTES)
    ) {
      const need = Math.min(size, FOOTER_END_OFFSET + readU16le(tail, tail.length - 50));
      if (need > want) {
        want = need;
        tail = await readTail(fh, size, want);
      }
    }
    return { footer: parseOvmfFooter(tail, size), size };
  } finally {
    await fh.close();
  }
}

/** readFirmwareFooter with one blocking read of the largest tail the table can occupy (the CLI's path). */
export function readFirmwareFooterSync(path: string): { footer: OvmfFooterInfo; size: number } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, MAX_FOOTER_TAIL);
    const buf = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, size - length + got);
      if (n === 0) break;
      got += n;
    }
    return { footer: parseOvmfFooter(buf.subarray(0, got), size), size };
  } finally {
    closeSync(fd);
  }
}

async function readTail(
  fh: import('node:fs/promises').FileHandle,
  size: number,
  length: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, size - length + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Footer info and SHA-256 of a firmware file: one streamed pass for the hash, one small read of the tail.
 * The footer is parsed first so a file that is not OVMF fails before it is hashed.
 */
export async function inspectFirmware(path: string, opts: StreamOptions = {}): Promise<FirmwareInfo> {
  const { footer, size } = await readFirmwareFooter(path);
  const hash = createHash('sha256');
  await updateHashFromFile(hash, path, opts);
  return { ...footer, sha256: hash.digest('hex'), size };
}

/** A capability answer for the UI: yes/no plus a sentence that says why. */
export interface Capability {
  ok: boolean;
  reason: string;
}

/** Whether QEMU can write the kernel hashes table into this firmware (kernel-hashes=on / kernelHashes='yes'). */
export function supportsMeasuredDirectBoot(info: OvmfFooterInfo): Capability {
  const a = info.hashesTable;
  if (!a) {
    return {
      ok: false,
      reason:
        'the firmware has no SEV hashes-table entry in its footer, so QEMU cannot measure a kernel, initrd or command line into it (use an AmdSev OVMF build)',
    };
  }
  if (a.base === 0 || a.size === 0) {
    return {
      ok: false,
      reason:
        'the firmware declares an empty SEV hashes-table area (base and size 0), as generic OvmfX64 builds do: measured direct boot needs an AmdSev OVMF build',
    };
  }
  if (a.size < PADDED_HASHES_TABLE_SIZE) {
    return {
      ok: false,
      reason: `the firmware's SEV hashes-table area is ${a.size} bytes, smaller than the ${PADDED_HASHES_TABLE_SIZE}-byte table QEMU writes`,
    };
  }
  return {
    ok: true,
    reason: `the firmware has a SEV hashes-table area at 0x${a.base.toString(16)} (${a.size} bytes): kernel, initrd and command line can be measured`,
  };
}

/** Whether QEMU has a default place to inject a launch secret into this firmware. */
export function hasSecretArea(info: OvmfFooterInfo): Capability {
  const a = info.secretArea;
  if (!a) {
    return {
      ok: false,
      reason:
        'the firmware has no SEV secret-area entry in its footer, so QEMU cannot inject a launch secret into it',
    };
  }
  if (a.base === 0 || a.size === 0) {
    return {
      ok: false,
      reason:
        "the firmware declares an empty SEV secret area (base and size 0), as generic OVMF builds such as Debian's OVMF.fd do: QEMU cannot inject a secret into it; use an AmdSev OVMF build",
    };
  }
  return {
    ok: true,
    reason: `the firmware has a SEV secret area at 0x${a.base.toString(16)} (${a.size} bytes) where QEMU can inject a launch secret`,
  };
}

/** Whether the firmware gives QEMU the SEV-ES AP reset address (needed to boot more than one SEV-ES vCPU and to compute its VMSA). */
export function hasSevEsResetAddress(info: OvmfFooterInfo): Capability {
  if (info.resetAddress === undefined) {
    return {
      ok: false,
      reason:
        'the firmware has no SEV info block (AP reset address) in its footer, so it cannot run as SEV-ES and the AP VMSA cannot be computed',
    };
  }
  return { ok: true, reason: `the firmware's SEV-ES AP reset address is 0x${hex8(info.resetAddress)}` };
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}
