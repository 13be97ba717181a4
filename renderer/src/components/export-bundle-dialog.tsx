/**
 * Export a profile as a measurement bundle: pick the format and, for SEV-ES, the matrix (vCPU range, guest
 * CPU signatures, VMSA variants); the preview table shows the unsigned rows before anything is signed.
 * Saving signs with this machine's key (its fingerprint is shown) and downloads the file.
 */
import { useId, useMemo, useState } from 'react';
import { useMutation } from '@tanstack/react-query';
import {
  BUNDLE_EXPORT_FORMATS,
  type BundleExportFormat,
  type BundleRowView,
  type BundleSelection,
} from '../../../app/contract/ipc';
import type { CpuSignature, VmProfile, VmsaVariant } from '../../../app/profile';
import { CPU_PRESETS } from '../../../app/digest/cpu-presets';
import { useApi } from '../queries/api-context';
import {
  downloadText,
  formatCpuRange,
  parseCpuRange,
  useBundlePreview,
  useKeygen,
  useSigningKey,
} from '../queries/bundles';
import { Dialog } from './dialog';
import { ErrorMessage } from './error-message';

const FORMAT_LABEL: Record<BundleExportFormat, string> = {
  native: 'SEV Attest bundle (signed JSON)',
  vqsv: 'virt-qemu-sev-validate script (bash)',
  'simple-kbs': 'simple-kbs policy (JSON)',
  'simple-kbs-sql': 'simple-kbs policy (SQL INSERT)',
  csv: 'Digest matrix (CSV)',
};

type VariantChoice = 'both' | VmsaVariant;
const VARIANT_LABEL: Record<VariantChoice, string> = {
  both: 'Both (either host kernel)',
  'kvm-init2': 'KVM_SEV_INIT2 (Linux 6.10+)',
  legacy: 'Legacy (before Linux 6.10, libvirt 9 validator)',
};

interface SignatureOption {
  key: string;
  label: string;
  signature: CpuSignature & { name?: string };
}

const sigKey = (s: CpuSignature) => `${s.family}:${s.model}:${s.stepping}`;

/** The presets plus any signature of the profile that is not one of them. */
function signatureOptions(profile: VmProfile): SignatureOption[] {
  const options: SignatureOption[] = [];
  const seen = new Set<string>();
  for (const p of CPU_PRESETS) {
    const key = sigKey(p);
    if (seen.has(key)) continue; // EPYC and EPYC-v4 share one signature
    seen.add(key);
    const signature = { family: p.family, model: p.model, stepping: p.stepping, name: p.name };
    options.push({ key, label: `${p.name} (${key})`, signature });
  }
  for (const s of profile.cpuSignatures) {
    const key = sigKey(s);
    if (seen.has(key)) continue;
    seen.add(key);
    options.push({
      key,
      label: `family ${s.family}, model ${s.model}, stepping ${s.stepping}`,
      signature: s,
    });
  }
  return options;
}

function signatureText(r: BundleRowView): string {
  const s = r['cpu-signature'];
  if (!s) return '—';
  return s.name ? `${s.name} (${s.eax})` : `${s.family}:${s.model}:${s.stepping} (${s.eax})`;
}

export interface ExportBundleDialogProps {
  profile: VmProfile;
  onClose: () => void;
}

/** The Export bundle dialog of one profile. */
export function ExportBundleDialog({ profile, onClose }: ExportBundleDialogProps) {
  const api = useApi();
  const id = useId();
  const snp = profile.scheme === 'amd-sev-snp';
  // SEV-ES and SEV-SNP measure VMSAs: both span vCPU counts x signatures (SNP has no VMSA variants).
  const es = profile.scheme === 'amd-sev-es' || snp;
  const formats = snp
    ? BUNDLE_EXPORT_FORMATS.filter((f) => f === 'native' || f === 'csv')
    : BUNDLE_EXPORT_FORMATS;
  const options = useMemo(() => signatureOptions(profile), [profile]);
  const [format, setFormat] = useState<BundleExportFormat>('native');
  const [cpuText, setCpuText] = useState(() => formatCpuRange(profile.cpuCounts));
  const [selectedSigs, setSelectedSigs] = useState<Set<string>>(
    () => new Set(profile.cpuSignatures.map(sigKey)),
  );
  const [variant, setVariant] = useState<VariantChoice>(() =>
    profile.vmsaVariants.length === 1 ? profile.vmsaVariants[0]! : 'both',
  );
  const [saved, setSaved] = useState<string | undefined>();

  const cpus = parseCpuRange(cpuText);
  const sigProblem = es && selectedSigs.size === 0 ? 'Pick at least one guest CPU signature.' : undefined;
  // The query key is compared by value, so a new object each render does not refetch.
  const selection: BundleSelection | null = !es
    ? {}
    : 'error' in cpus || sigProblem
      ? null
      : {
          cpuCounts: cpus.counts,
          cpuSignatures: options.filter((o) => selectedSigs.has(o.key)).map((o) => o.signature),
          ...(snp ? {} : { vmsaVariants: variant === 'both' ? ['legacy', 'kvm-init2'] : [variant] }),
        };

  const preview = useBundlePreview(profile.id, selection);
  const signingKey = useSigningKey();
  const keygen = useKeygen();
  const exportFile = useMutation({
    mutationFn: () => api.bundles.export(profile.id, selection!, format),
    onSuccess: (file) => {
      downloadText(file.fileName, file.contentType, file.text);
      setSaved(`Saved ${file.fileName}, signed by ${file.fingerprint}.`);
    },
  });

  const toggleSig = (key: string, on: boolean) =>
    setSelectedSigs((old) => {
      const next = new Set(old);
      if (on) next.add(key);
      else next.delete(key);
      return next;
    });

  const body = preview.data;
  const hasKey = signingKey.data !== null && signingKey.data !== undefined;

  return (
    <Dialog
      title={`Export bundle: ${profile.name}`}
      onClose={onClose}
      wide
      footer={
        <>
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button
            type="button"
            className="primary"
            disabled={selection === null || !hasKey || exportFile.isPending}
            onClick={() => {
              setSaved(undefined);
              exportFile.mutate();
            }}
          >
            Sign and save
          </button>
        </>
      }
    >
      <div className="form-grid">
        <label>
          Format
          <select value={format} onChange={(e) => setFormat(e.target.value as BundleExportFormat)}>
            {formats.map((f) => (
              <option key={f} value={f}>
                {FORMAT_LABEL[f]}
              </option>
            ))}
          </select>
        </label>
      </div>

      <fieldset disabled={!es}>
        <legend>{snp ? 'Matrix (SEV-SNP)' : 'Matrix (SEV-ES)'}</legend>
        {snp && (
          <p className="hint">
            One launch measurement per vCPU count x guest CPU signature. libvirt&apos;s validator script and
            simple-kbs check SEV launches, so an SEV-SNP bundle exports as the native bundle or CSV.
          </p>
        )}
        {!es && (
          <p className="hint">
            SEV without ES measures no VMSA: the vCPU count, CPU signature and VMSA variant do not change the
            launch digest.
          </p>
        )}
        <div className="form-grid">
          <label>
            vCPU counts
            <input
              type="text"
              value={cpuText}
              onChange={(e) => setCpuText(e.target.value)}
              aria-invalid={es && 'error' in cpus}
              aria-describedby={`${id}-cpus-hint`}
            />
            <span id={`${id}-cpus-hint`} className="hint">
              A range or list: 1-8, 1,2,4 or 1-4,8.
            </span>
          </label>
          {!snp && (
            <label>
              VMSA variant
              <select value={variant} onChange={(e) => setVariant(e.target.value as VariantChoice)}>
                {(['both', 'kvm-init2', 'legacy'] as const).map((v) => (
                  <option key={v} value={v}>
                    {VARIANT_LABEL[v]}
                  </option>
                ))}
              </select>
            </label>
          )}
        </div>
        <fieldset>
          <legend>Guest CPU signatures</legend>
          <ul className="switch-list">
            {options.map((o) => (
              <li key={o.key}>
                <label className="inline">
                  <input
                    type="checkbox"
                    checked={selectedSigs.has(o.key)}
                    onChange={(e) => toggleSig(o.key, e.target.checked)}
                  />
                  {o.label}
                </label>
              </li>
            ))}
          </ul>
        </fieldset>
        {es && 'error' in cpus && <p className="error">{cpus.error}</p>}
        {sigProblem && <p className="error">{sigProblem}</p>}
      </fieldset>

      <section aria-labelledby={`${id}-preview`}>
        <h3 id={`${id}-preview`}>
          Preview{body ? `: ${body.rows.length} row${body.rows.length === 1 ? '' : 's'}` : ''}
        </h3>
        <ErrorMessage error={preview.error} prefix="Preview failed" />
        {body?.matrix.collapsed && (
          <p className="warning" role="note">
            Collapsed to one row. {body.matrix.note}
          </p>
        )}
        {body && (
          <table>
            <thead>
              <tr>
                <th scope="col">Row</th>
                <th scope="col">vCPUs</th>
                <th scope="col">CPU signature</th>
                <th scope="col">VMSA variant</th>
                <th scope="col">{snp ? 'Launch measurement' : 'Launch digest'}</th>
              </tr>
            </thead>
            <tbody>
              {body.rows.map((r) => (
                <tr key={r.row}>
                  <td>{r.row}</td>
                  <td>{r.cpus ?? '—'}</td>
                  <td>{signatureText(r)}</td>
                  <td>{r['vmsa-variant'] ?? '—'}</td>
                  <td className="mono hash">{r.digest}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section aria-labelledby={`${id}-key`}>
        <h3 id={`${id}-key`}>Signing key</h3>
        <ErrorMessage error={signingKey.error} />
        {signingKey.data && (
          <p>
            Signed with this machine&apos;s key{' '}
            <code className="mono wrap" data-testid="signing-fingerprint">
              {signingKey.data.fingerprint}
            </code>
          </p>
        )}
        {signingKey.data === null && (
          <div className="warning">
            <p>This machine has no bundle signing key yet. It is kept in the OS keychain.</p>
            <button type="button" disabled={keygen.isPending} onClick={() => keygen.mutate(false)}>
              Create signing key
            </button>
          </div>
        )}
        <ErrorMessage error={keygen.error} prefix="Could not create the key" />
      </section>

      <ErrorMessage error={exportFile.error} prefix="Export failed" />
      {saved && (
        <p className="success" role="status">
          {saved}
        </p>
      )}
    </Dialog>
  );
}
