/**
 * The SEV-SNP decision (docs/protocol.md §11, §15; docs/architecture.md §4): which of the owner's SNP
 * profiles a verified attestation report is, and the one way a resource is packaged for the guest.
 *
 * Every SNP profile is appraised with app/snp/appraisal.ts against its own rules: the exact guest policy
 * (debug never), an expected measurement or a trusted ID / author key, VMPL, minimum TCB, host_data,
 * minimum report version, the chip allow list, and report_data equal to the binding of the session's
 * nonce and the guest's key. None accepting is a refusal naming every failed rule per profile; more than
 * one is ambiguous (owners tell such profiles apart with host_data). Exactly one mints a
 * VerifiedSnpGuest, which alone can release: `releaseResource` encrypts a value to the guest's key for a
 * resource path of that profile (the model is VerifiedLaunch / releaseSecret in ./verified.ts).
 */
import { timingSafeEqual } from 'node:crypto';
import type { FlattenedJwe } from '../kbs/jwe';
import { encryptForTee } from '../kbs/jwe';
import type { TeePublicKey } from '../kbs/jwk';
import type { VmProfile } from '../profile';
import { SNP_POLICY_DEBUG_BIT } from '../profile';
import { appraiseReport, type SnpAppraisalPolicy, type SnpRefusal } from '../snp/appraisal';
import type { SnpProduct } from '../snp/roots';
import type { TcbParts } from '../snp/tcb';
import type { VerifiedSnpReport } from '../snp/verify';

/** What the decision reads of a profile. */
export type SnpProfile = Pick<
  VmProfile,
  'id' | 'scheme' | 'policy' | 'snp' | 'allowedCpuIds' | 'secrets' | 'revision' | 'approval'
>;

/** A profile with the launch measurements it admits (96 hex each; from its firmware or its digests). */
export interface SnpCandidate<P extends SnpProfile = VmProfile> {
  profile: P;
  measurements: readonly string[];
}

/** What the report must be bound to: report_data = kbsReportData(nonce, tee-pubkey, ...), and that key. */
export interface SnpBinding {
  /** The expected 64 bytes of report_data. */
  reportData: Uint8Array;
  /** The guest's key the token and every resource are for. */
  teePubkey: TeePublicKey;
}

/** How one profile judged the report. */
export interface SnpProfileVerdict {
  profileId: string;
  revision: string | undefined;
  accepted: boolean;
  /** Each failed rule with its expected and reported value (empty when accepted). */
  refusals: SnpRefusal[];
  vouchedBy: 'measurement' | 'id-key' | 'author-key' | undefined;
}

export interface SnpDecision<P extends SnpProfile = VmProfile> {
  /** Present only when exactly one profile accepted the report. */
  guest: VerifiedSnpGuest<P> | undefined;
  verdicts: SnpProfileVerdict[];
  /** Why there is no guest: no SNP profile at all, none accepting, or several (ambiguous). */
  refusal: { reason: 'no-profile' | 'no-match' | 'ambiguous'; message: string } | undefined;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const policyHex = (v: bigint | number) => `0x${v.toString(16)}`;
/** SNP policy bit 18: a migration agent may be bound. */
const MIGRATE_MA_BIT = 1 << 18;

/** The appraisal policy of one SNP profile (the owner's rules, with report_data fixed to the binding). */
export function snpAppraisalPolicyOf(
  profile: SnpProfile,
  measurements: readonly string[],
  reportData: Uint8Array,
): SnpAppraisalPolicy {
  const snp = profile.snp;
  if (profile.scheme !== 'amd-sev-snp' || !snp)
    throw new RangeError(`profile ${profile.id} is not an SEV-SNP profile`);
  return {
    measurements,
    trustedIdKeyDigests: snp.trustedIdKeyDigests,
    trustedAuthorKeyDigests: snp.trustedAuthorKeyDigests,
    ...(snp.minimumTcb ? { minimumTcb: snp.minimumTcb } : {}),
    // Debug lets the host read guest memory: never allowed, whatever the profile says.
    allowDebug: false,
    // The policy must equal the profile's exactly (checked apart); a migration agent only when it says so.
    allowMigrationAgent: (profile.policy & MIGRATE_MA_BIT) !== 0,
    vmpl: snp.vmpl,
    minimumReportVersion: snp.minimumReportVersion,
    ...(snp.hostData !== undefined ? { hostData: snp.hostData } : {}),
    reportData: hex(reportData),
  };
}

/** The rules appraisal.ts does not know: the exact guest policy and the chip allow list. */
function profileRules(v: VerifiedSnpReport, profile: SnpProfile): SnpRefusal[] {
  const out: SnpRefusal[] = [];
  const reported = v.report.policy.raw;
  const expected = BigInt(profile.policy >>> 0);
  if (reported !== expected) {
    out.push({
      field: 'policy',
      expected: policyHex(expected),
      reported: policyHex(reported),
      message: `policy: the guest policy differs from the profile's (expected ${policyHex(expected)}, reported ${policyHex(reported)})`,
    });
  }
  if ((profile.policy & SNP_POLICY_DEBUG_BIT) !== 0) {
    // The profile schema refuses this; a profile that slipped through still never releases.
    out.push({
      field: 'profile.policy.debug',
      expected: 'off',
      reported: 'on',
      message: 'the profile allows debugging, which SEV Attest never releases to',
    });
  }
  if (profile.allowedCpuIds !== undefined) {
    const chip = v.report.chipId;
    const allowed = profile.allowedCpuIds.some((id) => {
      const want = Buffer.from(id, 'hex');
      return want.length === chip.length && timingSafeEqual(want, chip);
    });
    if (!allowed) {
      out.push({
        field: 'chip_id',
        expected: `one of ${profile.allowedCpuIds.length} allowed chip(s)`,
        reported: hex(chip),
        message: `chip_id: this chip is not on the profile's allow list (reported ${hex(chip)})`,
      });
    }
  }
  return out;
}

interface MintArgs<P extends SnpProfile> {
  report: VerifiedSnpReport;
  profile: P;
  vouchedBy: 'measurement' | 'id-key' | 'author-key';
  teePubkey: TeePublicKey;
}

let mint: <P extends SnpProfile>(a: MintArgs<P>) => VerifiedSnpGuest<P>;

/**
 * A guest whose verified report exactly one SNP profile accepted, bound to the key its report_data
 * names. Only decideSnpGuest creates one (private constructor, module-private factory).
 */
export class VerifiedSnpGuest<P extends SnpProfile = VmProfile> {
  readonly #teePubkey: TeePublicKey;
  readonly #resources: ReadonlySet<string>;
  /** The profile that accepted the report (as it was then). */
  readonly profile: P;
  readonly profileId: string;
  /** The profile revision the session is bound to: a changed profile is another one. */
  readonly revision: string | undefined;
  readonly product: SnpProduct;
  readonly signer: 'vcek' | 'vlek';
  /** chip_id, 128 hex. */
  readonly chipId: string;
  /** The launch measurement, 96 hex. */
  readonly measurement: string;
  /** The guest policy, 0x hex. */
  readonly policy: string;
  readonly reportedTcb: TcbParts;
  readonly vmpl: number;
  readonly vouchedBy: 'measurement' | 'id-key' | 'author-key';

  private constructor(a: MintArgs<P>) {
    const r = a.report.report;
    this.#teePubkey = a.teePubkey;
    this.#resources = new Set(
      a.profile.secrets.flatMap((s) => (s.resource !== undefined ? [s.resource] : [])),
    );
    this.profile = a.profile;
    this.profileId = a.profile.id;
    this.revision = a.profile.revision;
    this.product = a.report.product;
    this.signer = a.report.signer;
    this.chipId = hex(r.chipId);
    this.measurement = hex(r.measurement);
    this.policy = policyHex(r.policy.raw);
    this.reportedTcb = { ...a.report.tcb.reported };
    this.vmpl = r.vmpl;
    this.vouchedBy = a.vouchedBy;
  }

  static {
    mint = <P extends SnpProfile>(a: MintArgs<P>) => new VerifiedSnpGuest<P>(a);
  }

  /** The guest's public key (the token carries it; resources are encrypted to it). */
  get teePubkey(): TeePublicKey {
    return this.#teePubkey;
  }

  /** The resource paths (repository/type/tag) the accepting profile held. */
  get resources(): string[] {
    return [...this.#resources];
  }

  /** Internal to releaseResource. */
  static package(g: VerifiedSnpGuest<SnpProfile>, path: string, value: Uint8Array): FlattenedJwe {
    if (!(g instanceof VerifiedSnpGuest))
      throw new TypeError('a resource is released for a verified SNP guest only');
    if (!g.#resources.has(path)) throw new TypeError(`profile ${g.profileId} holds no resource ${path}`);
    return encryptForTee(g.#teePubkey, value);
  }
}

/**
 * The SNP decision: appraises the verified report against every candidate profile (every rule, so the
 * owner sees each failure) and mints a VerifiedSnpGuest when exactly one accepts.
 */
export function decideSnpGuest<P extends SnpProfile>(
  report: VerifiedSnpReport,
  candidates: ReadonlyArray<SnpCandidate<P>>,
  binding: SnpBinding,
): SnpDecision<P> {
  if (binding.reportData.length !== 64) throw new RangeError('the expected report_data is 64 bytes');
  const verdicts: SnpProfileVerdict[] = [];
  const accepted: Array<{ profile: P; vouchedBy: 'measurement' | 'id-key' | 'author-key' }> = [];
  for (const { profile, measurements } of candidates) {
    const appraisal = appraiseReport(report, snpAppraisalPolicyOf(profile, measurements, binding.reportData));
    const refusals = [...appraisal.refusals, ...profileRules(report, profile)];
    const ok = refusals.length === 0 && appraisal.vouchedBy !== undefined;
    verdicts.push({
      profileId: profile.id,
      revision: profile.revision,
      accepted: ok,
      refusals,
      vouchedBy: ok ? appraisal.vouchedBy : undefined,
    });
    if (ok) accepted.push({ profile, vouchedBy: appraisal.vouchedBy! });
  }
  if (candidates.length === 0) {
    return {
      guest: undefined,
      verdicts,
      refusal: { reason: 'no-profile', message: 'the owner has no SEV-SNP profile' },
    };
  }
  if (accepted.length === 0) {
    const why = verdicts
      .map((v) => `${v.profileId}: ${v.refusals.map((r) => r.message).join('; ')}`)
      .join(' | ');
    return {
      guest: undefined,
      verdicts,
      refusal: { reason: 'no-match', message: `no SEV-SNP profile accepts the report (${why})` },
    };
  }
  if (accepted.length > 1) {
    return {
      guest: undefined,
      verdicts,
      refusal: {
        reason: 'ambiguous',
        message: `the report is accepted by ${accepted.length} profiles (${accepted.map((a) => a.profile.id).join(', ')}); refusing to guess (tell them apart with host_data)`,
      },
    };
  }
  const one = accepted[0]!;
  return {
    guest: mint({ report, profile: one.profile, vouchedBy: one.vouchedBy, teePubkey: binding.teePubkey }),
    verdicts,
    refusal: undefined,
  };
}

/**
 * Packages a resource for the guest: a flattened JWE of `value` to the guest's tee-pubkey. The only way
 * a resource leaves, and it needs the VerifiedSnpGuest only a successful appraisal creates; `path` must
 * be one of the accepting profile's resources.
 */
export function releaseResource(
  guest: VerifiedSnpGuest<SnpProfile>,
  path: string,
  value: Uint8Array,
): FlattenedJwe {
  return VerifiedSnpGuest.package(guest, path, value);
}
