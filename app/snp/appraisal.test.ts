import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import { appraiseReport, type SnpAppraisalPolicy } from './appraisal';
import { verifyReport, type VerifiedSnpReport } from './verify';
import { SnpTrustStore } from './roots';
import {
  chipId,
  makeCrl,
  makeKey,
  makeReport,
  makeTestRoots,
  type ReportSpec,
  type TestRoots,
} from '../../test/helpers/snp-pki';

const TCB = { bootloader: 4, tee: 1, snp: 22, microcode: 213 };
const CHIP = chipId(9);
const M = Buffer.alloc(48, 0x11);
const ID = Buffer.alloc(48, 0x22);
const AUTHOR = Buffer.alloc(48, 0x33);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let roots: TestRoots;
let vcek: { der: Buffer; key: KeyObject };
let trust: SnpTrustStore;
let crl: Buffer;

beforeAll(() => {
  roots = makeTestRoots('Milan', 'appraisal');
  vcek = makeKey(roots, 'vcek', { product: 'Milan', tcb: TCB, hwid: CHIP });
  trust = SnpTrustStore.of([roots.set]);
  crl = makeCrl(roots);
});

function verified(spec: Partial<ReportSpec> = {}): VerifiedSnpReport {
  const r = makeReport({ product: 'Milan', tcb: TCB, chipId: CHIP, measurement: M, ...spec }, vcek.key);
  return verifyReport(r, { vcek: vcek.der, trust, crl, now: new Date('2026-01-01T00:00:00Z') });
}

function refusals(v: VerifiedSnpReport, policy: SnpAppraisalPolicy) {
  return appraiseReport(v, policy).refusals.map((r) => r.field);
}

describe('appraiseReport', () => {
  it('accepts an allowed measurement and says what vouched', () => {
    const a = appraiseReport(verified(), { measurements: [hex(M)] });
    expect(a).toEqual({ accepted: true, refusals: [], vouchedBy: 'measurement' });
  });

  it('denies by default: no allow-list and no trusted keys', () => {
    const a = appraiseReport(verified(), {});
    expect(a.accepted).toBe(false);
    expect(a.refusals[0]!.message).toMatch(/nothing is trusted/);
  });

  it('refuses a measurement not on the list, naming expected and reported values', () => {
    const a = appraiseReport(verified(), { measurements: ['ab'.repeat(48)] });
    expect(a.accepted).toBe(false);
    expect(a.refusals[0]).toMatchObject({
      field: 'measurement',
      expected: 'one of 1 allowed measurement(s)',
    });
    expect(a.refusals[0]!.reported).toContain(hex(M));
  });

  it('a trusted ID key digest vouches instead of a measurement', () => {
    const v = verified({ idKeyDigest: ID });
    expect(appraiseReport(v, { trustedIdKeyDigests: [hex(ID)] }).vouchedBy).toBe('id-key');
    expect(refusals(v, { trustedIdKeyDigests: [hex(AUTHOR)] })).toEqual(['measurement']);
    expect(() => appraiseReport(v, { trustedIdKeyDigests: ['00'.repeat(48)] })).toThrow(/all-zero/);
  });

  it('a trusted author key counts only when AUTHOR_KEY_EN is set', () => {
    const on = verified({ idKeyDigest: ID, authorKeyDigest: AUTHOR, authorKeyEnabled: true });
    expect(appraiseReport(on, { trustedAuthorKeyDigests: [hex(AUTHOR)] }).vouchedBy).toBe('author-key');
    const off = verified({ idKeyDigest: ID, authorKeyDigest: AUTHOR, authorKeyEnabled: false });
    const a = appraiseReport(off, { trustedAuthorKeyDigests: [hex(AUTHOR)] });
    expect(a.accepted).toBe(false);
    expect(a.refusals[0]!.reported).toMatch(/author key not enabled/);
  });

  it('minimum TCB per component (reported and launch)', () => {
    const v = verified({ launchTcb: { ...TCB, microcode: 200 } });
    const base = { measurements: [hex(M)] };
    expect(refusals(v, { ...base, minimumTcb: { snp: 22, microcode: 213 } })).toEqual([]);
    const a = appraiseReport(v, { ...base, minimumTcb: { snp: 23, bootloader: 5 } });
    expect(a.refusals.map((r) => [r.field, r.expected, r.reported])).toEqual([
      ['reported_tcb.bootloader', '>= 5', '4'],
      ['reported_tcb.snp', '>= 23', '22'],
    ]);
    expect(refusals(v, { ...base, minimumLaunchTcb: { microcode: 213 } })).toEqual(['launch_tcb.microcode']);
  });

  it('policy rules: debug, SMT, migration agent, single socket', () => {
    const base = { measurements: [hex(M)] };
    const debug = verified({ policy: 0x30000n | (1n << 19n) });
    expect(refusals(debug, base)).toEqual(['policy.debug']);
    expect(refusals(debug, { ...base, allowDebug: true })).toEqual([]);
    const smt = verified({ policy: 0x30000n });
    expect(refusals(smt, base)).toEqual([]);
    expect(refusals(smt, { ...base, allowSmt: false })).toEqual(['policy.smt']);
    const ma = verified({ policy: 0x30000n | (1n << 18n) });
    expect(refusals(ma, base)).toEqual(['policy.migrate_ma']);
    expect(refusals(ma, { ...base, allowMigrationAgent: true })).toEqual([]);
    expect(refusals(smt, { ...base, requireSingleSocket: true })).toEqual(['policy.single_socket']);
    expect(
      refusals(verified({ policy: 0x30000n | (1n << 20n) }), { ...base, requireSingleSocket: true }),
    ).toEqual([]);
  });

  it('VMPL, version, guest SVN, host_data, family and image id, report_data', () => {
    const v = verified({
      vmpl: 1,
      guestSvn: 3,
      hostData: Buffer.alloc(32, 0x44),
      familyId: Buffer.alloc(16, 0x55),
      imageId: Buffer.alloc(16, 0x66),
      reportData: Buffer.concat([Buffer.alloc(48, 0x77), Buffer.alloc(16)]),
    });
    const ok: SnpAppraisalPolicy = {
      measurements: [hex(M)],
      vmpl: 1,
      minimumReportVersion: 3,
      minimumGuestSvn: 3,
      hostData: '44'.repeat(32),
      familyId: '55'.repeat(16),
      imageId: '66'.repeat(16),
      reportData: '77'.repeat(48), // zero-padded to 64 bytes
    };
    expect(appraiseReport(v, ok).accepted).toBe(true);
    const bad: SnpAppraisalPolicy = {
      ...ok,
      vmpl: 0,
      minimumReportVersion: 4,
      minimumGuestSvn: 4,
      hostData: '45'.repeat(32),
      familyId: '56'.repeat(16),
      imageId: '67'.repeat(16),
      reportData: '78'.repeat(64),
    };
    const a = appraiseReport(v, bad);
    expect(a.refusals.map((r) => r.field)).toEqual([
      'vmpl',
      'version',
      'guest_svn',
      'host_data',
      'family_id',
      'image_id',
      'report_data',
    ]);
    expect(a.refusals[0]!.message).toBe(
      'vmpl: the report was requested from another VMPL (expected 0, reported 1)',
    );
    expect(a.refusals[3]).toMatchObject({ expected: '45'.repeat(32), reported: '44'.repeat(32) });
    expect(a.vouchedBy).toBeUndefined();
  });

  it('refuses malformed policy values instead of comparing garbage', () => {
    expect(() => appraiseReport(verified(), { measurements: ['abc'] })).toThrow(/48 bytes of hex/);
    expect(() => appraiseReport(verified(), { measurements: [hex(M)], hostData: 'zz' })).toThrow(/host_data/);
  });

  it('only a verified report can be appraised (type-level)', () => {
    const fake = { report: {} };
    // @ts-expect-error a plain object is not a VerifiedSnpReport
    expect(() => appraiseReport(fake, { measurements: [hex(M)] })).toThrow();
  });
});

describe('appraising the real reports', () => {
  it('the VLEK report: VMPL 1, its measurement, no debug', () => {
    const FIX = path.join(process.cwd(), 'test/fixtures/snp/reports/trustee-vlek');
    const v = verifyReport(new Uint8Array(readFileSync(path.join(FIX, 'test-vlek-report.bin'))), {
      vlek: new Uint8Array(readFileSync(path.join(FIX, 'test-vlek.der'))),
      allowMissingCrl: true,
      now: new Date('2025-06-01T00:00:00Z'),
    });
    const m = hex(v.report.measurement);
    expect(appraiseReport(v, { measurements: [m], vmpl: 1, minimumTcb: { snp: 24 } }).accepted).toBe(true);
    expect(refusals(v, { measurements: [m], vmpl: 0 })).toEqual(['vmpl']);
  });
});
