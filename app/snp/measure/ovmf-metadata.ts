/**
 * What an OVMF image tells QEMU about an SNP launch (docs/protocol.md §13): the footer GUID table (parsed by
 * the SEV digest code's parser) gives the SEV-ES AP reset address, the kernel hashes table address and the
 * offset of the SEV metadata block; that block ("ASEV") lists the guest memory ranges QEMU must add to the
 * launch before the VMSAs, each with a type that fixes how it is measured.
 *
 * Metadata block (little-endian), at image end − offset:
 *   0x00 "ASEV" · 0x04 u32 block size (header + descriptors) · 0x08 u32 version (1) · 0x0C u32 count ·
 *   0x10 count × { u32 gpa, u32 size, u32 type }
 */
import { open } from 'node:fs/promises';
import { readU32le } from '../../sev/bytes';
import { SevError } from '../../sev/errors';
import { parseOvmfFooter, readFirmwareFooter, type OvmfFooterInfo } from '../../digest/ovmf';
import { PAGE_SIZE } from './page-info';

/** The image is mapped so that it ends at 4 GiB. */
export const FOUR_GIB = 0x1_0000_0000;
const METADATA_HEADER_SIZE = 16;
const METADATA_DESC_SIZE = 12;
const METADATA_SIGNATURE = 0x56455341; // "ASEV" read as a little-endian u32

/** Section types as OVMF numbers them (OvmfSevMetadata.asm). */
export const SNP_SECTION_TYPES = {
  1: 'sec-mem',
  2: 'secrets',
  3: 'cpuid',
  4: 'svsm-caa',
  0x10: 'kernel-hashes',
} as const;
export type SnpSectionKind = (typeof SNP_SECTION_TYPES)[keyof typeof SNP_SECTION_TYPES];

export interface SnpMetadataSection {
  kind: SnpSectionKind;
  /** Guest physical address, page-aligned. */
  gpa: number;
  /** Bytes, a non-zero multiple of 4 KiB. */
  size: number;
}

/**
 * Parses the SEV metadata block. `region` starts at the block header and may run on past it (to the end of
 * the image); anything malformed is a SevError, never an out-of-bounds read.
 */
export function parseSnpMetadata(region: Uint8Array): SnpMetadataSection[] {
  if (region.length < METADATA_HEADER_SIZE) {
    throw new SevError(
      'bad-length',
      `the SEV metadata block is truncated: ${region.length} bytes left, the header alone is ${METADATA_HEADER_SIZE}`,
    );
  }
  if (readU32le(region, 0) !== METADATA_SIGNATURE) {
    throw new SevError('bad-format', 'the SEV metadata block does not start with the signature "ASEV"');
  }
  const blockSize = readU32le(region, 4);
  const version = readU32le(region, 8);
  const count = readU32le(region, 12);
  if (version !== 1) {
    throw new SevError(
      'bad-version',
      `the SEV metadata block has version ${version}; only version 1 is known`,
    );
  }
  const needed = METADATA_HEADER_SIZE + count * METADATA_DESC_SIZE;
  if (blockSize < needed) {
    throw new SevError(
      'bad-length',
      `the SEV metadata block declares ${count} sections but a size of ${blockSize} bytes (needs ${needed})`,
    );
  }
  if (blockSize > region.length) {
    throw new SevError(
      'bad-length',
      `the SEV metadata block declares ${blockSize} bytes but only ${region.length} remain in the image`,
    );
  }
  const sections: SnpMetadataSection[] = [];
  for (let i = 0; i < count; i++) {
    const off = METADATA_HEADER_SIZE + i * METADATA_DESC_SIZE;
    const gpa = readU32le(region, off);
    const size = readU32le(region, off + 4);
    const type = readU32le(region, off + 8);
    const kind = (SNP_SECTION_TYPES as Record<number, SnpSectionKind | undefined>)[type];
    if (kind === undefined) {
      throw new SevError('bad-format', `SEV metadata section ${i} has unknown type 0x${type.toString(16)}`);
    }
    if (gpa % PAGE_SIZE !== 0 || size === 0 || size % PAGE_SIZE !== 0 || gpa + size > FOUR_GIB) {
      throw new SevError(
        'bad-format',
        `SEV metadata section ${i} (${kind}) at 0x${gpa.toString(16)}, 0x${size.toString(16)} bytes is not a whole-page range below 4 GiB`,
      );
    }
    sections.push({ kind, gpa, size });
  }
  return sections;
}

/** The parts of an OVMF image an SNP launch digest depends on, apart from its page contents. */
export interface SnpOvmfInfo {
  size: number;
  /** Where the first byte is loaded (4 GiB − size). */
  gpa: number;
  footer: OvmfFooterInfo;
  /** Metadata sections in the order OVMF lists them (the order QEMU measures them). */
  sections: SnpMetadataSection[];
  /** Where the APs start (SEV-ES reset block). */
  resetAddress: number;
  /** Guest address of the kernel hashes table, when the firmware has one. */
  hashesTableGpa?: number;
}

function checkImageSize(size: number): void {
  if (size === 0 || size % PAGE_SIZE !== 0 || size > FOUR_GIB) {
    throw new SevError(
      'bad-length',
      `an OVMF image for SNP must be a non-empty whole number of 4 KiB pages below 4 GiB, got ${size} bytes`,
    );
  }
}

function metadataOffset(footer: OvmfFooterInfo, size: number): number {
  const offset = footer.snpMetadataOffset;
  if (offset === undefined) {
    throw new SevError(
      'firmware-unsupported',
      'the firmware has no SEV metadata entry in its footer table, so QEMU cannot launch it as SEV-SNP',
    );
  }
  if (offset < METADATA_HEADER_SIZE || offset > size) {
    throw new SevError(
      'bad-format',
      `the SEV metadata offset 0x${offset.toString(16)} from the end does not point inside the ${size}-byte image`,
    );
  }
  return offset;
}

function assemble(footer: OvmfFooterInfo, size: number, sections: SnpMetadataSection[]): SnpOvmfInfo {
  if (footer.resetAddress === undefined) {
    throw new SevError(
      'firmware-unsupported',
      'the firmware has no SEV-ES reset block in its footer table, so the AP start address (and VMSA) is unknown',
    );
  }
  const info: SnpOvmfInfo = {
    size,
    gpa: FOUR_GIB - size,
    footer,
    sections,
    resetAddress: footer.resetAddress,
  };
  if (footer.hashesTable && footer.hashesTable.base !== 0) info.hashesTableGpa = footer.hashesTable.base;
  return info;
}

/**
 * SNP facts from the end of an image held in memory: `tail` is the last `tail.length` bytes of an image of
 * `imageSize` bytes (the whole image when they are equal).
 */
export function snpOvmfInfoFromTail(tail: Uint8Array, imageSize: number = tail.length): SnpOvmfInfo {
  checkImageSize(imageSize);
  const footer = parseOvmfFooter(tail, imageSize);
  const offset = metadataOffset(footer, imageSize);
  if (offset > tail.length) {
    throw new SevError(
      'bad-length',
      `the SEV metadata block is ${offset} bytes before the end, outside the ${tail.length} bytes given`,
    );
  }
  const sections = parseSnpMetadata(tail.subarray(tail.length - offset));
  return assemble(footer, imageSize, sections);
}

/** SNP facts from a firmware file: reads the footer table and the metadata block only. */
export async function readSnpOvmfInfo(path: string): Promise<SnpOvmfInfo> {
  const { footer, size } = await readFirmwareFooter(path);
  checkImageSize(size);
  const offset = metadataOffset(footer, size);
  const fh = await open(path, 'r');
  try {
    // The block lies between image end − offset and the end of the image.
    const region = new Uint8Array(offset);
    let got = 0;
    while (got < offset) {
      const { bytesRead } = await fh.read(region, got, offset - got, size - offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return assemble(footer, size, parseSnpMetadata(region.subarray(0, got)));
  } finally {
    await fh.close();
  }
}
