/**
 * SNP TCB versions (docs/protocol.md §11): a u64 whose bytes hold one security patch level (SPL) per
 * firmware component. The byte positions differ by generation (virtee/sev `snp.rs`, go-sev-guest `kds.go`):
 *   Milan, Genoa: byte 0 boot loader, 1 TEE, 6 SNP, 7 microcode (2..5 reserved, zero)
 *   Turin:        byte 0 FMC, 1 boot loader, 2 TEE, 3 SNP, 7 microcode (4..6 reserved, zero)
 */
import type { SnpProduct } from './roots';

export interface TcbParts {
  /** Turin only (undefined on Milan and Genoa). */
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

export type TcbComponent = keyof TcbParts;

interface Layout {
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}

const LEGACY: Layout = { bootloader: 0, tee: 1, snp: 6, microcode: 7 };
const TURIN: Layout = { fmc: 0, bootloader: 1, tee: 2, snp: 3, microcode: 7 };

function layout(product: SnpProduct): Layout {
  return product === 'Turin' ? TURIN : LEGACY;
}

/** The components a product's TCB carries, in KDS/URL order. */
export function tcbComponents(product: SnpProduct): TcbComponent[] {
  return product === 'Turin'
    ? ['fmc', 'bootloader', 'tee', 'snp', 'microcode']
    : ['bootloader', 'tee', 'snp', 'microcode'];
}

/** Decodes the 8 TCB bytes (little-endian u64 as stored in the report). */
export function decodeTcb(bytes: Uint8Array, product: SnpProduct): TcbParts {
  if (bytes.length !== 8) throw new RangeError(`TCB: expected 8 bytes, got ${bytes.length}`);
  const l = layout(product);
  const parts: TcbParts = {
    bootloader: bytes[l.bootloader]!,
    tee: bytes[l.tee]!,
    snp: bytes[l.snp]!,
    microcode: bytes[l.microcode]!,
  };
  if (l.fmc !== undefined) parts.fmc = bytes[l.fmc]!;
  return parts;
}

/** Encodes TCB parts into the 8 report bytes (reserved bytes zero). */
export function encodeTcb(parts: TcbParts, product: SnpProduct): Uint8Array {
  const l = layout(product);
  const out = new Uint8Array(8);
  out[l.bootloader] = parts.bootloader;
  out[l.tee] = parts.tee;
  out[l.snp] = parts.snp;
  out[l.microcode] = parts.microcode;
  if (l.fmc !== undefined) out[l.fmc] = parts.fmc ?? 0;
  return out;
}

/** Bytes that are reserved in this product's layout but not zero (a TCB from another generation?). */
export function tcbReservedNonZero(bytes: Uint8Array, product: SnpProduct): number[] {
  const used = new Set(Object.values(layout(product)));
  const bad: number[] = [];
  bytes.forEach((b, i) => {
    if (!used.has(i) && b !== 0) bad.push(i);
  });
  return bad;
}

/** "fmc=1 bl=3 tee=0 snp=8 ucode=115" */
export function formatTcb(t: TcbParts): string {
  const fmc = t.fmc !== undefined ? `fmc=${t.fmc} ` : '';
  return `${fmc}bl=${t.bootloader} tee=${t.tee} snp=${t.snp} ucode=${t.microcode}`;
}
