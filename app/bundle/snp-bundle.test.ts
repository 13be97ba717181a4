/**
 * SEV-SNP bundles: rows equal sev-snp-measure's published vectors and the core's measurement computed
 * independently per row; the signed bundle imports back to an equal profile; every edit is refused; a
 * signed but self-contradictory body is refused; the SEV-only export formats refuse an SNP bundle and CSV
 * names every input.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { VmProfileSchema, type VmProfile } from '../profile';
import { computeSnpLaunchDigest, prepareSnpOvmf, type SnpOvmfState } from '../snp/measure/launch-digest';
import { findSnpVcpuType, vcpuSignatureOf } from '../snp/measure/vcpu-types';
import { prepareFirmware } from '../digest/launch-digest';
import {
  buildBundleBody,
  buildSnpBundleBody,
  generateSigningKey,
  keyFingerprint,
  publicKeyOf,
  signBundle,
  verifyBundle,
  type BundleBody,
  type BundleDocument,
  type TrustedKey,
} from './bundle';
import { exportBundle } from './export';
import { isBundleError } from './errors';
import { bundleRegistration } from './registration';

const OVMF = 'test/fixtures/snp/measure/ovmf_AmdSev_suffix.bin';
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const EMPTY = sha256('');
const CMDLINE = 'console=ttyS0 loglevel=7';
const EPYC_V4 = findSnpVcpuType('EPYC-v4')!;
const NAPLES = { family: EPYC_V4.family, model: EPYC_V4.model, stepping: EPYC_V4.stepping };
const MILAN = { family: 25, model: 1, stepping: 1 };
/** sev-snp-measure --vcpus 1 --vcpu-type EPYC-v4 --kernel /dev/null --initrd /dev/null --append CMDLINE --guest-features 0x21 */
const PUBLISHED_0x21 =
  '803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977';
const d96 = (c: string) => c.repeat(96);

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isBundleError(e)) return e.code;
    throw e;
  }
  return 'accepted';
}

function snpProfile(over: Partial<VmProfile> = {}): VmProfile {
  const bytes = readFileSync(OVMF);
  return VmProfileSchema.parse({
    id: 'snp-1',
    name: 'SNP guest',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [1, 2, 4],
    cpuSignatures: [NAPLES, MILAN],
    firmware: { kind: 'artifact', sha256: sha256(bytes), size: bytes.length, name: 'OVMF.amdsev.fd' },
    kernelHash: EMPTY,
    initrdHash: EMPTY,
    cmdline: CMDLINE,
    approval: 'manual',
    secrets: [],
    snp: {
      vmmType: 'qemu',
      guestFeatures: 0x21,
      trustedIdKeyDigests: [d96('a')],
      trustedAuthorKeyDigests: [d96('b')],
      minimumTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
      hostData: 'c'.repeat(64),
      vmpl: 0,
      minimumReportVersion: 3,
    },
    ...over,
  });
}

let state: SnpOvmfState;
let profile: VmProfile;
let body: BundleBody;
let doc: BundleDocument;
let trusted: TrustedKey[];
const sk = generateSigningKey();

beforeAll(async () => {
  state = await prepareSnpOvmf(OVMF);
  profile = snpProfile();
  body = buildSnpBundleBody({
    profile,
    firmware: state,
    firmwareFile: { sha256: sha256(readFileSync(OVMF)), size: 4096 },
    firmwareName: 'OVMF.amdsev.fd',
    createdAt: '2026-12-01T00:00:00.000Z',
  });
  doc = signBundle(body, sk);
  trusted = [{ fingerprint: keyFingerprint(publicKeyOf(sk)) }];
});

describe('an SEV-SNP bundle', () => {
  it('has one row per vCPU count x vCPU signature, each naming its inputs; the first is the published vector', () => {
    expect(body.rows).toHaveLength(6);
    expect(body.rows[0]).toMatchObject({
      cpus: 1,
      'sev-es': true,
      'kernel-hashes-table': true,
      'vmm-type': 'qemu',
      'guest-features': '0x21',
      'cpu-signature': { eax: '0x' + vcpuSignatureOf(23, 1, 2).toString(16).padStart(8, '0') },
    });
    expect(body.rows[0]!.digest).toBe(PUBLISHED_0x21);
    expect(body.firmware['ovmf-hash']).toMatch(/^[0-9a-f]{96}$/);
    expect(body.matrix['vmsa-variants']).toEqual([]);
    expect(body.snp).toEqual({
      'trusted-id-key-digests': [d96('a')],
      'trusted-author-key-digests': [d96('b')],
      'minimum-tcb': { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
      'host-data': 'c'.repeat(64),
      vmpl: 0,
      'minimum-report-version': 3,
    });
  });

  it('every row equals computeSnpLaunchDigest from the file for its inputs', async () => {
    for (const r of body.rows) {
      const ref = await computeSnpLaunchDigest({
        ovmf: OVMF,
        kernel: { sha256hex: EMPTY },
        initrd: { sha256hex: EMPTY },
        cmdline: CMDLINE,
        vcpus: r.cpus!,
        vcpuSignature: Number(r['cpu-signature']!.eax),
        guestFeatures: 0x21n,
        vmmType: 'qemu',
      });
      expect(r.digest, `row ${r.row}`).toBe(ref.digestHex);
    }
  });

  it('EC2 measures no vCPU signature: one row per vCPU count', () => {
    const ec2 = buildSnpBundleBody({
      profile: snpProfile({ snp: { ...profile.snp!, vmmType: 'ec2' } }),
      firmware: state,
      firmwareFile: { sha256: body.firmware.sha256, size: 4096 },
    });
    expect(ec2.rows.map((r) => r.cpus)).toEqual([1, 2, 4]);
    expect(ec2.rows.every((r) => r['cpu-signature'] === undefined && r['vmm-type'] === 'ec2')).toBe(true);
  });

  it('a firmware that is not the profile’s, or a QEMU profile without a vCPU signature, is refused', () => {
    expect(
      refusal(() =>
        buildSnpBundleBody({ profile, firmware: state, firmwareFile: { sha256: '0'.repeat(64), size: 1 } }),
      ),
    ).toBe('bundle-export-unsupported');
    expect(
      refusal(() =>
        buildSnpBundleBody({
          profile: { ...profile, cpuSignatures: [] },
          firmware: state,
          firmwareFile: { sha256: body.firmware.sha256, size: 4096 },
        }),
      ),
    ).toBe('bundle-export-unsupported');
  });

  it('round trip: the verified bundle registers as a profile equal to the one exported', () => {
    const v = verifyBundle(JSON.stringify(doc, null, 2), trusted);
    const reg = bundleRegistration(v.body, 'snp-1');
    const imported = VmProfileSchema.parse({ ...reg.fields, firmware: reg.firmware, secrets: [] });
    const strip = (p: VmProfile) => {
      const { firmware: _f, vmsaVariants: _v, ...rest } = p;
      return rest;
    };
    expect(strip(imported)).toEqual(strip(profile));
    expect(reg.firmware.launchDigests).toEqual(body.rows.map((r) => r.digest));
    // Exporting the imported profile's rules again gives the same snp section.
    expect(imported.snp).toEqual(profile.snp);
  });

  it('every edit of a signed SNP bundle is refused as modified', () => {
    const edits: Array<(d: BundleDocument) => void> = [
      (d) => (d.body.rows[3]!.digest = d.body.rows[3]!.digest.replace(/^./, (c) => (c === '0' ? '1' : '0'))),
      (d) => (d.body.snp!['host-data'] = 'd'.repeat(64)),
      (d) => d.body.snp!['trusted-id-key-digests'].push(d96('e')),
      (d) => (d.body.snp!['trusted-author-key-digests'] = []),
      (d) => (d.body.snp!['minimum-tcb'] = { snp: 0 }),
      (d) => (d.body.snp!.vmpl = 1),
      (d) => (d.body.snp!['minimum-report-version'] = 2),
      (d) => (d.body.policy = 0x70000),
      (d) => (d.body.rows[0]!['guest-features'] = '0x1'),
      (d) => (d.body.firmware['ovmf-hash'] = d96('0')),
      (d) => (d.body.scheme = 'amd-sev'),
      (d) => delete d.body.snp,
    ];
    for (const [i, edit] of edits.entries()) {
      const d = structuredClone(doc);
      edit(d);
      expect(
        refusal(() => verifyBundle(d, trusted)),
        `edit ${i}`,
      ).toMatch(/^bundle-(signature-invalid|invalid)$/);
    }
    // Byte flips anywhere in a row's measurement.
    const text = JSON.stringify(doc);
    const at = text.indexOf(body.rows[5]!.digest);
    for (let k = 0; k < 96; k += 7) {
      const flipped = text.slice(0, at + k) + (text[at + k] === 'f' ? 'e' : 'f') + text.slice(at + k + 1);
      expect(refusal(() => verifyBundle(flipped, trusted))).toBe('bundle-signature-invalid');
    }
  });

  it('a signed body that contradicts itself is refused (SNP as SEV, SEV fields in SNP, debug policy)', () => {
    const signedWith = (f: (b: BundleBody) => void) => {
      const b = structuredClone(body);
      f(b);
      return signBundle(b, sk);
    };
    const cases: Array<[string, (b: BundleBody) => void, RegExp]> = [
      ['SNP rows under scheme amd-sev', (b) => (b.scheme = 'amd-sev'), /SEV-SNP fields/],
      ['no snp section', (b) => delete b.snp, /snp section/],
      ['no OVMF hash', (b) => delete b.firmware['ovmf-hash'], /OVMF hash/],
      ['a 64-hex row', (b) => (b.rows[1]!.digest = 'a'.repeat(64)), /SHA-384/],
      ['debug policy', (b) => (b.policy = 0x30000 | (1 << 19)), /debug/],
      ['SEV min-api', (b) => (b['min-api'] = { major: 1, minor: 51 }), /SEV rules/],
      ['a VMSA variant', (b) => (b.rows[0]!['vmsa-variant'] = 'legacy'), /no VMSA variant/],
      ['mixed VMM types', (b) => (b.rows[2]!['vmm-type'] = 'gce'), /same VMM type/],
    ];
    for (const [what, f, why] of cases) {
      let msg = '';
      try {
        verifyBundle(signedWith(f), trusted);
      } catch (e) {
        msg = isBundleError(e) ? `${e.code}: ${e.message}` : String(e);
      }
      expect(msg, what).toMatch(/^bundle-invalid: /);
      expect(msg, what).toMatch(why);
    }
  });

  it('exports as native and CSV; vqsv and simple-kbs refuse with bundle-export-unsupported', () => {
    const native = exportBundle(doc, 'native');
    expect(refusal(() => verifyBundle(native.text, trusted))).toBe('accepted');
    const csv = exportBundle(doc, 'csv').text.split('\r\n');
    expect(csv[0]).toBe(
      'row,vm_id,scheme,policy,cpus,cpu_family,cpu_model,cpu_stepping,cpu_eax,cpu_name,vmm_type,guest_features,kernel_hashes_table,kernel_hash,initrd_hash,cmdline_hash,firmware_sha256,ovmf_hash,measurement_hex,measurement_base64',
    );
    expect(csv).toHaveLength(8);
    const first = csv[1]!.split(',');
    expect(first.slice(0, 5)).toEqual(['0', 'snp-1', 'amd-sev-snp', '0x30000', '1']);
    expect(first[10]).toBe('qemu');
    expect(first[11]).toBe('0x21');
    expect(first[13]).toBe(EMPTY);
    expect(first[17]).toBe(body.firmware['ovmf-hash']);
    expect(first[18]).toBe(PUBLISHED_0x21);
    expect(Buffer.from(first[19]!, 'base64').toString('hex')).toBe(PUBLISHED_0x21);
    for (const format of ['vqsv', 'simple-kbs', 'simple-kbs-sql'] as const) {
      let msg = '';
      try {
        exportBundle(doc, format);
      } catch (e) {
        msg = isBundleError(e) ? `${e.code}: ${e.message}` : String(e);
      }
      expect(msg, format).toMatch(/^bundle-export-unsupported: an SEV-SNP bundle exports as native or csv/);
    }
  });
});

describe('SEV bundles stay byte-compatible', () => {
  it('an SEV-ES bundle written by the code before SNP rows is rebuilt byte for byte (and verifies)', async () => {
    // test/fixtures/bundles/sev-es-v1-before-snp.bundle.json: written by main before this change with
    // the inputs below and the seed 0x07 x 32 (Ed25519 signatures are deterministic).
    const golden = readFileSync('test/fixtures/bundles/sev-es-v1-before-snp.bundle.json', 'utf8');
    const fw = await prepareFirmware('test/fixtures/vectors/virtee-sev/ovmf_AmdSev_suffix.bin');
    const body = buildBundleBody({
      profile: {
        id: 'golden',
        name: 'Golden SEV-ES',
        scheme: 'amd-sev-es',
        policy: 5,
        cpuCounts: [1, 2],
        cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
        vmsaVariants: ['legacy', 'kvm-init2'],
        firmware: { kind: 'artifact', sha256: fw.info.sha256, size: fw.info.size },
        kernelHash: 'ab'.repeat(32),
        initrdHash: 'cd'.repeat(32),
        cmdline: 'console=ttyS0',
        minApi: { major: 1, minor: 51 },
        allowedBuildIds: [3],
        approval: 'manual',
        secrets: [],
      },
      firmware: fw,
      createdAt: '2026-12-01T00:00:00.000Z',
      generator: 'sev-attest golden',
    });
    const seed = new Uint8Array(32).fill(7);
    expect(JSON.stringify(signBundle(body, seed), null, 2) + '\n').toBe(golden);
    const fp = keyFingerprint(publicKeyOf(seed));
    expect(verifyBundle(golden, [{ fingerprint: fp }]).body.rows).toHaveLength(4);
  });
});
