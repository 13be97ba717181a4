import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { OFF, parseReport, productFromCpuid, reportBytesFromFile, SNP_REPORT_SIZE } from './report';
import { SnpError } from './errors';
import { decodeTcb, encodeTcb, formatTcb, tcbReservedNonZero } from './tcb';
import { decodeGuestPolicy, guestPolicyProblem } from './policy';

const FIX = path.join(process.cwd(), 'test/fixtures/snp/reports');
const trustee = new Uint8Array(readFileSync(path.join(FIX, 'trustee-milan/test-report.bin')));
const vlek = new Uint8Array(readFileSync(path.join(FIX, 'trustee-vlek/test-vlek-report.bin')));
const hexText = new Uint8Array(readFileSync(path.join(FIX, 'virtee-sev-milan/report_milan.hex')));

function errorCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SnpError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('parseReport', () => {
  it('reads the fields of the real v2 Milan report', () => {
    const r = parseReport(trustee);
    expect(r.version).toBe(2);
    expect(r.guestSvn).toBe(4);
    expect(r.policy.raw).toBe(0x3001fn);
    expect(r.policy).toMatchObject({
      abiMinor: 0x1f,
      abiMajor: 0,
      smt: true,
      debug: false,
      migrateMa: false,
    });
    expect(r.vmpl).toBe(0);
    expect(r.signerInfo).toEqual({ raw: 0, authorKeyEnabled: false, maskChipKey: false, signingKey: 'vcek' });
    expect(r.cpuid).toBeUndefined();
    expect(formatTcb(decodeTcb(r.reportedTcb, 'Milan'))).toBe('bl=3 tee=0 snp=8 ucode=115');
    expect(formatTcb(decodeTcb(r.currentTcb, 'Milan'))).toBe('bl=3 tee=0 snp=8 ucode=206');
    expect(r.currentVersion).toEqual({ major: 1, minor: 0x34, build: 4 });
    expect(r.launchMitVector).toBeUndefined();
    expect(r.signatureR).toHaveLength(48);
  });

  it('reads the v3 VLEK report: signer VLEK, VMPL 1, CPUID Milan', () => {
    const r = parseReport(vlek);
    expect(r.version).toBe(3);
    expect(r.vmpl).toBe(1);
    expect(r.signerInfo.signingKey).toBe('vlek');
    expect(r.cpuid).toEqual({ family: 0x19, model: 1, stepping: 1 });
    expect(productFromCpuid(r.cpuid)).toBe('Milan');
  });

  it('accepts the report as hex text', () => {
    const b = reportBytesFromFile(hexText);
    expect(b).toHaveLength(SNP_REPORT_SIZE);
    expect(parseReport(b).version).toBe(2);
    expect(errorCode(() => reportBytesFromFile(hexText.subarray(0, 100)))).toBe('bad-report');
  });

  it('refuses wrong sizes, versions, algorithms, policies, VMPLs, signer infos and padded signatures', () => {
    const mutate = (f: (b: Buffer) => void) => {
      const b = Buffer.from(vlek);
      f(b);
      return () => parseReport(new Uint8Array(b));
    };
    expect(errorCode(() => parseReport(trustee.subarray(1)))).toBe('bad-report');
    for (const v of [0, 1, 6, 0xffffffff]) {
      expect(errorCode(mutate((b) => b.writeUInt32LE(v, OFF.version)))).toBe('bad-report');
    }
    expect(() => mutate((b) => b.writeUInt32LE(2, OFF.signatureAlgo))()).toThrow(/signature algorithm 2/);
    expect(() => mutate((b) => b.writeBigUInt64LE(0x10000n, OFF.policy))()).toThrow(/reserved bit 17/);
    expect(() => mutate((b) => b.writeBigUInt64LE(0x4030000n, OFF.policy))()).toThrow(/reserved bits 26..63/);
    expect(() => mutate((b) => b.writeUInt32LE(4, OFF.vmpl))()).toThrow(/VMPL 4/);
    expect(() => mutate((b) => b.writeUInt32LE(2 << 2, OFF.signerInfo))()).toThrow(/signing key 2/);
    expect(() => mutate((b) => (b[OFF.signatureR + 50] = 1))()).toThrow(/signature r has non-zero bytes/);
    expect(() => mutate((b) => (b[OFF.signatureS + 71] = 1))()).toThrow(/signature s has non-zero bytes/);
  });

  it('products from CPUID; unknown CPUs refused; v2 (zero) gives none', () => {
    expect(productFromCpuid({ family: 0x19, model: 0x01, stepping: 1 })).toBe('Milan');
    expect(productFromCpuid({ family: 0x19, model: 0x11, stepping: 1 })).toBe('Genoa');
    expect(productFromCpuid({ family: 0x19, model: 0xa0, stepping: 1 })).toBe('Genoa');
    expect(productFromCpuid({ family: 0x1a, model: 0x02, stepping: 0 })).toBe('Turin');
    expect(productFromCpuid({ family: 0, model: 0, stepping: 0 })).toBeUndefined();
    expect(errorCode(() => productFromCpuid({ family: 0x17, model: 0x31, stepping: 0 }))).toBe(
      'unknown-product',
    );
  });

  it('property: random and truncated input give SnpErrors, never crashes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1300 }), (b) => {
        const c = errorCode(() => parseReport(b));
        expect(['ok', 'bad-report']).toContain(c);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: SNP_REPORT_SIZE - 1 }), (n) => {
        expect(errorCode(() => parseReport(trustee.subarray(0, n)))).toBe('bad-report');
      }),
    );
    // Full-size random bytes with a valid version / algorithm / policy: parse or refuse, nothing else.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE }), (b) => {
        const buf = Buffer.from(b);
        buf.writeUInt32LE(2 + (b[0]! % 4), OFF.version);
        buf.writeUInt32LE(1, OFF.signatureAlgo);
        buf.writeBigUInt64LE(0x30000n, OFF.policy);
        expect(['ok', 'bad-report', 'unknown-product']).toContain(
          errorCode(() => {
            const r = parseReport(new Uint8Array(buf));
            productFromCpuid(r.cpuid);
          }),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('TCB layouts', () => {
  it('Milan/Genoa: bl 0, tee 1, snp 6, ucode 7; Turin: fmc 0, bl 1, tee 2, snp 3, ucode 7', () => {
    const bytes = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(decodeTcb(bytes, 'Milan')).toEqual({ bootloader: 1, tee: 2, snp: 7, microcode: 8 });
    expect(decodeTcb(bytes, 'Genoa')).toEqual({ bootloader: 1, tee: 2, snp: 7, microcode: 8 });
    expect(decodeTcb(bytes, 'Turin')).toEqual({ fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 8 });
    expect(tcbReservedNonZero(bytes, 'Milan')).toEqual([2, 3, 4, 5]);
    expect(tcbReservedNonZero(bytes, 'Turin')).toEqual([4, 5, 6]);
  });

  it('property: encode/decode round trip per product', () => {
    const spl = fc.integer({ min: 0, max: 255 });
    fc.assert(
      fc.property(spl, spl, spl, spl, spl, (fmc, bootloader, tee, snp, microcode) => {
        const legacy = { bootloader, tee, snp, microcode };
        expect(decodeTcb(encodeTcb(legacy, 'Genoa'), 'Genoa')).toEqual(legacy);
        const turin = { fmc, ...legacy };
        expect(decodeTcb(encodeTcb(turin, 'Turin'), 'Turin')).toEqual(turin);
        expect(tcbReservedNonZero(encodeTcb(turin, 'Turin'), 'Turin')).toEqual([]);
      }),
    );
  });
});

describe('guest policy', () => {
  it('decodes each named bit', () => {
    const p = decodeGuestPolicy(
      (1n << 17n) | (1n << 16n) | (1n << 18n) | (1n << 19n) | (1n << 20n) | 0x0102n,
    );
    expect(p).toMatchObject({
      abiMajor: 1,
      abiMinor: 2,
      smt: true,
      migrateMa: true,
      debug: true,
      singleSocket: true,
    });
    const q = decodeGuestPolicy((1n << 17n) | (0x1fn << 21n));
    expect(q).toMatchObject({
      cxlAllow: true,
      memAes256Xts: true,
      raplDis: true,
      ciphertextHiding: true,
      pageSwapDisable: true,
      smt: false,
    });
    expect(guestPolicyProblem(0x30000n)).toBeUndefined();
    expect(guestPolicyProblem(0x10000n)).toMatch(/bit 17/);
  });
});
