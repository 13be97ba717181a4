// @vitest-environment jsdom
import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ProfilesScreen } from './profiles';
import type { VmProfile } from '../../../app/profile';

const profile: VmProfile = {
  id: 'web-01',
  name: 'Web',
  scheme: 'amd-sev',
  policy: 1,
  cpuCounts: [1],
  cpuSignatures: [],
  vmsaVariants: ['kvm-init2'],
  firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] },
  approval: 'manual',
  secrets: [],
};

describe('bundle dialogs on the profiles screen', () => {
  it('Export bundle opens on a profile row and Import bundle on the list', async () => {
    const user = userEvent.setup();
    const { api } = createFakeApi({
      profiles: { list: () => Promise.resolve([profile]) },
      bundles: {
        key: () => Promise.resolve(null),
        preview: () => Promise.reject(new Error('web-01 has precomputed launch digests (imported)')),
      },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <ProfilesScreen />
      </ApiProvider>,
    );
    await user.click(await screen.findByRole('button', { name: 'Export bundle of Web' }));
    expect(screen.getByRole('dialog', { name: 'Export bundle: Web' })).toBeInTheDocument();
    expect(await screen.findByText(/precomputed launch digests/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Close Export bundle: Web' }));
    await user.click(screen.getByRole('button', { name: 'Import bundle' }));
    expect(screen.getByRole('dialog', { name: 'Import bundle' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Choose a bundle file…' })).toBeInTheDocument();
  });
});
