/**
 * Appraisal of a verified SNP report against the owner's policy (docs/protocol.md §11). A pure function:
 * it sees only a VerifiedSnpReport (signature, chain, revocation and key extensions already checked by
 * verify.ts) and returns every refusal, each naming the field, the expected and the reported value.
 * Deny by default: the launch must be vouched for by the measurement allow-list or a trusted ID / author
 * key digest; with neither configured nothing passes.
 */
import { timingSafeEqual } from 'node:crypto';
import { tcbComponents, type TcbParts } from './tcb';
import type { VerifiedSnpReport } from './verify';

export interface SnpAppraisalPolicy {
  /** Accepted launch measurements (48 bytes, hex). */
  measurements?: readonly string[];
  /** SHA-384 digests (hex) of ID public keys whose signed ID blocks are trusted (go-sev-guest TrustedIdKeyHashes). */
  trustedIdKeyDigests?: readonly string[];
  /** SHA-384 digests (hex) of author keys; count only when the report says AUTHOR_KEY_EN. */
  trustedAuthorKeyDigests?: readonly string[];
  /** Minimum SPL per component of reported_tcb (the TCB the VCEK certifies). */
  minimumTcb?: Partial<TcbParts>;
  /** Minimum SPL per component of launch_tcb. */
  minimumLaunchTcb?: Partial<TcbParts>;
  /** Debug (policy bit 19) is refused unless true. */
  allowDebug?: boolean;
  /** When false, SMT (policy bit 16) is refused. Default: allowed. */
  allowSmt?: boolean;
  /** A migration agent (policy bit 18) is refused unless true. */
  allowMigrationAgent?: boolean;
  /** When true, the policy must demand a single socket (bit 20). */
  requireSingleSocket?: boolean;
  /** The VMPL the report must have been requested from (0..3). */
  vmpl?: number;
  /** Minimum report version (2..5). */
  minimumReportVersion?: number;
  /** Expected host_data (32 bytes, hex). */
  hostData?: string;
  /** Expected family_id / image_id (16 bytes, hex). */
  familyId?: string;
  imageId?: string;
  minimumGuestSvn?: number;
  /** Expected report_data (64 bytes, hex; shorter values are zero-padded, as guests pad digests). */
  reportData?: string;
}

export interface SnpRefusal {
  field: string;
  expected: string;
  reported: string;
  message: string;
}

export interface SnpAppraisal {
  accepted: boolean;
  refusals: SnpRefusal[];
  /** What vouched for the launch when accepted: 'measurement', 'id-key' or 'author-key'. */
  vouchedBy: 'measurement' | 'id-key' | 'author-key' | undefined;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function parseHex(value: string, size: number, name: string, pad = false): Uint8Array {
  const s = value.trim().replace(/^0x/i, '').toLowerCase();
  if (
    !/^[0-9a-f]*$/.test(s) ||
    s.length % 2 !== 0 ||
    s.length > 2 * size ||
    (!pad && s.length !== 2 * size)
  ) {
    throw new RangeError(`appraisal policy: ${name} must be ${size} bytes of hex, got '${value}'`);
  }
  const out = new Uint8Array(size);
  out.set(Buffer.from(s, 'hex'));
  return out;
}

/** Equality without an early exit (report_data carries nonces and key bindings). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const zero = (b: Uint8Array) => b.every((x) => x === 0);

/** Appraises a verified report; throws RangeError for a malformed policy (an owner's configuration error). */
export function appraiseReport(v: VerifiedSnpReport, policy: SnpAppraisalPolicy): SnpAppraisal {
  const r = v.report;
  const refusals: SnpRefusal[] = [];
  const refuse = (field: string, expected: string, reported: string, why: string) =>
    refusals.push({
      field,
      expected,
      reported,
      message: `${field}: ${why} (expected ${expected}, reported ${reported})`,
    });

  // The launch: an allowed measurement, or an ID block signed by a trusted ID key or author key.
  const measurements = (policy.measurements ?? []).map((m) => parseHex(m, 48, 'measurement'));
  const idKeys = (policy.trustedIdKeyDigests ?? []).map((m) => parseHex(m, 48, 'ID key digest'));
  const authorKeys = (policy.trustedAuthorKeyDigests ?? []).map((m) => parseHex(m, 48, 'author key digest'));
  for (const k of [...idKeys, ...authorKeys]) {
    if (zero(k))
      throw new RangeError(
        'appraisal policy: an all-zero key digest would trust reports without an ID block',
      );
  }
  let vouchedBy: SnpAppraisal['vouchedBy'];
  if (measurements.some((m) => sameBytes(m, r.measurement))) vouchedBy = 'measurement';
  else if (idKeys.some((k) => sameBytes(k, r.idKeyDigest))) vouchedBy = 'id-key';
  else if (r.signerInfo.authorKeyEnabled && authorKeys.some((k) => sameBytes(k, r.authorKeyDigest)))
    vouchedBy = 'author-key';
  if (!vouchedBy) {
    if (!measurements.length && !idKeys.length && !authorKeys.length) {
      refuse(
        'measurement',
        'an allowed measurement or a trusted ID/author key',
        hex(r.measurement),
        'nothing is trusted (empty allow-list, no trusted keys)',
      );
    } else {
      const exp = [
        measurements.length ? `one of ${measurements.length} allowed measurement(s)` : '',
        idKeys.length ? `an ID key among ${idKeys.length} trusted digest(s)` : '',
        authorKeys.length ? `an author key among ${authorKeys.length} trusted digest(s)` : '',
      ]
        .filter(Boolean)
        .join(' or ');
      refuse(
        'measurement',
        exp,
        `measurement ${hex(r.measurement)}, id_key_digest ${hex(r.idKeyDigest)}, author_key_digest ${hex(r.authorKeyDigest)}${r.signerInfo.authorKeyEnabled ? '' : ' (author key not enabled)'}`,
        'the launch is not vouched for',
      );
    }
  }

  const minTcb = (field: string, min: Partial<TcbParts> | undefined, got: TcbParts) => {
    if (!min) return;
    for (const c of tcbComponents(v.product)) {
      const want = min[c];
      if (want !== undefined && (got[c] ?? 0) < want) {
        refuse(`${field}.${c}`, `>= ${want}`, String(got[c] ?? 0), 'security patch level too old');
      }
    }
  };
  minTcb('reported_tcb', policy.minimumTcb, v.tcb.reported);
  minTcb('launch_tcb', policy.minimumLaunchTcb, v.tcb.launch);

  const p = r.policy;
  if (p.debug && !policy.allowDebug)
    refuse('policy.debug', 'off', 'on', 'debugging lets the host read guest memory');
  if (p.smt && policy.allowSmt === false) refuse('policy.smt', 'off', 'on', 'SMT is not allowed');
  if (p.migrateMa && !policy.allowMigrationAgent) {
    refuse('policy.migrate_ma', 'off', 'on', 'a migration agent is not allowed');
  }
  if (policy.requireSingleSocket && !p.singleSocket) {
    refuse('policy.single_socket', 'on', 'off', 'the guest may run on several sockets');
  }
  if (policy.vmpl !== undefined && r.vmpl !== policy.vmpl) {
    refuse('vmpl', String(policy.vmpl), String(r.vmpl), 'the report was requested from another VMPL');
  }
  if (policy.minimumReportVersion !== undefined && r.version < policy.minimumReportVersion) {
    refuse('version', `>= ${policy.minimumReportVersion}`, String(r.version), 'report version too old');
  }
  if (policy.minimumGuestSvn !== undefined && r.guestSvn < policy.minimumGuestSvn) {
    refuse('guest_svn', `>= ${policy.minimumGuestSvn}`, String(r.guestSvn), 'guest SVN too old');
  }
  const exact = (field: string, value: string | undefined, size: number, got: Uint8Array, pad = false) => {
    if (value === undefined) return;
    const want = parseHex(value, size, field, pad);
    if (!sameBytes(want, got)) refuse(field, hex(want), hex(got), 'differs');
  };
  exact('host_data', policy.hostData, 32, r.hostData);
  exact('family_id', policy.familyId, 16, r.familyId);
  exact('image_id', policy.imageId, 16, r.imageId);
  exact('report_data', policy.reportData, 64, r.reportData, true);

  return {
    accepted: refusals.length === 0,
    refusals,
    vouchedBy: refusals.length === 0 ? vouchedBy : undefined,
  };
}
