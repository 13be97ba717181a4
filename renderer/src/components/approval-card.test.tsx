// @vitest-environment jsdom
import { describe, expect, it, vi, afterEach } from 'vitest';
import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { renderWithQuery } from '../test-utils';
import { createFakeApi } from '../fake-api';
import { ApiProvider } from '../queries/api-context';
import { ApprovalCard } from './approval-card';
import { encodeApiErrorMessage, type ApprovalView } from '../../../app/contract/ipc';
import { LUKS_PASSPHRASE_GUID } from '../../../app/profile';

const chipId = 'ab'.repeat(64);

function approval(over: Partial<ApprovalView> = {}): ApprovalView {
  return {
    id: '6f1c1c2e-0000-4000-8000-000000000001',
    kind: 'sev-launch',
    state: 'pending',
    vmId: 'web-01',
    connection: null,
    clientAddress: '192.0.2.10:51234',
    chipId,
    anchoredBy: 'milan',
    firmwareApi: { major: 1, minor: 51 },
    buildId: 3,
    policy: 0x5,
    scheme: 'amd-sev-es',
    createdAt: new Date(Date.now() - 5_000).toISOString(),
    expiresAt: new Date(Date.now() + 125_000).toISOString(),
    ...over,
  };
}

afterEach(() => vi.useRealTimers());

describe('ApprovalCard', () => {
  it('shows who asks, the anchoring root, firmware API and policy', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={approval()} />
      </ApiProvider>,
    );
    const card = screen.getByRole('article', { name: /Launch of web-01 from 192\.0\.2\.10:51234/ });
    const c = within(card);
    expect(c.getByText('Anchored by AMD root milan')).toBeInTheDocument();
    expect(c.getByText('1.51 build 3')).toBeInTheDocument();
    expect(c.getByText('0x0005 (NODBG, ES)')).toBeInTheDocument();
    expect(c.getByTitle(chipId)).toHaveTextContent('abababababab…abababababab');
    expect(c.getByRole('button', { name: 'Copy chip id' })).toBeInTheDocument();
    expect(c.getByText('Waiting for you')).toBeInTheDocument();
  });

  it('says why the chain failed and renders host strings as text', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard
          approval={approval({
            anchoredBy: null,
            chainError: '<b>CEK</b> not signed by the ASK',
            chipId: null,
          })}
        />
      </ApiProvider>,
    );
    expect(screen.getByText('Not anchored: <b>CEK</b> not signed by the ASK')).toBeInTheDocument();
    expect(document.querySelector('b')).toBeNull();
    expect(screen.getByText('not sent by the host')).toBeInTheDocument();
  });

  it('names an extra (non-AMD) trust anchor as such', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={approval({ anchoredBy: 'extra:simulated-platform' })} />
      </ApiProvider>,
    );
    expect(
      screen.getByText(
        "Anchored by an extra trusted root (simulated-platform), not one of AMD's pinned roots",
      ),
    ).toHaveClass('warn');
  });

  it('Approve and Deny call approvals.decide with the request id', async () => {
    const user = userEvent.setup();
    const decide = vi.fn(() => Promise.resolve());
    const list = vi.fn(() => Promise.resolve([]));
    const { api } = createFakeApi({ approvals: { decide, list } });
    const a = approval();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={a} />
      </ApiProvider>,
    );
    await user.click(screen.getByRole('button', { name: /^Approve launch of web-01/ }));
    await waitFor(() => expect(decide).toHaveBeenCalledWith(a.id, 'approve'));
    await user.click(screen.getByRole('button', { name: /^Deny for 10 min: launch of web-01/ }));
    await waitFor(() => expect(decide).toHaveBeenCalledWith(a.id, 'deny'));
    expect(decide).toHaveBeenCalledTimes(2);
  });

  it('shows the contract error when the decision fails', async () => {
    const user = userEvent.setup();
    const decide = vi.fn(() =>
      Promise.reject(new Error(encodeApiErrorMessage('approval-decided', 'the request was already denied'))),
    );
    const { api } = createFakeApi({ approvals: { decide, list: vi.fn(() => Promise.resolve([])) } });
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={approval()} />
      </ApiProvider>,
    );
    await user.click(screen.getByRole('button', { name: /^Approve/ }));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'The decision was not recorded: the request was already denied (approval-decided)',
    );
  });

  it('counts down to the automatic deny', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(new Date('2025-01-01T00:00:00Z'));
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard
          approval={approval({ createdAt: '2025-01-01T00:00:00Z', expiresAt: '2025-01-01T00:02:05Z' })}
        />
      </ApiProvider>,
    );
    expect(screen.getByRole('timer')).toHaveAccessibleName('Automatic deny in 2:05');
    act(() => vi.advanceTimersByTime(35_000));
    expect(screen.getByRole('timer')).toHaveAccessibleName('Automatic deny in 1:30');
    act(() => vi.advanceTimersByTime(200_000));
    expect(screen.getByRole('timer')).toHaveAccessibleName('Automatic deny in 0:00');
  });

  it('a decided request shows its state and no buttons', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={approval({ state: 'expired', decidedAt: new Date().toISOString() })} />
      </ApiProvider>,
    );
    expect(screen.getByText('Denied automatically (timed out)')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: /Approve/ })).toBeNull();
    expect(screen.queryByRole('timer')).toBeNull();
  });

  it('names the profile, the secrets it would release (never values), the chip proof', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard
          approval={approval({
            profileName: 'Web server',
            chipProven: false,
            secrets: [
              { guid: '736869e5-84f0-4973-92ec-06879ce3da0b', kind: 'luks-passphrase' },
              { guid: '11111111-2222-3333-4444-555555555555', kind: 'raw', label: 'api key' },
            ],
          })}
        />
      </ApiProvider>,
    );
    const card = screen.getByRole('article', { name: /Launch of Web server \(web-01\) from 192\.0\.2\.10/ });
    const secrets = within(card).getByTestId('approval-secrets');
    expect(secrets).toHaveTextContent('Disk (LUKS) passphrase');
    expect(secrets).toHaveTextContent('api key');
    expect(within(card).getByText('not proven: the host only says so')).toBeInTheDocument();
    expect(within(card).getByText('192.0.2.10:51234', { selector: 'dd' })).toBeInTheDocument();
  });

  it('a chip id the host claimed but the chain did not prove is said so', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={approval({ chipId: null, chipProven: false })} />
      </ApiProvider>,
    );
    expect(screen.getByText('claimed by the host, not proven (not shown)')).toBeInTheDocument();
  });

  it('offers deny once besides deny for a while', async () => {
    const user = userEvent.setup();
    const decide = vi.fn(() => Promise.resolve());
    const { api } = createFakeApi({ approvals: { decide, list: vi.fn(() => Promise.resolve([])) } });
    const a = approval();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={a} />
      </ApiProvider>,
    );
    await user.click(screen.getByRole('button', { name: /^Deny once/ }));
    await waitFor(() => expect(decide).toHaveBeenCalledWith(a.id, 'deny-once'));
    expect(screen.getByRole('button', { name: /^Deny for 10 min/ })).toHaveAccessibleName(
      /identical launches are refused until then/,
    );
  });

  it('a denial says until when identical launches are refused, and can be forgotten', async () => {
    const user = userEvent.setup();
    const forget = vi.fn(() => Promise.resolve());
    const { api } = createFakeApi({ approvals: { forget, list: vi.fn(() => Promise.resolve([])) } });
    const until = new Date(2026, 0, 1, 3, 8).toISOString();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard
          approval={approval({
            state: 'denied',
            decidedAt: new Date().toISOString(),
            refusedUntil: until,
            denyMode: 'for-a-while',
          })}
        />
      </ApiProvider>,
    );
    expect(screen.getByTestId('refusal')).toHaveTextContent(/Identical launches refused until 03:08/);
    await user.click(screen.getByRole('button', { name: /^Forget decision/ }));
    await waitFor(() => expect(forget).toHaveBeenCalledWith('6f1c1c2e-0000-4000-8000-000000000001'));
  });
});

describe('ApprovalCard for an SEV-SNP attestation', () => {
  const snpApproval = (
    over: Partial<NonNullable<ApprovalView['snp']>> = {},
    view: Partial<ApprovalView> = {},
  ) =>
    approval({
      kind: 'snp-attest',
      vmId: 'snp-01',
      profileName: 'SNP web',
      anchoredBy: 'amd-ark:genoa',
      policy: 0x30000,
      scheme: 'amd-sev-snp',
      secrets: [{ guid: LUKS_PASSPHRASE_GUID, kind: 'luks-passphrase', resource: 'default/luks/snp-01' }],
      snp: {
        product: 'Genoa',
        measurement: 'c4'.repeat(48),
        reportedTcb: 'bl 7 tee 0 snp 14 ucode 72',
        policy: '0x30000',
        vmpl: 0,
        signer: 'vcek',
        vouchedBy: 'measurement',
        resources: ['default/luks/snp-01'],
        revocation: 'CRL checked',
        ...over,
      },
      ...view,
    });

  it('shows the product, the chip proven by the VCEK, TCB, measurement, policy, VMPL, resources and revocation', async () => {
    const user = userEvent.setup();
    const decide = vi.fn(() => Promise.resolve());
    const { api } = createFakeApi({ approvals: { decide } });
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard approval={snpApproval()} />
      </ApiProvider>,
    );
    const card = screen.getByRole('article', { name: /SEV-SNP attestation of SNP web \(snp-01\)/ });
    const c = within(card);
    expect(c.getByTestId('snp-product')).toHaveTextContent(/AMD Genoa, chip abababababab…abababababab/);
    expect(c.getByText(/proven by the VCEK/)).toBeInTheDocument();
    expect(c.getByTestId('snp-root')).toHaveTextContent('certified by AMD (genoa root)');
    expect(c.getByText('bl 7 tee 0 snp 14 ucode 72')).toBeInTheDocument();
    expect(c.getByTestId('snp-measurement')).toHaveTextContent('c4'.repeat(48));
    expect(c.getByRole('button', { name: 'Copy measurement' })).toBeInTheDocument();
    expect(c.getByText('0x30000')).toBeInTheDocument();
    expect(c.getByText(/matches one the profile expects/)).toBeInTheDocument();
    expect(c.getByTestId('snp-resources')).toHaveTextContent('default/luks/snp-01');
    expect(c.getByTestId('approval-secrets')).toHaveTextContent('Disk (LUKS) passphrase default/luks/snp-01');
    expect(c.getByText('CRL checked')).toHaveClass('ok');
    // The SEV launch facts do not apply to a guest's report.
    expect(c.queryByText('Certificate chain')).toBeNull();
    expect(c.queryByText('Firmware API')).toBeNull();
    await user.click(
      c.getByRole('button', { name: 'Approve SEV-SNP attestation of snp-01 from 192.0.2.10:51234' }),
    );
    expect(decide).toHaveBeenCalledWith(snpApproval().id, 'approve');
  });

  it('says when a VLEK signed (chip not proven), an ID key vouched and revocation was not checked', () => {
    const { api } = createFakeApi();
    renderWithQuery(
      <ApiProvider api={api}>
        <ApprovalCard
          approval={snpApproval(
            {
              signer: 'vlek',
              vouchedBy: 'id-key',
              revocation: 'CRL not checked: the owner allowed a missing CRL',
              resources: [],
            },
            { anchoredBy: 'lab.pem (--snp-roots, not AMD)' },
          )}
        />
      </ApiProvider>,
    );
    expect(screen.getByText(/signed by a VLEK .*the chip is not proven/)).toHaveClass('warn');
    expect(screen.getByTestId('snp-root').firstChild).toHaveClass('warn');
    expect(screen.getByTestId('snp-root')).toHaveTextContent(
      "certified by an extra root, not AMD's: lab.pem (--snp-roots, not AMD)",
    );
    expect(screen.getByText(/an ID key the profile trusts signed/)).toBeInTheDocument();
    expect(screen.getByText('CRL not checked: the owner allowed a missing CRL')).toHaveClass('warn');
    expect(screen.getByTestId('snp-resources')).toHaveTextContent('the profile holds none');
  });
});
