/** Host setup: the libvirt domain XML fragment and the host-side command for a profile, ready to copy. */
import { useState } from 'react';
import type { HostSetup, HostSetupOptions, SnpMeasurementRow } from '../../../app/contract/ipc';
import type { VmProfile } from '../../../app/profile';
import { useHostSetup, useProfiles, useSnpKeys } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ErrorMessage } from '../components/error-message';
import { CopyButton } from '../components/copy-button';
import { ProfileSelect } from '../components/profile-select';

/** A note with `code` spans shown as code (never as raw backticks). */
export function NoteText({ text }: { text: string }) {
  const parts = text.split('`');
  return (
    <>
      {parts.map((part, i) =>
        i % 2 === 1 && i < parts.length - 1 ? (
          <code key={i} className="mono">
            {part}
          </code>
        ) : (
          <span key={i}>{i % 2 === 1 ? `\`${part}` : part}</span>
        ),
      )}
    </>
  );
}

/** The Host setup screen. */
export function HostSetupScreen() {
  const profiles = useProfiles();
  const list = profiles.data ?? [];
  const [selected, setSelected] = useState('');
  const profile = list.find((p) => p.id === selected) ?? list[0];
  const [snpOptions, setSnpOptions] = useState<HostSetupOptions>({});
  const isSnp = profile?.scheme === 'amd-sev-snp';
  const setup = useHostSetup(profile?.id, isSnp ? snpOptions : undefined);

  return (
    <>
      <ScreenHeader title="Host setup">
        What to put on the KVM host so it launches the VM the way the profile expects and asks this service
        for the secret.
      </ScreenHeader>
      <ErrorMessage error={profiles.error} />
      {profiles.isSuccess && list.length === 0 && <p className="muted">Create a VM profile first.</p>}
      {profile && (
        <div className="row">
          <ProfileSelect
            profiles={list}
            value={profile.id}
            onChange={(id) => {
              setSelected(id);
              setSnpOptions({});
            }}
          />
        </div>
      )}
      <ErrorMessage error={setup.error} />
      {setup.data?.notes.some((n) => n.startsWith('The listener answers only on this machine')) && (
        <p className="warning row" data-testid="loopback-warning">
          <span>
            The host cannot reach this listener yet: it answers on loopback only. An SSH reverse tunnel lets
            the host reach it without opening a port here.
          </span>
          <a className="button small" href="#/listener">
            Set up the tunnel
          </a>
        </p>
      )}
      {isSnp && profile && (
        <SnpIdBlockPanel
          profile={profile}
          setup={setup.data}
          options={snpOptions}
          onOptions={setSnpOptions}
        />
      )}
      {setup.data && (
        <>
          <section className="panel" aria-labelledby="xml-heading">
            <div className="card-header">
              <h2 id="xml-heading">libvirt domain XML</h2>
              <CopyButton value={setup.data.domainXml} what="domain XML" />
            </div>
            <p className="hint">
              Merge into the domain with virsh edit (inside &lt;domain&gt;; the &lt;os&gt; part replaces
              yours).
            </p>
            <pre className="code" data-testid="domain-xml" tabIndex={0}>
              {setup.data.domainXml}
            </pre>
          </section>
          <section className="panel" aria-labelledby="cmd-heading">
            <div className="card-header">
              <h2 id="cmd-heading">Host-side command</h2>
              <CopyButton value={setup.data.hostCommand} what="host command" />
            </div>
            <pre className="code" data-testid="host-command" tabIndex={0}>
              {setup.data.hostCommand}
            </pre>
          </section>
          {setup.data.notes.length > 0 && (
            <section className="panel" aria-labelledby="notes-heading">
              <h2 id="notes-heading">Notes</h2>
              <ul>
                {setup.data.notes.map((n) => (
                  <li key={n}>
                    <NoteText text={n} />
                  </li>
                ))}
              </ul>
            </section>
          )}
        </>
      )}
    </>
  );
}

function rowLabel(r: SnpMeasurementRow): string {
  const parts = [`Row ${r.index}`];
  if (r.cpus !== undefined) parts.push(`${r.cpus} vCPU${r.cpus === 1 ? '' : 's'}`);
  if (r.cpuSignature) {
    const s = r.cpuSignature;
    parts.push(`family ${s.family} model ${s.model} stepping ${s.stepping}`);
  }
  parts.push(`${r.measurement.slice(0, 16)}…`);
  return parts.join(' · ');
}

const HEX16 = /^[0-9a-f]{32}$/;

/**
 * SEV-SNP: the VM's ID key, the measurement row the ID block signs, its family/image id, SVN and the
 * author key, and the files (ID block, ID auth, host data) with copy buttons.
 */
function SnpIdBlockPanel({
  profile,
  setup,
  options,
  onOptions,
}: {
  profile: VmProfile;
  setup: HostSetup | undefined;
  options: HostSetupOptions;
  onOptions: (o: HostSetupOptions) => void;
}) {
  const keys = useSnpKeys();
  const [family, setFamily] = useState(options.familyId ?? '');
  const [image, setImage] = useState(options.imageId ?? '');
  const snp = setup?.snp;
  const rows = snp?.rows ?? [];
  const set = (patch: Partial<HostSetupOptions>) => {
    const next: HostSetupOptions = { ...options, ...patch };
    for (const k of Object.keys(next) as (keyof HostSetupOptions)[]) {
      if (next[k] === undefined) delete next[k];
    }
    onOptions(next);
  };
  const hexField = (value: string, apply: (v: string | undefined) => void) => {
    const v = value.trim().toLowerCase();
    if (v === '') apply(undefined);
    else if (HEX16.test(v)) apply(v);
  };
  return (
    <section className="panel" aria-labelledby="snp-heading" data-testid="snp-id-block">
      <div className="card-header">
        <h2 id="snp-heading">SEV-SNP ID block</h2>
      </div>
      <p className="hint">
        The ID block signs one expected measurement and the policy with this VM&apos;s own ID key (kept in the
        OS keychain); the firmware then refuses to launch anything else, and the report names the key.
      </p>
      {snp?.idKeyDigest ? (
        <p>
          ID key digest{' '}
          <code className="mono" data-testid="id-key-digest">
            {snp.idKeyDigest}
          </code>{' '}
          <CopyButton value={snp.idKeyDigest} what="ID key digest" />
        </p>
      ) : (
        snp && (
          <p className="row">
            <span>This VM has no ID key yet.</span>
            <button
              type="button"
              disabled={keys.isPending}
              onClick={() => keys.mutate({ vmId: profile.id, authorKey: options.authorKey === true })}
            >
              Create ID key
            </button>
          </p>
        )
      )}
      <ErrorMessage error={keys.error} />
      {rows.length > 1 && (
        <label>
          Measurement to sign
          <select
            value={options.row ?? ''}
            onChange={(e) => set({ row: e.target.value === '' ? undefined : Number(e.target.value) })}
          >
            <option value="">Choose the row (vCPU count)…</option>
            {rows.map((r) => (
              <option key={r.index} value={r.index}>
                {rowLabel(r)}
              </option>
            ))}
          </select>
        </label>
      )}
      <div className="row">
        <label>
          Family ID (32 hex digits, optional)
          <input
            className="mono"
            value={family}
            spellCheck={false}
            onChange={(e) => {
              setFamily(e.target.value);
              hexField(e.target.value, (v) => set({ familyId: v }));
            }}
          />
        </label>
        <label>
          Image ID (32 hex digits, optional)
          <input
            className="mono"
            value={image}
            spellCheck={false}
            onChange={(e) => {
              setImage(e.target.value);
              hexField(e.target.value, (v) => set({ imageId: v }));
            }}
          />
        </label>
        <label>
          Guest SVN
          <input
            type="number"
            min={0}
            value={options.guestSvn ?? 0}
            onChange={(e) => set({ guestSvn: Math.max(0, Math.floor(Number(e.target.value) || 0)) })}
          />
        </label>
      </div>
      <label>
        <input
          type="checkbox"
          checked={options.authorKey === true}
          onChange={(e) => set({ authorKey: e.target.checked || undefined })}
        />{' '}
        Also sign the ID key with my author key (libvirt authorKey=&apos;yes&apos;)
      </label>
      {options.authorKey && snp && !snp.authorKeyDigest && snp.idKeyDigest && (
        <button
          type="button"
          className="small"
          disabled={keys.isPending}
          onClick={() => keys.mutate({ vmId: profile.id, authorKey: true })}
        >
          Create author key
        </button>
      )}
      {snp?.idBlockMissing && <p className="muted">No ID block: {snp.idBlockMissing}.</p>}
      {snp && snp.files.length > 0 && (
        <ul className="plain" data-testid="snp-files">
          {snp.files.map((f) => (
            <li key={f.name}>
              <div className="card-header">
                <code className="mono">{f.name}</code>
                <CopyButton value={f.text.trim()} what={f.name} />
              </div>
              <span className="hint">{f.description}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
