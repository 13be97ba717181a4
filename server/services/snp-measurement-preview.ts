/**
 * `digests:preview` for an SEV-SNP draft: the launch measurements the draft admits, computed live through
 * the service's ExpectedSnpMeasurements (the OVMF pages are hashed once per artifact, so an edit costs only
 * the matrix), each with the inputs behind it. Problems come back as `{ ok: false, reason }`, never as a
 * throw.
 */
import type { DigestCandidate, DigestDraft, DigestPreview } from '../../app/digest/candidates';
import { isSevError } from '../../app/sev/errors';
import { decodeGuestPolicy, guestPolicyProblem } from '../../app/snp/policy';
import { SNP_POLICY_DEBUG_BIT, type VmProfile } from '../../app/profile';
import type { ExpectedSnpMeasurements } from './expected-snp-measurements';
import { profileKernelHashes } from './digest-candidates';

const fail = (reason: string): DigestPreview => ({ ok: false, reason });

function message(e: unknown): string {
  return isSevError(e) || e instanceof Error ? e.message : String(e);
}

/** The expected measurements of an SNP draft, with the inputs behind each and warnings for the owner. */
export async function previewSnpMeasurements(
  measurements: Pick<ExpectedSnpMeasurements, 'detailedFor' | 'firmwareInfo'>,
  draft: DigestDraft,
): Promise<DigestPreview> {
  if (draft.scheme !== 'amd-sev-snp') return fail(`scheme ${draft.scheme} has no SNP measurements`);
  const policy = BigInt(draft.policy);
  const problem = guestPolicyProblem(policy);
  if (problem) return fail(`SNP guest policy 0x${draft.policy.toString(16)}: ${problem}`);
  if ((draft.policy & SNP_POLICY_DEBUG_BIT) !== 0)
    return fail(
      'the policy allows debugging (bit 19): the host could read guest memory, so nothing is ever released to it',
    );
  if (draft.kernelHash === undefined) {
    if (draft.initrdHash !== undefined || draft.cmdline !== undefined || draft.cmdlineHash !== undefined)
      return fail('an initrd or command line is only measured together with a kernel: add the kernel hash');
  } else if (draft.cmdline !== undefined && draft.cmdlineHash !== undefined) {
    return fail('give either the command line or its hash, not both');
  }
  const snp = draft.snp ?? { vmmType: 'qemu' as const, guestFeatures: 1 };
  const warnings: string[] = [];
  if (decodeGuestPolicy(policy).migrateMa)
    warnings.push('the policy lets a migration agent be associated with the guest');

  if (draft.firmware.kind === 'digests') {
    if (draft.firmware.launchDigests.some((d) => !/^[0-9a-f]{96}$/i.test(d)))
      return fail('an SNP launch measurement is a SHA-384: exactly 96 hex digits');
    warnings.push(
      'precomputed measurements: this machine cannot check them against vCPU count, vCPU type or VMM type',
    );
    const candidates: DigestCandidate[] = draft.firmware.launchDigests.map((hex) => ({
      launchDigest: hex.toLowerCase(),
      inputs: { scheme: draft.scheme, policy: draft.policy },
    }));
    return { ok: true, candidates, warnings };
  }
  if (snp.vmmType === 'qemu' && draft.cpuSignatures.length === 0)
    return fail('QEMU puts the guest vCPU signature in every VMSA: pick a vCPU type or enter its signature');

  const sha = draft.firmware.sha256;
  try {
    const info = await measurements.firmwareInfo(sha);
    if (draft.kernelHash !== undefined && !info.sections.some((s) => s.kind === 'kernel-hashes'))
      return fail(
        'measured direct boot: this firmware declares no KERNEL_HASHES section (use an AmdSev OVMF build)',
      );
    if (draft.cpuCounts.some((n) => n > 1) && info.resetAddress === 0)
      return fail('this firmware declares AP reset address 0, so only one vCPU can start');
  } catch (e) {
    return fail(`firmware ${sha}: ${message(e)}`);
  }

  let kernelHashes;
  try {
    kernelHashes = await profileKernelHashes(draft);
  } catch (e) {
    return fail(message(e));
  }
  const profile: Parameters<ExpectedSnpMeasurements['detailedFor']>[0] = {
    scheme: 'amd-sev-snp',
    firmware: draft.firmware,
    cpuCounts: draft.cpuCounts,
    cpuSignatures: draft.cpuSignatures,
    kernelHash: draft.kernelHash,
    initrdHash: draft.initrdHash,
    cmdline: draft.cmdline,
    cmdlineHash: draft.cmdlineHash,
    snp: snpSettingsForPreview(snp),
  };
  let expected;
  try {
    expected = await measurements.detailedFor(profile);
  } catch (e) {
    return fail(message(e));
  }
  const candidates: DigestCandidate[] = expected.map((m) => ({
    launchDigest: m.hex,
    inputs: {
      scheme: draft.scheme,
      policy: draft.policy,
      firmwareSha256: sha,
      ...(m.inputs.vcpus !== undefined ? { cpuCount: m.inputs.vcpus } : {}),
      ...(m.inputs.cpuSignature ? { cpuSignature: m.inputs.cpuSignature } : {}),
      ...(m.inputs.vmmType ? { vmmType: m.inputs.vmmType } : {}),
      ...(m.inputs.guestFeatures ? { guestFeatures: m.inputs.guestFeatures } : {}),
      ...(kernelHashes ? { kernelHashes } : {}),
    },
  }));
  if (snp.vmmType !== 'qemu' && draft.cpuSignatures.length > 0)
    warnings.push(
      `${snp.vmmType} does not put the vCPU signature in the VMSA: the signatures change nothing`,
    );
  return { ok: true, candidates, warnings };
}

/** The SNP settings the measurement reads; the rules a report must meet are not part of a preview. */
function snpSettingsForPreview(s: {
  vmmType: NonNullable<VmProfile['snp']>['vmmType'];
  guestFeatures: number;
}): NonNullable<VmProfile['snp']> {
  return {
    vmmType: s.vmmType,
    guestFeatures: s.guestFeatures,
    trustedIdKeyDigests: [],
    trustedAuthorKeyDigests: [],
    vmpl: 0,
    minimumReportVersion: 3,
  };
}
