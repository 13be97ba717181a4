// @vitest-environment jsdom
/**
 * The profile editor never saves what the user cannot see: an invalid policy hex or API version blocks
 * Save (it used to store the last valid value); problems are plain words next to each field (not
 * `cpuCounts.1: Invalid input...` at the bottom); an imported profile keeps all its CPU signatures.
 */
import { describe, expect, it, vi } from 'vitest';
import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ProfileEditor } from './profile-editor';
import type { VmProfile } from '../../../app/profile';

const profile: VmProfile = {
  id: 'web-01',
  name: 'Web',
  scheme: 'amd-sev-es',
  policy: 0x5,
  cpuCounts: [2],
  cpuSignatures: [
    { family: 25, model: 1, stepping: 1 },
    { family: 23, model: 49, stepping: 0 },
  ],
  vmsaVariants: ['kvm-init2'],
  firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] },
  approval: 'manual',
  secrets: [],
};

function renderEditor(p?: VmProfile) {
  const save = vi.fn((input: unknown) => Promise.resolve({ profile: input as VmProfile, warnings: [] }));
  const { api } = createFakeApi({
    artifacts: { list: () => Promise.resolve([]) },
    digests: { preview: () => Promise.resolve({ ok: false as const, reason: 'x' }) },
    profiles: { save },
  });
  renderWithQuery(
    <ApiProvider api={api}>
      <ProfileEditor profile={p} onClose={() => {}} onSaved={() => {}} />
    </ApiProvider>,
  );
  return { save };
}

describe('ProfileEditor', () => {
  it('blocks Save while the policy hex shows its error', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor(profile);
    const hex = screen.getByLabelText('Policy (hex)');
    await user.clear(hex);
    await user.type(hex, '0x45');
    expect(hex).toHaveAttribute('aria-invalid', 'true');
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(screen.getByText(/cannot be saved yet/).closest('[role=alert]')).toHaveTextContent(
      /Guest policy: Policy \(hex\):/,
    );
  });

  it('says why an out-of-range API major is refused instead of snapping back', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor(profile);
    const major = screen.getByLabelText('Minimum firmware API major');
    await user.clear(major);
    await user.type(major, '300');
    expect(major).toHaveValue(300);
    expect(screen.getByText(/at most 255 .*300 is too big/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
  });

  it('puts plain-words problems next to the field (vCPU 99999, not a schema path)', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor(profile);
    const counts = screen.getByLabelText('vCPU counts');
    await user.clear(counts);
    await user.type(counts, '2, 99999');
    expect(counts).toHaveAttribute('aria-invalid', 'true');
    const msg = document.getElementById(counts.getAttribute('aria-errormessage')!);
    expect(msg).toHaveTextContent('Each vCPU count is a whole number from 1 to 512');
    expect(msg).toHaveTextContent('99999 is out of range');
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(document.body.textContent).not.toMatch(/cpuCounts\.\d|Invalid input/);
  });

  it('keeps and lists every CPU signature of an imported profile', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor(profile);
    const extra = screen.getByTestId('extra-signatures');
    expect(within(extra).getByText(/family 23, model 49, stepping 0/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).toHaveBeenCalledTimes(1);
    expect((save.mock.calls[0]![0] as VmProfile).cpuSignatures).toEqual(profile.cpuSignatures);
  });

  it('a new profile names each missing field after Save is tried', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor();
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(screen.getByLabelText('Id')).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getAllByText(/Enter an id/).length).toBeGreaterThan(0);
    expect(screen.getAllByText(/Choose an imported firmware image/).length).toBeGreaterThan(0);
  });
});
