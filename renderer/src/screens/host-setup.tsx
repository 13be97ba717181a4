/** Host setup: the libvirt domain XML fragment and the host-side command for a profile, ready to copy. */
import { useState } from 'react';
import { useHostSetup, useProfiles } from '../queries/hooks';
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
  const setup = useHostSetup(profile?.id);

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
          <ProfileSelect profiles={list} value={profile.id} onChange={setSelected} />
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
