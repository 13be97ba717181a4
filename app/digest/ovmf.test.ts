import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { guidBytesLe, writeU16le } from '../sev/bytes';
import { SevError } from '../sev/errors';
import {
  OVMF_TABLE_FOOTER_GUID,
  hasSecretArea,
  hasSevEsResetAddress,
  inspectFirmware,
  inspectFirmwareBytes,
  parseOvmfFooter,
  readFirmwareFooter,
  supportsMeasuredDirectBoot,
} from './ovmf';

const V = join(process.cwd(), 'test/fixtures/vectors');
const AMDSEV = join(V, 'virtee-sev/ovmf_AmdSev_suffix.bin');
const OVMFX64 = join(V, 'virtee-sev/ovmf_OvmfX64_suffix.bin');
const SEVCTL = join(V, 'sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9');
const DEBIAN_OVMF = '/usr/share/ovmf/OVMF.fd';
const tmp = mkdtempSync(join(tmpdir(), 'ovmf-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('OVMF footer table', () => {
  it('parses the AmdSev edk2-stable202405 tail', () => {
    const info = inspectFirmwareBytes(readFileSync(AMDSEV));
    expect(info.resetAddress).toBe(0x0080b004);
    expect(info.hashesTable).toEqual({ base: 0x810c00, size: 0x400 });
    expect(info.secretArea).toEqual({ base: 0x810000, size: 0xc00 });
    expect(info.snpMetadataOffset).toBe(0x554);
    expect(info.tableLength).toBe(136);
    expect(info.entries.map((e) => e.guid)).toContain('e47a6535-984a-4798-865e-4685a7bf8ec2');
    expect(info.size).toBe(4096);
    expect(supportsMeasuredDirectBoot(info).ok).toBe(true);
    expect(hasSecretArea(info).ok).toBe(true);
    expect(hasSevEsResetAddress(info).reason).toContain('0x0080b004');
  });

  it('parses the sevctl trimmed AmdSev image (no SNP metadata entry)', () => {
    const info = inspectFirmwareBytes(readFileSync(SEVCTL));
    expect(info.resetAddress).toBe(0x0080b004);
    expect(info.hashesTable).toEqual({ base: 0x80cc00, size: 0x400 });
    expect(info.secretArea).toEqual({ base: 0x80c000, size: 0xc00 });
    expect(info.snpMetadataOffset).toBeUndefined();
  });

  it('OvmfX64 declares empty hashes and secret areas and says so', () => {
    const info = inspectFirmwareBytes(readFileSync(OVMFX64));
    expect(info.hashesTable).toEqual({ base: 0, size: 0 });
    const mdb = supportsMeasuredDirectBoot(info);
    expect(mdb.ok).toBe(false);
    expect(mdb.reason).toMatch(/empty SEV hashes-table area/);
    expect(hasSecretArea(info).ok).toBe(false);
  });

  it("Debian's OVMF.fd: reset address present, no secret area, no measured direct boot", async () => {
    const info = await inspectFirmware(DEBIAN_OVMF);
    const whole = readFileSync(DEBIAN_OVMF);
    expect(info.sha256).toBe(createHash('sha256').update(whole).digest('hex'));
    expect(info.size).toBe(whole.length);
    expect(info.resetAddress).toBe(0x0080b004);
    const secret = hasSecretArea(info);
    expect(secret.ok).toBe(false);
    expect(secret.reason).toMatch(/QEMU cannot inject a secret/);
    expect(supportsMeasuredDirectBoot(info).ok).toBe(false);
    expect(hasSevEsResetAddress(info).ok).toBe(true);
  });

  it('reads only the tail of a large file and agrees with the bytes parser', async () => {
    const big = join(tmp, 'big.fd');
    const tail = readFileSync(AMDSEV);
    const img = Buffer.concat([Buffer.alloc(3 * 1024 * 1024 + 7, 0xab), tail]);
    writeFileSync(big, img);
    const { footer, size } = await readFirmwareFooter(big);
    expect(size).toBe(img.length);
    expect(footer).toEqual(parseOvmfFooter(tail));
    const info = await inspectFirmware(big);
    expect(info.sha256).toBe(createHash('sha256').update(img).digest('hex'));
  });

  it('rejects a file without the footer GUID and a too-short file', async () => {
    expect(() => parseOvmfFooter(new Uint8Array(4096))).toThrow(/not an OVMF image with a footer table/);
    expect(() => parseOvmfFooter(new Uint8Array(10))).toThrow(/shorter than the 50-byte footer/);
    await expect(inspectFirmware('/etc/hostname')).rejects.toThrow(SevError);
  });

  it('reports truncated tables and entries', () => {
    const t = Uint8Array.from(readFileSync(AMDSEV));
    // Table longer than the bytes available.
    const long = t.slice(t.length - 100);
    expect(() => parseOvmfFooter(long)).toThrow(/truncated/);
    // An entry whose length runs past the start of the table.
    const bad = Uint8Array.from(t);
    writeU16le(bad, bad.length - 50 - 18, 0x7000); // the entry just before the footer entry
    expect(() => parseOvmfFooter(bad)).toThrow(/declares length/);
  });

  it('property: random tails never crash, they parse or throw SevError', () => {
    const footer = guidBytesLe(OVMF_TABLE_FOOTER_GUID);
    const withFooter = fc
      .tuple(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 0, max: 0xffff }))
      .map(([body, len]) => {
        const b = new Uint8Array(body.length + 50);
        b.set(body, 0);
        writeU16le(b, body.length, len);
        b.set(footer, body.length + 2);
        return b;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), withFooter), (b) => {
        try {
          const info = parseOvmfFooter(b);
          expect(info.tableLength).toBeGreaterThanOrEqual(18);
        } catch (e) {
          expect(e).toBeInstanceOf(SevError);
          expect((e as SevError).message.length).toBeGreaterThan(10);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('property: every truncation of a real image tail parses identically or throws SevError', () => {
    const t = Uint8Array.from(readFileSync(AMDSEV));
    const full = parseOvmfFooter(t);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: t.length }),
        fc.integer({ min: 0, max: t.length - 1 }),
        (cut, flip) => {
          const tail = t.slice(t.length - cut);
          try {
            expect(parseOvmfFooter(tail).resetAddress).toBe(full.resetAddress);
          } catch (e) {
            expect(e).toBeInstanceOf(SevError);
            expect(cut).toBeLessThan(32 + full.tableLength);
          }
          const mutated = Uint8Array.from(t);
          mutated[flip] = mutated[flip]! ^ 0xff;
          try {
            parseOvmfFooter(mutated);
          } catch (e) {
            expect(e).toBeInstanceOf(SevError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
