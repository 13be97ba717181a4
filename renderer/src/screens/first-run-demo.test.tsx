// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { useLiveUpdates } from '../queries/hooks';
import { DEMO_VM_ID, FirstRunDemo } from './first-run-demo';
import { ApiError, type ApprovalView, type DemoRunResult } from '../../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID } from '../../../app/profile';

function request(id: string, state: ApprovalView['state']): ApprovalView {
  return {
    id,
    kind: 'sev-launch',
    state,
    vmId: DEMO_VM_ID,
    connection: null,
    clientAddress: '127.0.0.1',
    chipId: null,
    anchoredBy: 'extra:demo: simulated platform (not AMD)',
    policy: 5,
    createdAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 120_000).toISOString(),
  };
}

/** The screen as the app mounts it: pushed events go into the query cache. */
function Live() {
  useLiveUpdates();
  return <FirstRunDemo />;
}

function setup(run: () => Promise<DemoRunResult>, old: ApprovalView[] = []) {
  const decide = vi.fn(() => Promise.resolve());
  const demoRun = vi.fn(run);
  let current = old;
  const fake = createFakeApi({
    approvals: { list: () => Promise.resolve(current), decide },
    demo: { run: demoRun },
    profiles: { list: () => Promise.resolve([]) },
    artifacts: { list: () => Promise.resolve([]) },
  });
  renderWithQuery(
    <ApiProvider api={fake.api}>
      <Live />
    </ApiProvider>,
  );
  const emit: typeof fake.emit = (channel, payload) => {
    if (channel === 'approvals:changed') current = payload as ApprovalView[];
    fake.emit(channel, payload);
  };
  return { ...fake, emit, decide, demoRun };
}

describe('first-run demo', () => {
  it('offers the demo with nothing set up, shows the request to approve, then the release', async () => {
    const user = userEvent.setup();
    let finish: (r: DemoRunResult) => void = () => {};
    // An old demo request (an earlier run) must not be mistaken for this run's.
    const { emit, decide, demoRun } = setup(
      () => new Promise((resolve) => (finish = resolve)),
      [request('old', 'approved')],
    );
    await user.click(await screen.findByRole('button', { name: 'Run the demo' }));
    expect(demoRun).toHaveBeenCalledWith({});
    const progress = screen.getByRole('list', { name: 'Demo progress' });
    expect(within(progress).getAllByRole('listitem')[0]).toHaveAttribute('data-state', 'active');
    expect(screen.queryByTestId('approval-card')).toBeNull();

    emit('approvals:changed', [request('old', 'approved'), request('a1', 'pending')]);
    const card = await screen.findByTestId('approval-card');
    expect(card).toHaveTextContent('Waiting for you');
    expect(within(progress).getAllByRole('listitem')[1]).toHaveAttribute('aria-current', 'step');
    await user.click(within(card).getByRole('button', { name: /^Approve/ }));
    expect(decide).toHaveBeenCalledWith('a1', 'approve');

    emit('approvals:changed', [request('old', 'approved'), request('a1', 'approved')]);
    finish({
      outcome: 'released',
      vmId: DEMO_VM_ID,
      connection: 'c1',
      releasedGuids: [LUKS_PASSPHRASE_GUID],
      message: 'the simulated guest decrypted 1 secret(s) and runs',
    });
    const result = await screen.findByTestId('first-run-demo-result');
    expect(result).toHaveTextContent('decrypted the demo passphrase');
    expect(result).toHaveTextContent('demo profile is now under VM profiles');
    await waitFor(() =>
      expect(
        within(progress)
          .getAllByRole('listitem')
          .map((li) => li.getAttribute('data-state')),
      ).toEqual(['done', 'done', 'done']),
    );
    expect(screen.queryByTestId('approval-card')).toBeNull();
    expect(screen.getByRole('button', { name: 'Run the demo again' })).toBeEnabled();
  });

  it('a denial and a failure to start both explain themselves', async () => {
    const user = userEvent.setup();
    const { demoRun } = setup(() =>
      Promise.resolve({
        outcome: 'refused',
        code: 'denied',
        vmId: DEMO_VM_ID,
        message: 'the listener refused',
      }),
    );
    await user.click(await screen.findByRole('button', { name: 'Run the demo' }));
    expect(await screen.findByTestId('first-run-demo-result')).toHaveTextContent('You denied the request');

    demoRun.mockImplementation(() =>
      Promise.reject(
        new ApiError('demo-not-possible', 'the demo firmware is missing from this installation'),
      ),
    );
    await user.click(screen.getByRole('button', { name: 'Run the demo again' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'The demo could not run: the demo firmware is missing from this installation (demo-not-possible)',
    );
  });
});
