// @vitest-environment jsdom
/** Host setup notes: code as code, never raw Markdown backticks; a loopback-only listener offers the tunnel. */
import { describe, expect, it } from 'vitest';
import { screen } from '@testing-library/react';
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
