import { beforeAll, describe, expect, it } from 'vitest';
import { verifyReport } from '../snp/verify';
import { parseReport, SNP_REPORT_SIZE, OFF } from '../snp/report';
import { parseCrl } from '../snp/crl';
import { keyExtensions, parseSnpCert } from '../snp/chain';
import { encodeTcb, type TcbParts } from '../snp/tcb';
import { SnpError } from '../snp/errors';
import { SnpTrustStore, type SnpProduct } from '../snp/roots';
import {
  decodeCertTable,
  DEFAULT_SNP_POLICY,
  reportToVirteeJson,
  sha384,
  SimulatedSnpFirmware,
} from './snp-firmware';
import { stringifyExact } from './exact-json';

const MEASUREMENT = sha384('simulated guest image');
const rd = (seed: number) => Uint8Array.from({ length: 64 }, (_, i) => (seed + i) & 0xff);

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof SnpError) return e.code;
    throw e;
  }
  return 'verified';
}

/**
 * An independent rebuild of the 0x4A0 bytes from the JSON form (what a service must do): if it gives back
 * the signed bytes, every byte array and TCB object in the JSON carries the raw report's values.
 */
function rebuildFromJson(j: Record<string, unknown>, product: SnpProduct): Uint8Array {
  const b = Buffer.alloc(SNP_REPORT_SIZE);
  const arr = (v: unknown, off: number, n: number) => {
    const a = v as number[];
    expect(a).toHaveLength(n);
    b.set(a, off);
  };
  const tcb = (v: unknown, off: number) => {
    const t = v as TcbParts & { fmc: number | null };
    b.set(encodeTcb({ ...t, fmc: t.fmc ?? undefined }, product), off);
  };
  b.writeUInt32LE(j.version as number, OFF.version);
  b.writeUInt32LE(j.guest_svn as number, OFF.guestSvn);
  b.writeBigUInt64LE(BigInt(j.policy as bigint), OFF.policy);
  arr(j.family_id, OFF.familyId, 16);
  arr(j.image_id, OFF.imageId, 16);
  b.writeUInt32LE(j.vmpl as number, OFF.vmpl);
  b.writeUInt32LE(j.sig_algo as number, OFF.signatureAlgo);
  tcb(j.current_tcb, OFF.currentTcb);
  b.writeBigUInt64LE(BigInt(j.plat_info as bigint), OFF.platformInfo);
  b.writeUInt32LE(j.key_info as number, OFF.signerInfo);
  arr(j.report_data, OFF.reportData, 64);
  arr(j.measurement, OFF.measurement, 48);
  arr(j.host_data, OFF.hostData, 32);
  arr(j.id_key_digest, OFF.idKeyDigest, 48);
  arr(j.author_key_digest, OFF.authorKeyDigest, 48);
  arr(j.report_id, OFF.reportId, 32);
  arr(j.report_id_ma, OFF.reportIdMa, 32);
  tcb(j.reported_tcb, OFF.reportedTcb);
  if (j.cpuid_fam_id !== null) {
    b[OFF.cpuidFamily] = j.cpuid_fam_id as number;
    b[OFF.cpuidModel] = j.cpuid_mod_id as number;
    b[OFF.cpuidStepping] = j.cpuid_step as number;
  }
  arr(j.chip_id, OFF.chipId, 64);
  tcb(j.committed_tcb, OFF.committedTcb);
  const cur = j.current as { major: number; minor: number; build: number };
  const com = j.committed as { major: number; minor: number; build: number };
  b[OFF.currentBuild] = cur.build;
  b[OFF.currentMinor] = cur.minor;
  b[OFF.currentMajor] = cur.major;
  b[OFF.committedBuild] = com.build;
  b[OFF.committedMinor] = com.minor;
  b[OFF.committedMajor] = com.major;
  tcb(j.launch_tcb, OFF.launchTcb);
  if (j.launch_mit_vector !== undefined) {
    b.writeBigUInt64LE(BigInt(j.launch_mit_vector as bigint), OFF.launchMitVector);
    b.writeBigUInt64LE(BigInt(j.current_mit_vector as bigint), OFF.currentMitVector);
  }
  const sig = j.signature as { r: number[]; s: number[] };
  arr(sig.r, OFF.signatureR, 72);
  arr(sig.s, OFF.signatureS, 72);
  return new Uint8Array(b);
}

describe.each(['Milan', 'Genoa', 'Turin'] as const)('a simulated %s chip', (product) => {
  let fw: SimulatedSnpFirmware;
  beforeAll(async () => {
    fw = await SimulatedSnpFirmware.create({ product, rsaModulusBits: 2048 });
  });

  it('signs reports that verify against its own roots and CRL, bound to the report data', () => {
    const guest = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY });
    const raw = guest.getReport(rd(1));
    const v = verifyReport(raw, { vcek: fw.vcek().der, crl: fw.roots.crl, trust: fw.trustStore() });
    expect(v.product).toBe(product);
    expect(v.signer).toBe('vcek');
    expect(v.revocation.checked).toBe(true);
    expect(Buffer.from(v.report.reportData)).toEqual(Buffer.from(rd(1)));
    expect(Buffer.from(v.report.measurement)).toEqual(Buffer.from(MEASUREMENT));
    expect(v.tcb.reported).toEqual(fw.tcb);
    expect(v.report.vmpl).toBe(0);
    expect(v.report.version).toBe(3);
  });

  it("is refused by AMD's pinned roots (it is not AMD)", () => {
    const raw = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(2));
    expect(code(() => verifyReport(raw, { vcek: fw.vcek().der, crl: fw.roots.crl }))).toBe(
      'chain-not-trusted',
    );
  });

  it('one flipped bit anywhere in the signed part breaks the signature', () => {
    const raw = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(3));
    const bad = Uint8Array.from(raw);
    bad[OFF.measurement + 5]! ^= 0x01;
    expect(
      code(() => verifyReport(bad, { vcek: fw.vcek().der, crl: fw.roots.crl, trust: fw.trustStore() })),
    ).toBe('bad-signature');
  });

  it('the VCEK carries the SPL and hwid extensions of its chip and TCB', () => {
    const cert = parseSnpCert(fw.vcek().der, 'VCEK');
    const ext = keyExtensions(cert, product, 'VCEK');
    expect(ext.tcb).toEqual(fw.tcb);
    expect(Buffer.from(ext.hwid!)).toEqual(
      Buffer.from(product === 'Turin' ? fw.chipId.subarray(0, 8) : fw.chipId),
    );
    expect(ext.productName?.startsWith(product)).toBe(true);
  });

  it('the JSON form carries exactly the raw bytes (rebuilt byte for byte)', () => {
    const guest = fw.launch({
      measurement: MEASUREMENT,
      policy: DEFAULT_SNP_POLICY,
      hostData: new Uint8Array(32).fill(7),
      familyId: new Uint8Array(16).fill(1),
      imageId: new Uint8Array(16).fill(2),
      idKeyDigest: new Uint8Array(48).fill(3),
      authorKeyDigest: new Uint8Array(48).fill(4),
      guestSvn: 9,
    });
    const ev = guest.getEvidence(rd(4), 1);
    const j = ev.json.attestation_report;
    expect(Buffer.from(rebuildFromJson(j, product))).toEqual(Buffer.from(ev.report));
    expect(j.key_info).toBe(1); // author key enabled, signed by the VCEK
    expect(j.vmpl).toBe(1);
    const fmc = (j.current_tcb as { fmc: number | null }).fmc;
    expect(fmc === null).toBe(product !== 'Turin');
    expect(ev.json.cert_chain).toBeNull();
    expect(ev.certTable).toBeUndefined();
  });
});

describe('report variants', () => {
  let fw: SimulatedSnpFirmware;
  beforeAll(async () => {
    fw = await SimulatedSnpFirmware.create({
      product: 'Milan',
      rsaModulusBits: 2048,
      platformInfo: 0x8000_0000_0000_0025n,
    });
  });

  it('u64 values beyond 2^53 are written as exact JSON integers', () => {
    const ev = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getEvidence(rd(5));
    expect(ev.jsonText).toContain('"plat_info":9223372036854775845');
    expect(JSON.stringify(Number(0x8000_0000_0000_0025n))).not.toBe('9223372036854775845');
    expect(parseReport(ev.report).platformInfo).toBe(0x8000_0000_0000_0025n);
    expect(stringifyExact({ a: 2n ** 64n - 1n })).toBe('{"a":18446744073709551615}');
    expect(() => stringifyExact({ a: 2 ** 60 })).toThrow(/bigint/);
  });

  it('a v2 report has no CPUID (null in JSON) and verifies with the product given', () => {
    const guest = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY, reportVersion: 2 });
    const ev = guest.getEvidence(rd(6));
    expect(ev.json.attestation_report.cpuid_fam_id).toBeNull();
    const v = verifyReport(ev.report, { vcek: fw.vcek().der, crl: fw.roots.crl, trust: fw.trustStore() });
    expect(v.report.version).toBe(2);
    expect(v.report.cpuid).toBeUndefined();
  });

  it('a v5 report carries the mitigation vectors in JSON', () => {
    const ev = fw
      .launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY, reportVersion: 5 })
      .getEvidence(rd(7));
    expect(ev.json.attestation_report.launch_mit_vector).toBe(0n);
    expect(Buffer.from(rebuildFromJson(ev.json.attestation_report, 'Milan'))).toEqual(Buffer.from(ev.report));
  });

  it('a guest on older firmware reports its TCB and is signed by the VCEK for that TCB', () => {
    const low = { bootloader: 2, tee: 0, snp: 8, microcode: 115 };
    const guest = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY, tcb: low });
    const raw = guest.getReport(rd(8));
    expect(
      code(() => verifyReport(raw, { vcek: fw.vcek().der, crl: fw.roots.crl, trust: fw.trustStore() })),
    ).toBe('tcb-mismatch');
    const v = verifyReport(raw, { vcek: fw.vcek(low).der, crl: fw.roots.crl, trust: fw.trustStore() });
    expect(v.tcb.reported).toEqual(low);
    expect(fw.vcek(low)).toBe(fw.vcek(low)); // issued once
  });

  it("debug policies and other VMPLs are signed as asked (refusing them is the service's job)", () => {
    const guest = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY | (1n << 19n) });
    const r = parseReport(guest.getReport(rd(9), 2));
    expect(r.policy.debug).toBe(true);
    expect(r.vmpl).toBe(2);
    expect(() => fw.launch({ measurement: MEASUREMENT, policy: 0n })).toThrow(/bit 17/);
    expect(() => guest.getReport(new Uint8Array(32))).toThrow(/64 bytes/);
  });

  it('the host certificate table carries ARK, ASK and VCEK; the JSON cert_chain the same', () => {
    const guest = fw.launch({
      measurement: MEASUREMENT,
      policy: DEFAULT_SNP_POLICY,
      hostCertificates: 'chain',
    });
    const ev = guest.getEvidence(rd(10));
    const table = decodeCertTable(ev.certTable!);
    expect(table.map((e) => e.certType)).toEqual(['ARK', 'ASK', 'VCEK']);
    expect(Buffer.from(table[2]!.data)).toEqual(Buffer.from(fw.vcek().der));
    const chain = ev.json.cert_chain as { cert_type: string; data: number[] }[];
    expect(chain.map((c) => c.cert_type)).toEqual(['ARK', 'ASK', 'VCEK']);
    const vcek = Uint8Array.from(chain[2]!.data);
    const v = verifyReport(ev.report, {
      vcek,
      chain: { ark: Uint8Array.from(chain[0]!.data), intermediate: Uint8Array.from(chain[1]!.data) },
      crl: fw.roots.crl,
      trust: fw.trustStore(),
    });
    expect(v.signer).toBe('vcek');
    const only = fw.launch({
      measurement: MEASUREMENT,
      policy: DEFAULT_SNP_POLICY,
      hostCertificates: 'vcek',
    });
    expect((only.getEvidence(rd(11)).json.cert_chain as unknown[]).length).toBe(1);
  });

  it('reportToVirteeJson refuses bytes of the wrong size', () => {
    expect(() => reportToVirteeJson(new Uint8Array(10), 'Milan')).toThrow(/0x4a0|1184/i);
  });
});

describe('roots and CRL', () => {
  it('a CRL revoking the ASK makes every report of the chip refused as revoked', async () => {
    const fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048, revoke: 'ask' });
    expect(parseCrl(fw.roots.crl).revoked.has(fw.rootSet().ask.serialHex)).toBe(true);
    const raw = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(12));
    expect(
      code(() => verifyReport(raw, { vcek: fw.vcek().der, crl: fw.roots.crl, trust: fw.trustStore() })),
    ).toBe('revoked');
  });

  it('a stale CRL (nextUpdate passed) is refused as invalid', async () => {
    const fw = await SimulatedSnpFirmware.create({
      product: 'Milan',
      rsaModulusBits: 2048,
      crlThisUpdate: new Date('2024-01-01T00:00:00Z'),
      crlNextUpdate: new Date('2024-02-01T00:00:00Z'),
    });
    const raw = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(13));
    expect(
      code(() => verifyReport(raw, { vcek: fw.vcek().der, crl: fw.roots.crl, trust: fw.trustStore() })),
    ).toBe('crl-invalid');
  });
});

describe("a simulated chip trusted as an extra root set beside AMD's (the demo)", () => {
  it("verifies with its own CRL, is labelled, and AMD's roots still decide for the rest", async () => {
    const fw = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
    const revoked = await SimulatedSnpFirmware.create({
      product: 'Milan',
      rsaModulusBits: 2048,
      revoke: 'ask',
    });
    const store = SnpTrustStore.pinned(['Milan']);
    const raw = fw.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(20));
    expect(code(() => verifyReport(raw, { vcek: fw.vcek().der, trust: store }))).toBe('chain-not-trusted');
    store.addExtra({ set: fw.rootSet(), label: 'demo: simulated', crl: fw.roots.crl });
    store.addExtra({ set: revoked.rootSet(), label: 'revoked sim', crl: revoked.roots.crl });
    // No CRL given: the extra set's own CRL is the one checked.
    const v = verifyReport(raw, { vcek: fw.vcek().der, trust: store });
    expect(v.revocation.checked).toBe(true);
    expect(store.extraLabel(v.ark)).toBe('demo: simulated');
    expect(store.extraLabel(store.roots('Milan').ark)).toBeUndefined();
    const other = revoked.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(21));
    expect(code(() => verifyReport(other, { vcek: revoked.vcek().der, trust: store }))).toBe('revoked');
    // A chip whose roots were never added is still refused.
    const stranger = await SimulatedSnpFirmware.create({ product: 'Milan', rsaModulusBits: 2048 });
    const s = stranger.launch({ measurement: MEASUREMENT, policy: DEFAULT_SNP_POLICY }).getReport(rd(22));
    expect(
      code(() => verifyReport(s, { vcek: stranger.vcek().der, trust: store, allowMissingCrl: true })),
    ).toBe('chain-not-trusted');
  });
});
