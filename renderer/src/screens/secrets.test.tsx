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

describe('SecretsScreen safety', () => {
  it('asks before deleting a secret, and offers Undo afterwards', async () => {
    const user = userEvent.setup();
    const del = vi.fn(() => Promise.resolve());
    const set = vi.fn(() =>
      Promise.resolve({
        ref: { guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase' as const },
        warnings: [],
      }),
    );
    const reveal = vi.fn(() =>
      Promise.resolve({
        guid: LUKS_PASSPHRASE_GUID,
        kind: 'luks-passphrase' as const,
        text: 'hunter2',
        base64: 'aHVudGVyMg==',
      }),
    );
    renderSecrets({ secrets: { delete: del, set, reveal } });
    const row = await screen.findByRole('row', { name: /LUKS passphrase/ });
    await user.click(within(row).getByRole('button', { name: 'Delete Disk passphrase' }));
    expect(del).not.toHaveBeenCalled();
    const dialog = screen.getByRole('dialog', { name: 'Delete Disk passphrase?' });
    expect(dialog).toHaveTextContent(/cannot unlock its disk/);
    await user.click(within(dialog).getByRole('button', { name: 'Keep it' }));
    expect(del).not.toHaveBeenCalled();
    await user.click(within(row).getByRole('button', { name: 'Delete Disk passphrase' }));
    await user.click(screen.getByRole('button', { name: 'Delete secret' }));
    expect(del).toHaveBeenCalledWith('db-01', LUKS_PASSPHRASE_GUID);
    await user.click(await screen.findByRole('button', { name: 'Undo' }));
    expect(set).toHaveBeenCalledWith('db-01', { kind: 'luks-passphrase', passphrase: 'hunter2' });
  });

  it('refuses raw bytes under the LUKS GUID (they would replace the disk passphrase)', async () => {
    const user = userEvent.setup();
    const set = vi.fn();
    renderSecrets({ secrets: { set } });
    await user.click(await screen.findByRole('radio', { name: 'Any GUID with bytes' }));
    await user.type(screen.getByLabelText('GUID'), LUKS_PASSPHRASE_GUID);
    await user.type(screen.getByLabelText('Bytes'), '0a0b');
    expect(screen.getByText(/replaces the value the profile has under this GUID/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    expect(screen.getByRole('alert')).toHaveTextContent(/disk \(LUKS\) passphrase/);
    expect(set).not.toHaveBeenCalled();
  });

  it('hides a revealed value once a new one is saved, and shows raw bytes as hex', async () => {
    const user = userEvent.setup();
    const raw = { guid: '11111111-2222-3333-4444-555555555555', kind: 'raw' as const, label: 'key' };
    let value = 'Cgs=';
    const reveal = vi.fn(() => Promise.resolve({ guid: raw.guid, kind: 'raw' as const, base64: value }));
    const set = vi.fn(() => {
      value = '/w==';
      return Promise.resolve({ ref: raw, warnings: [] });
    });
    const { api } = createFakeApi({
      app: { info: () => Promise.resolve(info) },
      profiles: { list: () => Promise.resolve([{ ...profile, secrets: [raw] }]) },
      secrets: { reveal, set },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <SecretsScreen />
      </ApiProvider>,
    );
    await user.click(await screen.findByRole('button', { name: 'Reveal key' }));
    expect(await screen.findByTestId('secret-value')).toHaveTextContent('hex 0a0b');
    await user.click(screen.getByRole('radio', { name: 'Any GUID with bytes' }));
    await user.type(screen.getByLabelText('GUID'), raw.guid);
    await user.type(screen.getByLabelText('Bytes'), 'ff');
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    await screen.findByText('Saved in the keychain.');
    expect(screen.queryByTestId('secret-value')).toBeNull();
    await user.click(screen.getByRole('button', { name: 'Reveal key' }));
    expect(await screen.findByTestId('secret-value')).toHaveTextContent('hex ff');
  });
});

describe('SecretsScreen for an SEV-SNP profile', () => {
  const snp: VmProfile = {
    ...profile,
    id: 'snp-01',
    name: 'SNP web',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    firmware: { kind: 'digests', launchDigests: ['c4'.repeat(48)] },
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: [],
      trustedAuthorKeyDigests: [],
      vmpl: 0,
      minimumReportVersion: 3,
    },
    secrets: [
      { guid: '0a0b0c0d-0000-4000-8000-000000000001', kind: 'raw', resource: 'default/secret/snp-01' },
    ],
  };

  it('lists resource paths and saves a passphrase under default/luks/<vm-id> unless another is typed', async () => {
    const user = userEvent.setup();
    const set = vi.fn((_vm: string, input: { resource?: string }) =>
      Promise.resolve({
        ref: { guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase' as const, resource: input.resource },
        warnings: [],
      }),
    );
    renderSecrets({ profiles: { list: () => Promise.resolve([snp]) }, secrets: { set } });
    expect(await screen.findByTestId('secret-resource')).toHaveTextContent('default/secret/snp-01');
    const path = screen.getByLabelText('Resource path');
    expect(path).toHaveAttribute('placeholder', 'default/luks/snp-01');
    await user.type(screen.getByLabelText('Passphrase'), 'disk key');
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    expect(set).toHaveBeenCalledWith('snp-01', {
      kind: 'luks-passphrase',
      passphrase: 'disk key',
      label: undefined,
      resource: 'default/luks/snp-01',
    });
  });

  it('refuses a malformed path and one another secret has, in plain words, without saving', async () => {
    const user = userEvent.setup();
    const set = vi.fn();
    renderSecrets({ profiles: { list: () => Promise.resolve([snp]) }, secrets: { set } });
    const path = await screen.findByLabelText('Resource path');
    await user.type(path, 'luks/../key');
    expect(screen.getByText(/A resource path is repository\/type\/tag/)).toBeInTheDocument();
    await user.type(screen.getByLabelText('Passphrase'), 'x');
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    expect(set).not.toHaveBeenCalled();
    await user.clear(path);
    await user.type(path, 'default/secret/snp-01');
    expect(
      screen.getByText(/Another secret of SNP web has the path default\/secret\/snp-01/),
    ).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save to keychain' }));
    expect(set).not.toHaveBeenCalled();
  });
});
