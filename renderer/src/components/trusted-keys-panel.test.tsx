// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { TrustedKeysPanel } from './trusted-keys-panel';
import { ApiError, type TrustedBundleKey } from '../../../app/contract/ipc';

const OWN = 'ed25519:qTicjO3askZZI0WJzEaGD72UI+NGwkMC/h5aRfc7BwA';
const OTHER = 'ed25519:' + 'b'.repeat(43);
const OWN_KEY = 'A'.repeat(43) + '=';

describe('TrustedKeysPanel', () => {
  it("shows this machine's key and the trusted list; adds with a label, refuses a bad key, removes", async () => {
    const user = userEvent.setup();
    const list: TrustedBundleKey[] = [
      { fingerprint: OWN, publicKey: OWN_KEY, label: "this owner's signing key", addedAt: '2026-11-01' },
    ];
    const trust = vi.fn((keyText: string, label?: string) =>
      keyText === 'garbage'
        ? Promise.reject(new ApiError('bad-key', 'not a bundle signing key'))
        : Promise.resolve({ fingerprint: OTHER, label, addedAt: '2026-11-28' }),
    );
    const untrust = vi.fn(() => Promise.resolve(true));
    const { api } = createFakeApi({
      bundles: {
        key: () => Promise.resolve({ fingerprint: OWN, publicKey: OWN_KEY }),
        trusted: () => Promise.resolve(list),
        trust,
        untrust,
      },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <TrustedKeysPanel />
      </ApiProvider>,
    );
    expect(await screen.findByText(OWN_KEY)).toBeInTheDocument();
    const table = await screen.findByRole('table');
    expect(within(table).getByText('this machine')).toBeInTheDocument();
    // Words apart, and a date as people read it (not the raw ISO text).
    expect(within(table).getByText('this machine').closest('td')).toHaveTextContent(
      "this owner's signing key this machine",
    );
    expect(table.querySelector('time[datetime="2026-11-01"]')?.textContent).not.toBe('2026-11-01');

    await user.type(screen.getByLabelText('Public key or fingerprint'), 'garbage');
    await user.click(screen.getByRole('button', { name: 'Trust key' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('not a bundle signing key');

    await user.clear(screen.getByLabelText('Public key or fingerprint'));
    await user.type(screen.getByLabelText('Public key or fingerprint'), OTHER);
    await user.type(screen.getByLabelText('Label'), 'colleague');
    await user.click(screen.getByRole('button', { name: 'Trust key' }));
    expect(trust).toHaveBeenLastCalledWith(OTHER, 'colleague');
    expect(await within(table).findByText(OTHER)).toBeInTheDocument();
    expect(screen.getByLabelText('Public key or fingerprint')).toHaveValue('');

    await user.click(screen.getByRole('button', { name: 'Remove colleague' }));
    expect(untrust).toHaveBeenCalledWith(OTHER);
    await vi.waitFor(() => expect(within(table).queryByText(OTHER)).toBeNull());
  });
});
