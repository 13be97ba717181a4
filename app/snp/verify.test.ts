import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { verifyReport, type VerifyReportOptions } from './verify';
import { reportBytesFromFile } from './report';
import { SnpError } from './errors';
import { pinnedSnpRoots, SnpTrustStore } from './roots';
import { parseSnpCert, pemCertificates, verifySignedBy, keyExtensions, SnpVerifyCache } from './chain';
import {
  chipId,
  makeCrl,
  makeKey,
  makeReport,
  makeTestRoots,
  rsaKey,
  type TestRoots,
} from '../../test/helpers/snp-pki';
import type { TcbParts } from './tcb';

const FIX = path.join(process.cwd(), 'test/fixtures/snp');
const rd = (p: string) => new Uint8Array(readFileSync(path.join(FIX, p)));

export const REAL = {
  trustee: {
    report: rd('reports/trustee-milan/test-report.bin'),
    vcek: rd('reports/trustee-milan/test-vcek.der'),
  },
  virtee: {
    report: reportBytesFromFile(rd('reports/virtee-sev-milan/report_milan.hex')),
    vcek: rd('reports/virtee-sev-milan/vcek_milan.der'),
  },
  vlek: {
    report: rd('reports/trustee-vlek/test-vlek-report.bin'),
    vlek: rd('reports/trustee-vlek/test-vlek.der'),
  },
};
const VLEK_TIME = new Date('2025-06-01T00:00:00Z');

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SnpError) return e.code;
    throw e;
  }
  return 'verified';
}
function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'verified';
}

describe('real reports', () => {
  it('the trustee Milan report verifies with its VCEK and names Milan', () => {
    const v = verifyReport(REAL.trustee.report, { vcek: REAL.trustee.vcek, allowMissingCrl: true });
    expect(v.product).toBe('Milan');
    expect(v.signer).toBe('vcek');
    expect(v.report.version).toBe(2);
    expect(v.tcb.reported).toEqual({ bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    expect(v.revocation).toEqual({ checked: false, reason: 'no CRL was given' });
    expect(v.intermediate.subjectCn).toBe('SEV-Milan');
  });

  it('the virtee Milan report (hex text) verifies with its VCEK', () => {
    const v = verifyReport(REAL.virtee.report, { vcek: REAL.virtee.vcek, allowMissingCrl: true });
    expect(v.product).toBe('Milan');
    expect(Buffer.from(v.report.chipId).toString('hex')).toMatch(/^d49554ec717f4e5b/);
  });

  it('the VLEK report verifies at 2025-06-01 and is refused at the real clock (the VLEK expired)', () => {
    const v = verifyReport(REAL.vlek.report, { vlek: REAL.vlek.vlek, allowMissingCrl: true, now: VLEK_TIME });
    expect(v.product).toBe('Milan');
    expect(v.signer).toBe('vlek');
    expect(v.report.version).toBe(3);
    expect(v.intermediate.subjectCn).toBe('SEV-VLEK-Milan');
    expect(v.key.extensions.cspId).toBe('CN=cc-us-east-2.amazonaws.com');
    const at = () => verifyReport(REAL.vlek.report, { vlek: REAL.vlek.vlek, allowMissingCrl: true });
    expect(code(at)).toBe('cert-expired');
    expect(message(at)).toMatch(/the VLEK expired at 2025-12-10T22:14:21.000Z/);
  });

  it('a VCEK given as PEM works as DER does', () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(REAL.trustee.vcek).toString('base64')}\n-----END CERTIFICATE-----\n`;
    const v = verifyReport(REAL.trustee.report, {
      vcek: new TextEncoder().encode(pem),
      allowMissingCrl: true,
    });
    expect(v.product).toBe('Milan');
  });

  it("each report fails with another report's key", () => {
    expect(
      code(() => verifyReport(REAL.trustee.report, { vcek: REAL.virtee.vcek, allowMissingCrl: true })),
    ).toBe('hwid-mismatch');
    expect(
      code(() => verifyReport(REAL.virtee.report, { vcek: REAL.trustee.vcek, allowMissingCrl: true })),
    ).toBe('hwid-mismatch');
    // The VLEK report names a VLEK: a VCEK is refused, and so is the VLEK for a VCEK report.
    expect(
      code(() =>
        verifyReport(REAL.vlek.report, { vcek: REAL.trustee.vcek, allowMissingCrl: true, now: VLEK_TIME }),
      ),
    ).toBe('signer-mismatch');
    expect(
      code(() =>
        verifyReport(REAL.trustee.report, { vlek: REAL.vlek.vlek, allowMissingCrl: true, now: VLEK_TIME }),
      ),
    ).toBe('signer-mismatch');
  });

  it("each report fails against the other products' roots", () => {
    for (const other of ['Genoa', 'Turin'] as const) {
      const roots = pinnedSnpRoots(other);
      // Claiming another product contradicts the key (v2) or the CPUID (v3).
      for (const [r, o] of [
        [REAL.trustee.report, { vcek: REAL.trustee.vcek }],
        [REAL.virtee.report, { vcek: REAL.virtee.vcek }],
        [REAL.vlek.report, { vlek: REAL.vlek.vlek, now: VLEK_TIME }],
      ] as [Uint8Array, VerifyReportOptions][]) {
        expect(code(() => verifyReport(r, { ...o, allowMissingCrl: true, product: other }))).toBe(
          'product-mismatch',
        );
        // Another product's roots standing in for Milan's: the ASK/ASVK did not sign the key.
        const trust = SnpTrustStore.of([{ ...roots, product: 'Milan' }]);
        expect(code(() => verifyReport(r, { ...o, allowMissingCrl: true, trust }))).toBe('chain-not-trusted');
        // A supplied chain ending in another product's ARK is not pinned for Milan.
        const chain = { ark: roots.ark.der, intermediate: roots.ask.der };
        expect(code(() => verifyReport(r, { ...o, allowMissingCrl: true, chain }))).toBe('root-not-pinned');
      }
    }
  });

  it('a supplied chain with the pinned ARK is accepted (the key server cert_chain form)', () => {
    const pem = readFileSync(path.join(FIX, 'reports/virtee-sev-milan/cert_chain_milan'), 'utf8');
    const [ask, ark] = pemCertificates(pem);
    const v = verifyReport(REAL.virtee.report, {
      vcek: REAL.virtee.vcek,
      allowMissingCrl: true,
      chain: { ark: ark!, intermediate: ask! },
    });
    expect(v.ark.subjectCn).toBe('ARK-Milan');
  });

  it('refuses without a CRL unless allowMissingCrl, naming the reason', () => {
    const f = () =>
      verifyReport(REAL.trustee.report, {
        vcek: REAL.trustee.vcek,
        crlUnavailableReason: 'HTTP 503 from the KDS',
      });
    expect(code(f)).toBe('crl-unavailable');
    expect(message(f)).toBe(
      'the Milan revocation list is unavailable (HTTP 503 from the KDS); refusing without it',
    );
  });

  it('the real Turin VCEK chains to the pinned Turin ASK and carries FMC and an 8-byte hwid', () => {
    const vcek = parseSnpCert(rd('roots/virtee-vcek_turin.der'), 'Turin VCEK');
    const roots = pinnedSnpRoots('Turin');
    verifySignedBy(vcek, roots.ask, 'Turin ASK -> VCEK');
    expect(() => verifySignedBy(vcek, pinnedSnpRoots('Genoa').ask, 'Genoa ASK -> VCEK')).toThrow(SnpError);
    const ext = keyExtensions(vcek, 'Turin', 'Turin VCEK');
    expect(ext.tcb.fmc).toBe(0);
    expect(ext.hwid).toHaveLength(8);
    const [ask, ark] = pemCertificates(
      readFileSync(path.join(FIX, 'roots/virtee-cert_chain_turin.pem'), 'utf8'),
    );
    expect(Buffer.compare(ark!, roots.ark.der)).toBe(0);
    expect(Buffer.compare(ask!, roots.ask.der)).toBe(0);
  });
});

describe('synthetic chains', () => {
  let roots: TestRoots;
  let trust: SnpTrustStore;
  const TCB: TcbParts = { bootloader: 4, tee: 1, snp: 22, microcode: 213 };
  const CHIP = chipId(1);
  const NOW = new Date('2026-01-01T00:00:00Z');
  let vcek: { der: Buffer; key: import('node:crypto').KeyObject };
  let report: Uint8Array;
  let crl: Buffer;

  beforeAll(() => {
    roots = makeTestRoots('Milan');
    trust = SnpTrustStore.of([roots.set]);
    vcek = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
    report = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, vcek.key);
    crl = makeCrl(roots);
  });
  const opts = (o: Partial<VerifyReportOptions> = {}): VerifyReportOptions => ({
    vcek: vcek.der,
    trust,
    crl,
    now: NOW,
    cache: new SnpVerifyCache(),
    ...o,
  });

  it('verifies with a CRL and reports it checked', () => {
    const v = verifyReport(report, opts());
    expect(v.revocation).toMatchObject({ checked: true });
    expect(v.tcb.reported).toEqual(TCB);
  });

  it('refuses a revoked ASK', () => {
    const revoked = makeCrl(roots, { revokedSerials: [0x5, 0x10001] });
    const f = () => verifyReport(report, opts({ crl: revoked }));
    expect(code(f)).toBe('revoked');
    expect(message(f)).toMatch(/the Milan ASK \(serial 0x010001\) was revoked on 2024-01-01/);
    // A CRL listing other serials only is fine.
    expect(verifyReport(report, opts({ crl: makeCrl(roots, { revokedSerials: [7] }) })).product).toBe(
      'Milan',
    );
  });

  it('refuses a revoked ASVK for a VLEK report, and a revoked supplied intermediate', () => {
    const k = makeKey(roots, 'vlek', { product: 'Milan', tcb: TCB });
    const r = makeReport({ product: 'Milan', tcb: TCB, signer: 'vlek' }, k.key);
    const revoked = makeCrl(roots, { revokedSerials: [0x10002] });
    const f = () => verifyReport(r, opts({ vcek: undefined, vlek: k.der, crl: revoked }));
    expect(message(f)).toMatch(/^the Milan ASVK \(serial 0x010002\) was revoked/);
    // The ASK is not on that list: VCEK reports still verify with it.
    expect(verifyReport(report, opts({ crl: revoked })).signer).toBe('vcek');
    // A re-issued ASK (supplied chain, signed by the pinned ARK) is checked against the CRL by its own serial.
    const reissued = makeTestRoots('Milan', 'test', { askSerial: 0x20001 });
    const chain = { ark: roots.ark.der, intermediate: reissued.ask.der };
    expect(verifyReport(report, opts({ chain })).intermediate.serialHex).toBe('020001');
    const f2 = () =>
      verifyReport(report, opts({ chain, crl: makeCrl(roots, { revokedSerials: [0x20001] }) }));
    expect(code(f2)).toBe('revoked');
  });

  it('refuses a CRL not signed by the ARK, a stale one and one from the future', () => {
    expect(
      code(() => verifyReport(report, opts({ crl: makeCrl(roots, { signer: rsaKey('x').privateKey }) }))),
    ).toBe('crl-invalid');
    const stale = makeCrl(roots, { nextUpdate: new Date('2025-06-01T00:00:00Z') });
    expect(message(() => verifyReport(report, opts({ crl: stale })))).toMatch(/out of date/);
    const future = makeCrl(roots, { thisUpdate: new Date('2027-01-01T00:00:00Z') });
    expect(code(() => verifyReport(report, opts({ crl: future })))).toBe('crl-invalid');
    expect(code(() => verifyReport(report, opts({ crl: Buffer.from([0x30, 0x03, 1, 2]) })))).toBe('bad-der');
  });

  it('allowMissingCrl proceeds and says so', () => {
    const v = verifyReport(
      report,
      opts({ crl: undefined, allowMissingCrl: true, crlUnavailableReason: 'offline' }),
    );
    expect(v.revocation).toEqual({ checked: false, reason: 'offline' });
  });

  it('refuses a VCEK whose TCB extensions differ from reported_tcb, naming the component', () => {
    const other = makeKey(roots, 'vcek', { product: 'Milan', tcb: { ...TCB, snp: 21 }, hwid: CHIP });
    const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, other.key);
    const f = () => verifyReport(r, opts({ vcek: other.der }));
    expect(code(f)).toBe('tcb-mismatch');
    expect(message(f)).toBe('the VCEK is for another TCB than reported_tcb (snp: VCEK 21, report 22)');
  });

  it('refuses a VCEK for another chip', () => {
    const other = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: chipId(2) });
    const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, other.key);
    expect(code(() => verifyReport(r, opts({ vcek: other.der })))).toBe('hwid-mismatch');
  });

  it('refuses a report that masks its chip id when a VCEK signs it', () => {
    const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP, maskChipKey: true }, vcek.key);
    expect(code(() => verifyReport(r, opts()))).toBe('chip-id-masked');
  });

  it('refuses an expired and a not-yet-valid VCEK, and honours `now`', () => {
    const k = makeKey(roots, 'vcek', {
      product: 'Milan',
      tcb: TCB,
      hwid: CHIP,
      notBefore: new Date('2024-01-01T00:00:00Z'),
      notAfter: new Date('2025-01-01T00:00:00Z'),
    });
    const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, k.key);
    expect(code(() => verifyReport(r, opts({ vcek: k.der })))).toBe('cert-expired');
    expect(code(() => verifyReport(r, opts({ vcek: k.der, now: new Date('2023-06-01T00:00:00Z') })))).toBe(
      'cert-not-yet-valid',
    );
    expect(verifyReport(r, opts({ vcek: k.der, now: new Date('2024-06-01T00:00:00Z') })).product).toBe(
      'Milan',
    );
  });

  it('refuses a VCEK signed with other PSS parameters or by a key outside the chain', () => {
    const bogus = makeTestRoots('Milan', 'bogus');
    const k = makeKey(bogus, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
    const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, k.key);
    expect(code(() => verifyReport(r, opts({ vcek: k.der })))).toBe('chain-not-trusted');
    // A VLEK signed by the ASK (not the ASVK) does not chain.
    const wrongIssuer = makeKey({ ...roots, asvk: roots.ask }, 'vlek', { product: 'Milan', tcb: TCB });
    const rv = makeReport({ product: 'Milan', tcb: TCB, signer: 'vlek' }, wrongIssuer.key);
    expect(code(() => verifyReport(rv, opts({ vcek: undefined, vlek: wrongIssuer.der })))).toBe(
      'chain-not-trusted',
    );
  });

  it('refuses a key missing an SPL extension', () => {
    const k = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP, omit: '3.8' });
    const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, k.key);
    expect(message(() => verifyReport(r, opts({ vcek: k.der })))).toMatch(
      /missing the microcode SPL extension/,
    );
  });

  it('verifies a VLEK report through the ASVK', () => {
    const k = makeKey(roots, 'vlek', { product: 'Milan', tcb: TCB });
    const r = makeReport({ product: 'Milan', tcb: TCB, signer: 'vlek' }, k.key);
    const v = verifyReport(r, opts({ vcek: undefined, vlek: k.der }));
    expect(v.signer).toBe('vlek');
  });

  it('a v2 report takes its product from the key; a contradicting product is refused', () => {
    const k = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
    const r = makeReport({ product: 'Milan', version: 2, tcb: TCB, chipId: CHIP }, k.key);
    expect(verifyReport(r, opts({ vcek: k.der })).product).toBe('Milan');
    expect(verifyReport(r, opts({ vcek: k.der, product: 'Milan' })).product).toBe('Milan');
    expect(message(() => verifyReport(r, opts({ vcek: k.der, product: 'Turin' })))).toBe(
      'the signing key says Milan but the given product says Turin',
    );
    // A key whose product-name extension names another product than its issuer's chain is refused.
    const named = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP, productName: 'Genoa-A0' });
    const r2 = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP }, named.key);
    expect(code(() => verifyReport(r2, opts({ vcek: named.der })))).toBe('product-mismatch');
  });

  it('Turin: FMC in byte 0 of the TCB, an 8-byte hwid, the fmc extension', () => {
    const t = makeTestRoots('Turin', 'turin');
    const tcb: TcbParts = { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 };
    const k = makeKey(t, 'vcek', { product: 'Turin', tcb, hwid: CHIP.subarray(0, 8) });
    const r = makeReport({ product: 'Turin', tcb, chipId: CHIP }, k.key);
    const o = { vcek: k.der, trust: SnpTrustStore.of([t.set]), crl: makeCrl(t), now: NOW };
    const v = verifyReport(r, o);
    expect(v.product).toBe('Turin');
    expect(v.tcb.reported).toEqual(tcb);
    expect(Array.from(v.report.reportedTcb)).toEqual([1, 2, 3, 4, 0, 0, 0, 5]);
    const k2 = makeKey(t, 'vcek', { product: 'Turin', tcb: { ...tcb, fmc: 0 }, hwid: CHIP.subarray(0, 8) });
    const r2 = makeReport({ product: 'Turin', tcb, chipId: CHIP }, k2.key);
    expect(message(() => verifyReport(r2, { ...o, vcek: k2.der }))).toMatch(/fmc: VCEK 0, report 1/);
  });

  it('Genoa: CPUID model 0x11 is Genoa and must match the key', () => {
    const g = makeTestRoots('Genoa', 'genoa');
    const k = makeKey(g, 'vcek', { product: 'Genoa', tcb: TCB, hwid: CHIP });
    const r = makeReport({ product: 'Genoa', tcb: TCB, chipId: CHIP }, k.key);
    const o = { vcek: k.der, trust: SnpTrustStore.of([g.set, roots.set]), crl: makeCrl(g), now: NOW };
    expect(verifyReport(r, o).product).toBe('Genoa');
    const milanKey = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
    const r2 = makeReport({ product: 'Genoa', tcb: TCB, chipId: CHIP }, milanKey.key);
    expect(message(() => verifyReport(r2, { ...o, vcek: milanKey.der }))).toBe(
      'the report CPUID says Genoa but the signing key says Milan',
    );
  });
});
