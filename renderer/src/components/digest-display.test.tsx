// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import '../test-utils';
import { DigestDisplay, digestInputParts } from './digest-display';
import type { DigestPreview } from '../../../app/contract/ipc';

const fw = 'a1'.repeat(32);
const d1 = '0c'.repeat(32);
const d2 = '7e'.repeat(32);

const preview: DigestPreview = {
  ok: true,
  warnings: ['The firmware has no SEV secret area: QEMU cannot inject a secret.'],
  candidates: [
    {
      launchDigest: d1,
      inputs: {
        scheme: 'amd-sev-es',
        policy: 0x5,
        firmwareSha256: fw,
        cpuCount: 2,
        cpuSignature: { family: 25, model: 1, stepping: 1 },
        vmsaVariant: 'kvm-init2',
      },
    },
    {
      launchDigest: d2,
      inputs: {
        scheme: 'amd-sev-es',
        policy: 0x5,
        firmwareSha256: fw,
        cpuCount: 2,
        cpuSignature: { family: 25, model: 99, stepping: 7 },
        vmsaVariant: 'legacy',
        kernelHashes: { kernel: 'b2'.repeat(32), initrd: 'c3'.repeat(32), cmdline: 'd4'.repeat(32) },
      },
    },
  ],
};

describe('DigestDisplay', () => {
  it('lists every expected digest with the inputs behind it', () => {
    render(<DigestDisplay preview={preview} />);
    const list = screen.getByRole('list', { name: 'Expected launch digests' });
    const items = within(list).getAllByRole('listitem');
    expect(items).toHaveLength(2);
    expect(within(items[0]!).getByText(d1)).toBeInTheDocument();
    expect(items[0]).toHaveTextContent(
      'Scheme SEV-ES · Policy 0x0005 · Firmware a1a1a1a1…a1a1a1a1 · vCPUs 2 · CPU EPYC-Milan (family 25, model 1, stepping 1) · VMSA KVM_SEV_INIT2 VMSA',
    );
    expect(items[1]).toHaveTextContent('CPU family 25, model 99, stepping 7');
    expect(items[1]).toHaveTextContent('VMSA legacy VMSA');
    expect(items[1]).toHaveTextContent(
      'Kernel b2b2b2b2…b2b2b2b2 · Initrd c3c3c3c3…c3c3c3c3 · Cmdline d4d4d4d4…d4d4d4d4',
    );
    expect(screen.getByText('2 accepted')).toBeInTheDocument();
    expect(screen.getByText(/no SEV secret area/)).toHaveClass('warning');
  });

  it('copies one digest, or all of them', async () => {
    const user = userEvent.setup();
    const writeText = vi.spyOn(navigator.clipboard, 'writeText');
    render(<DigestDisplay preview={preview} />);
    await user.click(screen.getByRole('button', { name: 'Copy launch digest 2' }));
    expect(writeText).toHaveBeenLastCalledWith(d2);
    expect(await screen.findByText('launch digest 2 copied')).toHaveAttribute('role', 'status');
    // Labelled by its visible text, not a bare "Copy" under the list.
    expect(screen.getByRole('button', { name: 'Copy all launch digests' })).toHaveTextContent(
      'Copy all launch digests',
    );
    await user.click(screen.getByRole('button', { name: 'Copy all launch digests' }));
    expect(writeText).toHaveBeenLastCalledWith(`${d1}\n${d2}`);
    await expect(navigator.clipboard.readText()).resolves.toBe(`${d1}\n${d2}`);
  });

  it('says why no digest can be computed', () => {
    render(
      <DigestDisplay
        preview={{ ok: false, reason: 'SEV-ES needs a CPU signature for the VMSA.' }}
        updating
      />,
    );
    expect(screen.getByText('SEV-ES needs a CPU signature for the VMSA.')).toBeInTheDocument();
    expect(screen.getByText('Updating…')).toBeInTheDocument();
    expect(screen.queryByRole('list')).toBeNull();
  });

  it('shows a failed preview as a contract error', () => {
    render(
      <DigestDisplay
        preview={undefined}
        error={new Error('sev-attest-error:unknown-artifact:no such firmware')}
      />,
    );
    expect(screen.getByRole('alert')).toHaveTextContent(
      'Could not compute the digests: no such firmware (unknown-artifact)',
    );
  });

  it('names a plain SEV digest without VMSA inputs', () => {
    expect(
      digestInputParts({ scheme: 'amd-sev', policy: 1, firmwareSha256: fw }).map((p) => p.label),
    ).toEqual(['Scheme', 'Policy', 'Firmware']);
  });
});
