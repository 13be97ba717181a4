// Exhaustive tamper test (slow: ~16,000 P-384 verifications): every single flipped bit of the signed area
// [0, 0x2A0) of each real report, and of its signature r and s (72 bytes each), must be refused.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { verifyReport, type VerifyReportOptions } from './verify';
import { reportBytesFromFile, OFF, SIG_COMPONENT_SIZE, SNP_SIGNED_LENGTH } from './report';
import { SnpError } from './errors';
import { SnpVerifyCache } from './chain';

const FIX = path.join(process.cwd(), 'test/fixtures/snp/reports');
const rd = (p: string) => new Uint8Array(readFileSync(path.join(FIX, p)));
const cases: [string, Uint8Array, VerifyReportOptions][] = [
  ['trustee-milan', rd('trustee-milan/test-report.bin'), { vcek: rd('trustee-milan/test-vcek.der') }],
  [
    'virtee-sev-milan',
    reportBytesFromFile(rd('virtee-sev-milan/report_milan.hex')),
    { vcek: rd('virtee-sev-milan/vcek_milan.der') },
  ],
  [
    'trustee-vlek',
    rd('trustee-vlek/test-vlek-report.bin'),
    { vlek: rd('trustee-vlek/test-vlek.der'), now: new Date('2025-06-01T00:00:00Z') },
  ],
];

describe.each(cases)('%s: every flipped bit is refused', (_name, report, base) => {
  const opts: VerifyReportOptions = { ...base, allowMissingCrl: true, cache: new SnpVerifyCache() };

  function refusals(ranges: [number, number][]): { flips: number; codes: Map<string, number> } {
    const codes = new Map<string, number>();
    let flips = 0;
    const copy = Uint8Array.from(report);
    for (const [from, to] of ranges) {
      for (let i = from; i < to; i++) {
        for (let bit = 0; bit < 8; bit++) {
          copy[i]! ^= 1 << bit;
          let c = 'verified';
          try {
            verifyReport(copy, opts);
          } catch (e) {
            if (!(e instanceof SnpError)) throw e;
            c = e.code;
          }
          copy[i]! ^= 1 << bit;
          flips++;
          codes.set(c, (codes.get(c) ?? 0) + 1);
        }
      }
    }
    return { flips, codes };
  }

  it('the untouched report verifies', () => {
    expect(verifyReport(report, opts).product).toBe('Milan');
  });

  it('each of the 5376 bits of [0, 0x2A0)', () => {
    const { flips, codes } = refusals([[0, SNP_SIGNED_LENGTH]]);
    expect(flips).toBe(SNP_SIGNED_LENGTH * 8);
    expect(codes.get('verified')).toBeUndefined();
    // Most flips reach the signature check; structural ones are refused earlier.
    expect(codes.get('bad-signature') ?? 0).toBeGreaterThan(4000);
  }, 600_000);

  it('each bit of the signature r and s', () => {
    const r = [OFF.signatureR, OFF.signatureR + SIG_COMPONENT_SIZE] as [number, number];
    const s = [OFF.signatureS, OFF.signatureS + SIG_COMPONENT_SIZE] as [number, number];
    const { flips, codes } = refusals([r, s]);
    expect(flips).toBe(2 * SIG_COMPONENT_SIZE * 8);
    expect(codes.get('verified')).toBeUndefined();
  }, 600_000);
});
