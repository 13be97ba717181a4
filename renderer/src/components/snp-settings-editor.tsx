/**
 * What an SEV-SNP profile adds (app/profile.ts SnpSettings; docs/protocol.md §11-§15): the VMM whose VMSA
 * layout is measured, the guest features, the ID and author keys trusted to vouch for a launch, the
 * minimum TCB, host data, the VMPL and the oldest report version. The form keeps typed text; problems are
 * plain sentences per field; snpSettingsFromForm gives the profile's settings once there are none.
 */
import type { ReactNode } from 'react';
import { SNP_VMM_TYPES, type SnpSettings, type SnpVmmType } from '../../../app/profile';

export interface SnpSettingsForm {
  vmmType: SnpVmmType;
  guestFeatures: string;
  trustedIdKeyDigests: string;
  trustedAuthorKeyDigests: string;
  tcbBootloader: string;
  tcbTee: string;
  tcbSnp: string;
  tcbMicrocode: string;
  tcbFmc: string;
  hostData: string;
  vmpl: string;
  minimumReportVersion: string;
}

export type SnpFieldKey = keyof SnpSettingsForm;

export const SNP_FIELD_LABELS: Record<SnpFieldKey, string> = {
  vmmType: 'VMM type',
  guestFeatures: 'Guest features',
  trustedIdKeyDigests: 'Trusted ID key digests',
  trustedAuthorKeyDigests: 'Trusted author key digests',
  tcbBootloader: 'Minimum TCB: bootloader',
  tcbTee: 'Minimum TCB: TEE',
  tcbSnp: 'Minimum TCB: SNP firmware',
  tcbMicrocode: 'Minimum TCB: microcode',
  tcbFmc: 'Minimum TCB: FMC',
  hostData: 'Host data',
  vmpl: 'VMPL',
  minimumReportVersion: 'Minimum report version',
};

const VMM_LABELS: Record<SnpVmmType, string> = {
  qemu: 'QEMU/KVM (libvirt, most hosts)',
  ec2: 'Amazon EC2',
  gce: 'Google Compute Engine',
};

export function emptySnpForm(): SnpSettingsForm {
  return {
    vmmType: 'qemu',
    guestFeatures: '0x1',
    trustedIdKeyDigests: '',
    trustedAuthorKeyDigests: '',
    tcbBootloader: '',
    tcbTee: '',
    tcbSnp: '',
    tcbMicrocode: '',
    tcbFmc: '',
    hostData: '',
    vmpl: '0',
    minimumReportVersion: '3',
  };
}

const text = (n: number | undefined) => (n === undefined ? '' : String(n));

export function snpFormFromSettings(s: SnpSettings | undefined): SnpSettingsForm {
  if (!s) return emptySnpForm();
  return {
    vmmType: s.vmmType,
    guestFeatures: `0x${s.guestFeatures.toString(16)}`,
    trustedIdKeyDigests: s.trustedIdKeyDigests.join('\n'),
    trustedAuthorKeyDigests: s.trustedAuthorKeyDigests.join('\n'),
    tcbBootloader: text(s.minimumTcb?.bootloader),
    tcbTee: text(s.minimumTcb?.tee),
    tcbSnp: text(s.minimumTcb?.snp),
    tcbMicrocode: text(s.minimumTcb?.microcode),
    tcbFmc: text(s.minimumTcb?.fmc),
    hostData: s.hostData ?? '',
    vmpl: String(s.vmpl),
    minimumReportVersion: String(s.minimumReportVersion),
  };
}

function digestList(t: string): string[] {
  return t
    .split(/[\s,]+/)
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
}

function parseFeatures(t: string): number | undefined {
  const s = t.trim().toLowerCase();
  if (/^0x[0-9a-f]{1,8}$/.test(s)) return Number.parseInt(s.slice(2), 16);
  if (/^\d{1,10}$/.test(s) && Number(s) <= 0xffffffff) return Number(s);
  return undefined;
}

const TCB_KEYS = [
  ['tcbBootloader', 'bootloader'],
  ['tcbTee', 'tee'],
  ['tcbSnp', 'snp'],
  ['tcbMicrocode', 'microcode'],
  ['tcbFmc', 'fmc'],
] as const;

/** The profile's SNP settings (call only when snpFormProblems is empty). */
export function snpSettingsFromForm(f: SnpSettingsForm): SnpSettings {
  const tcb: NonNullable<SnpSettings['minimumTcb']> = {};
  for (const [k, name] of TCB_KEYS) if (f[k].trim() !== '') tcb[name] = Number(f[k].trim());
  const hostData = f.hostData.trim().toLowerCase();
  return {
    vmmType: f.vmmType,
    guestFeatures: parseFeatures(f.guestFeatures) ?? 1,
    trustedIdKeyDigests: digestList(f.trustedIdKeyDigests),
    trustedAuthorKeyDigests: digestList(f.trustedAuthorKeyDigests),
    ...(Object.keys(tcb).length > 0 ? { minimumTcb: tcb } : {}),
    ...(hostData !== '' ? { hostData } : {}),
    vmpl: Number(f.vmpl),
    minimumReportVersion: Number(f.minimumReportVersion),
  };
}

/** What is wrong with the SNP fields, in plain words, per field. */
export function snpFormProblems(f: SnpSettingsForm): Partial<Record<SnpFieldKey, string>> {
  const p: Partial<Record<SnpFieldKey, string>> = {};
  if (parseFeatures(f.guestFeatures) === undefined)
    p.guestFeatures = 'Enter the guest features as 0x-hex (0x1: SNP active, QEMU’s default) or decimal.';
  for (const k of ['trustedIdKeyDigests', 'trustedAuthorKeyDigests'] as const) {
    const list = digestList(f[k]);
    if (list.some((d) => !/^[0-9a-f]{96}$/.test(d)))
      p[k] = 'Each key digest is a SHA-384 of the public key: exactly 96 hex digits, one per line.';
    else if (list.length > 64) p[k] = 'At most 64 key digests.';
  }
  for (const [k] of TCB_KEYS) {
    const t = f[k].trim();
    if (t === '') continue;
    if (!/^\d+$/.test(t) || Number(t) > 255)
      p[k] = 'A security patch level is a whole number from 0 to 255 (or empty: any).';
  }
  const hd = f.hostData.trim();
  if (hd !== '' && !/^[0-9a-fA-F]{64}$/.test(hd))
    p.hostData = 'Host data is 32 bytes: exactly 64 hex digits (libvirt <hostData> as hex), or empty.';
  return p;
}

/** The warnings that do not block saving. */
export function snpFormWarnings(f: SnpSettingsForm): string[] {
  const w: string[] = [];
  if (f.minimumReportVersion === '2')
    w.push(
      'Version 2 reports carry no CPUID, so the product comes from the signing key alone. Trustee refuses them; accept them only for hosts whose firmware cannot give more.',
    );
  if (f.vmpl !== '0')
    w.push(
      'Reports from a VMPL above 0 come from software below the guest kernel’s privilege (e.g. an SVSM).',
    );
  return w;
}

export interface SnpSettingsEditorProps {
  form: SnpSettingsForm;
  onChange: <K extends SnpFieldKey>(k: K, v: SnpSettingsForm[K]) => void;
  /** The problem shown next to a field (the editor decides when to show it). */
  problem: (k: SnpFieldKey) => string | undefined;
  /** Rendered after the VMM type (the vCPU fields the measurement uses). */
  children?: ReactNode;
}

function Field({
  label,
  hint,
  error,
  children,
}: {
  label: string;
  hint?: string;
  error?: string | undefined;
  children: (aria: { 'aria-invalid': boolean; 'aria-label': string }) => ReactNode;
}) {
  return (
    <div className="field">
      <label>
        {label}
        {children({ 'aria-invalid': error !== undefined, 'aria-label': label })}
      </label>
      {error && <span className="field-error">{error}</span>}
      {hint && <span className="hint">{hint}</span>}
    </div>
  );
}

export function SnpSettingsEditor({ form, onChange, problem, children }: SnpSettingsEditorProps) {
  const input = (k: SnpFieldKey) => ({
    value: form[k],
    onChange: (e: { target: { value: string } }) => onChange(k, e.target.value as never),
  });
  const warnings = snpFormWarnings(form);
  return (
    <>
      <fieldset data-testid="snp-launch">
        <legend>Launch (SEV-SNP)</legend>
        <div className="form-grid">
          <div className="field">
            <label>
              VMM type
              <select
                value={form.vmmType}
                onChange={(e) => onChange('vmmType', e.target.value as SnpVmmType)}
              >
                {SNP_VMM_TYPES.map((t) => (
                  <option key={t} value={t}>
                    {VMM_LABELS[t]}
                  </option>
                ))}
              </select>
            </label>
            <span className="hint">
              The VMSA layout the measurement assumes. QEMU puts the vCPU signature in every VMSA; EC2 and GCE
              do not.
            </span>
          </div>
          <Field
            label="Guest features"
            hint="SEV_FEATURES of every vCPU (QEMU's default 0x1: SNP active)."
            error={problem('guestFeatures')}
          >
            {(aria) => <input type="text" className="mono" {...input('guestFeatures')} {...aria} />}
          </Field>
        </div>
        {children}
      </fieldset>

      <fieldset data-testid="snp-rules">
        <legend>Report rules (SEV-SNP)</legend>
        <div className="form-grid">
          <Field
            label="Trusted ID key digests"
            hint="SHA-384 of ID public keys, one per line: a launch whose ID block one of them signed is accepted without a matching measurement."
            error={problem('trustedIdKeyDigests')}
          >
            {(aria) => <textarea rows={2} className="mono" {...input('trustedIdKeyDigests')} {...aria} />}
          </Field>
          <Field
            label="Trusted author key digests"
            hint="SHA-384 of author keys that certify ID keys (counted only when the report says the author key is enabled)."
            error={problem('trustedAuthorKeyDigests')}
          >
            {(aria) => <textarea rows={2} className="mono" {...input('trustedAuthorKeyDigests')} {...aria} />}
          </Field>
        </div>
        <p className="hint">
          Minimum TCB: the oldest security patch levels the VCEK may certify (empty: any). Older firmware has
          known flaws; AMD&apos;s security bulletins name the fixed levels.
        </p>
        <div className="row">
          <Field label="Bootloader" error={problem('tcbBootloader')}>
            {(aria) => <input type="number" min={0} max={255} {...input('tcbBootloader')} {...aria} />}
          </Field>
          <Field label="TEE" error={problem('tcbTee')}>
            {(aria) => <input type="number" min={0} max={255} {...input('tcbTee')} {...aria} />}
          </Field>
          <Field label="SNP firmware" error={problem('tcbSnp')}>
            {(aria) => <input type="number" min={0} max={255} {...input('tcbSnp')} {...aria} />}
          </Field>
          <Field label="Microcode" error={problem('tcbMicrocode')}>
            {(aria) => <input type="number" min={0} max={255} {...input('tcbMicrocode')} {...aria} />}
          </Field>
          <Field label="FMC (Turin and later)" error={problem('tcbFmc')}>
            {(aria) => <input type="number" min={0} max={255} {...input('tcbFmc')} {...aria} />}
          </Field>
        </div>
        <div className="form-grid">
          <Field
            label="Host data"
            hint="32 bytes the host sets at launch (libvirt <hostData>), as 64 hex digits; empty: any. Tells apart guests whose launches look alike."
            error={problem('hostData')}
          >
            {(aria) => <input type="text" className="mono" {...input('hostData')} {...aria} />}
          </Field>
          <div className="field">
            <label>
              VMPL
              <select value={form.vmpl} onChange={(e) => onChange('vmpl', e.target.value)}>
                {['0', '1', '2', '3'].map((v) => (
                  <option key={v} value={v}>
                    {v === '0' ? '0 (the guest kernel)' : v}
                  </option>
                ))}
              </select>
            </label>
            <span className="hint">The privilege level the report must come from.</span>
          </div>
          <div className="field">
            <label>
              Minimum report version
              <select
                value={form.minimumReportVersion}
                onChange={(e) => onChange('minimumReportVersion', e.target.value)}
              >
                {['2', '3', '4', '5'].map((v) => (
                  <option key={v} value={v}>
                    {v === '3' ? '3 (recommended)' : v}
                  </option>
                ))}
              </select>
            </label>
          </div>
        </div>
        {warnings.map((w) => (
          <p key={w} className="warning" role="note">
            {w}
          </p>
        ))}
      </fieldset>
    </>
  );
}
