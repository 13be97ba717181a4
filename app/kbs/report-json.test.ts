import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeCrl, makeKey, makeReport, makeTestRoots, chipId } from '../../test/helpers/snp-pki';
import { OFF, reportBytesFromFile, SNP_REPORT_SIZE } from '../snp/report';
import { SnpTrustStore, type SnpProduct } from '../snp/roots';
import { decodeTcb } from '../snp/tcb';
import { verifyReport } from '../snp/verify';
import { KbsProtocolError } from './errors';
import { parseJsonLossless } from './lossless-json';
import { reportBytesFromKbsJson } from './report-json';

const FIX = path.join(process.cwd(), 'test/fixtures/snp/reports');
const rd = (p: string) => new Uint8Array(readFileSync(path.join(FIX, p)));
const REAL = {
  trusteeMilan: {
    report: rd('trustee-milan/test-report.bin'),
    vcek: rd('trustee-milan/test-vcek.der'),
    product: 'Milan' as const,
  },
  virteeMilan: {
    report: reportBytesFromFile(rd('virtee-sev-milan/report_milan.hex')),
    vcek: rd('virtee-sev-milan/vcek_milan.der'),
    product: 'Milan' as const,
  },
  trusteeVlek: {
    report: rd('trustee-vlek/test-vlek-report.bin'),
    vlek: rd('trustee-vlek/test-vlek.der'),
    product: 'Milan' as const,
  },
};

// ---- A test-only emitter written from virtee/sev's serde derives, not from the parser under test. ----
// virtee/sev 6 `AttestationReport` (src/firmware/guest/types/snp.rs): fields in declaration order;
// `Array<u8, N>` and `[u8; N]` serialise as number arrays; `GuestPolicy(u64)`, `PlatformInfo(u64)`,
// `KeyInfo(u32)` are newtypes, so plain integers; `TcbVersion {fmc: Option<u8>, bootloader, tee, snp,
// microcode}` (host/types/snp.rs) parsed by generation; `Version {major, minor, build}` from the bytes
// [build, minor, major]; `cpuid_*: Option<u8>` (None for v2); `Signature {r, s}` 72 bytes each.
type Json = unknown;
function le(b: Uint8Array, off: number, n: number): bigint {
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i]!);
  return v;
}
const num = (v: bigint): number | bigint => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
const arr = (b: Uint8Array, off: number, n: number) => Array.from(b.subarray(off, off + n));
function tcbJson(b: Uint8Array, off: number, product: SnpProduct) {
  const t = decodeTcb(b.subarray(off, off + 8), product);
  return { fmc: t.fmc ?? null, bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode };
}
function virteeJson(
  b: Uint8Array,
  product: SnpProduct,
  opts: { mitVectors?: boolean } = {},
): Record<string, Json> {
  const version = Number(le(b, OFF.version, 4));
  const o: Record<string, Json> = {
    version,
    guest_svn: Number(le(b, OFF.guestSvn, 4)),
    policy: num(le(b, OFF.policy, 8)),
    family_id: arr(b, OFF.familyId, 16),
    image_id: arr(b, OFF.imageId, 16),
    vmpl: Number(le(b, OFF.vmpl, 4)),
    sig_algo: Number(le(b, OFF.signatureAlgo, 4)),
    current_tcb: tcbJson(b, OFF.currentTcb, product),
    plat_info: num(le(b, OFF.platformInfo, 8)),
    key_info: Number(le(b, OFF.signerInfo, 4)),
    report_data: arr(b, OFF.reportData, 64),
    measurement: arr(b, OFF.measurement, 48),
    host_data: arr(b, OFF.hostData, 32),
    id_key_digest: arr(b, OFF.idKeyDigest, 48),
    author_key_digest: arr(b, OFF.authorKeyDigest, 48),
    report_id: arr(b, OFF.reportId, 32),
    report_id_ma: arr(b, OFF.reportIdMa, 32),
    reported_tcb: tcbJson(b, OFF.reportedTcb, product),
    cpuid_fam_id: version >= 3 ? b[OFF.cpuidFamily] : null,
    cpuid_mod_id: version >= 3 ? b[OFF.cpuidModel] : null,
    cpuid_step: version >= 3 ? b[OFF.cpuidStepping] : null,
    chip_id: arr(b, OFF.chipId, 64),
    committed_tcb: tcbJson(b, OFF.committedTcb, product),
    current: { major: b[OFF.currentMajor], minor: b[OFF.currentMinor], build: b[OFF.currentBuild] },
    committed: { major: b[OFF.committedMajor], minor: b[OFF.committedMinor], build: b[OFF.committedBuild] },
    launch_tcb: tcbJson(b, OFF.launchTcb, product),
  };
  if (opts.mitVectors) {
    o.launch_mit_vector = version >= 5 ? num(le(b, OFF.launchMitVector, 8)) : null;
    o.current_mit_vector = version >= 5 ? num(le(b, OFF.currentMitVector, 8)) : null;
  }
  o.signature = { r: arr(b, OFF.signatureR, 72), s: arr(b, OFF.signatureS, 72) };
  return o;
}
// Older virtee (before 6): every byte spelled out, reserved members included, TCB with `_reserved`.
function legacyVirteeJson(b: Uint8Array): Record<string, Json> {
  const t = (off: number) => ({
    bootloader: b[off],
    tee: b[off + 1],
    _reserved: arr(b, off + 2, 4),
    snp: b[off + 6],
    microcode: b[off + 7],
  });
  return {
    version: Number(le(b, 0, 4)),
    guest_svn: Number(le(b, 4, 4)),
    policy: num(le(b, 8, 8)),
    family_id: arr(b, 0x10, 16),
    image_id: arr(b, 0x20, 16),
    vmpl: Number(le(b, 0x30, 4)),
    sig_algo: Number(le(b, 0x34, 4)),
    current_tcb: t(0x38),
    plat_info: num(le(b, 0x40, 8)),
    _author_key_en: Number(le(b, 0x48, 4)),
    _reserved_0: Number(le(b, 0x4c, 4)),
    report_data: arr(b, 0x50, 64),
    measurement: arr(b, 0x90, 48),
    host_data: arr(b, 0xc0, 32),
    id_key_digest: arr(b, 0xe0, 48),
    author_key_digest: arr(b, 0x110, 48),
    report_id: arr(b, 0x140, 32),
    report_id_ma: arr(b, 0x160, 32),
    reported_tcb: t(0x180),
    _reserved_1: arr(b, 0x188, 24),
    chip_id: arr(b, 0x1a0, 64),
    committed_tcb: t(0x1e0),
    current_build: b[0x1e8],
    current_minor: b[0x1e9],
    current_major: b[0x1ea],
    _reserved_2: b[0x1eb],
    committed_build: b[0x1ec],
    committed_minor: b[0x1ed],
    committed_major: b[0x1ee],
    _reserved_3: b[0x1ef],
    launch_tcb: t(0x1f0),
    _reserved_4: arr(b, 0x1f8, 168),
    signature: { r: arr(b, 0x2a0, 72), s: arr(b, 0x2e8, 72), _reserved: new Array(368).fill(0) },
  };
}
/** serde_json's text: u64 values as plain digits (JSON.stringify cannot write a bigint). */
function toJsonText(v: Json): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `@@${x}@@` : x)).replace(
    /"@@(\d+)@@"/g,
    '$1',
  );
}
const viaWire = (o: Json, product?: SnpProduct) =>
  reportBytesFromKbsJson(parseJsonLossless(toJsonText(o)), product);

function refused(o: Json, re: RegExp, product?: SnpProduct) {
  try {
    reportBytesFromKbsJson(o, product);
  } catch (e) {
    expect(e).toBeInstanceOf(KbsProtocolError);
    expect((e as KbsProtocolError).kind).toBe('AttestationError');
    expect((e as Error).message).toMatch(re);
    return;
  }
  expect.unreachable(`accepted; expected ${re}`);
}

describe('reportBytesFromKbsJson', () => {
  it('rebuilds the real reports byte for byte from virtee 6 JSON, and their signatures verify', () => {
    const now = new Date('2025-06-01T00:00:00Z');
    for (const [name, fx] of Object.entries(REAL)) {
      const json = virteeJson(fx.report, fx.product);
      const v2 = fx.report[0] === 2;
      const rebuilt = viaWire(json, v2 ? fx.product : undefined);
      expect(Buffer.from(rebuilt).equals(Buffer.from(fx.report)), name).toBe(true);
      const key = 'vcek' in fx ? { vcek: fx.vcek } : { vlek: fx.vlek };
      const verified = verifyReport(rebuilt, { ...key, allowMissingCrl: true, now });
      expect(verified.product, name).toBe('Milan');
      // v2 without a product hint: TCBs without fmc use the Milan/Genoa layout.
      if (v2) expect(Buffer.from(viaWire(json)).equals(Buffer.from(fx.report))).toBe(true);
    }
  });

  it('rebuilds the real reports from older virtee JSON (reserved members spelled out)', () => {
    for (const [name, fx] of Object.entries(REAL)) {
      const rebuilt = viaWire(legacyVirteeJson(fx.report));
      expect(Buffer.from(rebuilt).equals(Buffer.from(fx.report)), name).toBe(true);
    }
  });

  it('keeps u64 fields above 2^53 exact through parseJsonLossless', () => {
    const b = Buffer.from(REAL.trusteeVlek.report);
    b.writeBigUInt64LE(0xfedcba9876543211n, OFF.platformInfo);
    b.writeBigUInt64LE(0x8000000000030000n, OFF.policy);
    b.writeUInt32LE(5, OFF.version);
    b.writeBigUInt64LE(0xffffffffffffffffn, OFF.launchMitVector);
    b.writeBigUInt64LE(0x20000000000001n, OFF.currentMitVector);
    const json = virteeJson(b, 'Milan', { mitVectors: true });
    const text = toJsonText(json);
    expect(text).toContain('"plat_info":18364758544493064721');
    expect(text).toContain('"launch_mit_vector":18446744073709551615');
    expect(Buffer.from(viaWire(json)).equals(b)).toBe(true);
    // JSON.parse would round them: the rebuild refuses rather than sign-check the wrong bytes.
    expect(() => reportBytesFromKbsJson(JSON.parse(text))).toThrow(
      /policy: integer above 2\^53 lost its precision/,
    );
  });

  it('lays out Turin TCBs by the CPUID product and verifies a Turin report', () => {
    const t = makeTestRoots('Turin', 'turin-json');
    const tcb = { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 };
    const chip = chipId(9);
    const k = makeKey(t, 'vcek', { product: 'Turin', tcb, hwid: chip.subarray(0, 8) });
    const r = makeReport({ product: 'Turin', tcb, chipId: chip }, k.key);
    const json = virteeJson(r, 'Turin');
    expect(json.reported_tcb).toEqual(tcb);
    const rebuilt = viaWire(json);
    expect(Buffer.from(rebuilt).equals(Buffer.from(r))).toBe(true);
    const v = verifyReport(rebuilt, {
      vcek: k.der,
      trust: SnpTrustStore.of([t.set]),
      crl: makeCrl(t),
      now: new Date('2026-01-01T00:00:00Z'),
    });
    expect(v.tcb.reported).toEqual(tcb);
    refused({ ...json, current_tcb: { ...tcb, fmc: null } }, /current_tcb\.fmc: a Turin TCB carries fmc/);
  });

  it('accepts newer-version members as missing or null, and refuses them set in older versions', () => {
    const v3 = virteeJson(REAL.trusteeVlek.report, 'Milan');
    const noMit = { ...v3 };
    expect(reportBytesFromKbsJson({ ...noMit, launch_mit_vector: null, current_mit_vector: null })).toEqual(
      REAL.trusteeVlek.report,
    );
    refused({ ...v3, launch_mit_vector: 1 }, /launch_mit_vector: must be absent in a version 3 report/);
    const v2 = virteeJson(REAL.trusteeMilan.report, 'Milan');
    const { cpuid_fam_id: _f, cpuid_mod_id: _m, cpuid_step: _s, ...v2NoCpuid } = v2;
    expect(reportBytesFromKbsJson(v2NoCpuid, 'Milan')).toEqual(REAL.trusteeMilan.report);
    refused({ ...v2, cpuid_fam_id: 0x19 }, /cpuid_fam_id: must be absent in a version 2 report/, 'Milan');
  });

  it('refuses malformed members, naming the field', () => {
    const good = virteeJson(REAL.trusteeVlek.report, 'Milan');
    const cases: [Record<string, Json>, RegExp][] = [
      [
        { ...good, measurement: (good.measurement as number[]).slice(1) },
        /measurement: expected 48 bytes, got 47/,
      ],
      [{ ...good, report_data: 'aa' }, /report_data: expected an array of 64 bytes, got a string/],
      [
        { ...good, chip_id: [...(good.chip_id as number[]).slice(0, 63), 256] },
        /chip_id\[63\]: expected a byte/,
      ],
      [{ ...good, host_data: [...(good.host_data as number[]).slice(0, 31), -1] }, /host_data\[31\]/],
      [{ ...good, vmpl: 2 ** 32 }, /vmpl: 4294967296 is out of range for an unsigned 32-bit integer/],
      [{ ...good, guest_svn: 1.5 }, /guest_svn: expected an unsigned 32-bit integer/],
      [{ ...good, policy: -1 }, /policy: -1 is out of range/],
      [{ ...good, policy: 2n ** 64n }, /policy: .* out of range for an unsigned 64-bit/],
      [{ ...good, plat_info: '5' }, /plat_info: expected an unsigned 64-bit integer, got a string/],
      [{ ...good, current_tcb: [1, 2] }, /current_tcb: expected a TCB object/],
      [
        { ...good, reported_tcb: { ...(good.reported_tcb as object), snp: 300 } },
        /reported_tcb\.snp: 300 is out of range/,
      ],
      [
        { ...good, launch_tcb: { ...(good.launch_tcb as object), fmc: 1 } },
        /launch_tcb\.fmc: must be null on Milan/,
      ],
      [
        { ...good, committed_tcb: { ...(good.committed_tcb as object), extra: 1 } },
        /committed_tcb\.extra: unknown member/,
      ],
      [{ ...good, current: { major: 1, minor: 2 } }, /current\.build: expected an unsigned 8-bit integer/],
      [{ ...good, signature: { r: good.measurement, s: [] } }, /signature\.r: expected 72 bytes, got 48/],
      [
        { ...good, signature: { ...(good.signature as object), _reserved: new Array(368).fill(1) } },
        /signature\._reserved: must be zero/,
      ],
      [{ ...good, sig: 1 }, /attestation_report\.sig: unknown member/],
      [{ ...good, version: 1 }, /version: 1 is not an SNP report version/],
      [{ ...good, cpuid_fam_id: 0x17 }, /cpuid_fam_id: CPUID family 0x17/],
      [{ ...good, _author_key_en: 0 }, /_author_key_en: cannot be combined with key_info/],
      [{ ...good, current_build: 1 }, /current_build: cannot be combined with current/],
    ];
    for (const [o, re] of cases) refused(o, re);
    refused(null, /attestation_report: expected an object, got null/);
    refused([1], /attestation_report: expected an object, got an array/);
    const { signature: _sig, ...noSig } = good;
    refused(noSig, /signature: expected \{r, s\}, got undefined/);
    const { chip_id: _c, ...noChip } = good;
    refused(noChip, /chip_id: expected an array of 64 bytes, got undefined/);
  });

  it('checks the CPUID product against the key product hint', () => {
    const v3 = virteeJson(REAL.trusteeVlek.report, 'Milan');
    refused(v3, /the report's CPU is Milan but the signing key is for Genoa/, 'Genoa');
    const turinTcb = { fmc: 1, bootloader: 1, tee: 1, snp: 1, microcode: 1 };
    const v2Turin = {
      ...virteeJson(REAL.trusteeMilan.report, 'Milan'),
      current_tcb: turinTcb,
      reported_tcb: turinTcb,
      committed_tcb: turinTcb,
      launch_tcb: turinTcb,
    };
    refused(v2Turin, /product is unknown/);
    expect(reportBytesFromKbsJson(v2Turin, 'Turin')).toHaveLength(SNP_REPORT_SIZE);
  });
});
