/**
 * The SNP attestation report (docs/protocol.md §11; SEV-SNP ABI "ATTESTATION_REPORT", go-sev-guest
 * `abi/abi.go`): 0x4A0 bytes, versions 2..5, little-endian fields, ECDSA P-384 signature over [0, 0x2A0).
 */
import { SnpError } from './errors';
import { decodeGuestPolicy, guestPolicyProblem, type SnpGuestPolicy } from './policy';
import type { SnpProduct } from './roots';

export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, SNP_SIGNED_LENGTH). */
export const SNP_SIGNED_LENGTH = 0x2a0;
export const SNP_REPORT_MIN_VERSION = 2;
export const SNP_REPORT_MAX_VERSION = 5;
/** SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384. */
export const SIG_ALGO_ECDSA_P384_SHA384 = 1;
/** r and s are 72-byte little-endian fields; a P-384 value uses the low 48 bytes. */
export const SIG_COMPONENT_SIZE = 72;
const P384_SIZE = 48;

/** Report offsets this code relies on. */
export const OFF = {
  version: 0x00,
  guestSvn: 0x04,
  policy: 0x08,
  familyId: 0x10,
  imageId: 0x20,
  vmpl: 0x30,
  signatureAlgo: 0x34,
  currentTcb: 0x38,
  platformInfo: 0x40,
  signerInfo: 0x48,
  reportData: 0x50,
  measurement: 0x90,
  hostData: 0xc0,
  idKeyDigest: 0xe0,
  authorKeyDigest: 0x110,
  reportId: 0x140,
  reportIdMa: 0x160,
  reportedTcb: 0x180,
  cpuidFamily: 0x188,
  cpuidModel: 0x189,
  cpuidStepping: 0x18a,
  chipId: 0x1a0,
  committedTcb: 0x1e0,
  currentBuild: 0x1e8,
  currentMinor: 0x1e9,
  currentMajor: 0x1ea,
  committedBuild: 0x1ec,
  committedMinor: 0x1ed,
  committedMajor: 0x1ee,
  launchTcb: 0x1f0,
  launchMitVector: 0x1f8,
  currentMitVector: 0x200,
  signatureR: 0x2a0,
  signatureS: 0x2e8,
} as const;

export type SigningKeyKind = 'vcek' | 'vlek' | 'none';

export interface SignerInfo {
  raw: number;
  /** Bit 0: AUTHOR_KEY_EN, the author key digest is meaningful. */
  authorKeyEnabled: boolean;
  /** Bit 1: MASK_CHIP_KEY, chip_id is zeroed. */
  maskChipKey: boolean;
  /** Bits 2..4: 0 VCEK, 1 VLEK, 7 none. */
  signingKey: SigningKeyKind;
}

export interface Cpuid {
  family: number;
  model: number;
  stepping: number;
}

export interface SnpReport {
  /** The 0x4A0 bytes, a private copy. */
  readonly raw: Uint8Array;
  version: number;
  guestSvn: number;
  policy: SnpGuestPolicy;
  familyId: Uint8Array;
  imageId: Uint8Array;
  vmpl: number;
  signatureAlgo: number;
  /** The raw 8 bytes of each TCB; decode with decodeTcb(…, product). */
  currentTcb: Uint8Array;
  platformInfo: bigint;
  signerInfo: SignerInfo;
  reportData: Uint8Array;
  measurement: Uint8Array;
  hostData: Uint8Array;
  idKeyDigest: Uint8Array;
  authorKeyDigest: Uint8Array;
  reportId: Uint8Array;
  reportIdMa: Uint8Array;
  reportedTcb: Uint8Array;
  /** Version 3 and later; undefined for version 2 (the fields are reserved there). */
  cpuid: Cpuid | undefined;
  chipId: Uint8Array;
  committedTcb: Uint8Array;
  currentVersion: { major: number; minor: number; build: number };
  committedVersion: { major: number; minor: number; build: number };
  launchTcb: Uint8Array;
  /** Version 5 and later. */
  launchMitVector: bigint | undefined;
  currentMitVector: bigint | undefined;
  /** r and s as 48-byte big-endian integers (the P1363 halves). */
  signatureR: Uint8Array;
  signatureS: Uint8Array;
}

function bad(msg: string): never {
  throw new SnpError('bad-report', `SNP report: ${msg}`);
}

const SIGNING_KEYS: Record<number, SigningKeyKind> = { 0: 'vcek', 1: 'vlek', 7: 'none' };

/** A 72-byte little-endian signature component as 48 big-endian bytes; the high 24 bytes must be zero. */
function sigComponent(raw: Uint8Array, off: number, name: string): Uint8Array {
  const le = raw.subarray(off, off + SIG_COMPONENT_SIZE);
  for (let i = P384_SIZE; i < SIG_COMPONENT_SIZE; i++) {
    if (le[i] !== 0) bad(`signature ${name} has non-zero bytes above the 48 of a P-384 value`);
  }
  return Uint8Array.from(le.subarray(0, P384_SIZE)).reverse();
}

/** Parses and checks a report's structure (not its signature: see verify.ts). */
export function parseReport(bytes: Uint8Array): SnpReport {
  if (!(bytes instanceof Uint8Array)) bad('expected bytes');
  if (bytes.length !== SNP_REPORT_SIZE) {
    bad(`expected ${SNP_REPORT_SIZE} bytes (0x4A0), got ${bytes.length}`);
  }
  const raw = Uint8Array.from(bytes);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => dv.getBigUint64(o, true);
  const slice = (o: number, n: number) => raw.slice(o, o + n);

  const version = u32(OFF.version);
  if (version < SNP_REPORT_MIN_VERSION || version > SNP_REPORT_MAX_VERSION) {
    bad(`version ${version} is not supported (2..5)`);
  }
  const signatureAlgo = u32(OFF.signatureAlgo);
  if (signatureAlgo !== SIG_ALGO_ECDSA_P384_SHA384) {
    bad(`signature algorithm ${signatureAlgo} is not ECDSA P-384 with SHA-384 (1)`);
  }
  const policyRaw = u64(OFF.policy);
  const policyProblem = guestPolicyProblem(policyRaw);
  if (policyProblem) bad(`policy 0x${policyRaw.toString(16)}: ${policyProblem}`);
  const vmpl = u32(OFF.vmpl);
  if (vmpl > 3) bad(`VMPL ${vmpl} is out of range (0..3)`);
  const signerRaw = u32(OFF.signerInfo);
  const keyCode = (signerRaw >> 2) & 7;
  const signingKey = SIGNING_KEYS[keyCode];
  if (!signingKey) bad(`signer info names signing key ${keyCode} (0 VCEK, 1 VLEK, 7 none)`);
  if (signerRaw >>> 5 !== 0) bad(`signer info 0x${signerRaw.toString(16)} has reserved bits set`);

  const cpuid =
    version >= 3
      ? {
          family: raw[OFF.cpuidFamily]!,
          model: raw[OFF.cpuidModel]!,
          stepping: raw[OFF.cpuidStepping]!,
        }
      : undefined;
  const ver = (b: number, mi: number, ma: number) => ({ build: raw[b]!, minor: raw[mi]!, major: raw[ma]! });
  return {
    raw,
    version,
    guestSvn: u32(OFF.guestSvn),
    policy: decodeGuestPolicy(policyRaw),
    familyId: slice(OFF.familyId, 16),
    imageId: slice(OFF.imageId, 16),
    vmpl,
    signatureAlgo,
    currentTcb: slice(OFF.currentTcb, 8),
    platformInfo: u64(OFF.platformInfo),
    signerInfo: {
      raw: signerRaw,
      authorKeyEnabled: (signerRaw & 1) === 1,
      maskChipKey: (signerRaw & 2) === 2,
      signingKey,
    },
    reportData: slice(OFF.reportData, 64),
    measurement: slice(OFF.measurement, 48),
    hostData: slice(OFF.hostData, 32),
    idKeyDigest: slice(OFF.idKeyDigest, 48),
    authorKeyDigest: slice(OFF.authorKeyDigest, 48),
    reportId: slice(OFF.reportId, 32),
    reportIdMa: slice(OFF.reportIdMa, 32),
    reportedTcb: slice(OFF.reportedTcb, 8),
    cpuid,
    chipId: slice(OFF.chipId, 64),
    committedTcb: slice(OFF.committedTcb, 8),
    currentVersion: ver(OFF.currentBuild, OFF.currentMinor, OFF.currentMajor),
    committedVersion: ver(OFF.committedBuild, OFF.committedMinor, OFF.committedMajor),
    launchTcb: slice(OFF.launchTcb, 8),
    launchMitVector: version >= 5 ? u64(OFF.launchMitVector) : undefined,
    currentMitVector: version >= 5 ? u64(OFF.currentMitVector) : undefined,
    signatureR: sigComponent(raw, OFF.signatureR, 'r'),
    signatureS: sigComponent(raw, OFF.signatureS, 's'),
  };
}

/**
 * The product from the CPUID fields of a v3+ report (family/model as CPUID Fn0000_0001 combines them):
 * family 0x19 models 0x00-0x0F Milan, 0x10-0x1F and 0xA0-0xAF Genoa (incl. Bergamo, Siena); family 0x1A
 * models 0x00-0x1F Turin. Undefined for v2 reports or zero fields; throws for an unknown CPU.
 */
export function productFromCpuid(cpuid: Cpuid | undefined): SnpProduct | undefined {
  if (!cpuid || (cpuid.family === 0 && cpuid.model === 0 && cpuid.stepping === 0)) return undefined;
  const { family, model } = cpuid;
  if (family === 0x19 && model <= 0x0f) return 'Milan';
  if (family === 0x19 && ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)))
    return 'Genoa';
  if (family === 0x1a && model <= 0x1f) return 'Turin';
  throw new SnpError(
    'unknown-product',
    `SNP report: CPUID family 0x${family.toString(16)} model 0x${model.toString(16)} is not a known SNP product (Milan, Genoa, Turin)`,
  );
}

/** A report given as 0x4A0 raw bytes or as hex text (whitespace ignored). */
export function reportBytesFromFile(data: Uint8Array): Uint8Array {
  if (data.length === SNP_REPORT_SIZE) return data;
  const text = Buffer.from(data).toString('latin1').replace(/\s+/g, '');
  if (text.length === 2 * SNP_REPORT_SIZE && /^[0-9a-fA-F]+$/.test(text)) {
    return new Uint8Array(Buffer.from(text, 'hex'));
  }
  throw new SnpError(
    'bad-report',
    `SNP report: expected ${SNP_REPORT_SIZE} bytes raw or ${2 * SNP_REPORT_SIZE} hex digits, got ${data.length} bytes`,
  );
}
