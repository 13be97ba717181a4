// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { act, screen } from '@testing-library/react';
import { keys } from '../queries/hooks';
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

describe('ListenerScreen port', () => {
  it('refuses an empty, zero or out-of-range port with a reason, and shows the port actually bound', async () => {
    const user = userEvent.setup();
    const configure = vi.fn(() => Promise.resolve({ ...status, port: 9001, url: 'http://127.0.0.1:9001' }));
    const { api } = createFakeApi({
      listener: { status: () => Promise.resolve(status), configure },
      tunnel: { status: () => Promise.resolve({ state: 'off' as const }) },
    });
    const { client } = renderWithQuery(
      <ApiProvider api={api}>
        <ListenerScreen />
      </ApiProvider>,
    );
    const port = await screen.findByLabelText('Port');
    expect(screen.getByText('Bound now: port 8470.')).toBeInTheDocument();
    const apply = screen.getByRole('button', { name: 'Apply and restart the listener' });
    await user.clear(port);
    expect(screen.getByText(/Enter a port/)).toBeInTheDocument();
    await user.click(apply);
    await user.type(port, '0');
    expect(screen.getByText(/random port at every start/)).toBeInTheDocument();
    await user.clear(port);
    await user.type(port, '70000');
    expect(screen.getByText(/Ports go up to 65535; 70000 is too big/)).toBeInTheDocument();
    await user.click(apply);
    expect(configure).not.toHaveBeenCalled();
    await user.clear(port);
    await user.type(port, '9001');
    await user.click(apply);
    expect(configure).toHaveBeenCalledWith(expect.objectContaining({ port: 9001 }));
    expect(await screen.findByText('Bound now: port 9001.')).toBeInTheDocument();
    // A restart elsewhere (another window, a stored setting): the field follows the bound port.
    act(() => client.setQueryData(keys.listener, { ...status, port: 9100, url: 'http://127.0.0.1:9100' }));
    expect(await screen.findByText('Bound now: port 9100.')).toBeInTheDocument();
    expect(screen.getByLabelText('Port')).toHaveValue(9100);
  });
});

describe('ListenerScreen tunnel ports', () => {
  it('says why a tunnel port of 70000 is refused', async () => {
    const user = userEvent.setup();
    const { api } = createFakeApi({
      listener: { status: () => Promise.resolve(status) },
      tunnel: { status: () => Promise.resolve({ state: 'off' as const }) },
    });
    renderWithQuery(
      <ApiProvider api={api}>
        <ListenerScreen />
      </ApiProvider>,
    );
    const remote = await screen.findByLabelText('Port on the host');
    await user.clear(remote);
    await user.type(remote, '70000');
    expect(screen.getByText('Ports go up to 65535; 70000 is too big.')).toBeInTheDocument();
    expect(remote).toHaveAttribute('aria-invalid', 'true');
  });
});
