// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ListenerScreen } from './listener';
import type { ListenerStatus } from '../../../app/contract/ipc';

const status: ListenerStatus = {
  state: 'running',
  host: '127.0.0.1',
  port: 8470,
  url: 'http://127.0.0.1:8470',
  tls: false,
  hostTokenRequired: false,
};

describe('ListenerScreen', () => {
  it('binding beyond loopback needs an explicit confirmation, sent as confirmNonLoopback', async () => {
    const user = userEvent.setup();
    const configure = vi.fn(() => Promise.resolve({ ...status, host: '0.0.0.0' }));
    const { api } = createFakeApi({
      listener: { status: () => Promise.resolve(status), configure },
      tunnel: { status: () => Promise.resolve({ state: 'off' as const }) },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <ListenerScreen />
      </ApiProvider>,
    );
    const host = await screen.findByLabelText('Bind address');
    await user.clear(host);
    await user.type(host, '0.0.0.0');
    expect(screen.getByText(/exposes the listener beyond this machine/)).toBeInTheDocument();
    const apply = screen.getByRole('button', { name: 'Apply and restart the listener' });
    expect(apply).toBeDisabled();
    await user.click(screen.getByLabelText(/other machines can reach the listener on 0\.0\.0\.0/));
    await user.click(apply);
    expect(configure).toHaveBeenCalledWith({
      host: '0.0.0.0',
      port: 8470,
      tls: false,
      hostToken: 'keep',
      confirmNonLoopback: true,
    });
  });

  it('recommends a host token while a VM asks for manual approval, and says when the audit stream is full', async () => {
    const { api } = createFakeApi({
      listener: {
        status: () => Promise.resolve({ ...status, hostTokenRecommended: true, auditFull: true }),
        configure: vi.fn(),
      },
      tunnel: { status: () => Promise.resolve({ state: 'off' as const }) },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <ListenerScreen />
      </ApiProvider>,
    );
    expect(
      await screen.findByText(/A VM asks for manual approval and no host token is set/),
    ).toBeInTheDocument();
    expect(screen.getByText(/The retained audit stream reached its disk budget/)).toBeInTheDocument();
  });
});
