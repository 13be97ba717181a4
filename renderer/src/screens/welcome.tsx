/** The first-run screen: the flow in three steps, and the demo (nothing to set up first). */
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { ScreenId } from '../app';
import { useApi } from '../queries/api-context';
import { keys, useAppInfo } from '../queries/hooks';
import { ScreenHeader } from '../components/screen-header';
import { ErrorMessage } from '../components/error-message';
import { FirstRunDemo } from './first-run-demo';

/** The welcome screen. */
export function WelcomeScreen({ onNavigate }: { onNavigate: (id: ScreenId) => void }) {
  const api = useApi();
  const client = useQueryClient();
  const info = useAppInfo();
  const done = useMutation({
    mutationFn: () => api.app.completeFirstRun(),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: keys.appInfo });
      onNavigate('artifacts');
    },
  });
  return (
    <>
      <ScreenHeader title="Your VMs' secrets, released only to verified launches">
        SEV Attest is the guest owner&apos;s side of AMD SEV and SEV-ES: a host launching your VM proves, with
        AMD-signed keys and a launch measurement, that it runs the firmware and kernel you expect before it
        gets the disk passphrase.
      </ScreenHeader>
      <ol className="steps">
        <li>
          <h2>Describe the VM</h2>
          <p>
            Import the firmware (and kernel, initrd) the host will boot and create a profile: scheme, policy,
            vCPUs. SEV Attest computes the launch digests to expect.
          </p>
          <button type="button" onClick={() => onNavigate('artifacts')}>
            Import firmware
          </button>
        </li>
        <li>
          <h2>Store its secret</h2>
          <p>
            Add the disk passphrase. It stays in your OS keychain and leaves only inside the encrypted launch
            secret.
          </p>
          <button type="button" onClick={() => onNavigate('secrets')}>
            Add a secret
          </button>
        </li>
        <li>
          <h2>Approve the launch</h2>
          <p>
            The host calls this listener. You see who asks and approve; the secret is released only if the
            measurement matches.
          </p>
          <button type="button" onClick={() => onNavigate('host-setup')}>
            Set up the host
          </button>
        </li>
      </ol>
      <FirstRunDemo />
      <div className="actions">
        <button type="button" onClick={() => onNavigate('requests')}>
          Open live requests
        </button>
        {info.data && !info.data.firstRunComplete && (
          <button type="button" className="primary" onClick={() => done.mutate()} disabled={done.isPending}>
            Got it, start
          </button>
        )}
      </div>
      <ErrorMessage error={done.error} />
    </>
  );
}
