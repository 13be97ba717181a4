/**
 * The simulated host: launches a profile against this listener with the core's simulated SEV platform,
 * so the whole approve-and-release cycle can be seen without hardware. A vCPU count other than the
 * profile's shows what a mismatch looks like.
 */
import { useId, useState } from 'react';
import { useMutation } from '@tanstack/react-query';
import type { DemoRunOptions } from '../../../app/contract/ipc';
import { useApi } from '../queries/api-context';
import { useProfiles } from '../queries/hooks';
import { ErrorMessage } from '../components/error-message';
import { ProfileSelect } from '../components/profile-select';
import { DemoResult } from '../components/demo-result';

/** The demo host panel (Live requests and the first-run screen). */
export function DemoHostPanel({ compact }: { compact?: boolean }) {
  const api = useApi();
  const id = useId();
  // An SEV-SNP profile is run by the simulated SNP guest (demo:run; it attests itself).
  const profiles = useProfiles().data ?? [];
  const [selected, setSelected] = useState('');
  const [cpuCount, setCpuCount] = useState('');
  const profile = profiles.find((p) => p.id === selected) ?? profiles[0];
  const run = useMutation({ mutationFn: (o: DemoRunOptions) => api.demo.run(o) });
  const count = cpuCount.trim() === '' ? undefined : Number(cpuCount);
  const countValid = count === undefined || (Number.isInteger(count) && count >= 1 && count <= 512);

  return (
    <section className="panel" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Demo host</h2>
      {!compact && (
        <p className="hint">
          A simulated host (software SEV firmware) launches the chosen profile against this listener: the
          request appears above, and after you approve it the host validates its measurement and decrypts the
          secret.
        </p>
      )}
      {profiles.length === 0 ? (
        <p className="muted">Create a VM profile first: the demo host launches one of yours.</p>
      ) : (
        <>
          <div className="row">
            <ProfileSelect
              profiles={profiles}
              value={profile?.id ?? ''}
              onChange={setSelected}
              label="Profile to launch"
            />
            <label className="narrow">
              vCPU count override
              <input
                type="number"
                min={1}
                max={512}
                value={cpuCount}
                placeholder={
                  profile?.scheme === 'amd-sev-es'
                    ? `profile: ${profile.cpuCounts[0]}`
                    : profile?.scheme === 'amd-sev-snp'
                      ? 'n/a for SEV-SNP'
                      : 'n/a for SEV'
                }
                onChange={(e) => setCpuCount(e.target.value)}
                aria-describedby={`${id}-cpu-hint`}
                aria-invalid={!countValid}
              />
            </label>
          </div>
          <p id={`${id}-cpu-hint`} className="hint">
            Leave empty to launch as the profile says; another count shows the mismatch explanation.
          </p>
          <div className="actions">
            <button
              type="button"
              className="primary"
              disabled={!profile || !countValid || run.isPending}
              onClick={() => profile && run.mutate({ vmId: profile.id, cpuCount: count })}
            >
              {run.isPending ? 'Demo host running…' : 'Run the demo host'}
            </button>
            {run.isPending && (
              <span className="muted">Waiting for the launch to be approved and validated…</span>
            )}
          </div>
        </>
      )}
      <div className="actions">
        <button
          type="button"
          disabled={run.isPending}
          onClick={() => run.mutate({ snp: true })}
          aria-describedby={`${id}-snp-hint`}
        >
          Run the SEV-SNP demo guest
        </button>
      </div>
      <p id={`${id}-snp-hint`} className="hint">
        A simulated SEV-SNP guest (software firmware, its own test chip) attests itself to the listener and
        fetches its disk key for the profile demo-snp, created on first use; approve its request above.
      </p>
      {run.data && (
        <DemoResult
          result={run.data}
          testId="demo-result"
          releasedText={`The demo host got its secret. ${run.data.message}`}
        >
          {run.data.releasedGuids && run.data.releasedGuids.length > 0 && (
            <p>
              Decrypted secret GUIDs: <span className="mono">{run.data.releasedGuids.join(', ')}</span>
            </p>
          )}
        </DemoResult>
      )}
      <ErrorMessage error={run.error} prefix="The demo host could not run" />
    </section>
  );
}
