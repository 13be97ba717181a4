// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ImportBundleDialog } from './import-bundle-dialog';
import type { BundleSummary, BundleVerification } from '../../../app/contract/ipc';
import type { VmProfile } from '../../../app/profile';

const FINGERPRINT = 'ed25519:qTicjO3askZZI0WJzEaGD72UI+NGwkMC/h5aRfc7BwA';
const PUBLIC_KEY = 'A'.repeat(43) + '=';
const TEXT = '{"format":"sev-attest-bundle","version":1}';

const summary: BundleSummary = {
  vmId: 'db',
  vmName: 'Database',
  scheme: 'amd-sev-es',
  policy: 5,
  rows: 16,
  firmwareSha256: 'aa'.repeat(32),
  createdAt: '2026-11-28T15:00:00.000Z',
  generator: 'sev-attest 0.1.0',
  statedSigner: FINGERPRINT,
};

const imported: VmProfile = {
  id: 'db-copy',
  name: 'Database',
  scheme: 'amd-sev-es',
  policy: 5,
  cpuCounts: [1, 2],
  cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
  vmsaVariants: ['legacy', 'kvm-init2'],
  firmware: { kind: 'digests', launchDigests: ['ab'.repeat(32)] },
  approval: 'auto',
  secrets: [],
};

function renderDialog(bundles: NonNullable<Parameters<typeof createFakeApi>[0]>['bundles']) {
  const { api } = createFakeApi({ bundles });
  const onImported = vi.fn();
  renderWithQuery(
    <ApiProvider api={api}>
      <ImportBundleDialog onClose={() => {}} onImported={onImported} />
    </ApiProvider>,
  );
  return { onImported };
}

async function chooseFile() {
  const user = userEvent.setup();
  const file = new File([TEXT], 'db.bundle.json', { type: 'application/json' });
  await user.upload(screen.getByLabelText('Bundle file'), file);
  return user;
}

describe('ImportBundleDialog', () => {
  it('a modified bundle is refused with its reason and cannot be imported', async () => {
    const verify = vi.fn((): Promise<BundleVerification> =>
      Promise.resolve({
        ok: false,
        code: 'bundle-signature-invalid',
        message: 'the bundle was modified after it was signed: its signature does not verify; refusing it',
        summary,
      }),
    );
    const importFn = vi.fn();
    renderDialog({ verify, import: importFn });
    await chooseFile();
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Modified: the bundle was changed after it was signed.');
    expect(alert).toHaveTextContent('its signature does not verify');
    expect(verify).toHaveBeenCalledWith(TEXT);
    expect(screen.queryByLabelText('VM id')).toBeNull();
    expect(screen.getByRole('button', { name: 'Import' })).toBeDisabled();
    expect(importFn).not.toHaveBeenCalled();
  });

  it('an untrusted signer is named; trusting it re-checks, then the bundle imports under the edited id', async () => {
    let trustedNow = false;
    const verify = vi.fn((): Promise<BundleVerification> =>
      Promise.resolve(
        trustedNow
          ? {
              ok: true,
              message: 'signature intact',
              signer: { fingerprint: FINGERPRINT, label: 'laptop' },
              summary,
            }
          : {
              ok: false,
              code: 'bundle-key-untrusted',
              message: `its signer ${FINGERPRINT} is not a key you trust`,
              signer: { fingerprint: FINGERPRINT, publicKey: PUBLIC_KEY },
              summary,
            },
      ),
    );
    const trust = vi.fn((keyText: string, label?: string) => {
      trustedNow = true;
      return Promise.resolve({ fingerprint: FINGERPRINT, publicKey: keyText, label, addedAt: 'now' });
    });
    const importFn = vi.fn(() =>
      Promise.resolve({
        vm: imported,
        warnings: [],
        signer: { fingerprint: FINGERPRINT, label: 'laptop' },
        rows: 16,
      }),
    );
    const { onImported } = renderDialog({
      verify,
      trust,
      import: importFn,
      trusted: () => Promise.resolve([]),
    });
    const user = await chooseFile();
    expect(await screen.findByRole('alert')).toHaveTextContent('Untrusted key');

    await user.type(screen.getByLabelText('Label for this signer'), 'laptop');
    await user.click(screen.getByRole('button', { name: `Trust ${FINGERPRINT}` }));
    expect(trust).toHaveBeenCalledWith(PUBLIC_KEY, 'laptop');
    const ok = await screen.findByText(/Signature intact, signed by a key you trust/);
    expect(ok.closest('[role="status"]')).toHaveTextContent('laptop');
    expect(screen.getByText(FINGERPRINT)).toBeInTheDocument();
    expect(verify).toHaveBeenCalledTimes(2);

    const id = screen.getByLabelText('VM id');
    expect(id).toHaveValue('db');
    expect(screen.getByLabelText('Name')).toHaveValue('Database');
    await user.clear(id);
    await user.type(id, 'db-copy');
    await user.selectOptions(screen.getByLabelText('Approval'), 'auto');
    await user.click(screen.getByRole('button', { name: 'Import' }));
    await waitFor(() =>
      expect(importFn).toHaveBeenCalledWith(TEXT, { vmId: 'db-copy', name: 'Database', approval: 'auto' }),
    );
    expect(
      await screen.findByText(/Imported Database \(db-copy\) with 16 expected digest row/),
    ).toBeInTheDocument();
    expect(onImported).toHaveBeenCalledWith(imported, []);
    // Done: no warning about what importing would replace.
    expect(screen.queryByText(/importing replaces/)).toBeNull();
  });

  it('text that is not a bundle is refused as invalid, without a summary', async () => {
    renderDialog({
      verify: () =>
        Promise.resolve({
          ok: false,
          code: 'bundle-invalid',
          message: 'not a bundle: not valid JSON',
          summary: null,
        }),
    });
    await chooseFile();
    expect(await screen.findByRole('alert')).toHaveTextContent('Invalid: this is not a bundle');
    expect(screen.queryByText('VM in the bundle')).toBeNull();
  });
});
