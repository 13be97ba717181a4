/**
 * Expected launch digests with the inputs behind each one (scheme, policy, firmware, vCPU count, CPU
 * signature, VMSA variant, kernel hashes), each copyable. Used live in the profile editor and, for a
 * failed validate, in the activity log (the digests that were tried).
 */
import { policyHex } from '../../../app/sev/policy';
import { CPU_PRESETS } from '../../../app/digest/cpu-presets';
import type { DigestCandidate, DigestInputs, DigestPreview } from '../../../app/contract/ipc';
import { CopyButton } from './copy-button';
import { ErrorMessage } from './error-message';
import { formatCpuSignature, shortHex } from '../lib/format';

const SCHEME_LABEL = { 'amd-sev': 'SEV', 'amd-sev-es': 'SEV-ES', 'amd-sev-snp': 'SEV-SNP' } as const;
const VMSA_LABEL = { legacy: 'legacy VMSA', 'kvm-init2': 'KVM_SEV_INIT2 VMSA' } as const;

/** The preset name of a CPU signature ("EPYC-Milan"), or undefined for a custom one. */
export function presetName(sig: { family: number; model: number; stepping: number }): string | undefined {
  return CPU_PRESETS.find(
    (p) => p.family === sig.family && p.model === sig.model && p.stepping === sig.stepping,
  )?.name;
}

/** The inputs of one digest as short labelled parts. */
export function digestInputParts(inputs: DigestInputs): { label: string; value: string }[] {
  const parts: { label: string; value: string }[] = [
    { label: 'Scheme', value: SCHEME_LABEL[inputs.scheme] },
    {
      label: 'Policy',
      value:
        inputs.scheme === 'amd-sev-snp'
          ? `0x${(inputs.policy >>> 0).toString(16)}`
          : policyHex(inputs.policy),
    },
  ];
  if (inputs.firmwareSha256) parts.push({ label: 'Firmware', value: shortHex(inputs.firmwareSha256) });
  if (inputs.cpuCount !== undefined) parts.push({ label: 'vCPUs', value: String(inputs.cpuCount) });
  if (inputs.cpuSignature) {
    const name = presetName(inputs.cpuSignature);
    parts.push({
      label: 'CPU',
      value: name
        ? `${name} (${formatCpuSignature(inputs.cpuSignature)})`
        : formatCpuSignature(inputs.cpuSignature),
    });
  }
  if (inputs.vmsaVariant && inputs.scheme !== 'amd-sev-snp')
    parts.push({ label: 'VMSA', value: VMSA_LABEL[inputs.vmsaVariant] });
  if (inputs.vmmType) parts.push({ label: 'VMM', value: inputs.vmmType });
  if (inputs.guestFeatures) parts.push({ label: 'Guest features', value: inputs.guestFeatures });
  if (inputs.kernelHashes) {
    parts.push({ label: 'Kernel', value: shortHex(inputs.kernelHashes.kernel) });
    parts.push({ label: 'Initrd', value: shortHex(inputs.kernelHashes.initrd) });
    parts.push({ label: 'Cmdline', value: shortHex(inputs.kernelHashes.cmdline) });
  }
  return parts;
}

/** A list of candidate digests, each with its inputs and a copy button. */
export function DigestList({ candidates, label }: { candidates: DigestCandidate[]; label: string }) {
  return (
    <ul className="digest-list" aria-label={label}>
      {candidates.map((c, i) => (
        <li key={`${c.launchDigest}-${i}`}>
          <div className="digest-value">
            <code className="hash" data-testid="launch-digest">
              {c.launchDigest}
            </code>
            <CopyButton value={c.launchDigest} what={`launch digest ${i + 1}`} />
          </div>
          <p className="inputs">
            {digestInputParts(c.inputs).map((p, j) => (
              <span key={p.label}>
                {j > 0 ? ' · ' : ''}
                {p.label} <span className="mono">{p.value}</span>
              </span>
            ))}
          </p>
        </li>
      ))}
    </ul>
  );
}

export interface DigestDisplayProps {
  preview: DigestPreview | undefined;
  /** True while a newer preview is being computed (the previous one stays shown). */
  updating?: boolean;
  error?: unknown;
  /** SEV-SNP: the report's launch measurements (SHA-384) rather than SEV launch digests. */
  snp?: boolean;
}

/** The expected launch digests of a profile draft, or why none can be computed yet. */
export function DigestDisplay({ preview, updating, error, snp }: DigestDisplayProps) {
  const title = snp ? 'Expected launch measurements' : 'Expected launch digests';
  return (
    <section className="panel" aria-labelledby="digest-heading" aria-busy={updating ? true : undefined}>
      <div className="card-header">
        <h3 id="digest-heading">{title}</h3>
        <span className="muted" aria-live="polite">
          {updating ? 'Updating…' : preview?.ok ? `${preview.candidates.length} accepted` : ''}
        </span>
      </div>
      <ErrorMessage error={error} prefix="Could not compute the digests" />
      {!preview && !error && (
        <p className="muted">Choose a firmware and the vCPU counts to see the digests.</p>
      )}
      {preview && !preview.ok && <p className="warning">{preview.reason}</p>}
      {preview?.ok && (
        <>
          <p className="hint">
            {snp
              ? 'The MEASUREMENT of a guest’s attestation report must match one of these (unless a trusted ID or author key vouches for it). Each combination of the inputs below gives one.'
              : 'A host’s launch measurement must match one of these. Each combination of the inputs below gives one digest.'}
          </p>
          {preview.warnings.map((w) => (
            <p key={w} className="warning">
              {w}
            </p>
          ))}
          <DigestList candidates={preview.candidates} label={title} />
          {preview.candidates.length > 1 && (
            <CopyButton
              value={preview.candidates.map((c) => c.launchDigest).join('\n')}
              what="all launch digests"
              label="Copy all launch digests"
            />
          )}
        </>
      )}
    </section>
  );
}
