// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { SecretsScreen, secretBytesToBase64 } from './secrets';
import { ApiError, type AppInfo } from '../../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID, type VmProfile } from '../../../app/profile';

const profile: VmProfile = {
  id: 'db-01',
  name: 'Database',
  scheme: 'amd-sev',
  policy: 1,
  cpuCounts: [1],
  cpuSignatures: [],
  vmsaVariants: ['kvm-init2'],
  firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] },
  approval: 'manual',
  secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase' }],
};
const info: AppInfo = {
  version: '0',
  mode: 'desktop',
  platform: 'linux',
  firstRunComplete: true,
  dataDir: '/x',
  secretStore: { kind: 'keychain' },
};

function renderSecrets(overrides: Parameters<typeof createFakeApi>[0]) {
  const { api } = createFakeApi({
    app: { info: () => Promise.resolve(info) },
    profiles: { list: () => Promise.resolve([profile]) },
    ...overrides,
  });
  renderWithQuery(
    <ApiProvider api={api}>
      <SecretsScreen />
    </ApiProvider>,
  );
}

describe('SecretsScreen', () => {
  it('masks a secret until revealed, then hides it again', async () => {
    const user = userEvent.setup();
    const reveal = vi.fn(() =>
      Promise.resolve({
        guid: LUKS_PASSPHRASE_GUID,
        kind: 'luks-passphrase' as const,
        text: 'hunter2',
        base64: 'aHVudGVyMg==',
      }),
    );
    renderSecrets({ secrets: { reveal } });
    const row = await screen.findByRole('row', { name: /LUKS passphrase/ });
    expect(within(row).queryByText('hunter2')).toBeNull();
    await user.click(within(row).getByRole('button', { name: 'Reveal Disk passphrase' }));
    expect(reveal).toHaveBeenCalledWith('db-01', LUKS_PASSPHRASE_GUID);
    expect(await within(row).findByText('hunter2')).toBeInTheDocument();
    await user.click(within(row).getByRole('button', { name: 'Hide Disk passphrase' }));
    expect(within(row).queryByText('hunter2')).toBeNull();
  });

  it('says clearly that a locked keychain saved nothing', async () => {
    const user = userEvent.setup();
    const set = vi.fn(() =>
      Promise.reject(new ApiError('secret-store-unavailable', 'the Secret Service collection is locked')),
    );
    renderSecrets({ secrets: { set } });
    await user.type(await screen.findByLabelText('Passphrase'), 'pw');
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(
      'Not saved: the Secret Service collection is locked (secret-store-unavailable)',
    );
    expect(alert).toHaveTextContent(/keychain is locked or unavailable.*nothing was saved/);
    expect(set).toHaveBeenCalledWith('db-01', {
      kind: 'luks-passphrase',
      passphrase: 'pw',
      label: undefined,
    });
  });

  it('checks a raw secret before sending it', async () => {
    const user = userEvent.setup();
    const set = vi.fn(() => Promise.resolve({ ref: { guid: 'x', kind: 'raw' as const }, warnings: [] }));
    renderSecrets({ secrets: { set } });
    await user.click(await screen.findByRole('radio', { name: 'Any GUID with bytes' }));
    await user.type(screen.getByLabelText('GUID'), 'not-a-guid');
    await user.type(screen.getByLabelText('Bytes'), '0a0b');
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    expect(screen.getByRole('alert')).toHaveTextContent(/The GUID must look like/);
    expect(set).not.toHaveBeenCalled();
    await user.clear(screen.getByLabelText('GUID'));
    await user.type(screen.getByLabelText('GUID'), '11111111-2222-3333-4444-555555555555');
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    expect(set).toHaveBeenCalledWith('db-01', {
      kind: 'raw',
      guid: '11111111-2222-3333-4444-555555555555',
      dataBase64: 'Cgs=',
      label: undefined,
    });
    expect(secretBytesToBase64('abc', 'hex')).toBeUndefined();
    expect(secretBytesToBase64('Cgs=', 'base64')).toBe('Cgs=');
  });
});
