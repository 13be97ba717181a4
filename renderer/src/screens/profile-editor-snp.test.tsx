// @vitest-environment jsdom
/**
 * The profile editor for SEV-SNP: the SNP policy with its bits (debug refused), the SNP settings with plain
 * messages next to each field, Save blocked while anything is invalid, the draft preview asked with the
 * SNP inputs, and the resource paths of an existing profile's secrets.
 */
import { describe, expect, it, vi } from 'vitest';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ProfileEditor, defaultResourcePath } from './profile-editor';
import { LUKS_PASSPHRASE_GUID, VmProfileSchema, type VmProfile } from '../../../app/profile';
import type { ArtifactSummary, DigestDraft, DigestPreview } from '../../../app/contract/ipc';

const FIRMWARE: ArtifactSummary = {
  sha256: 'f0'.repeat(32),
  size: 4096,
  name: 'OVMF.amdsev.fd',
  kind: 'firmware',
} as ArtifactSummary;
const MEASUREMENT = 'c4'.repeat(48);

const snpProfile: VmProfile = VmProfileSchema.parse({
  id: 'snp-01',
  name: 'SNP web',
  scheme: 'amd-sev-snp',
  policy: 0x30000,
  cpuCounts: [2],
  cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
  firmware: { kind: 'digests', launchDigests: [MEASUREMENT] },
  snp: { minimumTcb: { snp: 8 } },
  secrets: [
    { guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', resource: 'default/luks/snp-01' },
    {
      guid: '0a0b0c0d-0000-4000-8000-000000000001',
      kind: 'raw',
      label: 'API token',
      resource: 'default/token/api',
    },
  ],
});

function renderEditor(p?: VmProfile) {
  const save = vi.fn((input: unknown) => Promise.resolve({ profile: input as VmProfile, warnings: [] }));
  const preview = vi.fn((d: DigestDraft): Promise<DigestPreview> =>
    Promise.resolve({
      ok: true,
      warnings: [],
      candidates: d.cpuCounts.map((n) => ({
        launchDigest: String(n).repeat(96),
        inputs: {
          scheme: d.scheme,
          policy: d.policy,
          cpuCount: n,
          vmmType: d.snp?.vmmType,
          guestFeatures: '0x1',
        },
      })),
    }),
  );
  const { api } = createFakeApi({
    artifacts: { list: () => Promise.resolve([FIRMWARE]), inspect: () => new Promise(() => {}) },
    digests: { preview },
    profiles: { save },
  });
  renderWithQuery(
    <ApiProvider api={api}>
      <ProfileEditor profile={p} onClose={() => {}} onSaved={() => {}} />
    </ApiProvider>,
  );
  return { save, preview };
}

async function newSnpProfile(user: ReturnType<typeof userEvent.setup>) {
  await user.type(screen.getByLabelText('Id'), 'snp-new');
  await user.type(screen.getByLabelText('Name'), 'New SNP');
  await user.click(screen.getByLabelText(/SEV-SNP/));
  await user.selectOptions(await screen.findByLabelText('Firmware image'), FIRMWARE.sha256);
  await user.clear(screen.getByLabelText('vCPU counts'));
  await user.type(screen.getByLabelText('vCPU counts'), '1, 4');
}

describe('ProfileEditor for SEV-SNP', () => {
  it('offers the three schemes; SNP shows its policy bits, with debugging refused', async () => {
    const user = userEvent.setup();
    renderEditor();
    for (const s of [/^SEV \(memory encryption\)/, /^SEV-ES/, /^SEV-SNP/])
      expect(screen.getByRole('radio', { name: s })).toBeInTheDocument();
    await user.click(screen.getByLabelText(/SEV-SNP/));
    const policy = screen.getByTestId('snp-policy');
    expect(within(policy).getByRole('switch', { name: /SMT allowed/ })).toBeChecked();
    expect(within(policy).getByRole('switch', { name: /Migration agent allowed/ })).not.toBeChecked();
    expect(within(policy).getByRole('switch', { name: /Single socket only/ })).not.toBeChecked();
    const debug = within(policy).getByRole('switch', { name: /Debugging allowed/ });
    expect(debug).toBeDisabled();
    expect(within(policy).getByText(/never releases a secret to such a guest/)).toBeInTheDocument();
    expect(within(policy).getByLabelText('SNP policy (hex)')).toHaveValue('0x30000');
    await user.click(within(policy).getByRole('switch', { name: /Single socket only/ }));
    expect(within(policy).getByLabelText('SNP policy (hex)')).toHaveValue('0x130000');
    await user.clear(within(policy).getByLabelText('Minimum ABI major'));
    await user.type(within(policy).getByLabelText('Minimum ABI major'), '1');
    expect(within(policy).getByLabelText('SNP policy (hex)')).toHaveValue('0x130100');
  });

  it('blocks Save for a typed debug policy, with the reason next to the field', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor();
    await newSnpProfile(user);
    const hex = screen.getByLabelText('SNP policy (hex)');
    await user.clear(hex);
    await user.type(hex, '0xb0000');
    expect(hex).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByText(/Bit 19 \(debugging\) lets the host read guest memory/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
  });

  it('puts plain messages next to SNP fields and blocks Save while they are invalid', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor();
    await newSnpProfile(user);
    await user.type(screen.getByLabelText('Host data'), 'abc');
    await user.click(screen.getByLabelText('Trusted ID key digests'));
    await user.paste('ab'.repeat(32));
    await user.type(screen.getByLabelText('Microcode'), '300');
    expect(screen.getByText(/Host data is 32 bytes: exactly 64 hex digits/)).toBeInTheDocument();
    expect(screen.getByText(/Each key digest is a SHA-384 of the public key/)).toBeInTheDocument();
    expect(screen.getByText(/A security patch level is a whole number from 0 to 255/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(screen.getByRole('alert', { name: '' })).toHaveTextContent(/Host data: Host data is 32 bytes/);
  });

  it('warns that Trustee refuses version 2 reports, and saves the SNP settings', async () => {
    const user = userEvent.setup();
    const { save, preview } = renderEditor();
    await newSnpProfile(user);
    await user.selectOptions(screen.getByLabelText('VMM type'), 'qemu');
    await user.type(screen.getByLabelText('SNP firmware'), '8');
    await user.type(screen.getByLabelText('FMC (Turin and later)'), '1');
    await user.click(screen.getByLabelText('Host data'));
    await user.paste('0A'.repeat(32));
    await user.selectOptions(screen.getByLabelText('Minimum report version'), '2');
    expect(screen.getByText(/Trustee refuses them/)).toBeInTheDocument();
    await waitFor(() =>
      expect(preview).toHaveBeenCalledWith(
        expect.objectContaining({
          scheme: 'amd-sev-snp',
          cpuCounts: [1, 4],
          snp: { vmmType: 'qemu', guestFeatures: 1 },
        }),
      ),
    );
    expect(await screen.findByRole('heading', { name: 'Expected launch measurements' })).toBeInTheDocument();
    expect(await screen.findAllByTestId('launch-digest')).toHaveLength(2);
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).toHaveBeenCalledTimes(1);
    const saved = save.mock.calls[0]![0] as VmProfile;
    expect(VmProfileSchema.safeParse(saved).success).toBe(true);
    expect(saved).toMatchObject({
      scheme: 'amd-sev-snp',
      policy: 0x30000,
      cpuCounts: [1, 4],
      cpuSignatures: [{ family: 25, model: 1, stepping: 1 }],
      firmware: { kind: 'artifact', sha256: FIRMWARE.sha256 },
      snp: {
        vmmType: 'qemu',
        guestFeatures: 1,
        minimumTcb: { snp: 8, fmc: 1 },
        hostData: '0a'.repeat(32),
        vmpl: 0,
        minimumReportVersion: 2,
      },
    });
    expect(saved.minApi).toBeUndefined();
  });

  it('pasted measurements must be SHA-384s; none at all is fine with a trusted ID key', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor();
    await newSnpProfile(user);
    await user.click(screen.getByLabelText('Pasted launch measurements'));
    const box = screen.getByLabelText(/Launch measurements \(SHA-384 hex/);
    await user.click(box);
    await user.paste('ab'.repeat(32));
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(
      screen.getAllByText(/Each SNP launch measurement is a SHA-384: exactly 96 hex digits/).length,
    ).toBeGreaterThan(0);
    await user.clear(box);
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(screen.getAllByText(/or trust an ID or author key below/).length).toBeGreaterThan(0);
    await user.click(screen.getByLabelText('Trusted ID key digests'));
    await user.paste('11'.repeat(48));
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).toHaveBeenCalledTimes(1);
    expect((save.mock.calls[0]![0] as VmProfile).snp!.trustedIdKeyDigests).toEqual(['11'.repeat(48)]);
  });

  it('shows and edits the resource paths of the secrets; an empty or repeated path blocks Save', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor(snpProfile);
    const secrets = screen.getByTestId('snp-secrets');
    const luks = within(secrets).getByLabelText('Resource path of the disk passphrase');
    const token = within(secrets).getByLabelText('Resource path of API token');
    expect(luks).toHaveValue('default/luks/snp-01');
    expect(token).toHaveValue('default/token/api');
    await user.clear(token);
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).not.toHaveBeenCalled();
    expect(within(secrets).getByText(/needs the path the guest fetches it by/)).toBeInTheDocument();
    await user.type(token, 'default/luks/snp-01');
    expect(within(secrets).getByText(/Two secrets have the path default\/luks\/snp-01/)).toBeInTheDocument();
    await user.clear(token);
    await user.type(token, 'default/token/api-v2');
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).toHaveBeenCalledTimes(1);
    expect((save.mock.calls[0]![0] as VmProfile).secrets.map((s) => s.resource)).toEqual([
      'default/luks/snp-01',
      'default/token/api-v2',
    ]);
  });

  it('a profile moved from SNP to SEV keeps its secrets without resource paths, and an SEV policy', async () => {
    const user = userEvent.setup();
    const { save } = renderEditor({
      ...snpProfile,
      firmware: { kind: 'artifact', sha256: FIRMWARE.sha256, size: FIRMWARE.size },
    });
    await user.click(screen.getByRole('radio', { name: /^SEV \(memory encryption\)/ }));
    expect(screen.queryByTestId('snp-policy')).toBeNull();
    expect(screen.getByLabelText('Policy (hex)')).toHaveValue('0x0001');
    await user.click(screen.getByRole('button', { name: 'Save profile' }));
    expect(save).toHaveBeenCalledTimes(1);
    const saved = save.mock.calls[0]![0] as VmProfile;
    expect(saved.scheme).toBe('amd-sev');
    expect(saved.snp).toBeUndefined();
    expect(saved.secrets.map((s) => s.resource)).toEqual([undefined, undefined]);
    expect(VmProfileSchema.safeParse(saved).success).toBe(true);
  });

  it('default resource paths: the LUKS key under default/luks/<id>, others under default/secret/<id>', () => {
    expect(defaultResourcePath('web-01', 'luks-passphrase')).toBe('default/luks/web-01');
    expect(defaultResourcePath('web-01', 'raw')).toBe('default/secret/web-01');
    expect(defaultResourcePath('web-01', 'raw', ['default/secret/web-01'])).toBe('default/secret/web-01-2');
  });
});
