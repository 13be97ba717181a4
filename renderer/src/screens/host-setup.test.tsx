// @vitest-environment jsdom
/** Host setup notes: code as code, never raw Markdown backticks; a loopback-only listener offers the tunnel. */
import { describe, expect, it, vi } from 'vitest';
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import type { HostSetupOptions, SnpHostSetupInput } from '../../../app/host-setup';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { HostSetupScreen } from './host-setup';
import { buildHostSetup } from '../../../app/host-setup';
import type { VmProfile } from '../../../app/profile';

const profile: VmProfile = {
  id: 'demo',
  name: 'Demo',
  scheme: 'amd-sev',
  policy: 1,
  cpuCounts: [1],
  cpuSignatures: [],
  vmsaVariants: ['kvm-init2'],
  firmware: { kind: 'artifact', sha256: 'ab'.repeat(32), size: 1, name: 'OVMF.amdsev-trimmed.fd (demo)' },
  approval: 'manual',
  secrets: [],
};

describe('HostSetupScreen', () => {
  it('shows notes without backticks and offers the tunnel for a loopback-only listener', async () => {
    const setup = buildHostSetup({ profile, listenerUrl: 'http://127.0.0.1:8470' });
    const { api } = createFakeApi({
      profiles: { list: () => Promise.resolve([profile]) },
      hostSetup: { get: () => Promise.resolve(setup) },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <HostSetupScreen />
      </ApiProvider>,
    );
    expect(await screen.findByTestId('loopback-warning')).toHaveTextContent(/cannot reach this listener/);
    expect(screen.getByRole('link', { name: 'Set up the tunnel' })).toHaveAttribute('href', '#/listener');
    const notes = screen.getByRole('heading', { name: 'Notes' }).parentElement!;
    expect(notes.textContent).not.toContain('`');
    expect(screen.getAllByText('sha256sum', { selector: 'code' }).length).toBeGreaterThan(0);
    expect(screen.getByTestId('domain-xml').textContent).not.toContain('(demo)');
  });
});

describe('HostSetupScreen for an SEV-SNP profile', () => {
  const snpProfile: VmProfile = {
    ...profile,
    id: 'snp',
    name: 'SNP',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    cpuCounts: [2, 4],
    cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
    firmware: { kind: 'digests', launchDigests: ['1'.repeat(96), '2'.repeat(96)] },
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: [],
      trustedAuthorKeyDigests: [],
      hostData: '5a'.repeat(32),
      vmpl: 0,
      minimumReportVersion: 3,
    },
  };
  const rows = [
    { index: 0, measurement: '1'.repeat(96), cpus: 2 },
    { index: 1, measurement: '2'.repeat(96), cpus: 4 },
  ];

  it('creates the ID key on request, asks for the row, and shows the ID block files with copy buttons', async () => {
    let keyDigest: string | undefined;
    const get = vi.fn((_vmId: string, options?: HostSetupOptions) => {
      const snp: SnpHostSetupInput = { rows };
      if (keyDigest) snp.idKeyDigest = keyDigest;
      if (!keyDigest) snp.idBlockMissing = 'this VM has no ID key yet';
      else if (options?.row === undefined)
        snp.idBlockMissing = 'the profile has 2 measurements: choose the row';
      else {
        snp.idBlock = {
          row: rows[options.row]!,
          idBlockBase64: 'QkxPQ0s=',
          idAuthBase64: 'QVVUSA==',
          idKeyDigest: keyDigest,
          familyId: '0'.repeat(32),
          imageId: options.imageId ?? '0'.repeat(32),
          guestSvn: 0,
        };
      }
      return Promise.resolve(
        buildHostSetup({ profile: snpProfile, listenerUrl: 'https://owner.example:8470', snp }),
      );
    });
    const snpKeys = vi.fn(() => {
      keyDigest = 'ab'.repeat(48);
      return Promise.resolve({
        vmId: 'snp',
        idKeyDigest: keyDigest,
        idKeyCreated: true,
        accounts: { idKey: 'snp/id-key/snp' },
      });
    });
    const { api } = createFakeApi({
      profiles: { list: () => Promise.resolve([snpProfile]) },
      hostSetup: { get, snpKeys },
    });
    const user = userEvent.setup();
    renderWithQuery(
      <ApiProvider api={api}>
        <HostSetupScreen />
      </ApiProvider>,
    );
    expect((await screen.findByTestId('domain-xml')).textContent).toContain(
      "<launchSecurity type='sev-snp'>",
    );
    expect(screen.getByText('This VM has no ID key yet.')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Create ID key' }));
    expect(snpKeys).toHaveBeenCalledWith('snp', {});
    expect(await screen.findByTestId('id-key-digest')).toHaveTextContent('ab'.repeat(48));
    await user.selectOptions(screen.getByLabelText('Measurement to sign'), '1');
    await waitFor(() =>
      expect(screen.getByTestId('domain-xml').textContent).toContain('<idBlock>QkxPQ0s=</idBlock>'),
    );
    expect(get).toHaveBeenLastCalledWith('snp', { row: 1 });
    const files = screen.getByTestId('snp-files');
    expect(files).toHaveTextContent('snp.id-block.b64');
    expect(files).toHaveTextContent('snp.id-auth.b64');
    expect(files).toHaveTextContent('snp.host-data.b64');
    expect(screen.getByRole('button', { name: /Copy snp.id-auth.b64/ })).toBeInTheDocument();
    // A malformed image id is not sent; a valid one is.
    const image = screen.getByLabelText(/Image ID/);
    await user.type(image, 'zz');
    expect(get).toHaveBeenLastCalledWith('snp', { row: 1 });
    await user.clear(image);
    await user.type(image, 'c'.repeat(32));
    await waitFor(() => expect(get).toHaveBeenLastCalledWith('snp', { row: 1, imageId: 'c'.repeat(32) }));
  });
});
