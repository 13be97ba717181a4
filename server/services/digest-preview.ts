/**
 * `digests:preview`: the launch digests a DRAFT profile (not saved yet) admits, computed live from its
 * inputs through the service's ExpectedDigests (the firmware artifact is hashed once and its midstate
 * cached, so each edit costs only the per-combination tail), each with the inputs behind it.
 * Problems that make a digest impossible come back as `{ ok: false, reason }`, never as a throw.
 */
import type { DigestCandidate, DigestDraft, DigestInputs, DigestPreview } from '../../app/digest/candidates';
import { hasSecretArea, hasSevEsResetAddress, supportsMeasuredDirectBoot } from '../../app/digest/ovmf';
import { VmProfileSchema, type VmProfile } from '../../app/profile';
import { isSevError } from '../../app/sev/errors';
import { decodePolicy, type GuestPolicy } from '../../app/sev/policy';
import type { ExpectedDigests } from './expected-digests';
import { digestCandidate, profileKernelHashes } from './digest-candidates';

export type DigestDraftParsed = DigestDraft;

const fail = (reason: string): DigestPreview => ({ ok: false, reason });

function message(e: unknown): string {
  return isSevError(e) || e instanceof Error ? e.message : String(e);
}

/** The expected digests of a draft profile, with the inputs behind each and warnings for the owner. */
export async function previewDigests(
  digests: Pick<ExpectedDigests, 'forProfile' | 'firmwareInfo'>,
  draft: DigestDraftParsed,
): Promise<DigestPreview> {
  let policy: GuestPolicy;
  try {
    policy = decodePolicy(draft.policy);
  } catch (e) {
    return fail(message(e));
  }
  const sevEs = draft.scheme === 'amd-sev-es';
  if (policy.es !== sevEs) {
    return fail(
      sevEs
        ? 'the scheme is SEV-ES but the policy does not set the ES bit (0x4)'
        : 'the policy sets the ES bit (0x4) but the scheme is SEV: choose SEV-ES or clear the bit',
    );
  }
  if (draft.kernelHash === undefined) {
    if (draft.initrdHash !== undefined || draft.cmdline !== undefined || draft.cmdlineHash !== undefined) {
      return fail('an initrd or command line is only measured together with a kernel: add the kernel hash');
    }
  } else if (draft.cmdline !== undefined && draft.cmdlineHash !== undefined) {
    return fail('give either the command line or its hash, not both');
  }
  if (sevEs && draft.firmware.kind === 'artifact' && draft.cpuSignatures.length === 0) {
    return fail(
      'SEV-ES digests need the guest CPU signature (family, model, stepping): pick a preset or enter one',
    );
  }

  const warnings: string[] = [];
  if (!policy.noDebug)
    warnings.push('the policy allows debugging (NODBG off): the host could read guest memory');
  if (!policy.noKeySharing) warnings.push('the policy allows key sharing (NOKS off) with other guests');

  if (draft.firmware.kind === 'digests') {
    warnings.push(
      'precomputed digests: this machine cannot check them against vCPU count, CPU signature or VMSA variant',
    );
    const candidates: DigestCandidate[] = draft.firmware.launchDigests.map((hex) => ({
      launchDigest: hex.toLowerCase(),
      inputs: { scheme: draft.scheme, policy: draft.policy },
    }));
    return { ok: true, candidates, warnings };
  }

  const sha = draft.firmware.sha256;
  try {
    const info = await digests.firmwareInfo(sha);
    if (draft.kernelHash !== undefined) {
      const cap = supportsMeasuredDirectBoot(info);
      if (!cap.ok) return fail(`measured direct boot: ${cap.reason}`);
    }
    if (sevEs) {
      const cap = hasSevEsResetAddress(info);
      if (!cap.ok) return fail(cap.reason);
    }
    const secret = hasSecretArea(info);
    if (!secret.ok) warnings.push(`${secret.reason}; secrets registered for this VM could not be injected`);
  } catch (e) {
    return fail(`firmware ${sha}: ${message(e)}`);
  }

  let kernelHashes: DigestInputs['kernelHashes'];
  try {
    kernelHashes = await profileKernelHashes(draft);
  } catch (e) {
    return fail(message(e));
  }

  // ExpectedDigests reads only the launch-relevant fields; id/name/approval/secrets are placeholders.
  const profile: VmProfile = VmProfileSchema.parse({
    ...draft,
    id: 'draft',
    name: 'draft',
    approval: 'manual',
    secrets: [],
  });
  let expected;
  try {
    expected = await digests.forProfile(profile);
  } catch (e) {
    return fail(message(e));
  }
  const candidates = expected.map((d) => digestCandidate(profile, d, kernelHashes));
  if (!sevEs && draft.cpuCounts.length > 1) {
    warnings.push('SEV (without ES) does not measure the vCPU count: every count gives the same digest');
  }
  return { ok: true, candidates, warnings };
}
