/**
 * Secrets per profile, kept in the OS keychain: masked by default, revealed on demand; a LUKS
 * passphrase or any GUID with bytes. A locked keychain gives a clear error and saves nothing.
 */
import { useEffect, useId, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import {
  LUKS_PASSPHRASE_GUID,
  ResourcePathSchema,
  type SecretRef,
  type VmProfile,
} from '../../../app/profile';
import { defaultResourcePath } from './profile-editor';
import type { SecretInput, SecretValue } from '../../../app/contract/ipc';
import { useApi } from '../queries/api-context';
import { keys, useAppInfo, useArtifactInspection, useProfiles } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ConfirmDeleteDialog } from '../components/confirm-delete-dialog';
import { ErrorMessage } from '../components/error-message';
import { ProfileSelect } from '../components/profile-select';
import { TableHead } from '../components/table-head';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Secret bytes typed as hex ("0a1b…") or base64, as standard base64; undefined when neither parses. */
export function secretBytesToBase64(text: string, encoding: 'hex' | 'base64'): string | undefined {
  const t = text.trim();
  if (encoding === 'hex') {
    const h = t.replace(/\s+/g, '');
    if (h.length === 0 || h.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(h)) return undefined;
    let bin = '';
    for (let i = 0; i < h.length; i += 2) bin += String.fromCharCode(parseInt(h.slice(i, i + 2), 16));
    return btoa(bin);
  }
  if (t.length === 0 || t.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(t)) return undefined;
  return t;
}

/** Standard base64 as lower-case hex (raw secrets are shown as hex, the way they are usually typed). */
export function base64ToHex(b64: string): string {
  const bin = atob(b64);
  let hex = '';
  for (let i = 0; i < bin.length; i++) hex += bin.charCodeAt(i).toString(16).padStart(2, '0');
  return hex;
}

/** A deleted secret, kept in this window's memory for a short while so the delete can be undone. */
export interface DeletedSecret {
  vmId: string;
  name: string;
  /** What restores it; absent when the value could not be read before the delete (no undo then). */
  input?: SecretInput;
}

/** How long "Undo" is offered after a secret was deleted. */
export const UNDO_MS = 15_000;

function secretName(secret: SecretRef): string {
  return secret.label ?? (secret.kind === 'luks-passphrase' ? 'Disk passphrase' : 'Secret');
}

function DeleteSecretDialog({
  vmId,
  profileName,
  secret,
  onClose,
  onDeleted,
}: {
  vmId: string;
  profileName: string;
  secret: SecretRef;
  onClose: () => void;
  onDeleted: (d: DeletedSecret) => void;
}) {
  const api = useApi();
  const client = useQueryClient();
  const name = secretName(secret);
  const del = useMutation({
    mutationFn: async (): Promise<DeletedSecret> => {
      // Read the value first (it stays in this window only) so the delete can be undone.
      const v = await api.secrets.reveal(vmId, secret.guid).catch(() => undefined);
      await api.secrets.delete(vmId, secret.guid);
      const label = secret.label;
      const extra = {
        ...(label ? { label } : {}),
        ...(secret.resource ? { resource: secret.resource } : {}),
      };
      const input: SecretInput | undefined = !v
        ? undefined
        : secret.kind === 'luks-passphrase' && v.text !== undefined
          ? { kind: 'luks-passphrase', passphrase: v.text, ...extra }
          : { kind: 'raw', guid: secret.guid, dataBase64: v.base64, ...extra };
      return { vmId, name, ...(input ? { input } : {}) };
    },
    onSuccess: (d) => {
      void client.invalidateQueries({ queryKey: keys.profiles });
      onDeleted(d);
      onClose();
    },
  });
  return (
    <ConfirmDeleteDialog
      title={`Delete ${name}?`}
      confirmLabel="Delete secret"
      deleting={del.isPending}
      error={del.error}
      onConfirm={() => del.mutate()}
      onClose={onClose}
    >
      <p>
        {profileName} will no longer receive this secret (<span className="mono">{secret.guid}</span>)
        {secret.kind === 'luks-passphrase'
          ? ': the VM cannot unlock its disk until a passphrase is saved again'
          : ''}
        . The value is removed from the keychain; you can undo for {UNDO_MS / 1000} seconds afterwards.
      </p>
    </ConfirmDeleteDialog>
  );
}

function SecretRow({
  vmId,
  profileName,
  secret,
  onDeleted,
  snp,
}: {
  vmId: string;
  profileName: string;
  secret: SecretRef;
  onDeleted: (d: DeletedSecret) => void;
  /** SEV-SNP: show the resource path column. */
  snp?: boolean;
}) {
  const api = useApi();
  const [shown, setShown] = useState<SecretValue | undefined>();
  const [confirming, setConfirming] = useState(false);
  const reveal = useMutation({
    mutationFn: () => api.secrets.reveal(vmId, secret.guid),
    onSuccess: setShown,
  });
  const name = secretName(secret);
  return (
    <tr>
      <td>{name}</td>
      <td>{secret.kind === 'luks-passphrase' ? 'LUKS passphrase' : 'Raw bytes'}</td>
      <td className="mono">{secret.guid}</td>
      {snp && (
        <td className="mono" data-testid="secret-resource">
          {secret.resource ?? '—'}
        </td>
      )}
      <td>
        {shown ? (
          <code className="mono wrap" data-testid="secret-value">
            {shown.text ?? `hex ${base64ToHex(shown.base64)}`}
          </code>
        ) : (
          <span>
            <span aria-hidden="true">••••••••</span>
            <span className="visually-hidden">hidden</span>
          </span>
        )}
        <ErrorMessage error={reveal.error} />
      </td>
      <td>
        <div className="actions">
          <button
            type="button"
            className="small"
            onClick={() => (shown ? setShown(undefined) : reveal.mutate())}
            disabled={reveal.isPending}
            aria-label={`${shown ? 'Hide' : 'Reveal'} ${name}`}
          >
            {shown ? 'Hide' : 'Reveal'}
          </button>
          <button
            type="button"
            className="small"
            onClick={() => setConfirming(true)}
            aria-label={`Delete ${name}`}
          >
            Delete
          </button>
        </div>
        {confirming && (
          <DeleteSecretDialog
            vmId={vmId}
            profileName={profileName}
            secret={secret}
            onClose={() => setConfirming(false)}
            onDeleted={onDeleted}
          />
        )}
      </td>
    </tr>
  );
}

function AddSecret({ profile, onSaved }: { profile: VmProfile; onSaved: () => void }) {
  const api = useApi();
  const client = useQueryClient();
  const id = useId();
  const [kind, setKind] = useState<'luks-passphrase' | 'raw'>('luks-passphrase');
  const [passphrase, setPassphrase] = useState('');
  const [showPassphrase, setShowPassphrase] = useState(false);
  const [guid, setGuid] = useState('');
  const [bytes, setBytes] = useState('');
  const [encoding, setEncoding] = useState<'hex' | 'base64'>('hex');
  const [label, setLabel] = useState('');
  const snp = profile.scheme === 'amd-sev-snp';
  /** SEV-SNP: the resource path; empty means the default for the chosen kind. */
  const [resource, setResource] = useState('');
  const replacing = (g: string) => profile.secrets.find((s) => s.guid === g);
  const takenPaths = (g: string) =>
    profile.secrets.filter((s) => s.guid !== g && s.resource !== undefined).map((s) => s.resource!);
  const currentGuid = kind === 'luks-passphrase' ? LUKS_PASSPHRASE_GUID : guid.trim().toLowerCase();
  const defaultPath =
    replacing(currentGuid)?.resource ?? defaultResourcePath(profile.id, kind, takenPaths(currentGuid));
  const typedPath = resource.trim();
  const resourceProblem = !snp
    ? undefined
    : typedPath !== '' && !ResourcePathSchema.safeParse(typedPath).success
      ? 'A resource path is repository/type/tag: three parts of letters, digits, dot, dash and underscore (e.g. default/luks/web-01).'
      : takenPaths(currentGuid).includes(typedPath || defaultPath)
        ? `Another secret of ${profile.name} has the path ${typedPath || defaultPath}: choose another.`
        : undefined;
  const [problem, setProblem] = useState<string | undefined>();
  const [warnings, setWarnings] = useState<string[]>([]);

  const save = useMutation({
    mutationFn: (input: SecretInput) => api.secrets.set(profile.id, input),
    onSuccess: (r) => {
      setWarnings(r.warnings);
      setPassphrase('');
      setBytes('');
      onSaved();
      void client.invalidateQueries({ queryKey: keys.profiles });
    },
  });

  const submit = () => {
    setProblem(undefined);
    setWarnings([]);
    const lbl = label.trim() || undefined;
    if (resourceProblem) return setProblem(resourceProblem);
    const path = snp ? { resource: typedPath || defaultPath } : {};
    if (kind === 'luks-passphrase') {
      if (passphrase === '') return setProblem('Enter the passphrase.');
      return save.mutate({ kind, passphrase, label: lbl, ...path });
    }
    const g = guid.trim().toLowerCase();
    if (!GUID.test(g)) return setProblem('The GUID must look like 736869e5-84f0-4973-92ec-06879ce3da0b.');
    if (g === LUKS_PASSPHRASE_GUID)
      return setProblem(
        'This GUID is the disk (LUKS) passphrase grub reads: choose "Disk (LUKS) passphrase" above to set or replace it.',
      );
    const b64 = secretBytesToBase64(bytes, encoding);
    if (!b64)
      return setProblem(
        encoding === 'hex'
          ? 'The bytes must be an even number of hex digits.'
          : 'The bytes must be standard base64.',
      );
    save.mutate({ kind: 'raw', guid: g, dataBase64: b64, label: lbl, ...path });
  };

  const replaces =
    kind === 'luks-passphrase'
      ? profile.secrets.some((s) => s.guid === LUKS_PASSPHRASE_GUID)
      : profile.secrets.some((s) => s.guid === guid.trim().toLowerCase());

  return (
    <form
      className="panel"
      aria-labelledby={`${id}-h`}
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <h2 id={`${id}-h`}>Add a secret</h2>
      <fieldset>
        <legend>Kind</legend>
        <label className="inline">
          <input
            type="radio"
            name={`${id}-kind`}
            checked={kind === 'luks-passphrase'}
            onChange={() => setKind('luks-passphrase')}
          />
          Disk (LUKS) passphrase — GUID <span className="mono">{LUKS_PASSPHRASE_GUID}</span>, read by
          grub&apos;s efisecret
        </label>
        <label className="inline">
          <input type="radio" name={`${id}-kind`} checked={kind === 'raw'} onChange={() => setKind('raw')} />
          Any GUID with bytes
        </label>
      </fieldset>
      {kind === 'luks-passphrase' ? (
        <div className="row">
          <label>
            Passphrase
            <input
              type={showPassphrase ? 'text' : 'password'}
              value={passphrase}
              autoComplete="new-password"
              onChange={(e) => setPassphrase(e.target.value)}
            />
          </label>
          <label className="inline">
            <input
              type="checkbox"
              checked={showPassphrase}
              onChange={(e) => setShowPassphrase(e.target.checked)}
            />
            Show while typing
          </label>
        </div>
      ) : (
        <div className="form-grid">
          <label>
            GUID
            <input
              type="text"
              className="mono"
              value={guid}
              onChange={(e) => setGuid(e.target.value)}
              autoComplete="off"
            />
          </label>
          <label>
            Bytes are
            <select value={encoding} onChange={(e) => setEncoding(e.target.value as 'hex' | 'base64')}>
              <option value="hex">Hex</option>
              <option value="base64">Base64</option>
            </select>
          </label>
          <label>
            Bytes
            <textarea rows={2} value={bytes} onChange={(e) => setBytes(e.target.value)} />
          </label>
        </div>
      )}
      <label>
        Label (optional)
        <input type="text" value={label} onChange={(e) => setLabel(e.target.value)} />
      </label>
      {snp && (
        <div className="field">
          <label>
            Resource path
            <input
              type="text"
              className="mono"
              value={resource}
              placeholder={defaultPath}
              autoComplete="off"
              aria-invalid={resourceProblem !== undefined}
              aria-describedby={`${id}-resource-hint`}
              onChange={(e) => setResource(e.target.value)}
            />
          </label>
          {resourceProblem && <span className="field-error">{resourceProblem}</span>}
          <span id={`${id}-resource-hint`} className="hint">
            The guest fetches it from /kbs/v0/resource/{typedPath || defaultPath} (empty: {defaultPath}).
          </span>
        </div>
      )}
      {replaces && (
        <p className="hint">
          {kind === 'luks-passphrase'
            ? 'This replaces the profile’s current disk passphrase.'
            : 'This replaces the value the profile has under this GUID.'}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>
          {save.isPending ? 'Saving…' : 'Save to keychain'}
        </button>
      </div>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      {save.isSuccess && warnings.length === 0 && (
        <p className="success" role="status">
          Saved in the keychain.
        </p>
      )}
      {warnings.map((w) => (
        <p key={w} className="warning" role="status">
          {w}
        </p>
      ))}
      <ErrorMessage error={save.error} prefix="Not saved" />
    </form>
  );
}

/** The Secrets screen. */
export function SecretsScreen() {
  const profiles = useProfiles();
  const info = useAppInfo();
  const list = profiles.data ?? [];
  const [selected, setSelected] = useState('');
  const profile = list.find((p) => p.id === selected) ?? list[0];
  const fw = useArtifactInspection(
    profile?.firmware.kind === 'artifact' ? profile.firmware.sha256 : undefined,
  );
  // SNP guests fetch their secrets over the KBS protocol: the firmware's secret area does not matter.
  const noSecretArea =
    profile?.scheme !== 'amd-sev-snp' && fw.data?.firmware && !fw.data.firmware.secretArea.ok;
  // Bumped by every save: rows remount, so a value revealed before is hidden, never shown stale.
  const [revision, setRevision] = useState(0);
  const [deleted, setDeleted] = useState<DeletedSecret | undefined>();
  const api = useApi();
  const client = useQueryClient();
  const undo = useMutation({
    mutationFn: (d: DeletedSecret & { input: SecretInput }) => api.secrets.set(d.vmId, d.input),
    onSuccess: () => {
      setDeleted(undefined);
      setRevision((r) => r + 1);
      void client.invalidateQueries({ queryKey: keys.profiles });
    },
  });
  useEffect(() => {
    if (!deleted) return;
    const t = setTimeout(() => setDeleted(undefined), UNDO_MS);
    return () => clearTimeout(t);
  }, [deleted]);

  return (
    <>
      <ScreenHeader title="Secrets">
        What a VM receives once its launch is verified, kept in the OS keychain, never in the profile files or
        the log.
      </ScreenHeader>
      {info.data?.secretStore.kind === 'memory' && (
        <p className="warning">
          This service keeps secrets in memory only (--secret-store memory): they are gone when it stops.
        </p>
      )}
      <ErrorMessage error={profiles.error} />
      {profiles.isSuccess && list.length === 0 && <p className="muted">Create a VM profile first.</p>}
      {profile && (
        <>
          <div className="row">
            <ProfileSelect profiles={list} value={profile.id} onChange={setSelected} />
          </div>
          {noSecretArea && (
            <p className="warning">
              {profile.name}&apos;s firmware has no SEV secret area: QEMU cannot inject these secrets into the
              guest.
            </p>
          )}
          <section className="panel" aria-labelledby="secret-list-heading">
            <h2 id="secret-list-heading">Secrets of {profile.name}</h2>
            {profile.secrets.length === 0 ? (
              <p className="muted">None yet.</p>
            ) : (
              <table>
                <TableHead
                  columns={
                    profile.scheme === 'amd-sev-snp'
                      ? ['Label', 'Kind', 'GUID', 'Resource path', 'Value']
                      : ['Label', 'Kind', 'GUID', 'Value']
                  }
                />
                <tbody>
                  {profile.secrets.map((s) => (
                    <SecretRow
                      key={`${s.guid}-${revision}`}
                      vmId={profile.id}
                      profileName={profile.name}
                      secret={s}
                      snp={profile.scheme === 'amd-sev-snp'}
                      onDeleted={setDeleted}
                    />
                  ))}
                </tbody>
              </table>
            )}
          </section>
          {deleted && (
            <div className="success row" role="status">
              <span>
                Deleted {deleted.name} of {deleted.vmId}.
              </span>
              {deleted.input && (
                <button
                  type="button"
                  className="small"
                  disabled={undo.isPending}
                  onClick={() => undo.mutate({ ...deleted, input: deleted.input! })}
                >
                  Undo
                </button>
              )}
            </div>
          )}
          <ErrorMessage error={undo.error} prefix="Undo failed" />
          <AddSecret key={profile.id} profile={profile} onSaved={() => setRevision((r) => r + 1)} />
        </>
      )}
    </>
  );
}
