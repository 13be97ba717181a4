/**
 * Import a measurement bundle as a VM profile: choose or drop the file, see the signature check (who
 * signed it, or why it is refused: modified, untrusted key, unsigned, not a bundle), then set the VM id,
 * name and approval and import. The profile gets the bundle's precomputed digests: no firmware needed here.
 */
import { formatTime } from '../lib/format';
import { useId, useRef, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { APPROVAL_MODES, type BundleVerification } from '../../../app/contract/ipc';
import { VmIdSchema, type ApprovalMode, type VmProfile } from '../../../app/profile';
import { policyHex } from '../../../app/sev/policy';
import { useApi } from '../queries/api-context';
import { keys } from '../queries/hooks';
import { bundleKeys } from '../queries/bundles';
import { Dialog } from './dialog';
import { ErrorMessage } from './error-message';

/** What each refusal means, in the owner's words. */
const REFUSAL: Record<string, string> = {
  'bundle-signature-invalid': 'Modified: the bundle was changed after it was signed.',
  'bundle-key-untrusted': 'Untrusted key: the signature is intact, but you do not trust its signer.',
  'bundle-unsigned': 'Unsigned: the bundle has no signature.',
  'bundle-invalid': 'Invalid: this is not a bundle this version can read.',
};

function readText(file: File): Promise<string> {
  if (typeof file.text === 'function') return file.text();
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error ?? new Error('the file could not be read'));
    r.readAsText(file);
  });
}

export interface ImportBundleDialogProps {
  onClose: () => void;
  /** After a successful import (the dialog stays open to show warnings until closed). */
  onImported?: (vm: VmProfile, warnings: string[]) => void;
}

/** The Import bundle dialog. */
export function ImportBundleDialog({ onClose, onImported }: ImportBundleDialogProps) {
  const api = useApi();
  const client = useQueryClient();
  const id = useId();
  const fileInput = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);
  const [file, setFile] = useState<{ name: string; text: string } | undefined>();
  const [readError, setReadError] = useState<unknown>();
  const [vmId, setVmId] = useState('');
  const [name, setName] = useState('');
  const [approval, setApproval] = useState<ApprovalMode>('manual');
  const [trustLabel, setTrustLabel] = useState('');

  const verify = useMutation({
    mutationFn: (text: string) => api.bundles.verify(text),
    onSuccess: (v: BundleVerification) => {
      if (v.summary) {
        setVmId(v.summary.vmId);
        setName(v.summary.vmName);
      }
    },
  });
  const trust = useMutation({
    mutationFn: (publicKey: string) => api.bundles.trust(publicKey, trustLabel.trim() || undefined),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: bundleKeys.trusted });
      if (file) verify.mutate(file.text);
    },
  });
  const importBundle = useMutation({
    mutationFn: () => api.bundles.import(file!.text, { vmId, name, approval }),
    onSuccess: (r) => {
      client.setQueryData<VmProfile[]>(keys.profiles, (old) => [
        ...(old ?? []).filter((p) => p.id !== r.vm.id),
        r.vm,
      ]);
      onImported?.(r.vm, r.warnings);
    },
  });

  const load = async (f: File | undefined) => {
    if (!f) return;
    setReadError(undefined);
    verify.reset();
    importBundle.reset();
    try {
      const text = await readText(f);
      setFile({ name: f.name, text });
      verify.mutate(text);
    } catch (e) {
      setReadError(e);
    }
  };

  const v = verify.data;
  const idValid = VmIdSchema.safeParse(vmId);
  const exists = client.getQueryData<VmProfile[]>(keys.profiles)?.some((p) => p.id === vmId) ?? false;
  const done = importBundle.data;

  return (
    <Dialog
      title="Import bundle"
      onClose={onClose}
      wide
      footer={
        <>
          <button type="button" onClick={onClose}>
            {done ? 'Close' : 'Cancel'}
          </button>
          <button
            type="button"
            className="primary"
            disabled={!v?.ok || !idValid.success || name.trim() === '' || importBundle.isPending || !!done}
            onClick={() => importBundle.mutate()}
          >
            Import
          </button>
        </>
      }
    >
      <div className="actions">
        <button type="button" onClick={() => fileInput.current?.click()}>
          Choose a bundle file…
        </button>
        <input
          ref={fileInput}
          type="file"
          hidden
          accept=".json,application/json"
          aria-label="Bundle file"
          onChange={(e) => {
            void load(e.target.files?.[0]);
            e.target.value = '';
          }}
        />
        {file && <span className="mono">{file.name}</span>}
      </div>
      <div
        className={dragging ? 'dropzone active' : 'dropzone'}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          void load(e.dataTransfer.files[0]);
        }}
      >
        …or drop a bundle here.
      </div>
      <ErrorMessage error={readError} prefix="The file could not be read" />
      <ErrorMessage error={verify.error} prefix="The check failed" />
      {verify.isPending && <p className="muted">Checking the signature…</p>}

      {v && (
        <section aria-labelledby={`${id}-check`}>
          <h3 id={`${id}-check`}>Signature check</h3>
          {v.ok ? (
            <div className="success" role="status">
              <p>
                Signature intact, signed by a key you trust
                {v.signer?.label ? (
                  <>
                    : <strong>{v.signer.label}</strong>
                  </>
                ) : (
                  '.'
                )}
              </p>
              <p>
                <code className="mono wrap">{v.signer?.fingerprint}</code>
              </p>
            </div>
          ) : (
            <div className="error" role="alert">
              <p>
                <strong>Refused.</strong> {REFUSAL[v.code ?? ''] ?? 'The bundle cannot be imported.'}
              </p>
              <p>{v.message}</p>
            </div>
          )}
          {!v.ok && v.code === 'bundle-key-untrusted' && v.signer?.publicKey && (
            <div className="row">
              <label>
                Label for this signer
                <input type="text" value={trustLabel} onChange={(e) => setTrustLabel(e.target.value)} />
              </label>
              <div className="actions">
                <button
                  type="button"
                  disabled={trust.isPending}
                  onClick={() => trust.mutate(v.signer!.publicKey!)}
                >
                  Trust {v.signer.fingerprint}
                </button>
              </div>
            </div>
          )}
          <ErrorMessage error={trust.error} prefix="Could not trust the key" />
          {v.summary && (
            <dl className="facts">
              <dt>VM in the bundle</dt>
              <dd>
                {v.summary.vmName} <span className="mono">({v.summary.vmId})</span>
              </dd>
              <dt>Scheme and policy</dt>
              <dd>
                {v.summary.scheme === 'amd-sev-es' ? 'SEV-ES' : 'SEV'}, policy{' '}
                <span className="mono">{policyHex(v.summary.policy)}</span>
              </dd>
              <dt>Expected digests</dt>
              <dd>{v.summary.rows} row(s)</dd>
              <dt>Firmware SHA-256</dt>
              <dd className="mono hash">{v.summary.firmwareSha256}</dd>
              <dt>Created</dt>
              <dd>
                {formatTime(v.summary.createdAt)} by {v.summary.generator}
              </dd>
            </dl>
          )}
        </section>
      )}

      {v?.ok && (
        <fieldset disabled={!!done}>
          <legend>Register as</legend>
          <div className="form-grid">
            <label>
              VM id
              <input
                type="text"
                value={vmId}
                onChange={(e) => setVmId(e.target.value)}
                aria-invalid={!idValid.success}
              />
            </label>
            <label>
              Name
              <input type="text" value={name} onChange={(e) => setName(e.target.value)} />
            </label>
            <label>
              Approval
              <select value={approval} onChange={(e) => setApproval(e.target.value as ApprovalMode)}>
                {APPROVAL_MODES.map((m) => (
                  <option key={m} value={m}>
                    {m === 'manual' ? 'Ask me for each launch' : 'Release automatically when it matches'}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {!idValid.success && <p className="error">{idValid.error.issues[0]?.message}</p>}
          {exists && idValid.success && !done && (
            <p className="warning">A profile {vmId} exists: importing replaces its launch settings.</p>
          )}
          <p className="hint">
            The bundle carries no secrets: add them on the Secrets screen after the import.
          </p>
        </fieldset>
      )}
      <ErrorMessage error={importBundle.error} prefix="Import failed" />
      {done && (
        <div className={done.warnings.length ? 'warning' : 'success'} role="status">
          <p>
            Imported {done.vm.name} ({done.vm.id}) with {done.rows} expected digest row(s).
          </p>
          {done.warnings.map((w) => (
            <p key={w}>{w}</p>
          ))}
        </div>
      )}
    </Dialog>
  );
}
