// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { DemoHostPanel } from './demo-host';
import type { DemoRunResult } from '../../../app/contract/ipc';

describe('demo host panel', () => {
  it('runs the SEV-SNP demo guest even before any profile exists, and shows its release', async () => {
    const demoRun = vi.fn((): Promise<DemoRunResult> =>
      Promise.resolve({ outcome: 'released', vmId: 'demo-snp', message: 'LUKS key decrypted (24 bytes)' }),
    );
    const fake = createFakeApi({ demo: { run: demoRun }, profiles: { list: () => Promise.resolve([]) } });
    renderWithQuery(
      <ApiProvider api={fake.api}>
        <DemoHostPanel />
      </ApiProvider>,
    );
    await userEvent.click(await screen.findByRole('button', { name: 'Run the SEV-SNP demo guest' }));
    expect(demoRun).toHaveBeenCalledWith({ snp: true });
    expect(await screen.findByTestId('demo-result')).toHaveTextContent('LUKS key decrypted');
  });
});
