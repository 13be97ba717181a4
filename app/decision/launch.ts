/**
 * What a launch admits: the candidate profiles for the VM path or for POST /v1/launch, the owner's
 * policy and scheme rules, and the chip allow lists. Pure: the profiles come in, a refusal or the
 * candidates come out.
 */
import type { VmProfile } from '../profile';
import { decodePolicy, policyHex } from '../sev/policy';
import { refusal } from './refusal';
import type { LaunchEvidence, LaunchFacts, LaunchTarget, ProfileSource } from './types';

export interface Admission {
  policy: number;
  candidates: VmProfile[];
}

/** Scheme given by the host vs the policy's ES bit (a malformed request, not an owner rule). */
function checkScheme(evidence: LaunchEvidence, policy: number): void {
  let es: boolean;
  try {
    es = decodePolicy(policy).es;
  } catch (e) {
    const m = `policy: ${e instanceof Error ? e.message : String(e)}`;
    throw refusal('bad-request', m, {}, { hostMessage: m });
  }
  if (evidence.scheme !== undefined && (evidence.scheme === 'amd-sev-es') !== es) {
    const m = `scheme: ${evidence.scheme} disagrees with the policy's ES bit`;
    throw refusal('bad-request', m, {}, { hostMessage: m });
  }
}

/** Whether the profile admits this chip (hex). A profile without an allow list admits any chip. */
export function chipAllowed(p: VmProfile, chipHex: string | undefined): boolean {
  if (p.allowedCpuIds === undefined) return true;
  return chipHex !== undefined && p.allowedCpuIds.includes(chipHex);
}

/** True when some candidate restricts chips: then the claimed cpu-id must be proven. */
export function needsChipProof(candidates: readonly VmProfile[]): boolean {
  return candidates.some((p) => p.allowedCpuIds !== undefined);
}

/**
 * The candidates a launch admits, judged on the CLAIMED chip id (the chip is proven afterwards, when an
 * allow list needs it: see needsChipProof and afterChipProof).
 */
export function admitLaunch(
  target: LaunchTarget,
  evidence: LaunchEvidence,
  claimedChipHex: string | undefined,
  profiles: ProfileSource,
): Admission {
  if (target.vmId !== undefined) {
    const p = profiles.get(target.vmId);
    if (!p) throw refusal('unknown-vm', `no VM registered as ${target.vmId}`);
    // An SNP guest attests itself (/kbs/v0); the host-driven SEV launch never serves it.
    if (p.scheme === 'amd-sev-snp') {
      throw refusal(
        'policy-not-allowed',
        `${p.id} is an SEV-SNP VM: its guest attests itself, there is no SEV launch`,
      );
    }
    if (evidence.policy !== undefined && evidence.policy !== p.policy) {
      throw refusal(
        'policy-not-allowed',
        `policy ${policyHex(evidence.policy)} is not the owner's policy ${policyHex(p.policy)} for ${p.id}`,
      );
    }
    checkScheme(evidence, p.policy);
    if (evidence.scheme !== undefined && evidence.scheme !== p.scheme) {
      throw refusal(
        'policy-not-allowed',
        `scheme ${evidence.scheme} is not the owner's scheme ${p.scheme} for ${p.id}`,
      );
    }
    if (!chipAllowed(p, claimedChipHex)) {
      throw refusal(
        'cpu-id-not-allowed',
        claimedChipHex
          ? `chip ${claimedChipHex.slice(0, 16)}... is not in ${p.id}'s allow list`
          : `${p.id} allows listed chips only: the host sent no cpu-id`,
      );
    }
    return { policy: p.policy, candidates: [p] };
  }
  if (evidence.policy === undefined) {
    throw refusal(
      'bad-request',
      'policy: required on /v1/launch',
      {},
      { hostMessage: 'policy: required on /v1/launch' },
    );
  }
  const policy = evidence.policy;
  checkScheme(evidence, policy);
  const byPolicy = profiles.list().filter((p) => p.scheme !== 'amd-sev-snp' && p.policy === policy);
  if (byPolicy.length === 0) {
    throw refusal('policy-not-allowed', `no VM of the owner uses policy ${policyHex(policy)}`);
  }
  const candidates = byPolicy.filter((p) => chipAllowed(p, claimedChipHex));
  if (candidates.length === 0) {
    throw refusal(
      'cpu-id-not-allowed',
      claimedChipHex
        ? `chip ${claimedChipHex.slice(0, 16)}... is in no allow list of the VMs with policy ${policyHex(policy)} (${byPolicy.map((p) => p.id).join(', ')})`
        : `the VMs with policy ${policyHex(policy)} allow listed chips only: the host sent no cpu-id`,
    );
  }
  return { policy, candidates };
}

/**
 * The candidates that remain once the chip's proof is known: all of them when the chip is proven, else
 * only those without an allow list. None left is cpu-id-unproven.
 */
export function afterChipProof(
  admission: Admission,
  proof: { claimed: string | undefined; proven: boolean; why?: string },
): Admission {
  if (proof.proven) return admission;
  const candidates = admission.candidates.filter((p) => p.allowedCpuIds === undefined);
  if (candidates.length === 0) {
    throw refusal(
      'cpu-id-unproven',
      `the claimed chip ${proof.claimed?.slice(0, 16) ?? '(none)'}... is not proven: ${proof.why ?? "the chain's CEK is not the key server's CEK for that chip"}; ${admission.candidates.map((p) => p.id).join(', ')} allow listed chips only`,
      { chip: { claimed: proof.claimed, proven: false } },
    );
  }
  return { ...admission, candidates };
}

/**
 * The profiles a validate may release for: the launched VM at the SAME profile revision (a VM deleted
 * and registered again, or replaced, is another VM), or on POST /v1/launch the profiles with the launch
 * policy whose allow list admits the proven chip.
 */
export function validateCandidates(conn: LaunchFacts, profiles: ProfileSource): VmProfile[] {
  if (conn.vmId !== undefined) {
    const p = profiles.get(conn.vmId);
    if (!p) throw refusal('denied', `VM ${conn.vmId} was deleted after its launch`);
    if (p.revision !== conn.profileRevision) {
      throw refusal(
        'denied',
        `VM ${p.id} was replaced or registered again after this launch (revision ${conn.profileRevision ?? '(none)'} -> ${p.revision ?? '(none)'}); launch again`,
        { reason: 'profile-revision' },
      );
    }
    if (p.policy !== conn.policy) {
      throw refusal(
        'policy-mismatch',
        `VM ${p.id}'s policy changed to ${policyHex(p.policy)} after the launch`,
      );
    }
    return [p];
  }
  return profiles.list().filter((p) => p.policy === conn.policy && chipAllowed(p, conn.chipId));
}
