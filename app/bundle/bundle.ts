/**
 * Measurement bundles (docs/bundles.md): one VM profile's expected launches, computed once on a trusted
 * machine and taken elsewhere. A versioned JSON document: scheme, policy, minimum API/build, the inputs'
 * identities (firmware SHA-256 and size, kernel/initrd/cmdline hashes) and a matrix of expected launch
 * digests, each row naming the inputs that produced it; signed with the owner's Ed25519 key over the
 * canonical JSON of its body. Never secrets, never TEK/TIK: the schema has no place for them.
 */
import { createHash } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { z } from 'zod';
import {
  ApiVersionSchema,
  SCHEMES,
  SNP_POLICY_DEBUG_BIT,
  SNP_VMM_TYPES,
  SnpMinimumTcbSchema,
  VMSA_VARIANTS,
  VmIdSchema,
  type VmProfile,
} from '../profile';
import { bytesEqual, fromBase64, toBase64, toHex } from '../sev/bytes';
import { decodePolicy } from '../sev/policy';
import { CPU_PRESETS } from '../digest/cpu-presets';
import { buildHashesTable, EMPTY_SHA256, hashCmdline, parseSha256Hex } from '../digest/hashes-table';
import { digestFor, type DigestParams, type FirmwareMeasurementState } from '../digest/launch-digest';
import { cpuSignatureEax, type CpuSignature, type VmsaVariant } from '../digest/vmsa';
import { computeSnpDigestMatrix, type SnpDigestRow, type SnpOvmfState } from '../snp/measure/launch-digest';
import { canonicalBytes } from './canonical';
import { BundleError } from './errors';

export const BUNDLE_FORMAT = 'sev-attest-bundle';
export const BUNDLE_VERSION = 1;
/** Prefixed to the canonical body before signing, so a bundle signature can never be mistaken for another. */
export const SIGNATURE_CONTEXT = 'sev-attest-bundle/v1\n';
/** Largest bundle text accepted for parsing (a 4096-row bundle is well under 2 MiB). */
export const MAX_BUNDLE_BYTES = 8 * 1024 * 1024;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex');
const hex96 = z.string().regex(/^[0-9a-f]{96}$/, 'a SHA-384 in lower-case hex');
const u8 = z.number().int().min(0).max(255);
const u32 = z.number().int().min(0).max(0xffffffff);
const b64 = (bytes: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'standard base64')
    .refine((s) => {
      try {
        return fromBase64(s).length === bytes;
      } catch {
        return false;
      }
    }, `base64 of ${bytes} bytes`);

export const BundleCpuSignatureSchema = z.strictObject({
  family: z
    .number()
    .int()
    .min(0)
    .max(0xff + 0xf),
  model: u8,
  stepping: z.number().int().min(0).max(0xf),
  /** CPUID(1).EAX as 0x-hex, what goes into the VMSA's rdx. */
  eax: z.string().regex(/^0x[0-9a-f]{8}$/),
  /** The QEMU CPU model name when the signature is a known preset. */
  name: z.string().max(64).optional(),
});
export type BundleCpuSignature = z.infer<typeof BundleCpuSignatureSchema>;

export const BundleRowSchema = z.strictObject({
  row: z.number().int().min(0),
  /**
   * The expected launch digest, lower-case hex: SEV/SEV-ES GCTX.LD (SHA-256, 64 hex), SEV-SNP the report's
   * MEASUREMENT (SHA-384, 96 hex).
   */
  digest: z
    .string()
    .regex(
      /^(?:[0-9a-f]{64}|[0-9a-f]{96})$/,
      'a SHA-256 (64) or, for SEV-SNP, a SHA-384 (96) in lower-case hex',
    ),
  /** True when VMSAs are measured: SEV-ES rows, and every SEV-SNP row. */
  'sev-es': z.boolean(),
  /** True when the kernel hashes table (measured direct boot) follows the firmware. */
  'kernel-hashes-table': z.boolean(),
  /** SEV-ES only: the number of VMSA pages. */
  cpus: z.number().int().min(1).max(4096).optional(),
  'cpu-signature': BundleCpuSignatureSchema.optional(),
  'vmsa-variant': z.enum(VMSA_VARIANTS).optional(),
  /** SEV-SNP only: the VMM whose VMSA layout the measurement assumes (sev-snp-measure's --vmm-type). */
  'vmm-type': z.enum(SNP_VMM_TYPES).optional(),
  /** SEV-SNP only: SEV_FEATURES of every VMSA, 0x-hex (sev-snp-measure's --guest-features). */
  'guest-features': z
    .string()
    .regex(/^0x[0-9a-f]{1,16}$/)
    .optional(),
});
export type BundleRow = z.infer<typeof BundleRowSchema>;

export const BundleBodySchema = z.strictObject({
  'created-at': z.string().max(64),
  generator: z.string().max(200),
  vm: z.strictObject({ id: VmIdSchema, name: z.string().min(1).max(200) }),
  scheme: z.enum(SCHEMES),
  policy: u32,
  'min-api': ApiVersionSchema.optional(),
  'allowed-build-ids': z.array(u8).max(256).optional(),
  'allowed-cpu-ids': z
    .array(z.string().regex(/^[0-9a-f]{128}$/))
    .max(1024)
    .optional(),
  firmware: z.strictObject({
    sha256: hex64,
    size: z.number().int().nonnegative(),
    name: z.string().max(255).optional(),
    /** The SEV-ES AP reset address from the OVMF footer (what the VMSA pages were built with). */
    'reset-address': u32.optional(),
    /** Where QEMU injects the launch secret; absent when the image has no secret area. */
    'secret-area': z.strictObject({ base: u32, size: u32 }).optional(),
    /** SEV-SNP only: the launch digest after every OVMF page (sev-snp-measure's snp:ovmf-hash). */
    'ovmf-hash': hex96.optional(),
  }),
  /** Measured direct boot: the three hashes of the kernel hashes table (cmdline text when known). */
  kernel: z
    .strictObject({
      'kernel-hash': hex64,
      'initrd-hash': hex64,
      'cmdline-hash': hex64,
      cmdline: z.string().max(4096).optional(),
    })
    .optional(),
  matrix: z.strictObject({
    'cpu-counts': z.array(z.number().int().min(1).max(4096)).min(1).max(512),
    'cpu-signatures': z.array(BundleCpuSignatureSchema).max(64),
    'vmsa-variants': z.array(z.enum(VMSA_VARIANTS)).max(2),
    /** True for SEV without ES: no VMSA is measured, so the selection collapses to one row. */
    collapsed: z.boolean(),
    note: z.string().max(1000),
  }),
  rows: z.array(BundleRowSchema).min(1).max(4096),
  /** SEV-SNP only (and always there): the rules every attestation report must meet besides its measurement. */
  snp: z
    .strictObject({
      'trusted-id-key-digests': z.array(hex96).max(64),
      'trusted-author-key-digests': z.array(hex96).max(64),
      'minimum-tcb': SnpMinimumTcbSchema.strict().optional(),
      'host-data': hex64.optional(),
      vmpl: z.number().int().min(0).max(3),
      'minimum-report-version': z.number().int().min(2).max(5),
    })
    .optional(),
});
export type BundleBody = z.infer<typeof BundleBodySchema>;

export const BundleSignatureSchema = z.strictObject({
  algorithm: z.literal('ed25519'),
  /** The raw 32-byte Ed25519 public key, base64. */
  'public-key': b64(32),
  /** keyFingerprint(public key); recomputed on verification, must agree. */
  fingerprint: z.string().max(100),
  /** Ed25519 over SIGNATURE_CONTEXT || canonicalJson(body), base64 of 64 bytes. */
  value: b64(64),
});
export type BundleSignature = z.infer<typeof BundleSignatureSchema>;

export const BundleDocumentSchema = z
  .strictObject({
    format: z.literal(BUNDLE_FORMAT),
    version: z.literal(BUNDLE_VERSION),
    body: BundleBodySchema,
    signature: BundleSignatureSchema.optional(),
  })
  .meta({
    id: 'SevAttestBundle',
    title: 'SEV Attest measurement bundle',
    description:
      'Expected AMD SEV / SEV-ES launch digests or SEV-SNP launch measurements of one VM profile, signed with Ed25519 over the canonical JSON of body (docs/bundles.md).',
  });
export type BundleDocument = z.infer<typeof BundleDocumentSchema>;

/** The JSON Schema (2020-12) of a bundle document, committed as docs/bundle.schema.json. */
export function bundleJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(BundleDocumentSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://sev-attest.invalid/schemas/bundle-v1.json' };
}

// ------------------------------------------------------------------------------------------------
// Keys and fingerprints

/** 'ed25519:' + unpadded base64 of SHA-256(raw 32-byte public key): 51 characters, shown to owners. */
export function keyFingerprint(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new BundleError('bundle-invalid', 'an Ed25519 public key is 32 bytes');
  return 'ed25519:' + createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '');
}

/** A fingerprint in the form keyFingerprint prints (checks the shape only). */
export function isFingerprint(s: string): boolean {
  return /^ed25519:[A-Za-z0-9+/]{43}$/.test(s);
}

/** A new Ed25519 private key (32-byte seed). */
export function generateSigningKey(): Uint8Array {
  return ed25519.utils.randomSecretKey();
}

/** The public key of a 32-byte Ed25519 private key. */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 32) {
    throw new BundleError('bundle-invalid', `an Ed25519 private key is 32 bytes, got ${secretKey.length}`);
  }
  return ed25519.getPublicKey(secretKey);
}

// ------------------------------------------------------------------------------------------------
// Building

/** Which combinations the matrix spans (SEV-ES); empty fields fall back to the profile's. */
export interface MatrixSelection {
  cpuCounts?: number[];
  cpuSignatures?: Array<CpuSignature & { name?: string }>;
  vmsaVariants?: VmsaVariant[];
}

export interface BuildBundleInput {
  profile: VmProfile;
  /** The profile's firmware, hashed once (prepareFirmware); its sha256 must be the profile's. */
  firmware: FirmwareMeasurementState;
  firmwareName?: string;
  selection?: MatrixSelection;
  createdAt?: string;
  generator?: string;
}

const COLLAPSED_NOTE =
  'SEV without ES measures no VMSA: the vCPU count, CPU signature and VMSA variant do not enter the launch digest, so the selected matrix collapses to one row per distinct digest (here one).';
const ES_NOTE =
  'SEV-ES: one row per vCPU count x CPU signature x VMSA variant; the legacy VMSA is what hosts before Linux 6.10 (and libvirt 9 validator) use, kvm-init2 is KVM_SEV_INIT2 (Linux 6.10+).';

function presetName(sig: CpuSignature): string | undefined {
  return CPU_PRESETS.find(
    (p) => p.family === sig.family && p.model === sig.model && p.stepping === sig.stepping,
  )?.name;
}

function bundleSignature(sig: CpuSignature & { name?: string }): BundleCpuSignature {
  const name = sig.name ?? presetName(sig);
  return {
    family: sig.family,
    model: sig.model,
    stepping: sig.stepping,
    eax: '0x' + cpuSignatureEax(sig).toString(16).padStart(8, '0'),
    ...(name !== undefined ? { name } : {}),
  };
}

function uniqueBy<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = key(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The kernel hashes of a profile that measures a direct-boot kernel, resolved as QEMU fills the table. */
export function profileKernelHashes(
  p: VmProfile,
): { kernel: string; initrd: string; cmdline: string; cmdlineText?: string } | undefined {
  if (p.kernelHash === undefined) return undefined;
  parseSha256Hex(p.kernelHash, 'kernel-hash');
  const cmdline = p.cmdlineHash ?? toHex(hashCmdline(p.cmdline));
  return {
    kernel: p.kernelHash,
    initrd: p.initrdHash ?? toHex(EMPTY_SHA256),
    cmdline,
    ...(p.cmdline !== undefined ? { cmdlineText: p.cmdline } : {}),
  };
}

/**
 * The unsigned body for a profile over one prepared firmware: the firmware was read and hashed once; every
 * row copies its SHA-256 midstate and appends only the hashes table and VMSA pages.
 */
export function buildBundleBody(input: BuildBundleInput): BundleBody {
  const { profile: p, firmware } = input;
  if (p.firmware.kind === 'artifact' && p.firmware.sha256 !== firmware.info.sha256) {
    throw new BundleError(
      'bundle-export-unsupported',
      `the firmware given (${firmware.info.sha256}) is not ${p.id}'s (${p.firmware.sha256})`,
    );
  }
  const sevEs = decodePolicy(p.policy).es;
  const sel = input.selection ?? {};
  const cpuCounts = [...new Set(sel.cpuCounts?.length ? sel.cpuCounts : p.cpuCounts)];
  const sigs = uniqueBy(
    (sel.cpuSignatures?.length ? sel.cpuSignatures : p.cpuSignatures).map(bundleSignature),
    (s) => s.eax,
  );
  const variants = [...new Set(sel.vmsaVariants?.length ? sel.vmsaVariants : p.vmsaVariants)];
  const k = profileKernelHashes(p);
  const hashesTable = k
    ? buildHashesTable({
        kernel: parseSha256Hex(k.kernel, 'kernel-hash'),
        initrd: parseSha256Hex(k.initrd, 'initrd-hash'),
        cmdline: parseSha256Hex(k.cmdline, 'cmdline-hash'),
      })
    : undefined;

  const rows: BundleRow[] = [];
  const add = (params: DigestParams, extra: Partial<BundleRow>) => {
    rows.push({
      row: rows.length,
      digest: toHex(digestFor(firmware, params)),
      'sev-es': params.sevEs,
      'kernel-hashes-table': hashesTable !== undefined,
      ...extra,
    });
  };
  if (!sevEs) {
    add({ sevEs: false, ...(hashesTable ? { hashesTable } : {}) }, {});
  } else {
    if (sigs.length === 0) {
      throw new BundleError(
        'bundle-export-unsupported',
        'an SEV-ES bundle needs at least one CPU signature (the guest CPU model: e.g. EPYC-Milan)',
      );
    }
    if (variants.length === 0) throw new BundleError('bundle-export-unsupported', 'no VMSA variant selected');
    for (const cpus of cpuCounts) {
      for (const sig of sigs) {
        for (const vmsaVariant of variants) {
          const cpuSignature = { family: sig.family, model: sig.model, stepping: sig.stepping };
          add(
            { sevEs: true, cpus, cpuSignature, vmsaVariant, ...(hashesTable ? { hashesTable } : {}) },
            { cpus, 'cpu-signature': sig, 'vmsa-variant': vmsaVariant },
          );
        }
      }
    }
  }
  const info = firmware.info;
  const body: BundleBody = {
    'created-at': input.createdAt ?? new Date().toISOString(),
    generator: input.generator ?? 'sev-attest',
    vm: { id: p.id, name: p.name },
    scheme: p.scheme,
    policy: p.policy,
    firmware: {
      sha256: info.sha256,
      size: info.size,
      ...(input.firmwareName !== undefined ? { name: input.firmwareName.slice(0, 255) } : {}),
      ...(info.resetAddress !== undefined ? { 'reset-address': info.resetAddress } : {}),
      ...(info.secretArea && info.secretArea.base !== 0 && info.secretArea.size !== 0
        ? { 'secret-area': { base: info.secretArea.base, size: info.secretArea.size } }
        : {}),
    },
    matrix: {
      'cpu-counts': cpuCounts,
      'cpu-signatures': sigs,
      'vmsa-variants': variants,
      collapsed: !sevEs,
      note: sevEs ? ES_NOTE : COLLAPSED_NOTE,
    },
    rows,
  };
  if (p.minApi) body['min-api'] = { major: p.minApi.major, minor: p.minApi.minor };
  if (p.allowedBuildIds) body['allowed-build-ids'] = [...p.allowedBuildIds];
  if (p.allowedCpuIds) body['allowed-cpu-ids'] = [...p.allowedCpuIds];
  if (k) {
    body.kernel = {
      'kernel-hash': k.kernel,
      'initrd-hash': k.initrd,
      'cmdline-hash': k.cmdline,
      ...(k.cmdlineText !== undefined ? { cmdline: k.cmdlineText } : {}),
    };
  }
  // The schema is the contract: a body we could not read back is a bug here, not the reader's problem.
  return BundleBodySchema.parse(body);
}

/** What an SEV-SNP bundle is built from: the profile and its OVMF, measured once (prepareSnpOvmf). */
export interface BuildSnpBundleInput {
  profile: VmProfile;
  firmware: SnpOvmfState;
  /** The firmware file's SHA-256 and size (the artifact the profile names). */
  firmwareFile: { sha256: string; size: number };
  firmwareName?: string;
  /** vCPU counts and signatures to span; VMSA variants do not apply to SNP. */
  selection?: Pick<MatrixSelection, 'cpuCounts' | 'cpuSignatures'>;
  createdAt?: string;
  generator?: string;
}

const SNP_NOTE =
  "SEV-SNP: one row per vCPU count x vCPU signature; every row continues from the OVMF hash, adds the kernel hashes page when kernel-hashes-table is true, and one VMSA per vCPU of the row's VMM type, vCPU signature and guest features. VMSA variants do not apply.";

/**
 * The unsigned SEV-SNP body for a profile: a measurement per vCPU count x vCPU signature over the OVMF
 * measured once (docs/protocol.md §13), plus the profile's SNP rules (trusted keys, minimum TCB, host data,
 * VMPL, minimum report version) so an import reproduces the profile.
 */
export function buildSnpBundleBody(input: BuildSnpBundleInput): BundleBody {
  const { profile: p, firmware } = input;
  if (p.scheme !== 'amd-sev-snp' || p.snp === undefined) {
    throw new BundleError('bundle-export-unsupported', `${p.id} is not an SEV-SNP profile`);
  }
  if (p.firmware.kind === 'artifact' && p.firmware.sha256 !== input.firmwareFile.sha256) {
    throw new BundleError(
      'bundle-export-unsupported',
      `the firmware given (${input.firmwareFile.sha256}) is not ${p.id}'s (${p.firmware.sha256})`,
    );
  }
  const snp = p.snp;
  const sel = input.selection ?? {};
  const cpuCounts = [...new Set(sel.cpuCounts?.length ? sel.cpuCounts : p.cpuCounts)];
  const sigs = uniqueBy(
    (sel.cpuSignatures?.length ? sel.cpuSignatures : p.cpuSignatures).map(bundleSignature),
    (s) => s.eax,
  );
  // QEMU writes the vCPU signature into each VMSA; EC2 and GCE do not, so one row per count there.
  const usesSignature = snp.vmmType === 'qemu';
  if (usesSignature && sigs.length === 0) {
    throw new BundleError(
      'bundle-export-unsupported',
      'an SEV-SNP bundle for QEMU needs at least one vCPU signature (the guest CPU model: e.g. EPYC-Milan)',
    );
  }
  const k = profileKernelHashes(p);
  const kernelHashes = k
    ? {
        kernel: parseSha256Hex(k.kernel, 'kernel-hash'),
        initrd: parseSha256Hex(k.initrd, 'initrd-hash'),
        cmdline: parseSha256Hex(k.cmdline, 'cmdline-hash'),
      }
    : undefined;
  const guestFeatures = BigInt(snp.guestFeatures);
  const combos: Array<{ cpus: number; sig?: BundleCpuSignature }> = [];
  for (const cpus of cpuCounts) {
    if (usesSignature) for (const sig of sigs) combos.push({ cpus, sig });
    else combos.push({ cpus });
  }
  let measured;
  try {
    measured = computeSnpDigestMatrix(
      firmware,
      combos.map((c): SnpDigestRow => ({
        vcpus: c.cpus,
        ...(c.sig ? { vcpuSignature: Number(c.sig.eax) } : {}),
        guestFeatures,
        vmmType: snp.vmmType,
        ...(kernelHashes ? { kernelHashes } : {}),
      })),
    );
  } catch (e) {
    if (e instanceof Error && 'code' in e) {
      throw new BundleError('bundle-export-unsupported', `cannot measure ${p.id}: ${e.message}`);
    }
    throw e;
  }
  const rows: BundleRow[] = combos.map((c, i) => ({
    row: i,
    digest: measured[i]!.digestHex,
    'sev-es': true,
    'kernel-hashes-table': kernelHashes !== undefined,
    cpus: c.cpus,
    ...(c.sig ? { 'cpu-signature': c.sig } : {}),
    'vmm-type': snp.vmmType,
    'guest-features': '0x' + guestFeatures.toString(16),
  }));
  const body: BundleBody = {
    'created-at': input.createdAt ?? new Date().toISOString(),
    generator: input.generator ?? 'sev-attest',
    vm: { id: p.id, name: p.name },
    scheme: p.scheme,
    policy: p.policy,
    firmware: {
      sha256: input.firmwareFile.sha256,
      size: input.firmwareFile.size,
      ...(input.firmwareName !== undefined ? { name: input.firmwareName.slice(0, 255) } : {}),
      'ovmf-hash': toHex(firmware.ovmfHash),
    },
    matrix: {
      'cpu-counts': cpuCounts,
      'cpu-signatures': usesSignature ? sigs : [],
      'vmsa-variants': [],
      collapsed: false,
      note: SNP_NOTE,
    },
    rows,
    snp: {
      'trusted-id-key-digests': [...snp.trustedIdKeyDigests],
      'trusted-author-key-digests': [...snp.trustedAuthorKeyDigests],
      ...(snp.minimumTcb ? { 'minimum-tcb': { ...snp.minimumTcb } } : {}),
      ...(snp.hostData !== undefined ? { 'host-data': snp.hostData } : {}),
      vmpl: snp.vmpl,
      'minimum-report-version': snp.minimumReportVersion,
    },
  };
  if (p.allowedCpuIds) body['allowed-cpu-ids'] = [...p.allowedCpuIds];
  if (k) {
    body.kernel = {
      'kernel-hash': k.kernel,
      'initrd-hash': k.initrd,
      'cmdline-hash': k.cmdline,
      ...(k.cmdlineText !== undefined ? { cmdline: k.cmdlineText } : {}),
    };
  }
  return BundleBodySchema.parse(body);
}

// ------------------------------------------------------------------------------------------------
// Signing and verification

function signedMessage(body: BundleBody): Uint8Array {
  const ctx = new TextEncoder().encode(SIGNATURE_CONTEXT);
  const canon = canonicalBytes(body);
  const out = new Uint8Array(ctx.length + canon.length);
  out.set(ctx, 0);
  out.set(canon, ctx.length);
  return out;
}

/** The signed document: body plus an Ed25519 signature with the given private key. */
export function signBundle(body: BundleBody, secretKey: Uint8Array): BundleDocument {
  const parsed = BundleBodySchema.parse(body);
  const publicKey = publicKeyOf(secretKey);
  const value = ed25519.sign(signedMessage(parsed), secretKey);
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    body: parsed,
    signature: {
      algorithm: 'ed25519',
      'public-key': toBase64(publicKey),
      fingerprint: keyFingerprint(publicKey),
      value: toBase64(value),
    },
  };
}

/** An unsigned document (verification refuses it; for previews only). */
export function unsignedBundle(body: BundleBody): BundleDocument {
  return { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, body: BundleBodySchema.parse(body) };
}

/** A key the owner trusts to sign bundles. */
export interface TrustedKey {
  fingerprint: string;
  /** Raw public key, base64 (optional when the owner pinned a fingerprint only). */
  publicKey?: string;
  label?: string;
}

export interface VerifiedBundle {
  document: BundleDocument;
  body: BundleBody;
  signer: { fingerprint: string; label?: string };
}

/** Parses bundle text (JSON) into an unverified document; throws bundle-invalid with the first problem. */
export function parseBundleText(text: string | Uint8Array): BundleDocument {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (size > MAX_BUNDLE_BYTES) {
    throw new BundleError('bundle-invalid', `a bundle is at most ${MAX_BUNDLE_BYTES} bytes, got ${size}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(
      typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: true }).decode(text),
    );
  } catch (e) {
    throw new BundleError('bundle-invalid', `not a bundle: not valid JSON (${(e as Error).message})`);
  }
  return parseBundleDocument(value);
}

/** Validates a parsed JSON value against the bundle schema (no signature check). */
export function parseBundleDocument(value: unknown): BundleDocument {
  if (typeof value === 'object' && value !== null && 'version' in value) {
    const v = (value as { version: unknown }).version;
    if ((value as { format?: unknown }).format === BUNDLE_FORMAT && v !== BUNDLE_VERSION) {
      throw new BundleError(
        'bundle-invalid',
        `bundle version ${String(v)} is not supported (this build reads version ${BUNDLE_VERSION})`,
      );
    }
  }
  const r = BundleDocumentSchema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const path = i.path.length ? i.path.map(String).join('.') : '(document)';
    throw new BundleError('bundle-invalid', `not a valid bundle: ${path}: ${i.message}`);
  }
  return r.data;
}

/**
 * Verifies a bundle: the schema, then the Ed25519 signature over the canonical body (any edited byte of
 * a digest, the policy, an added row... fails here), then that the signer is one of `trusted`.
 */
export function verifyBundle(input: unknown, trusted: readonly TrustedKey[]): VerifiedBundle {
  const doc =
    typeof input === 'string' || input instanceof Uint8Array
      ? parseBundleText(input)
      : parseBundleDocument(input);
  const sig = doc.signature;
  if (!sig) {
    throw new BundleError(
      'bundle-unsigned',
      'the bundle is not signed: refusing it (sign it with `sev-attest bundle export`)',
    );
  }
  const publicKey = fromBase64(sig['public-key']);
  const fingerprint = keyFingerprint(publicKey);
  if (sig.fingerprint !== fingerprint) {
    throw new BundleError(
      'bundle-signature-invalid',
      `the bundle was modified: its stated signer fingerprint ${sig.fingerprint} is not that of its public key (${fingerprint})`,
    );
  }
  let ok: boolean;
  try {
    ok = ed25519.verify(fromBase64(sig.value), signedMessage(doc.body), publicKey);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new BundleError(
      'bundle-signature-invalid',
      `the bundle was modified after it was signed (or was not signed by ${fingerprint}): its signature does not verify; refusing it`,
    );
  }
  const match = trusted.find(
    (t) =>
      t.fingerprint === fingerprint &&
      (t.publicKey === undefined || bytesEqual(fromBase64(t.publicKey), publicKey)),
  );
  if (!match) {
    throw new BundleError(
      'bundle-key-untrusted',
      `the bundle's signature is intact but its signer ${fingerprint} is not a key you trust; if you know this key, trust it (sev-attest bundle trust ${fingerprint}) and retry`,
    );
  }
  checkBodyConsistency(doc.body);
  return {
    document: doc,
    body: doc.body,
    signer: { fingerprint, ...(match.label !== undefined ? { label: match.label } : {}) },
  };
}

/** Semantic checks the schema cannot express (a signed but self-contradictory bundle is still refused). */
function checkBodyConsistency(b: BundleBody): void {
  if (b.scheme === 'amd-sev-snp') {
    checkSnpBodyConsistency(b);
    return;
  }
  if (b.snp !== undefined || b.firmware['ovmf-hash'] !== undefined) {
    throw new BundleError('bundle-invalid', `a ${b.scheme} bundle carries SEV-SNP fields`);
  }
  const es = decodePolicy(b.policy).es;
  if (es !== (b.scheme === 'amd-sev-es')) {
    throw new BundleError('bundle-invalid', `scheme ${b.scheme} disagrees with the policy's ES bit`);
  }
  b.rows.forEach((r, i) => {
    if (r.row !== i) throw new BundleError('bundle-invalid', `rows[${i}] is numbered ${r.row}`);
    if (r['sev-es'] !== es)
      throw new BundleError('bundle-invalid', `rows[${i}] disagrees with the policy's ES bit`);
    if (r['kernel-hashes-table'] !== (b.kernel !== undefined)) {
      throw new BundleError('bundle-invalid', `rows[${i}] disagrees with the bundle's kernel section`);
    }
    if (r.digest.length !== 64) {
      throw new BundleError('bundle-invalid', `rows[${i}]: an SEV launch digest is a SHA-256 (64 hex)`);
    }
    if (r['vmm-type'] !== undefined || r['guest-features'] !== undefined) {
      throw new BundleError('bundle-invalid', `rows[${i}] carries SEV-SNP inputs in a ${b.scheme} bundle`);
    }
    if (es && (r.cpus === undefined || r['cpu-signature'] === undefined || r['vmsa-variant'] === undefined)) {
      throw new BundleError(
        'bundle-invalid',
        `rows[${i}]: an SEV-ES row names its vCPUs, CPU signature and VMSA variant`,
      );
    }
  });
}

/** The SEV-SNP rules a signed body must also meet: 96-hex rows naming one VMM type and guest features. */
function checkSnpBodyConsistency(b: BundleBody): void {
  if (b.snp === undefined) throw new BundleError('bundle-invalid', 'an SEV-SNP bundle needs its snp section');
  if (b.firmware['ovmf-hash'] === undefined) {
    throw new BundleError('bundle-invalid', 'an SEV-SNP bundle names its OVMF hash (firmware.ovmf-hash)');
  }
  if ((b.policy & SNP_POLICY_DEBUG_BIT) !== 0) {
    throw new BundleError('bundle-invalid', 'the SNP policy allows debugging (bit 19): refusing the bundle');
  }
  if (b['min-api'] !== undefined || b['allowed-build-ids'] !== undefined) {
    throw new BundleError('bundle-invalid', 'min-api and allowed-build-ids are SEV rules, not SEV-SNP ones');
  }
  if (b.matrix['vmsa-variants'].length !== 0 || b.matrix.collapsed) {
    throw new BundleError('bundle-invalid', 'an SEV-SNP matrix has no VMSA variants and never collapses');
  }
  const first = b.rows[0]!;
  b.rows.forEach((r, i) => {
    if (r.row !== i) throw new BundleError('bundle-invalid', `rows[${i}] is numbered ${r.row}`);
    if (r.digest.length !== 96) {
      throw new BundleError('bundle-invalid', `rows[${i}]: an SNP measurement is a SHA-384 (96 hex)`);
    }
    if (!r['sev-es'] || r.cpus === undefined || r['vmsa-variant'] !== undefined) {
      throw new BundleError(
        'bundle-invalid',
        `rows[${i}]: an SEV-SNP row names its vCPUs and no VMSA variant`,
      );
    }
    if (r['vmm-type'] === undefined || r['guest-features'] === undefined) {
      throw new BundleError(
        'bundle-invalid',
        `rows[${i}]: an SEV-SNP row names its VMM type and guest features`,
      );
    }
    if (r['vmm-type'] !== first['vmm-type'] || r['guest-features'] !== first['guest-features']) {
      throw new BundleError(
        'bundle-invalid',
        `rows[${i}]: every row of one bundle has the same VMM type and guest features`,
      );
    }
    if (r['vmm-type'] === 'qemu' && r['cpu-signature'] === undefined) {
      throw new BundleError('bundle-invalid', `rows[${i}]: a QEMU row names its vCPU signature`);
    }
    if (r['kernel-hashes-table'] !== (b.kernel !== undefined)) {
      throw new BundleError('bundle-invalid', `rows[${i}] disagrees with the bundle's kernel section`);
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Import

/** The distinct digests of a bundle, in row order. */
export function bundleDigests(b: BundleBody): string[] {
  return [...new Set(b.rows.map((r) => r.digest))];
}

/**
 * The REST VM body (PUT /v1/vm) a verified bundle becomes: precomputed launch digests (no firmware needed on
 * this machine) plus its policy, minimum API, builds and chip ids. Secrets are the importer's to add.
 */
export function bundleToVmBody(
  b: BundleBody,
  opts: { approval?: 'manual' | 'auto'; name?: string } = {},
): Record<string, unknown> {
  if (b.scheme === 'amd-sev-snp') {
    // The REST VM body has no SNP settings: registration.ts builds SNP profiles itself.
    throw new BundleError('bundle-export-unsupported', 'an SEV-SNP bundle has no SEV VM body');
  }
  const sigs = b.matrix['cpu-signatures'].map((s) => ({
    family: s.family,
    model: s.model,
    stepping: s.stepping,
  }));
  const out: Record<string, unknown> = {
    name: opts.name ?? b.vm.name,
    scheme: b.scheme,
    policy: b.policy,
    'launch-digests': bundleDigests(b),
    'cpu-counts': b.matrix['cpu-counts'].slice(0, 64),
    approval: opts.approval ?? 'manual',
  };
  if (b.scheme === 'amd-sev-es') {
    if (sigs.length) out['cpu-signature'] = sigs.slice(0, 16);
    if (b.matrix['vmsa-variants'].length) out['vmsa-variant'] = b.matrix['vmsa-variants'];
  }
  if (b.kernel) {
    out['kernel-hash'] = b.kernel['kernel-hash'];
    out['initrd-hash'] = b.kernel['initrd-hash'];
    if (b.kernel.cmdline !== undefined) out.cmdline = b.kernel.cmdline;
    else out['cmdline-hash'] = b.kernel['cmdline-hash'];
  }
  if (b['min-api']) out['min-api'] = b['min-api'];
  if (b['allowed-build-ids']) out['allowed-build-ids'] = b['allowed-build-ids'];
  if (b['allowed-cpu-ids']) out['allowed-cpu-ids'] = b['allowed-cpu-ids'];
  return out;
}
