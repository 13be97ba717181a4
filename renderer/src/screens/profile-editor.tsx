/**
 * Create or edit a VM profile: scheme, policy, vCPU counts, CPU signature, VMSA variant, firmware and
 * measured direct boot, minimum API/build, allowed chip ids and approval mode. The expected launch
 * digests update live below the form as the inputs change.
 */
import {
  useEffect,
  useId,
  useMemo,
  useState,
  type ChangeEvent,
  type InputHTMLAttributes,
  type ReactNode,
} from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import {
  VmProfileSchema,
  type CpuSignature,
  type Scheme,
  type VmProfile,
  type VmsaVariant,
} from '../../../app/profile';
import type { ArtifactSummary, DigestDraft, VmProfileInput } from '../../../app/contract/ipc';
import { CPU_PRESETS } from '../../../app/digest/cpu-presets';
import { DEFAULT_VMSA_VARIANT } from '../../../app/digest/vmsa-default';
import { useApi } from '../queries/api-context';
import { keys, useArtifactInspection, useArtifacts, useDigestPreview } from '../queries/hooks';
import { PolicyEditor, policyForScheme } from '../components/policy-editor';
import { DigestDisplay } from '../components/digest-display';
import { Dialog } from '../components/dialog';
import { ErrorMessage } from '../components/error-message';
import { LabelledInput } from '../components/labelled-input';
import { formatBytes, shortHex } from '../lib/format';

/** The form's own state: text where the user types, parsed on the way out. */
export interface ProfileForm {
  id: string;
  name: string;
  scheme: Scheme;
  policy: number;
  cpuCounts: string;
  cpuPreset: string;
  customFamily: string;
  customModel: string;
  customStepping: string;
  vmsaVariants: VmsaVariant[];
  firmwareSource: 'artifact' | 'digests';
  firmwareSha256: string;
  launchDigests: string;
  directBoot: boolean;
  kernelHash: string;
  initrdHash: string;
  cmdline: string;
  minApiMajor: string;
  minApiMinor: string;
  allowedBuildIds: string;
  allowedCpuIds: string;
  approval: 'manual' | 'auto';
}

const CUSTOM = 'custom';
const NO_ARTIFACTS: ArtifactSummary[] = [];

/** The form's fields that hold typed text. */
type TextKey = { [K in keyof ProfileForm]: ProfileForm[K] extends string ? K : never }[keyof ProfileForm];

/** A radio button or checkbox with its text beside it. */
function InlineChoice({
  children,
  ...input
}: { children: ReactNode } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <label className="inline">
      <input {...input} />
      {children}
    </label>
  );
}

/** A new profile's defaults: SEV-ES, no debugging, 1 vCPU, EPYC-Milan, manual approval. */
export function emptyForm(): ProfileForm {
  return {
    id: '',
    name: '',
    scheme: 'amd-sev-es',
    policy: 0x5,
    cpuCounts: '1',
    cpuPreset: 'EPYC-Milan',
    customFamily: '',
    customModel: '',
    customStepping: '',
    vmsaVariants: [DEFAULT_VMSA_VARIANT],
    firmwareSource: 'artifact',
    firmwareSha256: '',
    launchDigests: '',
    directBoot: false,
    kernelHash: '',
    initrdHash: '',
    cmdline: '',
    minApiMajor: '',
    minApiMinor: '',
    allowedBuildIds: '',
    allowedCpuIds: '',
    approval: 'manual',
  };
}

/** The form for an existing profile. */
export function formFromProfile(p: VmProfile): ProfileForm {
  const sig = p.cpuSignatures[0];
  const preset = sig
    ? CPU_PRESETS.find((c) => c.family === sig.family && c.model === sig.model && c.stepping === sig.stepping)
    : undefined;
  return {
    ...emptyForm(),
    id: p.id,
    name: p.name,
    scheme: p.scheme,
    policy: p.policy,
    cpuCounts: p.cpuCounts.join(', '),
    cpuPreset: sig ? (preset?.name ?? CUSTOM) : '',
    customFamily: sig && !preset ? String(sig.family) : '',
    customModel: sig && !preset ? String(sig.model) : '',
    customStepping: sig && !preset ? String(sig.stepping) : '',
    vmsaVariants: p.vmsaVariants,
    firmwareSource: p.firmware.kind,
    firmwareSha256: p.firmware.kind === 'artifact' ? p.firmware.sha256 : '',
    launchDigests: p.firmware.kind === 'digests' ? p.firmware.launchDigests.join('\n') : '',
    directBoot: p.kernelHash !== undefined,
    kernelHash: p.kernelHash ?? '',
    initrdHash: p.initrdHash ?? '',
    cmdline: p.cmdline ?? '',
    minApiMajor: p.minApi ? String(p.minApi.major) : '',
    minApiMinor: p.minApi ? String(p.minApi.minor) : '',
    allowedBuildIds: p.allowedBuildIds?.join(', ') ?? '',
    allowedCpuIds: p.allowedCpuIds?.join('\n') ?? '',
    approval: p.approval,
  };
}

function numberList(text: string): number[] {
  return text
    .split(/[\s,]+/)
    .filter((s) => s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
}

function lines(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
}

function signatureOf(f: ProfileForm): CpuSignature | undefined {
  if (f.cpuPreset === '') return undefined;
  if (f.cpuPreset !== CUSTOM) {
    const p = CPU_PRESETS.find((c) => c.name === f.cpuPreset);
    return p ? { family: p.family, model: p.model, stepping: p.stepping } : undefined;
  }
  const sig = {
    family: Number(f.customFamily),
    model: Number(f.customModel),
    stepping: Number(f.customStepping),
  };
  return [f.customFamily, f.customModel, f.customStepping].every((s) => /^\d+$/.test(s.trim()))
    ? sig
    : undefined;
}

function firmwareOf(f: ProfileForm, artifacts: ArtifactSummary[]): VmProfile['firmware'] | undefined {
  if (f.firmwareSource === 'digests') {
    const list = lines(f.launchDigests);
    return list.length > 0 ? { kind: 'digests', launchDigests: list } : undefined;
  }
  const a = artifacts.find(
    (x) => x.kind !== 'kernel' && x.kind !== 'initrd' && x.sha256 === f.firmwareSha256,
  );
  return a ? { kind: 'artifact', sha256: a.sha256, size: a.size, name: a.name } : undefined;
}

/** The profile the form describes (the schema checks it; main parses it again). */
export function profileFromForm(
  f: ProfileForm,
  artifacts: ArtifactSummary[],
  base?: VmProfile,
): VmProfileInput {
  const sig = f.scheme === 'amd-sev-es' ? signatureOf(f) : undefined;
  const minApi =
    f.minApiMajor.trim() !== '' || f.minApiMinor.trim() !== ''
      ? { major: Number(f.minApiMajor || 0), minor: Number(f.minApiMinor || 0) }
      : undefined;
  const builds = numberList(f.allowedBuildIds);
  const chips = lines(f.allowedCpuIds);
  return {
    id: f.id.trim(),
    name: f.name.trim(),
    scheme: f.scheme,
    policy: f.policy,
    cpuCounts: f.scheme === 'amd-sev-es' ? numberList(f.cpuCounts) : [1],
    cpuSignatures: sig ? [sig] : [],
    vmsaVariants: f.scheme === 'amd-sev-es' ? f.vmsaVariants : ['kvm-init2'],
    firmware: firmwareOf(f, artifacts) as VmProfile['firmware'],
    kernelHash: f.directBoot && f.kernelHash ? f.kernelHash.trim().toLowerCase() : undefined,
    initrdHash: f.directBoot && f.initrdHash ? f.initrdHash.trim().toLowerCase() : undefined,
    cmdline: f.directBoot ? f.cmdline : undefined,
    minApi,
    allowedBuildIds: builds.length > 0 ? builds : undefined,
    allowedCpuIds: chips.length > 0 ? chips : undefined,
    approval: f.approval,
    secrets: base?.secrets ?? [],
    createdAt: base?.createdAt,
  };
}

/** The digest-relevant part of the form, or null while it is too incomplete to compute. */
export function digestDraftFromForm(f: ProfileForm, artifacts: ArtifactSummary[]): DigestDraft | null {
  const firmware = firmwareOf(f, artifacts);
  if (!firmware) return null;
  const counts = f.scheme === 'amd-sev-es' ? numberList(f.cpuCounts) : [1];
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 512)) return null;
  const sig = f.scheme === 'amd-sev-es' ? signatureOf(f) : undefined;
  const hex = /^[0-9a-f]{64}$/;
  const kernel = f.kernelHash.trim().toLowerCase();
  const initrd = f.initrdHash.trim().toLowerCase();
  if (f.directBoot && (!hex.test(kernel) || (initrd !== '' && !hex.test(initrd)))) return null;
  return {
    scheme: f.scheme,
    policy: f.policy,
    cpuCounts: counts,
    cpuSignatures: sig ? [sig] : [],
    vmsaVariants: f.scheme === 'amd-sev-es' ? f.vmsaVariants : ['kvm-init2'],
    firmware,
    kernelHash: f.directBoot ? kernel : undefined,
    initrdHash: f.directBoot && initrd !== '' ? initrd : undefined,
    cmdline: f.directBoot ? f.cmdline : undefined,
  };
}

/** A value that follows `value` after `ms` of quiet (typing in the form does not flood the service). */
function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

function ArtifactPicker({
  label,
  kind,
  value,
  artifacts,
  onChange,
}: {
  label: string;
  kind: NonNullable<ArtifactSummary['kind']>;
  value: string;
  artifacts: ArtifactSummary[];
  onChange: (sha256: string) => void;
}) {
  // An artifact imported without a kind (e.g. through REST) is offered everywhere.
  const options = artifacts.filter((a) => a.kind === kind || a.kind === undefined);
  return (
    <label>
      {label}
      <select
        value={options.some((a) => a.sha256 === value) ? value : ''}
        onChange={(e) => onChange(e.target.value)}
      >
        <option value="">
          {options.length === 0 ? `No imported ${kind} yet` : `Choose an imported ${kind}…`}
        </option>
        {options.map((a) => (
          <option key={a.sha256} value={a.sha256}>
            {a.name} — {shortHex(a.sha256)} ({formatBytes(a.size)})
          </option>
        ))}
      </select>
    </label>
  );
}

export interface ProfileEditorProps {
  /** The profile being edited, or undefined for a new one. */
  profile?: VmProfile;
  onClose: () => void;
  onSaved: (profile: VmProfile, warnings: string[]) => void;
}

/** The profile editor dialog. */
export function ProfileEditor({ profile, onClose, onSaved }: ProfileEditorProps) {
  const api = useApi();
  const client = useQueryClient();
  const artifacts = useArtifacts().data ?? NO_ARTIFACTS;
  const [form, setForm] = useState<ProfileForm>(() => (profile ? formFromProfile(profile) : emptyForm()));
  const [issues, setIssues] = useState<string[]>([]);
  const set = <K extends keyof ProfileForm>(k: K, v: ProfileForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  /** Value and change handler of a text field. */
  const text = (k: TextKey) => ({
    value: form[k],
    onChange: (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => set(k, e.target.value),
  });
  const id = useId();
  const es = form.scheme === 'amd-sev-es';

  // Debounced by value (its JSON), so typing does not send a preview per keystroke.
  const draftJson = useMemo(() => JSON.stringify(digestDraftFromForm(form, artifacts)), [form, artifacts]);
  const debouncedJson = useDebounced(draftJson, 250);
  const preview = useDigestPreview(
    useMemo(() => JSON.parse(debouncedJson) as DigestDraft | null, [debouncedJson]),
  );
  const firmwareInfo = useArtifactInspection(
    form.firmwareSource === 'artifact' && form.firmwareSha256 ? form.firmwareSha256 : undefined,
  );
  const caps = firmwareInfo.data?.firmware;

  const save = useMutation({
    mutationFn: (p: VmProfileInput) => api.profiles.save(p),
    onSuccess: ({ profile: saved, warnings }) => {
      client.setQueryData<VmProfile[]>(keys.profiles, (old) => [
        ...(old ?? []).filter((p) => p.id !== saved.id),
        saved,
      ]);
      void client.invalidateQueries({ queryKey: keys.hostSetup(saved.id) });
      onSaved(saved, warnings);
    },
  });

  const submit = () => {
    const candidate = profileFromForm(form, artifacts, profile);
    const parsed = VmProfileSchema.safeParse(candidate);
    const problems: string[] = [];
    if (!candidate.firmware) {
      problems.push(
        form.firmwareSource === 'artifact'
          ? 'Firmware: choose an imported firmware image (import one on the Artifacts screen).'
          : 'Launch digests: enter at least one SHA-256.',
      );
    }
    if (es && form.vmsaVariants.length === 0) problems.push('VMSA variant: choose at least one.');
    if (es && !signatureOf(form))
      problems.push('CPU signature: choose a preset or enter family, model and stepping.');
    if (!profile && client.getQueryData<VmProfile[]>(keys.profiles)?.some((p) => p.id === candidate.id)) {
      problems.push(`Id: a profile named "${candidate.id}" exists already; edit it or choose another id.`);
    }
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        if (issue.path[0] === 'firmware' && !candidate.firmware) continue;
        problems.push(`${issue.path.join('.') || 'Profile'}: ${issue.message}`);
      }
    }
    setIssues(problems);
    if (problems.length === 0) save.mutate(candidate);
  };

  const toggleVariant = (v: VmsaVariant, on: boolean) =>
    set(
      'vmsaVariants',
      on ? [...new Set([...form.vmsaVariants, v])] : form.vmsaVariants.filter((x) => x !== v),
    );

  return (
    <Dialog
      wide
      title={profile ? `Edit ${profile.name}` : 'New VM profile'}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" className="primary" onClick={submit} disabled={save.isPending}>
            {save.isPending ? 'Saving…' : 'Save profile'}
          </button>
        </>
      }
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <div className="form-grid">
          <div className="field">
            <label>
              Id
              <input
                type="text"
                {...text('id')}
                readOnly={profile !== undefined}
                aria-describedby={`${id}-id-hint`}
                autoComplete="off"
              />
            </label>
            <span id={`${id}-id-hint`} className="hint">
              Hosts call /v1/vm/&lt;id&gt;/launch. Letters, digits, . _ -
            </span>
          </div>
          <LabelledInput label="Name" type="text" {...text('name')} autoComplete="off" />
          <fieldset>
            <legend>Scheme</legend>
            {(['amd-sev', 'amd-sev-es'] as const).map((s) => (
              <InlineChoice
                key={s}
                type="radio"
                name={`${id}-scheme`}
                checked={form.scheme === s}
                onChange={() => setForm((f) => ({ ...f, scheme: s, policy: policyForScheme(f.policy, s) }))}
              >
                {s === 'amd-sev' ? 'SEV (memory encryption)' : 'SEV-ES (memory and register state)'}
              </InlineChoice>
            ))}
          </fieldset>
          <fieldset>
            <legend>Approval</legend>
            <InlineChoice
              type="radio"
              name={`${id}-approval`}
              checked={form.approval === 'manual'}
              onChange={() => set('approval', 'manual')}
            >
              Ask me for every launch
            </InlineChoice>
            <InlineChoice
              type="radio"
              name={`${id}-approval`}
              checked={form.approval === 'auto'}
              onChange={() => set('approval', 'auto')}
            >
              Approve automatically when the chain and policy check out
            </InlineChoice>
          </fieldset>
        </div>

        <PolicyEditor policy={form.policy} scheme={form.scheme} onChange={(n) => set('policy', n)} />

        <fieldset disabled={!es}>
          <legend>vCPUs and VMSA (SEV-ES)</legend>
          {!es && <p className="hint">SEV does not measure CPU state: these only apply to SEV-ES.</p>}
          <div className="form-grid">
            <div className="field">
              <label>
                vCPU counts
                <input
                  type="text"
                  {...text('cpuCounts')}
                  value={es ? form.cpuCounts : '—'}
                  aria-describedby={`${id}-cpu-hint`}
                  inputMode="numeric"
                />
              </label>
              <span id={`${id}-cpu-hint`} className="hint">
                One or more, comma separated: each count gives its own digest (one VMSA per vCPU is measured).
              </span>
            </div>
            <div className="field">
              <label>
                CPU signature
                <select value={form.cpuPreset} onChange={(e) => set('cpuPreset', e.target.value)}>
                  <option value="">Choose…</option>
                  {CPU_PRESETS.map((p) => (
                    <option key={p.name} value={p.name}>
                      {p.name} — family {p.family}, model {p.model}, stepping {p.stepping}
                      {p.confidence === 'low' ? ' (unverified)' : ''}
                    </option>
                  ))}
                  <option value={CUSTOM}>Custom (from virsh capabilities)</option>
                </select>
              </label>
              <span className="hint">
                {CPU_PRESETS.find((p) => p.name === form.cpuPreset)?.note ??
                  'The guest CPU model QEMU presents (-cpu); with -cpu host, the host’s own signature.'}
              </span>
            </div>
          </div>
          {form.cpuPreset === CUSTOM && (
            <div className="row">
              <LabelledInput label="Family" type="number" min={0} {...text('customFamily')} />
              <LabelledInput label="Model" type="number" min={0} {...text('customModel')} />
              <LabelledInput label="Stepping" type="number" min={0} max={15} {...text('customStepping')} />
            </div>
          )}
          <fieldset>
            <legend>VMSA variant</legend>
            <InlineChoice
              type="checkbox"
              checked={form.vmsaVariants.includes('kvm-init2')}
              onChange={(e) => toggleVariant('kvm-init2', e.target.checked)}
              aria-describedby={`${id}-init2-hint`}
            >
              KVM_SEV_INIT2
            </InlineChoice>
            <p id={`${id}-init2-hint`} className="hint">
              Host Linux 6.10 or newer with QEMU 9.1+: KVM sets the VMSA&apos;s SEV features and x87/SSE state
              itself.
            </p>
            <InlineChoice
              type="checkbox"
              checked={form.vmsaVariants.includes('legacy')}
              onChange={(e) => toggleVariant('legacy', e.target.checked)}
              aria-describedby={`${id}-legacy-hint`}
            >
              Legacy (KVM_SEV_ES_INIT)
            </InlineChoice>
            <p id={`${id}-legacy-hint`} className="hint">
              Older host kernels. Tick both if you do not know the host: either digest is accepted.
            </p>
          </fieldset>
        </fieldset>

        <fieldset>
          <legend>Firmware</legend>
          <InlineChoice
            type="radio"
            name={`${id}-fw`}
            checked={form.firmwareSource === 'artifact'}
            onChange={() => set('firmwareSource', 'artifact')}
          >
            An imported firmware image
          </InlineChoice>
          <InlineChoice
            type="radio"
            name={`${id}-fw`}
            checked={form.firmwareSource === 'digests'}
            onChange={() => set('firmwareSource', 'digests')}
          >
            Precomputed launch digests
          </InlineChoice>
          {form.firmwareSource === 'artifact' ? (
            <ArtifactPicker
              label="Firmware image"
              kind="firmware"
              value={form.firmwareSha256}
              artifacts={artifacts}
              onChange={(v) => set('firmwareSha256', v)}
            />
          ) : (
            <label>
              Launch digests (SHA-256 hex, one per line)
              <textarea rows={3} {...text('launchDigests')} />
            </label>
          )}
          {caps && !caps.secretArea.ok && <p className="warning">{caps.secretArea.reason}</p>}
        </fieldset>

        <fieldset>
          <legend>Measured direct boot</legend>
          <InlineChoice
            type="checkbox"
            checked={form.directBoot}
            onChange={(e) => set('directBoot', e.target.checked)}
          >
            Measure the kernel, initrd and command line (kernelHashes=&apos;yes&apos;)
          </InlineChoice>
          {form.directBoot && caps && !caps.measuredDirectBoot.ok && (
            <p className="warning">This firmware cannot do it: {caps.measuredDirectBoot.reason}</p>
          )}
          {form.directBoot && (
            <div className="form-grid">
              <ArtifactPicker
                label="Kernel from artifacts"
                kind="kernel"
                value={form.kernelHash}
                artifacts={artifacts}
                onChange={(v) => set('kernelHash', v)}
              />
              <LabelledInput label="Kernel SHA-256" type="text" className="mono" {...text('kernelHash')} />
              <ArtifactPicker
                label="Initrd from artifacts"
                kind="initrd"
                value={form.initrdHash}
                artifacts={artifacts}
                onChange={(v) => set('initrdHash', v)}
              />
              <LabelledInput
                label="Initrd SHA-256 (empty: no initrd)"
                type="text"
                className="mono"
                {...text('initrdHash')}
              />
              <LabelledInput label="Kernel command line" type="text" className="mono" {...text('cmdline')} />
            </div>
          )}
        </fieldset>

        <fieldset>
          <legend>Host requirements</legend>
          <div className="form-grid">
            <LabelledInput
              label="Minimum API major"
              type="number"
              min={0}
              max={255}
              {...text('minApiMajor')}
            />
            <LabelledInput
              label="Minimum API minor"
              type="number"
              min={0}
              max={255}
              {...text('minApiMinor')}
            />
            <LabelledInput label="Allowed build ids (empty: any)" type="text" {...text('allowedBuildIds')} />
          </div>
          <label>
            Allowed chip ids (128 hex digits each, one per line; empty: any chip)
            <textarea rows={2} {...text('allowedCpuIds')} />
          </label>
        </fieldset>
        <button type="submit" hidden tabIndex={-1}>
          Save
        </button>
      </form>

      <DigestDisplay
        preview={preview.data}
        updating={preview.isFetching || draftJson !== debouncedJson}
        error={preview.error}
      />
      {issues.length > 0 && (
        <div className="error" role="alert">
          <p>The profile cannot be saved yet:</p>
          <ul className="field-errors">
            {issues.map((i) => (
              <li key={i}>{i}</li>
            ))}
          </ul>
        </div>
      )}
      <ErrorMessage error={save.error} prefix="Save failed" />
    </Dialog>
  );
}
