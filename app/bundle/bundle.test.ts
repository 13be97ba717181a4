/**
 * Bundles: every row's digest equals the core's digest computed independently (computeLaunchDigest from
 * the file, per row) and libvirt's validator's for a sample; signature round trip; every kind of edit and
 * an untrusted key refused with distinct codes; the committed JSON Schema equals the generated one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toBase64 } from '../sev/bytes';
import { computeLaunchDigest, prepareFirmware, type FirmwareMeasurementState } from '../digest/launch-digest';
import {
  launchMeasure,
  libvirtValidatorMissing,
  runLibvirtValidator,
} from '../../test/helpers/digest-support';
import {
  DEBIAN_OVMF,
  GENOA,
  MILAN,
  SEVCTL_FW,
  testProfile as profile,
} from '../../test/helpers/bundle-fixtures';
import {
  buildBundleBody,
  bundleJsonSchema,
  bundleToVmBody,
  generateSigningKey,
  keyFingerprint,
  parseBundleText,
  publicKeyOf,
  signBundle,
  unsignedBundle,
  verifyBundle,
  type BundleDocument,
  type TrustedKey,
} from './bundle';
import { canonicalJson } from './canonical';
import { isBundleError } from './errors';

const ROME = { family: 23, model: 49, stepping: 0 };
const EPYC = { family: 23, model: 1, stepping: 2 };
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isBundleError(e)) return e.code;
    throw e;
  }
  return 'accepted';
}

describe('a 64-row SEV-ES matrix with measured direct boot (sevctl AmdSev image)', () => {
  let fw: FirmwareMeasurementState;
  let doc: BundleDocument;
  const kernel = sha('kernel image');
  const initrd = sha('initrd image');
  const cmdline = `console=ttyS0 root=/dev/vda1 quote=' dq=" $HOME é`;
  beforeAll(async () => {
    fw = await prepareFirmware(SEVCTL_FW);
    const p = profile({
      firmware: { kind: 'artifact', sha256: fw.info.sha256, size: fw.info.size },
      kernelHash: kernel,
      initrdHash: initrd,
      cmdline,
      minApi: { major: 0, minor: 24 },
      allowedBuildIds: [15, 16],
    });
    const body = buildBundleBody({
      profile: p,
      firmware: fw,
      selection: {
        cpuCounts: [1, 2, 3, 4, 5, 6, 7, 8],
        cpuSignatures: [MILAN, GENOA, ROME, EPYC],
        vmsaVariants: ['legacy', 'kvm-init2'],
      },
      createdAt: '2026-01-01T00:00:00.000Z',
    });
    doc = signBundle(body, generateSigningKey());
  });

  it('has 64 rows, each naming its inputs', () => {
    expect(doc.body.rows).toHaveLength(64);
    expect(doc.body.matrix.collapsed).toBe(false);
    const keys = new Set(
      doc.body.rows.map((r) => `${r.cpus}/${r['cpu-signature']!.eax}/${r['vmsa-variant']}`),
    );
    expect(keys.size).toBe(64);
    expect(new Set(doc.body.rows.map((r) => r.digest)).size).toBe(64);
    expect(doc.body.rows[0]!['cpu-signature']).toMatchObject({ name: 'EPYC-Milan', eax: '0x00a00f11' });
    expect(doc.body.kernel).toEqual({
      'kernel-hash': kernel,
      'initrd-hash': initrd,
      'cmdline-hash': expect.stringMatching(/^[0-9a-f]{64}$/),
      cmdline,
    });
  });

  it('every row equals computeLaunchDigest for its inputs, computed independently from the file', async () => {
    for (const r of doc.body.rows) {
      const sig = r['cpu-signature']!;
      const ref = await computeLaunchDigest({
        firmware: SEVCTL_FW,
        kernel: { sha256hex: kernel },
        initrd: { sha256hex: initrd },
        cmdline,
        sevEs: true,
        cpus: r.cpus!,
        cpuSignature: { family: sig.family, model: sig.model, stepping: sig.stepping },
        vmsaVariant: r['vmsa-variant']!,
      });
      expect(r.digest, `row ${r.row}`).toBe(ref.digestHex);
    }
  });

  it('verifies with its key trusted; its import body carries every distinct digest', () => {
    const pk = Buffer.from(doc.signature!['public-key'], 'base64');
    const v = verifyBundle(JSON.stringify(doc), [{ fingerprint: keyFingerprint(pk), label: 'me' }]);
    expect(v.signer).toEqual({ fingerprint: doc.signature!.fingerprint, label: 'me' });
    const vm = bundleToVmBody(v.body);
    expect(vm['launch-digests']).toHaveLength(64);
    expect(vm).toMatchObject({
      policy: 5,
      'min-api': { major: 0, minor: 24 },
      'allowed-build-ids': [15, 16],
    });
  });
});

describe.skipIf(libvirtValidatorMissing() !== undefined)(
  "libvirt's validator agrees with a sample of rows",
  () => {
    let tmp = '';
    beforeAll(() => {
      tmp = mkdtempSync(join(tmpdir(), 'bundle-libvirt-'));
    });
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    it('Debian OVMF.fd, SEV-ES legacy rows for 1, 4 and 8 vCPUs x Milan and Genoa; and the SEV row', async () => {
      const fw = await prepareFirmware(DEBIAN_OVMF);
      const p = profile({ firmware: { kind: 'artifact', sha256: fw.info.sha256, size: fw.info.size } });
      const body = buildBundleBody({
        profile: p,
        firmware: fw,
        selection: { cpuCounts: [1, 4, 8], cpuSignatures: [MILAN, GENOA], vmsaVariants: ['legacy'] },
      });
      const tik = randomBytes(16);
      const tikFile = join(tmp, 'tik');
      const tekFile = join(tmp, 'tek');
      writeFileSync(tikFile, tik);
      writeFileSync(tekFile, randomBytes(16));
      const api = { apiMajor: 1, apiMinor: 49, build: 6 };
      for (const r of body.rows) {
        const mnonce = randomBytes(16);
        const m = launchMeasure({ tik, ...api, policy: 5, digest: fromHex(r.digest), mnonce });
        const sig = r['cpu-signature']!;
        const out = runLibvirtValidator([
          `--measurement=${toBase64(Uint8Array.from([...m, ...mnonce]))}`,
          '--api-major=1',
          '--api-minor=49',
          '--build-id=6',
          '--policy=5',
          `--tik=${tikFile}`,
          `--tek=${tekFile}`,
          `--firmware=${DEBIAN_OVMF}`,
          `--num-cpus=${r.cpus}`,
          `--cpu-family=${sig.family}`,
          `--cpu-model=${sig.model}`,
          `--cpu-stepping=${sig.stepping}`,
        ]);
        expect(out.stdout, `row ${r.row}: ${out.stderr}`).toContain('OK: Looks good to me');
        expect(out.status).toBe(0);
      }
      // SEV (no ES): one row whatever the selection.
      const sev = buildBundleBody({
        profile: { ...p, scheme: 'amd-sev', policy: 0x01 },
        firmware: fw,
        selection: {
          cpuCounts: [1, 2, 4],
          cpuSignatures: [MILAN, GENOA],
          vmsaVariants: ['legacy', 'kvm-init2'],
        },
      });
      expect(sev.rows).toHaveLength(1);
      expect(sev.matrix.collapsed).toBe(true);
      expect(sev.matrix.note).toMatch(/collapses to one row/);
      const mnonce = randomBytes(16);
      const m = launchMeasure({ tik, ...api, policy: 1, digest: fromHex(sev.rows[0]!.digest), mnonce });
      const out = runLibvirtValidator([
        `--measurement=${toBase64(Uint8Array.from([...m, ...mnonce]))}`,
        '--api-major=1',
        '--api-minor=49',
        '--build-id=6',
        '--policy=1',
        `--tik=${tikFile}`,
        `--tek=${tekFile}`,
        `--firmware=${DEBIAN_OVMF}`,
      ]);
      expect(out.status).toBe(0);
    });
  },
);

describe('signatures', () => {
  let fw: FirmwareMeasurementState;
  let doc: BundleDocument;
  let trusted: TrustedKey[];
  const sk = generateSigningKey();
  beforeAll(async () => {
    fw = await prepareFirmware(SEVCTL_FW);
    const body = buildBundleBody({
      profile: profile({
        firmware: { kind: 'artifact', sha256: fw.info.sha256, size: fw.info.size },
        cpuCounts: [1, 2],
        vmsaVariants: ['legacy', 'kvm-init2'],
      }),
      firmware: fw,
    });
    doc = signBundle(body, sk);
    trusted = [{ fingerprint: keyFingerprint(publicKeyOf(sk)) }];
  });
  const edited = (f: (d: BundleDocument) => void) => {
    const d = structuredClone(doc);
    f(d);
    return d;
  };

  it('round trip: pretty, compact and re-ordered JSON all verify (the signature covers the canonical body)', () => {
    expect(verifyBundle(JSON.stringify(doc, null, 2), trusted).body.rows).toHaveLength(4);
    expect(verifyBundle(JSON.stringify(doc), trusted).signer.fingerprint).toBe(trusted[0]!.fingerprint);
    const reordered = JSON.parse(canonicalJson(doc)) as unknown;
    expect(refusal(() => verifyBundle(reordered, trusted))).toBe('accepted');
  });

  it('fingerprint format: ed25519: + 43 base64 characters of SHA-256(public key)', () => {
    const pk = publicKeyOf(sk);
    expect(doc.signature!.fingerprint).toBe(
      'ed25519:' + createHash('sha256').update(pk).digest('base64').replace(/=+$/, ''),
    );
    expect(doc.signature!.fingerprint).toMatch(/^ed25519:[A-Za-z0-9+/]{43}$/);
  });

  it('one changed digest hex digit is refused as modified', () => {
    for (const [row, pos] of [
      [0, 0],
      [3, 63],
      [2, 31],
    ] as const) {
      const d = edited((x) => {
        const r = x.body.rows[row]!;
        const c = r.digest[pos]!;
        r.digest = r.digest.slice(0, pos) + (c === '0' ? '1' : '0') + r.digest.slice(pos + 1);
      });
      expect(refusal(() => verifyBundle(d, trusted))).toBe('bundle-signature-invalid');
    }
  });

  it('every single-byte edit of the serialized body is refused (never accepted)', () => {
    const text = JSON.stringify(doc);
    const bodyStart = text.indexOf('"body"');
    const bodyEnd = text.indexOf('"signature"');
    const codes = new Map<string, number>();
    for (let i = bodyStart; i < bodyEnd; i += 7) {
      const c = text.charCodeAt(i);
      const replacement = String.fromCharCode(c === 0x30 ? 0x31 : c === 0x61 ? 0x62 : c ^ 1);
      const mutated = text.slice(0, i) + replacement + text.slice(i + 1);
      const code = refusal(() => verifyBundle(mutated, trusted));
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(codes.has('accepted')).toBe(false);
    expect(codes.get('bundle-signature-invalid')).toBeGreaterThan(10);
  });

  it('a changed policy, an added row, a removed row, a changed name or firmware hash are refused', () => {
    const cases: Array<(d: BundleDocument) => void> = [
      (d) => (d.body.policy = 0x04),
      (d) => d.body.rows.push({ ...d.body.rows[0]!, row: d.body.rows.length, digest: 'ab'.repeat(32) }),
      (d) => d.body.rows.pop(),
      (d) => (d.body.vm.name = 'Web server 2'),
      (d) => (d.body.firmware.sha256 = 'cd'.repeat(32)),
      (d) => (d.body['min-api'] = { major: 0, minor: 0 }),
    ];
    for (const f of cases)
      expect(refusal(() => verifyBundle(edited(f), trusted))).toBe('bundle-signature-invalid');
  });

  it('a signature swapped in from another key, or a mismatching fingerprint field, is refused', () => {
    const other = generateSigningKey();
    const swapped = edited((d) => {
      d.signature!['public-key'] = toBase64(publicKeyOf(other));
      d.signature!.fingerprint = keyFingerprint(publicKeyOf(other));
    });
    expect(
      refusal(() => verifyBundle(swapped, [...trusted, { fingerprint: keyFingerprint(publicKeyOf(other)) }])),
    ).toBe('bundle-signature-invalid');
    const lying = edited((d) => (d.signature!.fingerprint = keyFingerprint(publicKeyOf(other))));
    expect(refusal(() => verifyBundle(lying, trusted))).toBe('bundle-signature-invalid');
  });

  it('an intact bundle from an untrusted key is refused as untrusted, with the key named', () => {
    const stranger = signBundle(doc.body, generateSigningKey());
    expect(refusal(() => verifyBundle(stranger, trusted))).toBe('bundle-key-untrusted');
    expect(() => verifyBundle(stranger, [])).toThrow(stranger.signature!.fingerprint);
    // Pinning the fingerprint with a different public key does not help either.
    const pinnedWrongKey = [
      { fingerprint: stranger.signature!.fingerprint, publicKey: toBase64(publicKeyOf(sk)) },
    ];
    expect(refusal(() => verifyBundle(stranger, pinnedWrongKey))).toBe('bundle-key-untrusted');
  });

  it('unsigned, non-JSON, wrong version and wrong shapes are refused with their own codes', () => {
    expect(refusal(() => verifyBundle(unsignedBundle(doc.body), trusted))).toBe('bundle-unsigned');
    expect(refusal(() => verifyBundle('{"format":', trusted))).toBe('bundle-invalid');
    expect(refusal(() => verifyBundle({ ...doc, version: 2 }, trusted))).toBe('bundle-invalid');
    expect(() => parseBundleText(JSON.stringify({ ...doc, version: 2 }))).toThrow(
      /version 2 is not supported/,
    );
    expect(
      refusal(() =>
        verifyBundle(
          edited((d) => Object.assign(d.body, { tek: 'AAAA' })),
          trusted,
        ),
      ),
    ).toBe('bundle-invalid');
    expect(refusal(() => verifyBundle([], trusted))).toBe('bundle-invalid');
  });
});

describe('the JSON Schema', () => {
  it('docs/bundle.schema.json is the one z.toJSONSchema generates (node scripts/gen-bundle-schema.mjs)', () => {
    const committed = JSON.parse(
      readFileSync(join(process.cwd(), 'docs/bundle.schema.json'), 'utf8'),
    ) as unknown;
    expect(committed).toEqual(bundleJsonSchema());
  });

  it('has no property that could carry a secret or a transport key', () => {
    const text = JSON.stringify(bundleJsonSchema()).toLowerCase();
    for (const word of ['secret"', 'passphrase', '"tek"', '"tik"', 'tek-', 'tik-'])
      expect(text).not.toContain(word);
  });
});
