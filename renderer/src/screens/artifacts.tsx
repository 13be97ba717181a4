/**
 * Artifacts: import firmware, kernel and initrd images (file dialog or drag and drop). Hashing runs
 * outside the renderer (a worker in main, or the service in browser mode) and reports progress; an
 * import can be cancelled. Firmware shows what it supports, with the reason.
 */
import { useId, useRef, useState, type DragEvent } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import {
  ARTIFACT_KINDS,
  type ArtifactSummary,
  type ArtifactInspection,
  type ArtifactKind,
  type Capability,
  type FirmwareCapabilities,
} from '../../../app/contract/ipc';
import { useApi } from '../queries/api-context';
import { keys, useArtifactInspection, useArtifacts, useImportProgress } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ConfirmDeleteDialog } from '../components/confirm-delete-dialog';
import { ErrorMessage } from '../components/error-message';
import { CopyButton } from '../components/copy-button';
import { apiErrorOf } from '../../../app/contract/ipc';
import { formatBytes, formatTime, shortHex } from '../lib/format';
import { TableHead } from '../components/table-head';
import { Dialog } from '../components/dialog';

/** Rename or delete one artifact (a delete is refused while a profile uses it; the error names it). */
function ArtifactDialog({
  artifact,
  action,
  onClose,
}: {
  artifact: ArtifactSummary;
  action: 'rename' | 'delete';
  onClose: () => void;
}) {
  const api = useApi();
  const client = useQueryClient();
  const [name, setName] = useState(artifact.name);
  const done = () => {
    void client.invalidateQueries({ queryKey: keys.artifacts });
    onClose();
  };
  const rename = useMutation({
    mutationFn: () => api.artifacts.rename(artifact.sha256, name.trim()),
    onSuccess: done,
  });
  const del = useMutation({ mutationFn: () => api.artifacts.delete(artifact.sha256), onSuccess: done });
  if (action === 'rename') {
    return (
      <Dialog
        title={`Rename ${artifact.name}`}
        onClose={onClose}
        footer={
          <>
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            <button
              type="button"
              className="primary"
              disabled={rename.isPending || name.trim() === ''}
              onClick={() => rename.mutate()}
            >
              Rename
            </button>
          </>
        }
      >
        <label>
          New name
          <input type="text" value={name} onChange={(e) => setName(e.target.value)} maxLength={255} />
        </label>
        {name.trim() === '' && <p className="field-error">Enter a name.</p>}
        <p className="hint">Only the name changes: profiles refer to the artifact by its SHA-256.</p>
        <ErrorMessage error={rename.error} prefix="Not renamed" />
      </Dialog>
    );
  }
  return (
    <ConfirmDeleteDialog
      title={`Delete ${artifact.name}?`}
      confirmLabel="Delete artifact"
      deleting={del.isPending}
      error={del.error}
      errorPrefix="Not deleted"
      onConfirm={() => del.mutate()}
      onClose={onClose}
    >
      <p>
        The file <span className="mono">{shortHex(artifact.sha256)}</span> is removed from this machine. A
        profile that uses it must be changed first.
      </p>
    </ConfirmDeleteDialog>
  );
}

const KIND_LABEL: Record<ArtifactKind, string> = {
  firmware: 'Firmware (OVMF)',
  kernel: 'Kernel',
  initrd: 'Initrd',
};

function kindLabel(kind: ArtifactKind | undefined): string {
  return kind ? KIND_LABEL[kind] : 'Unknown kind';
}

/** A guess of the kind from the file name, so a drop of "vmlinuz" or "initrd.img" needs no extra step. */
export function guessKind(name: string): ArtifactKind | undefined {
  const n = name.toLowerCase();
  if (/ovmf|\.fd($|[._-])|edk2|firmware/.test(n)) return 'firmware';
  if (/initrd|initramfs/.test(n)) return 'initrd';
  if (/vmlinu[xz]|bzimage|kernel/.test(n)) return 'kernel';
  return undefined;
}

function newImportId(): string {
  return `imp-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function CapabilityRow({ title, cap }: { title: string; cap: Capability }) {
  return (
    <>
      <dt>{title}</dt>
      <dd>
        <span className={`pill ${cap.ok ? 'ok' : 'bad'}`}>{cap.ok ? 'Yes' : 'No'}</span>{' '}
        <span className="muted">{cap.reason}</span>
      </dd>
    </>
  );
}

/** What a firmware image supports, and the warning when QEMU could not inject a secret into it. */
export function FirmwareCapabilitiesView({ caps }: { caps: FirmwareCapabilities }) {
  return (
    <>
      {!caps.secretArea.ok && (
        <p className="warning" role="note" data-testid="no-secret-area">
          This firmware has no SEV secret area: QEMU cannot inject a launch secret into it, so a disk
          passphrase released for this VM would never reach the guest. Use an AmdSev OVMF build
          (OVMF.amdsev.fd) for VMs that need secrets.
        </p>
      )}
      <dl className="facts">
        <CapabilityRow title="SEV-ES reset address" cap={caps.sevEsResetAddress} />
        <CapabilityRow title="Measured direct boot" cap={caps.measuredDirectBoot} />
        <CapabilityRow title="Secret area" cap={caps.secretArea} />
      </dl>
    </>
  );
}

function InspectionView({ item }: { item: ArtifactInspection }) {
  return (
    <section className="panel" aria-label={`Imported ${item.name}`} data-testid="artifact-details">
      <h2>
        {item.name} <span className="muted">({kindLabel(item.kind)})</span>
      </h2>
      <dl className="facts">
        <dt>SHA-256</dt>
        <dd>
          <code className="hash" data-testid="artifact-sha256">
            {item.sha256}
          </code>{' '}
          <CopyButton value={item.sha256} what={`SHA-256 of ${item.name}`} />
        </dd>
        <dt>Size</dt>
        <dd>
          {formatBytes(item.size)} <span className="muted">({item.size.toLocaleString()} bytes)</span>
        </dd>
        <dt>Imported</dt>
        <dd>{formatTime(item.importedAt)}</dd>
      </dl>
      {item.firmware && <FirmwareCapabilitiesView caps={item.firmware} />}
    </section>
  );
}

function ImportProgressView({
  importId,
  name,
  onCancel,
}: {
  importId: string;
  name: string;
  onCancel: () => void;
}) {
  const progress = useImportProgress(importId).data;
  const pct =
    progress && progress.total > 0 ? Math.floor((progress.bytes / progress.total) * 100) : undefined;
  const phase = progress?.phase === 'uploading' ? 'Uploading' : 'Hashing';
  return (
    <div className="panel" aria-live="polite">
      <p>
        {phase} <span className="mono">{name}</span>
        {progress ? ` — ${formatBytes(progress.bytes)} of ${formatBytes(progress.total)}` : '…'}
      </p>
      <progress max={100} value={pct} aria-label={`Import progress of ${name}`} />
      <div className="actions">
        <button type="button" onClick={onCancel}>
          Cancel import
        </button>
      </div>
    </div>
  );
}

/** The Artifacts screen. */
export function ArtifactsScreen() {
  const api = useApi();
  const client = useQueryClient();
  const artifacts = useArtifacts();
  const [kind, setKind] = useState<ArtifactKind | 'auto'>('auto');
  const [current, setCurrent] = useState<{ importId: string; name: string } | undefined>();
  const [lastImported, setLastImported] = useState<ArtifactInspection | undefined>();
  const [selected, setSelected] = useState<string | undefined>();
  const [dragging, setDragging] = useState(false);
  const [notice, setNotice] = useState<string | undefined>();
  const [dialog, setDialog] = useState<
    { artifact: ArtifactSummary; action: 'rename' | 'delete' } | undefined
  >();
  const fileInput = useRef<HTMLInputElement>(null);
  const kindId = useId();
  const shownSha = selected ?? lastImported?.sha256;
  const inspection = useArtifactInspection(shownSha);

  const importFile = useMutation({
    mutationFn: async ({ file, importId }: { file: File; importId: string }) => {
      const k = kind === 'auto' ? guessKind(file.name) : kind;
      if (!k) {
        throw new Error(
          `Cannot tell what "${file.name}" is from its name: choose Firmware, Kernel or Initrd under "Import as".`,
        );
      }
      return api.artifacts.import({ importId, path: api.files.pathFor(file), kind: k });
    },
    onSuccess: (result) => {
      setLastImported(result);
      setSelected(undefined);
      // A browser upload answers without the firmware's capabilities: artifacts:inspect supplies them.
      if (result.firmware || result.kind !== 'firmware')
        client.setQueryData(keys.artifact(result.sha256), result);
      else void client.invalidateQueries({ queryKey: keys.artifact(result.sha256) });
      void client.invalidateQueries({ queryKey: keys.artifacts, exact: true });
    },
    onError: (e) => {
      if (apiErrorOf(e).code === 'cancelled') setNotice('Import cancelled.');
    },
    onSettled: () => setCurrent(undefined),
  });

  const start = (file: File | undefined) => {
    if (!file || importFile.isPending) return;
    setNotice(undefined);
    const importId = newImportId();
    setCurrent({ importId, name: file.name });
    importFile.mutate({ file, importId });
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    start(e.dataTransfer.files[0]);
  };

  // What the details panel shows: the inspection, with the file name and kind of this session's import.
  const fresh = lastImported && lastImported.sha256 === shownSha ? lastImported : undefined;
  const shown: ArtifactInspection | undefined =
    inspection.data || fresh
      ? ({
          ...inspection.data,
          ...fresh,
          firmware: fresh?.firmware ?? inspection.data?.firmware,
        } as ArtifactInspection)
      : undefined;
  const error =
    importFile.error && apiErrorOf(importFile.error).code !== 'cancelled' ? importFile.error : null;
  const list = [...(artifacts.data ?? [])].sort((a, b) => b.importedAt.localeCompare(a.importedAt));

  return (
    <>
      <ScreenHeader title="Artifacts">
        The firmware, kernel and initrd your VMs boot. Their SHA-256 digests go into the expected launch
        digest; the files themselves stay on this machine.
      </ScreenHeader>
      <section className="panel" aria-labelledby="import-heading">
        <h2 id="import-heading">Import</h2>
        <div className="row">
          <label htmlFor={kindId} className="narrow">
            Import as
            <select
              id={kindId}
              value={kind}
              onChange={(e) => setKind(e.target.value as ArtifactKind | 'auto')}
            >
              <option value="auto">Guess from the file name</option>
              {ARTIFACT_KINDS.map((k) => (
                <option key={k} value={k}>
                  {KIND_LABEL[k]}
                </option>
              ))}
            </select>
          </label>
          <div className="actions">
            <button
              type="button"
              className="primary"
              onClick={() => fileInput.current?.click()}
              disabled={importFile.isPending}
            >
              Choose a file…
            </button>
            <input
              ref={fileInput}
              type="file"
              hidden
              aria-label="File to import"
              data-testid="artifact-file-input"
              onChange={(e) => {
                start(e.target.files?.[0]);
                e.target.value = '';
              }}
            />
          </div>
        </div>
        <div
          className={dragging ? 'dropzone active' : 'dropzone'}
          onDragOver={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
        >
          …or drop a file here.
        </div>
        {current && (
          <ImportProgressView
            importId={current.importId}
            name={current.name}
            onCancel={() => void api.artifacts.cancelImport(current.importId)}
          />
        )}
        {notice && (
          <p className="muted" role="status">
            {notice}
          </p>
        )}
        <ErrorMessage error={error} prefix="Import failed" />
      </section>
      {shown && <InspectionView item={shown} />}
      <ErrorMessage error={inspection.error} />
      <section className="panel" aria-labelledby="artifact-list-heading">
        <h2 id="artifact-list-heading">Imported artifacts</h2>
        <ErrorMessage error={artifacts.error} />
        {list.length === 0 && artifacts.isSuccess && <p className="muted">Nothing imported yet.</p>}
        {list.length > 0 && (
          <table>
            <TableHead columns={['Name', 'Kind', 'SHA-256', 'Size', 'Imported']} />
            <tbody>
              {list.map((a) => (
                <tr key={`${a.kind}-${a.sha256}`}>
                  <td className="mono">{a.name}</td>
                  <td>{kindLabel(a.kind)}</td>
                  <td className="mono" title={a.sha256}>
                    {shortHex(a.sha256)}
                  </td>
                  <td>{formatBytes(a.size)}</td>
                  <td>{formatTime(a.importedAt)}</td>
                  <td>
                    <div className="actions">
                      <button
                        type="button"
                        className="small"
                        onClick={() => setSelected(a.sha256)}
                        aria-label={`Details of ${a.name}`}
                      >
                        Details
                      </button>
                      <button
                        type="button"
                        className="small"
                        onClick={() => setDialog({ artifact: a, action: 'rename' })}
                        aria-label={`Rename ${a.name}`}
                      >
                        Rename
                      </button>
                      <button
                        type="button"
                        className="small"
                        onClick={() => setDialog({ artifact: a, action: 'delete' })}
                        aria-label={`Delete ${a.name}`}
                      >
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      {dialog && <ArtifactDialog {...dialog} onClose={() => setDialog(undefined)} />}
    </>
  );
}
