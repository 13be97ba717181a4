// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ExportBundleDialog } from './export-bundle-dialog';
import type { BundleBodyView, BundleSelection } from '../../../app/contract/ipc';
import type { VmProfile } from '../../../app/profile';

const MILAN = { family: 25, model: 1, stepping: 1 };
const FINGERPRINT = 'ed25519:qTicjO3askZZI0WJzEaGD72UI+NGwkMC/h5aRfc7BwA';

const esProfile: VmProfile = {
  id: 'db',
  name: 'Database',
  scheme: 'amd-sev-es',
  policy: 5,
  cpuCounts: [1, 2],
  cpuSignatures: [MILAN],
  vmsaVariants: ['legacy', 'kvm-init2'],
  firmware: { kind: 'artifact', sha256: 'aa'.repeat(32), size: 4194304 },
  approval: 'manual',
  secrets: [],
};

/** A preview body with one row per combination of the selection, digests made up per row. */
function bodyFor(profile: VmProfile, sel: BundleSelection): BundleBodyView {
  const es = profile.scheme === 'amd-sev-es';
  const counts = sel.cpuCounts ?? profile.cpuCounts;
  const sigs = sel.cpuSignatures ?? profile.cpuSignatures;
  const variants = sel.vmsaVariants ?? profile.vmsaVariants;
  const rows: BundleBodyView['rows'] = [];
  if (!es) rows.push({ row: 0, digest: '00'.repeat(32), 'sev-es': false, 'kernel-hashes-table': false });
  else
    for (const cpus of counts)
      for (const s of sigs)
        for (const v of variants)
          rows.push({
            row: rows.length,
            digest: rows.length.toString(16).padStart(2, '0').repeat(32),
            'sev-es': true,
            'kernel-hashes-table': false,
            cpus,
            'cpu-signature': { ...s, eax: '0x00a00f11', name: 'EPYC-Milan' },
            'vmsa-variant': v,
          });
  return {
    'created-at': '2026-11-28T15:00:00.000Z',
    generator: 'sev-attest test',
    vm: { id: profile.id, name: profile.name },
    scheme: profile.scheme,
    policy: profile.policy,
    firmware: { sha256: 'aa'.repeat(32), size: 4194304 },
    matrix: {
      'cpu-counts': counts,
      'cpu-signatures': [],
      'vmsa-variants': variants,
      collapsed: !es,
      note: es ? 'one row per combination' : 'SEV without ES measures no VMSA',
    },
    rows,
  };
}

let clicked: HTMLAnchorElement[] = [];
beforeEach(() => {
  clicked = [];
  URL.createObjectURL = vi.fn(() => 'blob:bundle');
  URL.revokeObjectURL = vi.fn();
  vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function (this: HTMLAnchorElement) {
    clicked.push(this);
  });
});
afterEach(() => vi.restoreAllMocks());

function renderDialog(profile: VmProfile, overrides: Parameters<typeof createFakeApi>[0] = {}) {
  const preview = vi.fn((_vmId: string, sel: BundleSelection) => Promise.resolve(bodyFor(profile, sel)));
  const exportFn = vi.fn((vmId: string, _sel: BundleSelection, format: string) =>
    Promise.resolve({
      fileName: `${vmId}${format === 'csv' ? '.csv' : '.bundle.json'}`,
      contentType: format === 'csv' ? 'text/csv' : 'application/json',
      text: 'row,vm_id\r\n',
      fingerprint: FINGERPRINT,
    }),
  );
  const { api } = createFakeApi({
    bundles: {
      preview,
      export: exportFn,
      key: () => Promise.resolve({ fingerprint: FINGERPRINT, publicKey: 'A'.repeat(43) + '=' }),
    },
    ...overrides,
  });
  const onClose = vi.fn();
  renderWithQuery(
    <ApiProvider api={api}>
      <ExportBundleDialog profile={profile} onClose={onClose} />
    </ApiProvider>,
  );
  return { preview, exportFn, onClose };
}

describe('ExportBundleDialog', () => {
  it('previews the profile matrix, follows the vCPU range, and exports the selection in the chosen format', async () => {
    const user = userEvent.setup();
    const { preview, exportFn } = renderDialog(esProfile);
    const table = await screen.findByRole('table');
    // 2 vCPU counts x 1 signature x 2 variants, plus the header row.
    expect(within(table).getAllByRole('row')).toHaveLength(1 + 4);
    expect(within(table).getByText('01'.repeat(32))).toBeInTheDocument();
    expect(await screen.findByTestId('signing-fingerprint')).toHaveTextContent(FINGERPRINT);
    expect(preview).toHaveBeenLastCalledWith('db', {
      cpuCounts: [1, 2],
      cpuSignatures: [{ ...MILAN, name: 'EPYC-Milan' }],
      vmsaVariants: ['legacy', 'kvm-init2'],
    });

    const cpus = screen.getByLabelText(/vCPU counts/);
    await user.clear(cpus);
    await user.type(cpus, '1-3');
    await user.selectOptions(screen.getByLabelText('VMSA variant'), 'kvm-init2');
    await waitFor(() => expect(within(screen.getByRole('table')).getAllByRole('row')).toHaveLength(1 + 3));
    expect(screen.getByRole('heading', { name: 'Preview: 3 rows' })).toBeInTheDocument();

    await user.selectOptions(screen.getByLabelText('Format'), 'csv');
    await user.click(screen.getByRole('button', { name: 'Sign and save' }));
    await waitFor(() => expect(exportFn).toHaveBeenCalledTimes(1));
    expect(exportFn).toHaveBeenCalledWith(
      'db',
      {
        cpuCounts: [1, 2, 3],
        cpuSignatures: [{ ...MILAN, name: 'EPYC-Milan' }],
        vmsaVariants: ['kvm-init2'],
      },
      'csv',
    );
    expect(await screen.findByText(`Saved db.csv, signed by ${FINGERPRINT}.`)).toBeInTheDocument();
    expect(clicked.map((a) => a.download)).toEqual(['db.csv']);
  });

  it('an unreadable vCPU range or no CPU signature stops the preview and the export', async () => {
    const user = userEvent.setup();
    const { preview } = renderDialog(esProfile);
    await screen.findByRole('table');
    const calls = preview.mock.calls.length;
    const cpus = screen.getByLabelText(/vCPU counts/);
    await user.clear(cpus);
    await user.type(cpus, '0-2');
    expect(screen.getByText(/counts or ranges from 1 to 4096/)).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Sign and save' })).toBeDisabled();
    await user.clear(cpus);
    await user.type(cpus, '4');
    await user.click(screen.getByLabelText('EPYC-Milan (25:1:1)'));
    expect(screen.getByText('Pick at least one guest CPU signature.')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Sign and save' })).toBeDisabled();
    // Only the valid "4" selection was previewed meanwhile.
    expect(preview).toHaveBeenCalledWith('db', expect.objectContaining({ cpuCounts: [4] }));
    for (const [, sel] of preview.mock.calls.slice(calls)) expect(sel.cpuCounts).toEqual([4]);
  });

  it('SEV without ES: the matrix is disabled and the preview says it collapsed to one row', async () => {
    const sev: VmProfile = { ...esProfile, id: 'web', scheme: 'amd-sev', policy: 1, cpuSignatures: [] };
    const { preview } = renderDialog(sev);
    expect(await screen.findByText(/Collapsed to one row/)).toBeInTheDocument();
    expect(within(screen.getByRole('table')).getAllByRole('row')).toHaveLength(2);
    expect(screen.getByLabelText(/vCPU counts/)).toBeDisabled();
    expect(preview).toHaveBeenCalledWith('web', {});
  });

  it('without a signing key: says so, offers to create one, and does not export', async () => {
    const user = userEvent.setup();
    const keygen = vi.fn(() =>
      Promise.resolve({ fingerprint: FINGERPRINT, publicKey: 'B'.repeat(43) + '=', created: true }),
    );
    renderDialog(esProfile, {
      bundles: { key: () => Promise.resolve(null), keygen, trusted: () => Promise.resolve([]) },
    });
    expect(await screen.findByText(/no bundle signing key yet/)).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Sign and save' })).toBeDisabled();
    await user.click(screen.getByRole('button', { name: 'Create signing key' }));
    expect(await screen.findByTestId('signing-fingerprint')).toHaveTextContent(FINGERPRINT);
    expect(keygen).toHaveBeenCalledWith({ replace: false });
    await waitFor(() => expect(screen.getByRole('button', { name: 'Sign and save' })).toBeEnabled());
  });
});

describe('ExportBundleDialog for an SEV-SNP profile', () => {
  const snpProfile: VmProfile = {
    ...esProfile,
    id: 'snp',
    name: 'SNP guest',
    scheme: 'amd-sev-snp',
    policy: 0x30000,
    vmsaVariants: ['kvm-init2'],
    snp: {
      vmmType: 'qemu',
      guestFeatures: 1,
      trustedIdKeyDigests: [],
      trustedAuthorKeyDigests: [],
      vmpl: 0,
      minimumReportVersion: 3,
    },
  };

  it('offers only the native bundle and CSV, spans vCPU counts x signatures, and sends no VMSA variant', async () => {
    const user = userEvent.setup();
    const { preview, exportFn } = renderDialog(snpProfile);
    await screen.findByRole('table');
    const formats = within(screen.getByLabelText('Format'))
      .getAllByRole('option')
      .map((o) => (o as HTMLOptionElement).value);
    expect(formats).toEqual(['native', 'csv']);
    expect(screen.queryByLabelText('VMSA variant')).toBeNull();
    expect(screen.getByText('Matrix (SEV-SNP)')).toBeInTheDocument();
    expect(screen.getByRole('columnheader', { name: 'Launch measurement' })).toBeInTheDocument();
    expect(preview).toHaveBeenLastCalledWith('snp', {
      cpuCounts: [1, 2],
      cpuSignatures: [{ ...MILAN, name: 'EPYC-Milan' }],
    });
    await user.selectOptions(screen.getByLabelText('Format'), 'csv');
    await user.click(screen.getByRole('button', { name: 'Sign and save' }));
    await waitFor(() => expect(exportFn).toHaveBeenCalledTimes(1));
    expect(exportFn).toHaveBeenCalledWith(
      'snp',
      { cpuCounts: [1, 2], cpuSignatures: [{ ...MILAN, name: 'EPYC-Milan' }] },
      'csv',
    );
  });
});
