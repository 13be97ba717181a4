import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { guidBytesLe, readU16le, toHex } from '../sev/bytes';
import {
  CMDLINE_ENTRY_GUID,
  EMPTY_SHA256,
  HASHES_TABLE_GUID,
  INITRD_ENTRY_GUID,
  KERNEL_ENTRY_GUID,
  buildHashesTable,
  hashCmdline,
  parseSha256Hex,
  resolveKernelHashes,
} from './hashes-table';

const sha = (b: Uint8Array | string) => new Uint8Array(createHash('sha256').update(b).digest());
const tmp = mkdtempSync(join(tmpdir(), 'hashes-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kernel hashes table', () => {
  it('has the QEMU layout: GUID, length 168, cmdline/initrd/kernel entries, 8 zero bytes', () => {
    const k = sha('kernel');
    const i = sha('initrd');
    const c = hashCmdline('console=ttyS0');
    const t = buildHashesTable({ kernel: k, initrd: i, cmdline: c });
    expect(t.length).toBe(176);
    expect(toHex(t.subarray(0, 16))).toBe(toHex(guidBytesLe(HASHES_TABLE_GUID)));
    expect(readU16le(t, 16)).toBe(168);
    const entries = [
      [CMDLINE_ENTRY_GUID, c],
      [INITRD_ENTRY_GUID, i],
      [KERNEL_ENTRY_GUID, k],
    ] as const;
    entries.forEach(([g, h], n) => {
      const off = 18 + 50 * n;
      expect(toHex(t.subarray(off, off + 16))).toBe(toHex(guidBytesLe(g)));
      expect(readU16le(t, off + 16)).toBe(50);
      expect(toHex(t.subarray(off + 18, off + 50))).toBe(toHex(h));
    });
    expect([...t.subarray(168)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('hashes the cmdline with its trailing NUL; no cmdline = SHA-256("\\0")', () => {
    expect(toHex(hashCmdline('a b'))).toBe(toHex(sha('a b\0')));
    expect(toHex(hashCmdline(undefined))).toBe(toHex(sha('\0')));
    expect(toHex(hashCmdline(''))).toBe(toHex(sha('\0')));
    expect(toHex(hashCmdline('é'))).toBe(toHex(sha(Buffer.from('é\0', 'utf8'))));
  });

  it('streams files, defaults a missing initrd to SHA-256 of empty, accepts precomputed hashes', async () => {
    const kf = join(tmp, 'k');
    writeFileSync(kf, 'kernel bytes');
    const r = await resolveKernelHashes({ kernel: kf });
    expect(toHex(r.kernel)).toBe(toHex(sha('kernel bytes')));
    expect(toHex(r.initrd)).toBe(toHex(EMPTY_SHA256));
    expect(toHex(r.cmdline)).toBe(toHex(sha('\0')));
    const pre = await resolveKernelHashes({
      kernel: { sha256hex: toHex(sha('kernel bytes')).toUpperCase() },
      initrd: { sha256hex: toHex(sha('x')) },
      cmdlineHash: toHex(sha('y\0')),
    });
    expect(toHex(pre.kernel)).toBe(toHex(r.kernel));
    expect(toHex(pre.initrd)).toBe(toHex(sha('x')));
    expect(toHex(pre.cmdline)).toBe(toHex(sha('y\0')));
  });

  it('rejects malformed hashes and conflicting cmdline inputs', async () => {
    expect(() => parseSha256Hex('abc', 'kernel-hash')).toThrow(/kernel-hash must be a SHA-256 in hex/);
    await expect(resolveKernelHashes({ kernel: { sha256hex: 'zz' } })).rejects.toThrow(/kernel-hash/);
    await expect(
      resolveKernelHashes({ kernel: '/dev/null', cmdline: 'a', cmdlineHash: toHex(sha('a')) }),
    ).rejects.toThrow(/either a command line or its hash/);
    expect(() =>
      buildHashesTable({ kernel: new Uint8Array(31), initrd: EMPTY_SHA256, cmdline: EMPTY_SHA256 }),
    ).toThrow(/32 bytes/);
  });
});
