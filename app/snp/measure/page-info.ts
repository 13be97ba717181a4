/**
 * The SNP launch digest chain (docs/protocol.md §13). Every page the firmware measures during
 * SNP_LAUNCH_UPDATE (and every VMSA at SNP_LAUNCH_FINISH) replaces the running digest with SHA-384 of a
 * 0x70-byte PAGE_INFO record that starts with the previous digest:
 *
 *   0x00 digest so far (48) · 0x30 contents (48) · 0x60 u16 length 0x70 · 0x62 u8 page type ·
 *   0x63 u8 is_imi (0) · 0x64 VMPL3/2/1 permissions + reserved (4 zero bytes) · 0x68 u64 GPA
 *
 * The contents field is SHA-384 of the page for normal and VMSA pages and 48 zero bytes for the others.
 */
import { hash } from 'node:crypto';
import { SevError } from '../../sev/errors';

export const SNP_DIGEST_SIZE = 48;
export const PAGE_SIZE = 4096;
export const PAGE_INFO_SIZE = 0x70;

/** The page types of PAGE_INFO as the firmware numbers them. */
export const PageType = {
  normal: 1,
  vmsa: 2,
  zero: 3,
  unmeasured: 4,
  secrets: 5,
  cpuid: 6,
} as const;
export type PageTypeValue = (typeof PageType)[keyof typeof PageType];

/** The GPA recorded for VMSA pages: the RMP stores -1, page-aligned and cut to 52 address bits. */
export const VMSA_GPA = 0xfffffffff000;

const ZERO_CONTENTS = new Uint8Array(SNP_DIGEST_SIZE);

/** SHA-384 of a page (or any bytes): the `contents` of normal and VMSA pages. */
export function sha384(data: Uint8Array): Uint8Array {
  // One-shot hash(): no Hash object per page, which matters over the ~1000 pages of an OVMF image.
  return new Uint8Array(hash('sha384', data, 'buffer'));
}

/**
 * A running launch digest. Mutable and cheap to fork (48 bytes), so a measurement that shares a prefix
 * with another (same firmware, same metadata) starts from a saved copy instead of re-hashing.
 */
export class LaunchDigestChain {
  private digest: Uint8Array;
  // One PAGE_INFO buffer reused for every update: the fixed fields (length, flags) are written once.
  private readonly pageInfo = Buffer.alloc(PAGE_INFO_SIZE);

  /** Starts at 48 zero bytes, or at a saved digest (e.g. a precomputed OVMF hash). */
  constructor(seed: Uint8Array = ZERO_CONTENTS) {
    if (seed.length !== SNP_DIGEST_SIZE) {
      throw new SevError(
        'bad-length',
        `an SNP launch digest is ${SNP_DIGEST_SIZE} bytes, got ${seed.length}`,
      );
    }
    this.digest = Uint8Array.from(seed);
    this.pageInfo.writeUInt16LE(PAGE_INFO_SIZE, 0x60);
  }

  /** A copy of the digest so far. */
  current(): Uint8Array {
    return Uint8Array.from(this.digest);
  }

  /** An independent chain continuing from this point. */
  fork(): LaunchDigestChain {
    return new LaunchDigestChain(this.digest);
  }

  /** One PAGE_INFO update; `contents` is 48 bytes, `gpa` a page-aligned guest physical address. */
  update(pageType: PageTypeValue, gpa: number, contents: Uint8Array): void {
    if (contents.length !== SNP_DIGEST_SIZE) {
      throw new SevError(
        'bad-length',
        `PAGE_INFO contents are ${SNP_DIGEST_SIZE} bytes, got ${contents.length}`,
      );
    }
    const p = this.pageInfo;
    p.set(this.digest, 0);
    p.set(contents, 0x30);
    p[0x62] = pageType;
    // 0x63..0x67 (is_imi, VMPL permissions, reserved) stay zero.
    p.writeBigUInt64LE(BigInt(gpa), 0x68);
    this.digest = sha384(p);
  }

  /** Normal pages: `data` (a whole number of pages) loaded at `gpa`. */
  updateNormalPages(gpa: number, data: Uint8Array): void {
    if (data.length % PAGE_SIZE !== 0) {
      throw new SevError('bad-length', `measured data must be whole 4 KiB pages, got ${data.length} bytes`);
    }
    for (let off = 0; off < data.length; off += PAGE_SIZE) {
      this.update(PageType.normal, gpa + off, sha384(data.subarray(off, off + PAGE_SIZE)));
    }
  }

  /** Pages of one content-less type (zero, unmeasured) over `size` bytes from `gpa`. */
  updateEmptyPages(
    pageType: typeof PageType.zero | typeof PageType.unmeasured,
    gpa: number,
    size: number,
  ): void {
    if (size % PAGE_SIZE !== 0) {
      throw new SevError('bad-length', `a page range must be whole 4 KiB pages, got ${size} bytes`);
    }
    for (let off = 0; off < size; off += PAGE_SIZE) this.update(pageType, gpa + off, ZERO_CONTENTS);
  }

  /** A VMSA page given by its SHA-384 (callers hash each distinct VMSA once). */
  updateVmsa(vmsaSha384: Uint8Array): void {
    this.update(PageType.vmsa, VMSA_GPA, vmsaSha384);
  }
}
