// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from './test-utils';
import { createFakeApi } from './fake-api';
import { ApiProvider } from './queries/api-context';
import { App, SCREENS } from './app';
import type { AppInfo, ApprovalView, AuditEvent, DigestPreview } from '../../app/contract/ipc';
import type { VmProfile } from '../../app/profile';

const fw = 'f0'.repeat(32);
const profile: VmProfile = {
  id: 'web-01',
  name: 'Web server',
  scheme: 'amd-sev-es',
  policy: 0x5,
  cpuCounts: [2],
  cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
  vmsaVariants: ['kvm-init2'],
  firmware: { kind: 'artifact', sha256: fw, size: 2 * 1024 * 1024, name: 'OVMF.amdsev.fd' },
  approval: 'manual',
  secrets: [],
};
const info: AppInfo = {
  version: '0.1.0',
  mode: 'browser',
  platform: 'linux',
  firstRunComplete: false,
  dataDir: '/tmp/x',
  secretStore: { kind: 'memory' },
};

function setup() {
  const preview = vi.fn((): Promise<DigestPreview> =>
    Promise.resolve({
      ok: true,
      warnings: [],
      candidates: [
        { launchDigest: 'ab'.repeat(32), inputs: { scheme: 'amd-sev-es', policy: 5, cpuCount: 2 } },
      ],
    }),
  );
  const fake = createFakeApi({
    app: { info: () => Promise.resolve(info), completeFirstRun: () => Promise.resolve() },
    profiles: { list: () => Promise.resolve([profile]) },
    approvals: { list: () => Promise.resolve([] as ApprovalView[]) },
    artifacts: {
      list: () =>
        Promise.resolve([
          {
            sha256: fw,
            size: 2 * 1024 * 1024,
            name: 'OVMF.amdsev.fd',
            kind: 'firmware' as const,
            importedAt: '2025-01-01T00:00:00Z',
          },
        ]),
      inspect: () =>
        Promise.resolve({
          sha256: fw,
          size: 1,
          name: 'OVMF.amdsev.fd',
          kind: 'firmware' as const,
          importedAt: '2025-01-01T00:00:00Z',
          firmware: {
            sevEsResetAddress: { ok: true, reason: 'found', address: 0xffffff00 },
            measuredDirectBoot: { ok: true, reason: 'has a hashes table' },
            secretArea: { ok: true, reason: 'has a secret area' },
          },
        }),
    },
    events: { list: () => Promise.resolve([] as AuditEvent[]) },
    digests: { preview },
    listener: {
      status: () =>
        Promise.resolve({
          state: 'running' as const,
          host: '127.0.0.1',
          port: 8443,
          url: 'http://127.0.0.1:8443',
          tls: false,
          hostTokenRequired: false,
        }),
      tokens: () => Promise.resolve({ ownerToken: 'owner-secret', hostToken: null }),
    },
    tunnel: { status: () => Promise.resolve({ state: 'off' as const }) },
    bundles: { key: () => Promise.resolve(null), trusted: () => Promise.resolve([]) },
    hostSetup: {
      get: () =>
        Promise.resolve({
          vmId: 'web-01',
          domainXml: "<launchSecurity type='sev'/>",
          hostCommand: 'sev-attest-host launch',
          notes: [],
        }),
    },
  });
  return { ...fake, preview };
}

describe('App', () => {
  it('says when the OS keychain is missing, with the exact fix, and the sidebar names the store', async () => {
    const fake = setup();
    fake.api.app.info = () =>
      Promise.resolve({
        ...info,
        mode: 'desktop' as const,
        secretStore: { kind: 'keychain' as const, unavailable: 'keychain write failed: no D-Bus' },
      });
    renderWithQuery(
      <ApiProvider api={fake.api}>
        <App />
      </ApiProvider>,
    );
    const banner = await screen.findByTestId('keychain-banner');
    expect(banner).toHaveTextContent('No OS keychain: secrets cannot be saved');
    expect(banner).toHaveTextContent('no D-Bus');
    expect(banner).toHaveTextContent('npm run app -- --secret-store memory');
    expect(banner).toHaveTextContent('The demo runs anyway');
    expect(screen.getByText(/Secrets: OS keychain \(unavailable\)/)).toBeInTheDocument();
  });

  it('names the memory store in the sidebar and shows no banner', async () => {
    const { api } = setup();
    renderWithQuery(
      <ApiProvider api={api}>
        <App />
      </ApiProvider>,
    );
    expect(await screen.findByText(/Secrets: memory only/)).toBeInTheDocument();
    expect(screen.queryByTestId('keychain-banner')).toBeNull();
  });

  it('marks the root ready once the first data has loaded and opens on the first-run screen', async () => {
    const { api } = setup();
    renderWithQuery(
      <ApiProvider api={api}>
        <App />
      </ApiProvider>,
    );
    expect(document.querySelector('[data-app-state]')).toHaveAttribute('data-app-state', 'loading');
    await waitFor(() =>
      expect(document.querySelector('[data-app-state]')).toHaveAttribute('data-app-state', 'ready'),
    );
    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent(/released only to verified launches/);
    // The demo needs no profile or firmware of the owner's: offered from the start.
    expect(screen.getByRole('button', { name: 'Run the demo' })).toBeEnabled();
  });

  it('renders every screen from the sidebar without errors', async () => {
    const user = userEvent.setup();
    const { api } = setup();
    renderWithQuery(
      <ApiProvider api={api}>
        <App />
      </ApiProvider>,
    );
    await waitFor(() => expect(document.querySelector('[data-app-state="ready"]')).not.toBeNull());
    const nav = screen.getByRole('navigation', { name: 'Screens' });
    for (const s of SCREENS) {
      await user.click(within(nav).getByRole('button', { name: s.label }));
      expect(within(nav).getByRole('button', { name: s.label })).toHaveAttribute('aria-current', 'page');
      expect(screen.queryByRole('alert')).toBeNull();
    }
    await user.click(within(nav).getByRole('button', { name: 'Host setup' }));
    expect(await screen.findByTestId('domain-xml')).toHaveTextContent("<launchSecurity type='sev'/>");
  });

  it('shows a pushed approval on Live requests and counts it in the sidebar', async () => {
    const user = userEvent.setup();
    const { api, emit } = setup();
    renderWithQuery(
      <ApiProvider api={api}>
        <App />
      </ApiProvider>,
    );
    await waitFor(() => expect(document.querySelector('[data-app-state="ready"]')).not.toBeNull());
    await user.click(screen.getByRole('button', { name: 'Live requests' }));
    emit('approvals:changed', [
      {
        id: '6f1c1c2e-0000-4000-8000-000000000009',
        kind: 'sev-launch',
        state: 'pending',
        vmId: 'web-01',
        connection: null,
        clientAddress: '127.0.0.1:40000',
        chipId: null,
        anchoredBy: 'sim',
        policy: 5,
        createdAt: new Date().toISOString(),
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      },
    ]);
    expect(await screen.findByTestId('approval-card')).toHaveTextContent('127.0.0.1:40000');
    expect(screen.getByRole('button', { name: /Live requests\s*1\s*waiting/ })).toBeInTheDocument();
  });

  it('the profile editor previews digests live as the vCPU count changes', async () => {
    const user = userEvent.setup();
    const { api, preview } = setup();
    renderWithQuery(
      <ApiProvider api={api}>
        <App />
      </ApiProvider>,
    );
    await waitFor(() => expect(document.querySelector('[data-app-state="ready"]')).not.toBeNull());
    await user.click(screen.getByRole('button', { name: 'VM profiles' }));
    await user.click(screen.getByRole('button', { name: 'Edit Web server' }));
    const dialog = screen.getByRole('dialog', { name: 'Edit Web server' });
    await waitFor(() => expect(preview).toHaveBeenCalled());
    const counts = within(dialog).getByLabelText(/vCPU counts/);
    await user.clear(counts);
    await user.type(counts, '4');
    await waitFor(() =>
      expect(preview).toHaveBeenLastCalledWith(expect.objectContaining({ cpuCounts: [4], policy: 5 })),
    );
    expect(within(dialog).getByTestId('launch-digest')).toHaveTextContent('ab'.repeat(32));
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).toBeNull();
  });
});
