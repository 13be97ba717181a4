import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guidBytesLe } from '../../sev/bytes';
import { SevError } from '../../sev/errors';
import { OVMF_TABLE_FOOTER_GUID, SEV_INFO_BLOCK_GUID, SEV_SNP_METADATA_GUID } from '../../digest/ovmf';
import { parseSnpMetadata, readSnpOvmfInfo, snpOvmfInfoFromTail, SNP_SECTION_TYPES } from './ovmf-metadata';

const AMDSEV = 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin';
const amdsev = new Uint8Array(readFileSync(AMDSEV));

/** Runs f; a SevError is a clean refusal, anything else (TypeError, RangeError...) fails the property. */
function cleanly<T>(f: () => T): T | SevError {
  try {
    return f();
  } catch (e) {
    if (e instanceof SevError) return e;
    throw e;
  }
}

const TYPES = Object.keys(SNP_SECTION_TYPES).map(Number);

function metadataBlock(sections: { gpa: number; size: number; type: number }[], extra = 0): Uint8Array {
  const b = Buffer.alloc(16 + 12 * sections.length + extra);
  b.write('ASEV', 0, 'latin1');
  b.writeUInt32LE(16 + 12 * sections.length, 4);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(sections.length, 12);
  sections.forEach((s, i) => {
    b.writeUInt32LE(s.gpa, 16 + 12 * i);
    b.writeUInt32LE(s.size, 20 + 12 * i);
    b.writeUInt32LE(s.type, 24 + 12 * i);
  });
  return new Uint8Array(b);
}

const validSection = fc.record({
  gpa: fc.integer({ min: 0, max: 0xfff00 }).map((p) => p * 4096),
  size: fc.integer({ min: 1, max: 0xff }).map((p) => p * 4096),
  type: fc.constantFrom(...TYPES),
});

describe('SEV metadata of the AmdSev fixture', () => {
  it('lists the sections sev-snp-measure finds, in order, with the footer facts', async () => {
    const info = await readSnpOvmfInfo(AMDSEV);
    expect(info.sections).toEqual([
      { kind: 'sec-mem', gpa: 0x800000, size: 0x9000 },
      { kind: 'sec-mem', gpa: 0x80a000, size: 0x3000 },
      { kind: 'secrets', gpa: 0x80d000, size: 0x1000 },
      { kind: 'cpuid', gpa: 0x80e000, size: 0x1000 },
      { kind: 'svsm-caa', gpa: 0x80f000, size: 0x1000 },
      { kind: 'kernel-hashes', gpa: 0x810000, size: 0x1000 },
      { kind: 'sec-mem', gpa: 0x811000, size: 0xf000 },
    ]);
    expect(info.resetAddress).toBe(0x80b004);
    expect(info.hashesTableGpa).toBe(0x810c00);
    expect(info.gpa).toBe(0xfffff000);
    expect(snpOvmfInfoFromTail(amdsev)).toEqual(info);
  });
});

describe('parseSnpMetadata properties', () => {
  it('random bytes: a list of sections or a SevError, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        cleanly(() => parseSnpMetadata(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes behind a valid header: sections or a SevError', () => {
    fc.assert(
      fc.property(fc.nat(12), fc.uint8Array({ maxLength: 160 }), fc.nat(300), (count, body, size) => {
        const head = Buffer.alloc(16);
        head.write('ASEV', 0, 'latin1');
        head.writeUInt32LE(size, 4);
        head.writeUInt32LE(1, 8);
        head.writeUInt32LE(count, 12);
        const r = cleanly(() => parseSnpMetadata(new Uint8Array([...head, ...body])));
        if (!(r instanceof SevError)) expect(r).toHaveLength(count);
      }),
      { numRuns: 500 },
    );
  });

  it('a valid block round-trips; every truncation of it is a bad-length SevError', () => {
    fc.assert(
      fc.property(fc.array(validSection, { maxLength: 10 }), fc.nat(), (sections, cutSeed) => {
        const block = metadataBlock(sections);
        const parsed = parseSnpMetadata(block);
        expect(parsed.map((s) => [s.gpa, s.size, s.kind])).toEqual(
          sections.map((s) => [s.gpa, s.size, SNP_SECTION_TYPES[s.type as keyof typeof SNP_SECTION_TYPES]]),
        );
        const cut = cutSeed % block.length;
        const r = cleanly(() => parseSnpMetadata(block.subarray(0, cut)));
        expect(r).toBeInstanceOf(SevError);
        expect((r as SevError).code).toBe('bad-length');
      }),
    );
  });

  it('an unknown type, a misaligned or empty range, a wrong signature or version is refused', () => {
    const one = (s: { gpa: number; size: number; type: number }) =>
      cleanly(() => parseSnpMetadata(metadataBlock([s])));
    expect((one({ gpa: 0, size: 4096, type: 5 }) as SevError).message).toMatch(/unknown type 0x5/);
    expect((one({ gpa: 100, size: 4096, type: 1 }) as SevError).code).toBe('bad-format');
    expect((one({ gpa: 0, size: 100, type: 1 }) as SevError).code).toBe('bad-format');
    expect((one({ gpa: 0, size: 0, type: 2 }) as SevError).code).toBe('bad-format');
    expect((one({ gpa: 0xfffff000, size: 0x2000, type: 1 }) as SevError).message).toMatch(/below 4 GiB/);
    const sig = metadataBlock([]);
    sig[0] = 0x42;
    expect((cleanly(() => parseSnpMetadata(sig)) as SevError).code).toBe('bad-format');
    const ver = metadataBlock([]);
    ver[8] = 2;
    expect((cleanly(() => parseSnpMetadata(ver)) as SevError).code).toBe('bad-version');
  });
});

/** A whole-page image whose footer table holds a SEV reset block and a metadata entry at `offset`. */
function imageWithMetadata(block: Uint8Array, pages: number, offsetFromEnd: number): Uint8Array {
  const img = new Uint8Array(pages * 4096);
  const entry = (guid: string, data: number) => {
    const e = Buffer.alloc(22);
    e.writeUInt32LE(data, 0);
    e.writeUInt16LE(22, 4);
    e.set(guidBytesLe(guid), 6);
    return e;
  };
  const entries = Buffer.concat([
    entry(SEV_INFO_BLOCK_GUID, 0x80b004),
    entry(SEV_SNP_METADATA_GUID, offsetFromEnd),
  ]);
  const footer = Buffer.alloc(18);
  footer.writeUInt16LE(entries.length + 18, 0);
  footer.set(guidBytesLe(OVMF_TABLE_FOOTER_GUID), 2);
  const table = Buffer.concat([entries, footer]);
  img.set(table, img.length - 32 - table.length);
  if (offsetFromEnd <= img.length) img.set(block.subarray(0, offsetFromEnd), img.length - offsetFromEnd);
  return img;
}

describe('SNP facts from a whole image', () => {
  it('a metadata block anywhere in a synthetic image is found', () => {
    fc.assert(
      fc.property(
        fc.array(validSection, { maxLength: 6 }),
        fc.integer({ min: 2, max: 4 }),
        (sections, pages) => {
          const block = metadataBlock(sections);
          const offset = 4096 + block.length; // in the page before the footer page
          const info = snpOvmfInfoFromTail(imageWithMetadata(block, pages, offset));
          expect(info.sections).toHaveLength(sections.length);
          expect(info.resetAddress).toBe(0x80b004);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('any metadata offset, any tail length and any mutated byte: info or a SevError', () => {
    fc.assert(
      fc.property(
        fc.nat(3 * 4096),
        fc.nat(3 * 4096),
        fc.nat(3 * 4096 - 1),
        fc.integer({ min: 1, max: 255 }),
        (offset, tailLength, pos, xor) => {
          const img = imageWithMetadata(metadataBlock([{ gpa: 0, size: 4096, type: 1 }]), 3, offset);
          img[pos]! ^= xor;
          cleanly(() => snpOvmfInfoFromTail(img));
          cleanly(() =>
            snpOvmfInfoFromTail(img.subarray(img.length - Math.min(tailLength, img.length)), img.length),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('the real fixture: every front truncation, every end truncation and random byte flips', () => {
    for (let keep = 0; keep < amdsev.length; keep += 7) {
      const tail = amdsev.subarray(amdsev.length - keep);
      const r = cleanly(() => snpOvmfInfoFromTail(tail, amdsev.length));
      // The metadata block sits 0x554 bytes before the end: shorter tails cannot reach it.
      if (keep < 0x554) expect(r).toBeInstanceOf(SevError);
      expect(cleanly(() => snpOvmfInfoFromTail(amdsev.subarray(0, keep)))).toBeInstanceOf(SevError);
    }
    fc.assert(
      fc.property(fc.nat(amdsev.length - 1), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
        const img = Uint8Array.from(amdsev);
        img[pos]! ^= xor;
        cleanly(() => snpOvmfInfoFromTail(img));
      }),
      { numRuns: 1000 },
    );
  });
});
