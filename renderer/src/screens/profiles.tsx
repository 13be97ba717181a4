/** VM profiles: the list, and create / edit / duplicate / delete. */
import { useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { VmIdSchema, type VmProfile } from '../../../app/profile';
import { policyHex } from '../../../app/sev/policy';
import type { Scheme } from '../../../app/profile';

const SCHEME_SHORT: Record<Scheme, string> = {
  'amd-sev': 'SEV',
  'amd-sev-es': 'SEV-ES',
  'amd-sev-snp': 'SEV-SNP',
};
import { useApi } from '../queries/api-context';
import { keys, useProfiles } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ConfirmDeleteDialog } from '../components/confirm-delete-dialog';
import { ErrorMessage } from '../components/error-message';
import { Dialog } from '../components/dialog';
import { ExportBundleDialog } from '../components/export-bundle-dialog';
import { ImportBundleDialog } from '../components/import-bundle-dialog';
import { ProfileEditor } from './profile-editor';
import { TableHead } from '../components/table-head';

type Open =
  | { kind: 'new' }
  | { kind: 'edit'; profile: VmProfile }
  | { kind: 'duplicate'; profile: VmProfile }
  | { kind: 'delete'; profile: VmProfile }
  | { kind: 'export'; profile: VmProfile }
  | { kind: 'import' };

function DuplicateDialog({
  profile,
  onClose,
  onDone,
}: {
  profile: VmProfile;
  onClose: () => void;
  onDone: (copy: VmProfile, warnings: string[]) => void;
}) {
  const api = useApi();
  const client = useQueryClient();
  const [newId, setNewId] = useState(`${profile.id}-copy`);
  const valid = VmIdSchema.safeParse(newId);
  const dup = useMutation({
    mutationFn: () => api.profiles.duplicate(profile.id, newId),
    onSuccess: ({ profile: copy, warnings }) => {
      client.setQueryData<VmProfile[]>(keys.profiles, (old) => [
        ...(old ?? []).filter((p) => p.id !== copy.id),
        copy,
      ]);
      onDone(copy, warnings);
    },
  });
  return (
    <Dialog
      title={`Duplicate ${profile.name}`}
      onClose={onClose}
      footer={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button
            type="button"
            className="primary"
            disabled={!valid.success || dup.isPending}
            onClick={() => dup.mutate()}
          >
            Duplicate
          </button>
        </>
      }
    >
      <label>
        Id of the copy
        <input
          type="text"
          value={newId}
          onChange={(e) => setNewId(e.target.value)}
          aria-invalid={!valid.success}
        />
      </label>
      <p className="hint">
        The copy gets the same settings and secrets; any secret that could not be copied is named after it is
        made.
      </p>
      {!valid.success && <p className="error">{valid.error.issues[0]?.message}</p>}
      <ErrorMessage error={dup.error} prefix="Duplicate failed" />
    </Dialog>
  );
}

function DeleteDialog({ profile, onClose }: { profile: VmProfile; onClose: () => void }) {
  const api = useApi();
  const client = useQueryClient();
  const del = useMutation({
    mutationFn: () => api.profiles.delete(profile.id),
    onSuccess: () => {
      client.setQueryData<VmProfile[]>(keys.profiles, (old) =>
        (old ?? []).filter((p) => p.id !== profile.id),
      );
      onClose();
    },
  });
  return (
    <ConfirmDeleteDialog
      title={`Delete ${profile.name}?`}
      confirmLabel="Delete profile and its secrets"
      deleting={del.isPending}
      error={del.error}
      onConfirm={() => del.mutate()}
      onClose={onClose}
    >
      <p>
        Hosts will no longer get secrets for <span className="mono">{profile.id}</span>, and its{' '}
        {profile.secrets.length} secret(s) are removed from the keychain. This cannot be undone.
      </p>
    </ConfirmDeleteDialog>
  );
}

/** The profiles screen. */
export function ProfilesScreen() {
  const profiles = useProfiles();
  const [open, setOpen] = useState<Open | undefined>();
  const [saved, setSaved] = useState<{ name: string; warnings: string[] } | undefined>();
  const list = [...(profiles.data ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  const close = () => setOpen(undefined);

  return (
    <>
      <ScreenHeader
        title="VM profiles"
        actions={
          <>
            <button type="button" onClick={() => setOpen({ kind: 'import' })}>
              Import bundle
            </button>
            <button type="button" className="primary" onClick={() => setOpen({ kind: 'new' })}>
              New profile
            </button>
          </>
        }
      >
        What you expect a host to launch: the firmware and kernel, the policy, the vCPUs. A host gets the
        profile&apos;s secrets only if its launch measurement matches.
      </ScreenHeader>
      {saved && (
        <div className={saved.warnings.length ? 'warning' : 'success'} role="status">
          <p>Saved {saved.name}.</p>
          {saved.warnings.map((w) => (
            <p key={w}>{w}</p>
          ))}
        </div>
      )}
      <ErrorMessage error={profiles.error} />
      <section className="panel" aria-labelledby="profiles-heading">
        <h2 id="profiles-heading" className="visually-hidden">
          Profiles
        </h2>
        {profiles.isSuccess && list.length === 0 && (
          <p className="muted">
            No profiles yet. Import a firmware image on the Artifacts screen, then create one.
          </p>
        )}
        {list.length > 0 && (
          <div className="table-scroll">
            <table>
              <TableHead columns={['Name', 'Id', 'Scheme', 'Policy', 'vCPUs', 'Approval', 'Secrets']} />
              <tbody>
                {list.map((p) => (
                  <tr key={p.id}>
                    <td>{p.name}</td>
                    <td className="mono">{p.id}</td>
                    <td>{SCHEME_SHORT[p.scheme]}</td>
                    <td className="mono">
                      {p.scheme === 'amd-sev-snp'
                        ? `0x${(p.policy >>> 0).toString(16)}`
                        : policyHex(p.policy)}
                    </td>
                    <td>{p.scheme !== 'amd-sev' ? p.cpuCounts.join(', ') : '—'}</td>
                    <td>{p.approval === 'manual' ? 'Ask' : 'Automatic'}</td>
                    <td>{p.secrets.length}</td>
                    <td>
                      <div className="actions">
                        <button
                          type="button"
                          className="small"
                          onClick={() => setOpen({ kind: 'edit', profile: p })}
                          aria-label={`Edit ${p.name}`}
                        >
                          Edit
                        </button>
                        <button
                          type="button"
                          className="small"
                          onClick={() => setOpen({ kind: 'duplicate', profile: p })}
                          aria-label={`Duplicate ${p.name}`}
                        >
                          Duplicate
                        </button>
                        <button
                          type="button"
                          className="small"
                          onClick={() => setOpen({ kind: 'export', profile: p })}
                          aria-label={`Export bundle of ${p.name}`}
                        >
                          Export bundle
                        </button>
                        <button
                          type="button"
                          className="small"
                          onClick={() => setOpen({ kind: 'delete', profile: p })}
                          aria-label={`Delete ${p.name}`}
                        >
                          Delete
                        </button>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      {(open?.kind === 'new' || open?.kind === 'edit') && (
        <ProfileEditor
          profile={open.kind === 'edit' ? open.profile : undefined}
          onClose={close}
          onSaved={(p, warnings) => {
            setSaved({ name: p.name, warnings });
            close();
          }}
        />
      )}
      {open?.kind === 'duplicate' && (
        <DuplicateDialog
          profile={open.profile}
          onClose={close}
          onDone={(p, warnings) => {
            setSaved({ name: p.name, warnings });
            close();
          }}
        />
      )}
      {open?.kind === 'delete' && <DeleteDialog profile={open.profile} onClose={close} />}
      {open?.kind === 'export' && <ExportBundleDialog profile={open.profile} onClose={close} />}
      {open?.kind === 'import' && <ImportBundleDialog onClose={close} />}
    </>
  );
}
