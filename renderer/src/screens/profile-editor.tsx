/**
 * Create or edit a VM profile: scheme (SEV, SEV-ES, SEV-SNP), policy, vCPU counts, CPU signature, VMSA
 * variant, firmware and measured direct boot, minimum API/build, allowed chip ids and approval mode; for
 * SEV-SNP the SNP policy and settings (components/snp-settings-editor.tsx) and the secrets' resource
 * paths. The expected launch digests (SNP: measurements) update live below the form as the inputs change.
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
  DEFAULT_SNP_POLICY,
  ResourcePathSchema,
  VmProfileSchema,
  type CpuSignature,
  type Scheme,
  type VmProfile,
  type VmsaVariant,
} from '../../../app/profile';
import type { ArtifactSummary, DigestDraft, VmProfileInput } from '../../../app/contract/ipc';
import type { SecretRef } from '../../../app/profile';
import { CPU_PRESETS } from '../../../app/digest/cpu-presets';
import { DEFAULT_VMSA_VARIANT } from '../../../app/digest/vmsa-default';
import { useApi } from '../queries/api-context';
import { keys, useArtifactInspection, useArtifacts, useDigestPreview } from '../queries/hooks';
import { PolicyEditor, policyForScheme } from '../components/policy-editor';
import { SnpPolicyEditor } from '../components/snp-policy-editor';
import {
  emptySnpForm,
  SNP_FIELD_LABELS,
  snpFormFromSettings,
  snpFormProblems,
  snpSettingsFromForm,
  SnpSettingsEditor,
  type SnpFieldKey,
  type SnpSettingsForm,
} from '../components/snp-settings-editor';
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
  /** Further CPU signatures of the profile (an imported bundle may carry several): kept, listed, removable. */
  extraSignatures: CpuSignature[];
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
  /** SEV-SNP settings (used only when the scheme is amd-sev-snp). */
  snp: SnpSettingsForm;
  /** SEV-SNP: the resource path typed for each existing secret, by GUID. */
  resources: Record<string, string>;
}

/** Schemes whose launch measures one VMSA per vCPU (so vCPU counts and signatures matter). */
function measuresVcpus(scheme: Scheme): boolean {
  return scheme === 'amd-sev-es' || scheme === 'amd-sev-snp';
}

/** Whether the form needs a vCPU signature: SEV-ES, and SEV-SNP on QEMU (EC2/GCE VMSAs carry none). */
function needsSignature(f: Pick<ProfileForm, 'scheme' | 'snp'>): boolean {
  return f.scheme === 'amd-sev-es' || (f.scheme === 'amd-sev-snp' && f.snp.vmmType === 'qemu');
}

/** The default resource path of a secret of an SNP profile (Trustee's repository/type/tag). */
export function defaultResourcePath(
  vmId: string,
  kind: SecretRef['kind'],
  taken: readonly string[] = [],
): string {
  const id = vmId.trim() || 'vm';
  const base = kind === 'luks-passphrase' ? `default/luks/${id}` : `default/secret/${id}`;
  if (!taken.includes(base)) return base;
  for (let n = 2; ; n++) if (!taken.includes(`${base}-${n}`)) return `${base}-${n}`;
}

const CUSTOM = 'custom';

const SCHEME_CHOICES: Record<Scheme, string> = {
  'amd-sev': 'SEV (memory encryption)',
  'amd-sev-es': 'SEV-ES (memory and register state)',
  'amd-sev-snp': 'SEV-SNP (integrity too; the guest attests itself)',
};
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
    extraSignatures: [],
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
    snp: emptySnpForm(),
    resources: {},
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
    extraSignatures: p.cpuSignatures.slice(1),
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
    snp: snpFormFromSettings(p.snp),
    resources: Object.fromEntries(p.secrets.map((s) => [s.guid, s.resource ?? ''])),
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
    // An SNP profile may trust ID/author keys instead of measurements (the schema checks which).
    return list.length > 0 || f.scheme === 'amd-sev-snp'
      ? { kind: 'digests', launchDigests: list }
      : undefined;
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
  const snp = f.scheme === 'amd-sev-snp';
  const sig = measuresVcpus(f.scheme) ? signatureOf(f) : undefined;
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
    cpuCounts: measuresVcpus(f.scheme) ? numberList(f.cpuCounts) : [1],
    cpuSignatures: sig ? [sig, ...f.extraSignatures] : [],
    vmsaVariants: f.scheme === 'amd-sev-es' ? f.vmsaVariants : ['kvm-init2'],
    firmware: firmwareOf(f, artifacts) as VmProfile['firmware'],
    kernelHash: f.directBoot && f.kernelHash ? f.kernelHash.trim().toLowerCase() : undefined,
    initrdHash: f.directBoot && f.initrdHash ? f.initrdHash.trim().toLowerCase() : undefined,
    cmdline: f.directBoot ? f.cmdline : undefined,
    // The launch-flow host requirements are SEV's; an SNP report is judged by its own rules.
    minApi: snp ? undefined : minApi,
    allowedBuildIds: !snp && builds.length > 0 ? builds : undefined,
    allowedCpuIds: !snp && chips.length > 0 ? chips : undefined,
    approval: f.approval,
    secrets: (base?.secrets ?? []).map((s) => {
      const typed = f.resources[s.guid]?.trim();
      // SEV secrets are addressed by GUID: a profile moved off SNP drops the paths.
      const { resource: _path, ...byGuid } = s;
      if (!snp) return byGuid;
      return typed ? { ...byGuid, resource: typed } : byGuid;
    }),
    createdAt: base?.createdAt,
    snp: snp ? snpSettingsFromForm(f.snp) : undefined,
  };
}

/** The digest-relevant part of the form, or null while it is too incomplete to compute. */
export function digestDraftFromForm(f: ProfileForm, artifacts: ArtifactSummary[]): DigestDraft | null {
  const firmware = firmwareOf(f, artifacts);
  if (!firmware) return null;
  const counts = measuresVcpus(f.scheme) ? numberList(f.cpuCounts) : [1];
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 512)) return null;
  const sig = measuresVcpus(f.scheme) ? signatureOf(f) : undefined;
  const snpSettings =
    f.scheme === 'amd-sev-snp' && snpFormProblems(f.snp).guestFeatures === undefined
      ? snpSettingsFromForm(f.snp)
      : undefined;
  if (f.scheme === 'amd-sev-snp' && !snpSettings) return null;
  const hex = /^[0-9a-f]{64}$/;
  const kernel = f.kernelHash.trim().toLowerCase();
  const initrd = f.initrdHash.trim().toLowerCase();
  if (f.directBoot && (!hex.test(kernel) || (initrd !== '' && !hex.test(initrd)))) return null;
  return {
    scheme: f.scheme,
    policy: f.policy,
    cpuCounts: counts,
    cpuSignatures: sig ? [sig, ...f.extraSignatures] : [],
    vmsaVariants: f.scheme === 'amd-sev-es' ? f.vmsaVariants : ['kvm-init2'],
    firmware,
    kernelHash: f.directBoot ? kernel : undefined,
    initrdHash: f.directBoot && initrd !== '' ? initrd : undefined,
    cmdline: f.directBoot ? f.cmdline : undefined,
    ...(snpSettings
      ? { snp: { vmmType: snpSettings.vmmType, guestFeatures: snpSettings.guestFeatures } }
      : {}),
  };
}

/** The fields a problem can be shown next to. */
export type FieldKey =
  | 'id'
  | 'name'
  | 'policy'
  | 'cpuCounts'
  | 'cpuSignature'
  | 'vmsaVariants'
  | 'firmware'
  | 'kernelHash'
  | 'initrdHash'
  | 'cmdline'
  | 'minApiMajor'
  | 'minApiMinor'
  | 'allowedBuildIds'
  | 'allowedCpuIds'
  | 'resources'
  | SnpFieldKey;

/** Field labels, for the summary under the form. */
const FIELD_LABELS: Record<FieldKey, string> = {
  id: 'Id',
  name: 'Name',
  policy: 'Guest policy',
  cpuCounts: 'vCPU counts',
  cpuSignature: 'CPU signature',
  vmsaVariants: 'VMSA variant',
  firmware: 'Firmware',
  kernelHash: 'Kernel SHA-256',
  initrdHash: 'Initrd SHA-256',
  cmdline: 'Kernel command line',
  minApiMajor: 'Minimum API major',
  minApiMinor: 'Minimum API minor',
  allowedBuildIds: 'Allowed build ids',
  allowedCpuIds: 'Allowed chip ids',
  resources: 'Resource paths',
  ...SNP_FIELD_LABELS,
};

function items(text: string): string[] {
  return text.split(/[\s,]+/).filter((x) => x !== '');
}

function byteProblem(text: string, what: string): string | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return `${what} is a whole number from 0 to 255.`;
  if (Number(t) > 255) return `${what} is at most 255; ${t} is too big.`;
  return undefined;
}

/**
 * What is wrong with the form, in plain words, per field (empty when it can be saved). `existingIds`:
 * the ids of other profiles (a new profile may not reuse one).
 */
export function formProblems(
  f: ProfileForm,
  artifacts: ArtifactSummary[],
  existingIds: readonly string[] = [],
  isNew = true,
): Partial<Record<FieldKey, string>> {
  const p: Partial<Record<FieldKey, string>> = {};
  const es = measuresVcpus(f.scheme);
  const snp = f.scheme === 'amd-sev-snp';
  const id = f.id.trim();
  if (id === '') p.id = 'Enter an id: hosts use it in /v1/vm/<id>/launch.';
  else if (id.length > 64) p.id = 'The id is at most 64 characters.';
  else if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id))
    p.id = 'Use letters, digits, dot, dash and underscore only, starting with a letter or digit.';
  else if (isNew && existingIds.includes(id))
    p.id = `A profile "${id}" exists already: edit it, or choose another id.`;
  if (f.name.trim() === '') p.name = 'Enter a name (any text, shown in lists and approvals).';
  else if (f.name.trim().length > 200) p.name = 'The name is at most 200 characters.';

  if (es) {
    const counts = items(f.cpuCounts);
    const bad = counts.find((c) => !/^\d+$/.test(c) || Number(c) < 1 || Number(c) > 512);
    if (counts.length === 0) p.cpuCounts = 'Enter the number of vCPUs the guest starts with (e.g. 2).';
    else if (bad !== undefined)
      p.cpuCounts = /^\d+$/.test(bad)
        ? `Each vCPU count is a whole number from 1 to 512 (KVM's limit); ${bad} is out of range.`
        : `Each vCPU count is a whole number from 1 to 512; "${bad}" is not a number.`;
    else if (counts.length > 64) p.cpuCounts = 'At most 64 different vCPU counts.';

    if (f.cpuPreset === '') {
      if (needsSignature(f)) p.cpuSignature = 'Choose the guest CPU model, or Custom to enter its signature.';
    } else if (f.cpuPreset === CUSTOM) {
      const parts: Array<[string, string, number]> = [
        ['family', f.customFamily, 0xff + 0xf],
        ['model', f.customModel, 0xff],
        ['stepping', f.customStepping, 0xf],
      ];
      for (const [what, text, max] of parts) {
        const t = text.trim();
        if (!/^\d+$/.test(t)) {
          p.cpuSignature = `Enter the ${what} as a whole number (virsh capabilities shows it).`;
          break;
        }
        if (Number(t) > max) {
          p.cpuSignature = `The ${what} is at most ${max}; ${t} is too big.`;
          break;
        }
      }
    }
    if (!snp && f.vmsaVariants.length === 0)
      p.vmsaVariants = 'Tick at least one VMSA variant (both if you do not know the host kernel).';
  }

  if (f.firmwareSource === 'artifact') {
    if (!firmwareOf(f, artifacts))
      p.firmware = 'Choose an imported firmware image (import one on the Artifacts screen).';
  } else if (snp) {
    const list = lines(f.launchDigests);
    const keys = lines(f.snp.trustedIdKeyDigests).length + lines(f.snp.trustedAuthorKeyDigests).length;
    if (list.length === 0 && keys === 0)
      p.firmware =
        'Enter at least one launch measurement (96 hex digits), or trust an ID or author key below.';
    else if (list.some((d) => !/^[0-9a-f]{96}$/.test(d)))
      p.firmware = 'Each SNP launch measurement is a SHA-384: exactly 96 hex digits.';
  } else {
    const list = lines(f.launchDigests);
    if (list.length === 0) p.firmware = 'Enter at least one launch digest (64 hex digits).';
    else if (list.some((d) => !/^[0-9a-f]{64}$/.test(d)))
      p.firmware = 'Each launch digest is a SHA-256: exactly 64 hex digits.';
  }

  if (f.directBoot) {
    const hex = /^[0-9a-f]{64}$/;
    const kernel = f.kernelHash.trim().toLowerCase();
    const initrd = f.initrdHash.trim().toLowerCase();
    if (!hex.test(kernel))
      p.kernelHash =
        kernel === ''
          ? 'Choose the kernel from artifacts or paste its SHA-256.'
          : 'A SHA-256 is exactly 64 hex digits.';
    if (initrd !== '' && !hex.test(initrd))
      p.initrdHash = 'A SHA-256 is exactly 64 hex digits (or leave it empty).';
    if (f.cmdline.length > 4096) p.cmdline = 'The command line is at most 4096 characters.';
  }

  if (f.minApiMajor.trim() !== '' || f.minApiMinor.trim() !== '') {
    const major = byteProblem(f.minApiMajor || '0', 'The minimum API major');
    const minor = byteProblem(f.minApiMinor || '0', 'The minimum API minor');
    if (major) p.minApiMajor = major;
    if (minor) p.minApiMinor = minor;
  }
  const builds = items(f.allowedBuildIds);
  const badBuild = builds.find((b) => byteProblem(b, 'A build id') !== undefined);
  if (badBuild !== undefined)
    p.allowedBuildIds = `Build ids are whole numbers from 0 to 255, comma separated; "${badBuild}" is not one.`;
  const chips = lines(f.allowedCpuIds);
  if (!snp && chips.some((c) => !/^[0-9a-f]{128}$/.test(c)))
    p.allowedCpuIds = 'Each chip id is exactly 128 hex digits (sev-attest-host prints it), one per line.';
  if (snp) {
    Object.assign(p, snpFormProblems(f.snp));
    const paths = Object.values(f.resources).map((r) => r.trim());
    const bad = paths.find((r) => r !== '' && !ResourcePathSchema.safeParse(r).success);
    const dup = paths.find((r, i) => r !== '' && paths.indexOf(r) !== i);
    if (paths.some((r) => r === ''))
      p.resources = 'Every secret of an SEV-SNP profile needs the path the guest fetches it by.';
    else if (bad !== undefined)
      p.resources = `"${bad}" is not repository/type/tag (three parts of letters, digits, dot, dash, underscore).`;
    else if (dup !== undefined) p.resources = `Two secrets have the path ${dup}: each needs its own.`;
  }
  return p;
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
  const [attempted, setAttempted] = useState(false);
  const [policyIssue, setPolicyIssue] = useState<string | undefined>();
  const initial = useMemo(() => (profile ? formFromProfile(profile) : emptyForm()), [profile]);
  const set = <K extends keyof ProfileForm>(k: K, v: ProfileForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  /** Value and change handler of a text field. */
  const text = (k: TextKey) => ({
    value: form[k],
    onChange: (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => set(k, e.target.value),
  });
  const id = useId();
  const snp = form.scheme === 'amd-sev-snp';
  /** vCPU counts and signatures are measured (SEV-ES and SEV-SNP). */
  const es = measuresVcpus(form.scheme);
  const setSnp = <K extends SnpFieldKey>(k: K, v: SnpSettingsForm[K]) =>
    setForm((f) => ({ ...f, snp: { ...f.snp, [k]: v } }));
  /** Changing the scheme: SNP has its own policy format, so the policy starts from that scheme's default. */
  const chooseScheme = (s: Scheme) =>
    setForm((f) => ({
      ...f,
      scheme: s,
      policy:
        s === 'amd-sev-snp'
          ? f.scheme === 'amd-sev-snp'
            ? f.policy
            : DEFAULT_SNP_POLICY
          : policyForScheme(f.scheme === 'amd-sev-snp' ? 0x1 : f.policy, s),
    }));

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

  const existingIds = (client.getQueryData<VmProfile[]>(keys.profiles) ?? []).map((p) => p.id);
  const problems = formProblems(form, artifacts, existingIds, profile === undefined);
  if (policyIssue) problems.policy = policyIssue;
  /** The problem shown next to a field: any once Save was tried, before that only for what was typed. */
  const shown = (k: FieldKey): string | undefined => {
    const problem = problems[k];
    if (!problem) return undefined;
    if (attempted || k === 'policy') return problem;
    const touched: Record<FieldKey, boolean> = {
      id: form.id !== initial.id,
      name: form.name !== initial.name,
      policy: true,
      cpuCounts: form.cpuCounts !== initial.cpuCounts,
      cpuSignature: form.customFamily + form.customModel + form.customStepping !== '',
      vmsaVariants: form.vmsaVariants.length !== initial.vmsaVariants.length,
      firmware: form.launchDigests !== initial.launchDigests,
      kernelHash: form.kernelHash !== initial.kernelHash,
      initrdHash: form.initrdHash !== initial.initrdHash,
      cmdline: true,
      minApiMajor: true,
      minApiMinor: true,
      allowedBuildIds: true,
      allowedCpuIds: true,
      resources: true,
      ...(Object.fromEntries(
        (Object.keys(form.snp) as SnpFieldKey[]).map((key) => [key, form.snp[key] !== initial.snp[key]]),
      ) as Record<SnpFieldKey, boolean>),
    };
    return touched[k] ? problem : undefined;
  };
  /** aria attributes and the error line of a field. */
  const invalid = (k: FieldKey) => {
    const problem = shown(k);
    return {
      aria: {
        'aria-invalid': problem !== undefined,
        'aria-errormessage': problem ? `${id}-${k}-error` : undefined,
      },
      error: problem ? (
        <span id={`${id}-${k}-error`} className="field-error">
          {problem}
        </span>
      ) : null,
    };
  };

  const submit = () => {
    setAttempted(true);
    const list = (Object.keys(problems) as FieldKey[]).map((k) => `${FIELD_LABELS[k]}: ${problems[k]}`);
    if (list.length === 0) {
      // The form's own checks passed; the schema is the backstop (its wording is a developer's).
      const parsed = VmProfileSchema.safeParse(profileFromForm(form, artifacts, profile));
      if (!parsed.success)
        for (const issue of parsed.error.issues)
          list.push(`${issue.path.join(' ') || 'Profile'}: ${issue.message}`);
    }
    setIssues(list);
    if (list.length === 0) save.mutate(profileFromForm(form, artifacts, profile));
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
                {...invalid('id').aria}
              />
            </label>
            {invalid('id').error}
            <span id={`${id}-id-hint`} className="hint">
              Hosts call /v1/vm/&lt;id&gt;/launch. Letters, digits, . _ -
            </span>
          </div>
          <div className="field">
            <LabelledInput
              label="Name"
              type="text"
              {...text('name')}
              autoComplete="off"
              {...invalid('name').aria}
            />
            {invalid('name').error}
          </div>
          <fieldset>
            <legend>Scheme</legend>
            {(['amd-sev', 'amd-sev-es', 'amd-sev-snp'] as const).map((s) => (
              <InlineChoice
                key={s}
                type="radio"
                name={`${id}-scheme`}
                checked={form.scheme === s}
                onChange={() => chooseScheme(s)}
              >
                {SCHEME_CHOICES[s]}
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

        {snp ? (
          <SnpPolicyEditor
            policy={form.policy}
            onChange={(n) => set('policy', n)}
            onProblem={setPolicyIssue}
          />
        ) : (
          <PolicyEditor
            policy={form.policy}
            scheme={form.scheme}
            onChange={(n) => set('policy', n)}
            onProblem={setPolicyIssue}
          />
        )}

        {snp && <SnpSettingsEditor form={form.snp} onChange={setSnp} problem={(k) => shown(k)} />}

        <fieldset disabled={!es}>
          <legend>{snp ? 'vCPUs (SEV-SNP)' : 'vCPUs and VMSA (SEV-ES)'}</legend>
          {!es && (
            <p className="hint">SEV does not measure CPU state: these only apply to SEV-ES and SEV-SNP.</p>
          )}
          {snp && (
            <p className="hint">
              Each vCPU count and signature gives its own measurement (one VMSA per vCPU is measured).
              {form.snp.vmmType !== 'qemu' ? ' EC2 and GCE do not measure the signature.' : ''}
            </p>
          )}
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
                  {...(es ? invalid('cpuCounts').aria : {})}
                />
              </label>
              {es && invalid('cpuCounts').error}
              <span id={`${id}-cpu-hint`} className="hint">
                One or more, comma separated: each count gives its own digest (one VMSA per vCPU is measured).
              </span>
            </div>
            <div className="field">
              <label>
                CPU signature
                <select
                  value={form.cpuPreset}
                  onChange={(e) => set('cpuPreset', e.target.value)}
                  {...(es ? invalid('cpuSignature').aria : {})}
                >
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
              {es && invalid('cpuSignature').error}
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
          {es && form.extraSignatures.length > 0 && (
            <div className="field" data-testid="extra-signatures">
              <span>Also accepted CPU signatures</span>
              <ul className="plain-list">
                {form.extraSignatures.map((sig, i) => {
                  const name = CPU_PRESETS.find(
                    (c) => c.family === sig.family && c.model === sig.model && c.stepping === sig.stepping,
                  )?.name;
                  const what = `${name ? `${name}: ` : ''}family ${sig.family}, model ${sig.model}, stepping ${sig.stepping}`;
                  return (
                    <li key={`${sig.family}-${sig.model}-${sig.stepping}`}>
                      {what}{' '}
                      <button
                        type="button"
                        className="small"
                        aria-label={`Remove CPU signature ${what}`}
                        onClick={() =>
                          set(
                            'extraSignatures',
                            form.extraSignatures.filter((_, j) => j !== i),
                          )
                        }
                      >
                        Remove
                      </button>
                    </li>
                  );
                })}
              </ul>
            </div>
          )}
          {!snp && (
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
                Host Linux 6.10 or newer with QEMU 9.1+: KVM sets the VMSA&apos;s SEV features and x87/SSE
                state itself.
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
              {es && invalid('vmsaVariants').error}
            </fieldset>
          )}
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
            {snp ? 'Pasted launch measurements' : 'Precomputed launch digests'}
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
              {snp
                ? 'Launch measurements (SHA-384 hex, 96 digits, one per line)'
                : 'Launch digests (SHA-256 hex, one per line)'}
              <textarea rows={3} {...text('launchDigests')} {...invalid('firmware').aria} />
            </label>
          )}
          {invalid('firmware').error}
          {!snp && caps && !caps.secretArea.ok && <p className="warning">{caps.secretArea.reason}</p>}
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
          {!snp && form.directBoot && caps && !caps.measuredDirectBoot.ok && (
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
              <div className="field">
                <LabelledInput
                  label="Kernel SHA-256"
                  type="text"
                  className="mono"
                  {...text('kernelHash')}
                  {...invalid('kernelHash').aria}
                />
                {invalid('kernelHash').error}
              </div>
              <ArtifactPicker
                label="Initrd from artifacts"
                kind="initrd"
                value={form.initrdHash}
                artifacts={artifacts}
                onChange={(v) => set('initrdHash', v)}
              />
              <div className="field">
                <LabelledInput
                  label="Initrd SHA-256 (empty: no initrd)"
                  type="text"
                  className="mono"
                  {...text('initrdHash')}
                  {...invalid('initrdHash').aria}
                />
                {invalid('initrdHash').error}
              </div>
            </div>
          )}
          {form.directBoot && (
            <div className="field full-width">
              <LabelledInput
                label="Kernel command line"
                type="text"
                className="mono"
                {...text('cmdline')}
                {...invalid('cmdline').aria}
              />
              {invalid('cmdline').error}
            </div>
          )}
        </fieldset>

        {snp && (
          <fieldset data-testid="snp-secrets">
            <legend>Secrets and their resource paths (SEV-SNP)</legend>
            <p className="hint">
              A guest fetches each secret from /kbs/v0/resource/&lt;repository&gt;/&lt;type&gt;/&lt;tag&gt;.
              Add secrets on the Secrets screen once the profile is saved; a disk passphrase defaults to{' '}
              <span className="mono">{defaultResourcePath(form.id, 'luks-passphrase')}</span>.
            </p>
            {(profile?.secrets ?? []).length === 0 ? (
              <p className="muted">No secrets yet.</p>
            ) : (
              <div className="form-grid">
                {(profile?.secrets ?? []).map((sec) => (
                  <LabelledInput
                    key={sec.guid}
                    label={`Resource path of ${sec.label ?? (sec.kind === 'luks-passphrase' ? 'the disk passphrase' : sec.guid)}`}
                    type="text"
                    className="mono"
                    value={form.resources[sec.guid] ?? ''}
                    placeholder={defaultResourcePath(form.id, sec.kind)}
                    onChange={(e) =>
                      setForm((f) => ({ ...f, resources: { ...f.resources, [sec.guid]: e.target.value } }))
                    }
                    {...invalid('resources').aria}
                  />
                ))}
              </div>
            )}
            {invalid('resources').error}
          </fieldset>
        )}

        {!snp && (
          <fieldset>
            <legend>Host requirements</legend>
            <div className="form-grid">
              <div className="field">
                <LabelledInput
                  label="Minimum API major"
                  type="number"
                  min={0}
                  max={255}
                  {...text('minApiMajor')}
                  {...invalid('minApiMajor').aria}
                />
                {invalid('minApiMajor').error}
              </div>
              <div className="field">
                <LabelledInput
                  label="Minimum API minor"
                  type="number"
                  min={0}
                  max={255}
                  {...text('minApiMinor')}
                  {...invalid('minApiMinor').aria}
                />
                {invalid('minApiMinor').error}
              </div>
              <div className="field">
                <LabelledInput
                  label="Allowed build ids (empty: any)"
                  type="text"
                  {...text('allowedBuildIds')}
                  {...invalid('allowedBuildIds').aria}
                />
                {invalid('allowedBuildIds').error}
              </div>
            </div>
            <label>
              Allowed chip ids (128 hex digits each, one per line; empty: any chip)
              <textarea rows={2} {...text('allowedCpuIds')} {...invalid('allowedCpuIds').aria} />
            </label>
            {invalid('allowedCpuIds').error}
          </fieldset>
        )}
        <button type="submit" hidden tabIndex={-1}>
          Save
        </button>
      </form>

      <DigestDisplay
        snp={snp}
        preview={preview.data}
        updating={preview.isFetching || draftJson !== debouncedJson}
        error={preview.error}
      />
      {issues.length > 0 && (
        <div className="error" role="alert">
          <p>The profile cannot be saved yet: fix the fields marked above.</p>
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
