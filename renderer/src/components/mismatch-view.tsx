/**
 * Why a validate failed, for the owner: the expected digests that were tried with the inputs behind
 * each, what the host reported, and a plain sentence when one input obviously differs (vCPU count,
 * policy). The host itself only ever gets the error code.
 */
import type { AuditEvent, MismatchExplanation } from '../../../app/contract/ipc';
import { policyHex } from '../../../app/sev/policy';
import { DigestList } from './digest-display';

/** The mismatch explanation an audit event carries, if it has a well-formed one. */
export function mismatchOf(event: AuditEvent): MismatchExplanation | undefined {
  const m = event.details?.['mismatch'];
  if (typeof m !== 'object' || m === null) return undefined;
  const { tried, reported } = m as Partial<MismatchExplanation>;
  if (!Array.isArray(tried) || typeof reported !== 'object' || reported === null) return undefined;
  const ok = tried.every(
    (t) => typeof t?.launchDigest === 'string' && typeof t.inputs === 'object' && t.inputs !== null,
  );
  return ok ? { tried, reported } : undefined;
}

/** Sentences that name the input which differs, when the evidence shows it. */
export function mismatchHints(m: MismatchExplanation): string[] {
  const hints: string[] = [];
  const counts = [
    ...new Set(m.tried.map((t) => t.inputs.cpuCount).filter((n): n is number => n !== undefined)),
  ];
  const rc = m.reported.cpuCount;
  if (rc !== undefined && counts.length > 0 && !counts.includes(rc)) {
    hints.push(
      `The host reports ${rc} vCPU${rc === 1 ? '' : 's'}, but the profile expects ${counts.join(' or ')}: each vCPU adds a VMSA to the measurement, so the vCPU count must match.`,
    );
  }
  const policies = [...new Set(m.tried.map((t) => t.inputs.policy))];
  const rp = m.reported.policy;
  if (rp !== undefined && policies.length > 0 && !policies.includes(rp)) {
    hints.push(
      `The host launched with policy ${safeHex(rp)}, the profile expects ${policies.map(safeHex).join(' or ')}.`,
    );
  }
  if (hints.length === 0) {
    hints.push(
      'No expected digest matched: check the firmware image, the VMSA variant (legacy or KVM_SEV_INIT2), the CPU signature and, with measured direct boot, the kernel, initrd and command line.',
    );
  }
  return hints;
}

function safeHex(n: number): string {
  try {
    return policyHex(n);
  } catch {
    return `0x${n.toString(16)}`;
  }
}

/** The explanation panel. */
export function MismatchView({ mismatch }: { mismatch: MismatchExplanation }) {
  const r = mismatch.reported;
  return (
    <div className="mismatch" data-testid="mismatch">
      {mismatchHints(mismatch).map((h) => (
        <p key={h} className="warning">
          {h}
        </p>
      ))}
      <h3>What the host reported</h3>
      <dl className="facts">
        <dt>Firmware API</dt>
        <dd className="mono">
          {r.apiMajor !== undefined ? `${r.apiMajor}.${r.apiMinor ?? 0}` : '—'}
          {r.buildId !== undefined ? ` build ${r.buildId}` : ''}
        </dd>
        <dt>Policy</dt>
        <dd className="mono">{r.policy !== undefined ? safeHex(r.policy) : '—'}</dd>
        <dt>vCPUs (hint)</dt>
        <dd>{r.cpuCount ?? 'not sent'}</dd>
        <dt>Measurement</dt>
        <dd className="mono wrap">{r.measurement ?? '—'}</dd>
      </dl>
      <h3>Expected digests tried ({mismatch.tried.length})</h3>
      <DigestList candidates={mismatch.tried} label="Expected digests tried" />
    </div>
  );
}
